-- Exactly-once reading of the event inbox, and the Dagster runs requested for each event.

-- Ids from a sequence are taken at insert time but become visible at commit: a reader that
-- moved its cursor past a committed id 11 would miss id 10 committing later. So an insert
-- takes its id only after this transaction-scoped lock, held until commit: event inserts
-- commit in id order, and "id > cursor" never skips one. Inserts of events serialize from
-- the event's insert to the commit (insert the event last in a transaction); readers and
-- other tables are not affected. Advisory locks are per database.
CREATE FUNCTION biz.ai_events_take_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7240008);
    NEW.id := nextval(pg_get_serial_sequence('biz.ai_events', 'id'));
    RETURN NEW;
END
$$;
CREATE TRIGGER ai_events_take_id BEFORE INSERT ON biz.ai_events
    FOR EACH ROW EXECUTE FUNCTION biz.ai_events_take_id();
-- The trigger sets the id; a column default would draw a second, wasted value per insert.
ALTER TABLE biz.ai_events ALTER COLUMN id DROP DEFAULT;

ALTER TABLE biz.ai_events
    -- A producer's own key (e.g. 'ods:settlement:1:123'), so a retried insert is a no-op.
    ADD COLUMN idempotency_key text UNIQUE,
    -- For skipped_duplicate: the event of the same (type, site, member, business date) that ran.
    ADD COLUMN duplicate_of    bigint REFERENCES biz.ai_events (id);

-- One row per run the inbox sensor requested. run_key is the sensor's run key (derived from
-- the event id), so a re-evaluated tick re-emits the same request and Dagster creates the run
-- once. The status sensor copies Dagster's run id and status here and rolls them up to events.
CREATE TABLE biz.ai_event_runs (
    run_key          text PRIMARY KEY,
    job_name         text NOT NULL,
    partition_key    text,                     -- null for the app2 prewarm (a range, in tags)
    asset_names      text[] NOT NULL,
    event_ids        bigint[] NOT NULL CHECK (cardinality(event_ids) > 0),
    tags             jsonb NOT NULL DEFAULT '{}'::jsonb,
    dagster_run_id   text,
    run_status       text,                     -- Dagster's run status as last seen
    error_message    text,
    requested_at     timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX ai_event_runs_open_idx ON biz.ai_event_runs (requested_at) WHERE finished_at IS NULL;
CREATE INDEX ai_event_runs_events_idx ON biz.ai_event_runs USING gin (event_ids);
