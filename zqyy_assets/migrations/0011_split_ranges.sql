-- A range run (a burst's new members in one run of a chain) that failed for some of its members
-- only is split: each of its events gets the run of its own it would have had unbatched, and
-- `split_into` lists those run keys. A split run no longer decides its events' status (their own
-- runs do); it stays in the table, and its Dagster run id in the events' history.
ALTER TABLE biz.ai_event_runs ADD COLUMN split_into text[];
