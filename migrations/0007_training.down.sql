DROP TABLE training_deltas;
DROP TABLE training_rounds;
DROP TABLE training_runs;
