-- Foreign keys without a matching index make a per-site replace (demo-generate --replace)
-- check every deleted row by a scan; these also serve the DWS joins and member prompts.
CREATE INDEX IF NOT EXISTS assistant_services_settlement_idx ON ods.assistant_services (site_id, settlement_id);
CREATE INDEX IF NOT EXISTS tasks_member_idx ON ods.tasks (site_id, member_id);
CREATE INDEX IF NOT EXISTS recharges_member_idx ON ods.recharges (site_id, member_id);
