ALTER TABLE reviews DROP COLUMN origin;
DROP INDEX papers_site_number_idx;
DELETE FROM papers WHERE origin = 'network';
ALTER TABLE papers ADD CONSTRAINT papers_campaign_id_agent_number_key UNIQUE (campaign_id, agent, number);
ALTER TABLE papers DROP COLUMN origin;
DROP TABLE site_settings;
ALTER TABLE agents DROP COLUMN sealed_key;
