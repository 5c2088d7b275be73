-- Realtime pushes: an outbox of what happened per site, written in the same transaction as the
-- change, and a NOTIFY to wake the API workers (the outbox row is the truth, the NOTIFY only a
-- wake-up). Readers: zqyy_assets/core/outbox.py; the API's hub: api/services/realtime_hub.py.

-- The per-site sequence. `seq` comes from this counter row, incremented by the writing
-- transaction and held (row lock) until it commits or rolls back. So for one site:
--   * seq order is commit order: the next writer of the site waits for the row, i.e. for the
--     previous writer's commit, before it takes seq + 1; a reader that sees seq N has seen every
--     seq below N that will ever exist, so `seq > since` never skips a row committed later;
--   * a rolled-back writer rolls its increment back too (no gap from it); gaps can still come
--     from the purge, and a channel that filters types (alerts only) sees gaps: clients only
--     rely on seq growing.
-- The price is that writers of one site serialise from their outbox write to their commit;
-- every writer here (a cache insert, an alert, an event status change) commits right after.
-- A global sequence read by id would not give this: ids are taken at insert, not at commit,
-- so a reader could see id 6 before id 5 commits and then skip 5 forever.
CREATE TABLE biz.realtime_seq (
    site_id   bigint PRIMARY KEY,
    last_seq  bigint NOT NULL
);

CREATE TABLE biz.realtime_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id     bigint NOT NULL,
    seq         bigint NOT NULL,
    type        text NOT NULL CHECK (type IN ('alert_created', 'cache_updated', 'event_status')),
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (site_id, seq)
);
CREATE INDEX realtime_outbox_created_idx ON biz.realtime_outbox (created_at);

-- The one writer: every push goes through this function (the triggers below, and
-- zqyy_assets.core.outbox.publish for anything not tied to a table). The NOTIFY payload is
-- the site id only: Postgres folds identical notifications of one transaction into one, so a
-- transaction writing 72 rows of one site wakes the listeners once.
CREATE FUNCTION biz.realtime_publish(p_site bigint, p_type text, p_payload jsonb) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    next_seq bigint;
BEGIN
    INSERT INTO biz.realtime_seq AS s (site_id, last_seq) VALUES (p_site, 1)
    ON CONFLICT (site_id) DO UPDATE SET last_seq = s.last_seq + 1
    RETURNING last_seq INTO next_seq;
    INSERT INTO biz.realtime_outbox (site_id, seq, type, payload) VALUES (p_site, next_seq, p_type, p_payload);
    PERFORM pg_notify('zqyy_realtime', p_site::text);
    RETURN next_seq;
END $$;

-- Statement-level triggers, so every writer of these tables (a Dagster run, a sensor, the API,
-- a tool, a hand-written INSERT) publishes in its own transaction and none can forget to.
-- Rows are published in (site_id, id) order: counter rows are locked in site order within a
-- statement, which keeps two multi-site statements from deadlocking on them.

CREATE FUNCTION biz.realtime_cache_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM biz.realtime_publish(
        n.site_id, 'cache_updated',
        jsonb_build_object('cache_type', n.cache_type, 'target_id', n.target_id,
                           'triggered_by', n.triggered_by, 'cache_id', n.id))
    FROM inserted n WHERE n.status = 'valid' ORDER BY n.site_id, n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER realtime_cache_inserted AFTER INSERT ON biz.ai_cache
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION biz.realtime_cache_inserted();

-- An alert with no site (a run that named none) has no channel to go to. `log_id` is the
-- seed's field (its run-log row); alerts here come from runs, so it is null and the run id
-- and event id are given instead.
CREATE FUNCTION biz.realtime_alert_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM biz.realtime_publish(
        n.site_id, 'alert_created',
        jsonb_build_object('app_type', n.app_type, 'alert_type', n.alert_type, 'message', n.error_message,
                           'log_id', NULL, 'alert_id', n.id, 'dagster_run_id', n.dagster_run_id,
                           'event_id', n.event_id))
    FROM inserted n WHERE n.site_id IS NOT NULL ORDER BY n.site_id, n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER realtime_alert_inserted AFTER INSERT ON biz.ai_alerts
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION biz.realtime_alert_inserted();

-- An inbox event's phase: its status, except that a launched event whose first run has
-- started is `running`. So a client sees pending -> launched -> running -> completed / failed
-- (or skipped_duplicate, or failed straight from pending for an invalid event).
CREATE FUNCTION biz.realtime_event_phase(status text, started_at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN status = 'launched' AND started_at IS NOT NULL THEN 'running' ELSE status END
$$;

CREATE FUNCTION biz.realtime_event_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM biz.realtime_publish(
        n.site_id, 'event_status',
        jsonb_build_object('event_id', n.id, 'event_type', n.event_type, 'member_id', n.member_id,
                           'status', biz.realtime_event_phase(n.status, n.started_at), 'previous_status', NULL,
                           'error_message', n.error_message))
    FROM inserted n ORDER BY n.site_id, n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER realtime_event_inserted AFTER INSERT ON biz.ai_events
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION biz.realtime_event_inserted();

-- Only a change of phase is pushed (not every run id or timestamp the status sensor copies).
CREATE FUNCTION biz.realtime_event_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM biz.realtime_publish(
        c.site_id, 'event_status',
        jsonb_build_object('event_id', c.id, 'event_type', c.event_type, 'member_id', c.member_id,
                           'status', c.phase, 'previous_status', c.previous, 'error_message', c.error_message))
    FROM (SELECT n.site_id, n.id, n.event_type, n.member_id, n.error_message,
                 biz.realtime_event_phase(n.status, n.started_at) AS phase,
                 biz.realtime_event_phase(o.status, o.started_at) AS previous
          FROM new_rows n JOIN old_rows o ON o.id = n.id) c
    WHERE c.phase IS DISTINCT FROM c.previous
    ORDER BY c.site_id, c.id;
    RETURN NULL;
END $$;
CREATE TRIGGER realtime_event_updated AFTER UPDATE ON biz.ai_events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION biz.realtime_event_updated();
