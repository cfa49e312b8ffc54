DROP TABLE challenges;
DROP TRIGGER points_ledger_append_only ON points_ledger;
DROP FUNCTION points_ledger_append_only();
DROP TABLE points_ledger;
DROP TABLE pulse_outcomes;
DROP TABLE pulse_verdicts;
DROP TABLE pulse_rounds;
DROP TABLE pulse_presences;
