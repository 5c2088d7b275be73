-- The old backend's contract: alerts raised by every refused or failed call (counted, not one
-- row each), its status words for trigger jobs and run logs, and `timeout` as a call status.
-- Writers: zqyy_assets/core/alerts.py (alerts), core/inbox.py + core/event_runs.py (events),
-- core/llm/ledger.py (calls). The words themselves: zqyy_assets/core/vocabulary.py.

-- ---------------------------------------------------------------- alerts: one open per kind
-- An open (pending) alert per (site, app, alert type) counts its occurrences and its last time:
-- an outage of ten thousand calls is one row, not ten thousand. An alert acknowledged or
-- ignored is closed; the next occurrence opens a new one.
ALTER TABLE biz.ai_alerts
    ADD COLUMN occurrences  integer NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    ADD COLUMN last_seen_at timestamptz,
    ADD COLUMN ledger_id    bigint;   -- the seed's log_id: the call (ledger row) of the first occurrence
UPDATE biz.ai_alerts SET last_seen_at = created_at;
ALTER TABLE biz.ai_alerts
    ALTER COLUMN last_seen_at SET NOT NULL,
    ALTER COLUMN last_seen_at SET DEFAULT now(),
    ADD CONSTRAINT ai_alerts_alert_type_check
        CHECK (alert_type IN ('failed', 'timeout', 'circuit_open', 'rate_limited', 'budget_exceeded'));

-- The runs already counted per alert type, so a run-failure sensor that sees a run again
-- counts it once, and a run whose call already raised an alert of that type does not count
-- again as a run. Replaces the one-alert-per-run unique key.
ALTER TABLE biz.ai_alerts DROP CONSTRAINT ai_alerts_dagster_run_id_key;
CREATE TABLE biz.ai_alert_runs (
    dagster_run_id  text NOT NULL,
    alert_type      text NOT NULL,
    alert_id        bigint REFERENCES biz.ai_alerts (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dagster_run_id, alert_type)
);
INSERT INTO biz.ai_alert_runs (dagster_run_id, alert_type, alert_id, created_at)
SELECT dagster_run_id, alert_type, id, created_at FROM biz.ai_alerts WHERE dagster_run_id IS NOT NULL;
CREATE INDEX ai_alerts_run_idx ON biz.ai_alerts (dagster_run_id) WHERE dagster_run_id IS NOT NULL;

-- Existing pending alerts of one kind (one row per failed run before) fold into the oldest,
-- which was the one pushed: it takes their count, last time and latest message.
CREATE TEMP TABLE alert_fold ON COMMIT DROP AS
SELECT id, first_value(id) OVER w AS keep_id,
       count(*) OVER w AS n,
       max(created_at) OVER w AS last_at,
       last_value(error_message) OVER w AS last_message
FROM biz.ai_alerts
WHERE alert_status = 'pending'
WINDOW w AS (PARTITION BY site_id, app_type, alert_type ORDER BY created_at, id
             ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING);
UPDATE biz.ai_alert_runs r SET alert_id = f.keep_id FROM alert_fold f WHERE r.alert_id = f.id AND f.id <> f.keep_id;
UPDATE biz.ai_alerts a SET occurrences = f.n, last_seen_at = f.last_at, error_message = f.last_message
FROM alert_fold f WHERE a.id = f.id AND f.id = f.keep_id AND f.n > 1;
DELETE FROM biz.ai_alerts a USING alert_fold f WHERE a.id = f.id AND f.id <> f.keep_id;

-- A run-wide alert (site_id NULL) is its own group, shared by no site.
CREATE UNIQUE INDEX ai_alerts_open_idx ON biz.ai_alerts (coalesce(site_id, -1), app_type, alert_type)
    WHERE alert_status = 'pending';
CREATE INDEX ai_alerts_site_seen_idx ON biz.ai_alerts (site_id, last_seen_at DESC);

-- The push of a new alert carries the call's ledger id as the seed's `log_id`. A counted repeat
-- is an UPDATE and pushes nothing (see README, Alerts).
CREATE OR REPLACE FUNCTION biz.realtime_alert_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM biz.realtime_publish(
        n.site_id, 'alert_created',
        jsonb_build_object('app_type', n.app_type, 'alert_type', n.alert_type, 'message', n.error_message,
                           'log_id', n.ledger_id, 'alert_id', n.id, 'dagster_run_id', n.dagster_run_id,
                           'event_id', n.event_id))
    FROM inserted n WHERE n.site_id IS NOT NULL ORDER BY n.site_id, n.id;
    RETURN NULL;
END $$;

-- ------------------------------------------------------------- trigger jobs: the seed's words
-- `launched` (runs requested) is what the seed and the admin web call `running`.
CREATE OR REPLACE FUNCTION biz.realtime_event_phase(status text, started_at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT status
$$;
ALTER TABLE biz.ai_events DROP CONSTRAINT ai_events_status_check;
-- Renaming a word is not news: no event_status push for the rows migrated.
ALTER TABLE biz.ai_events DISABLE TRIGGER realtime_event_updated;
UPDATE biz.ai_events SET status = 'running' WHERE status = 'launched';
ALTER TABLE biz.ai_events ENABLE TRIGGER realtime_event_updated;
ALTER TABLE biz.ai_events ADD CONSTRAINT ai_events_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'skipped_duplicate'));

-- ------------------------------------------------------------------- run logs: `timeout`
ALTER TABLE biz.ai_call_ledger DROP CONSTRAINT ai_call_ledger_status_check;
UPDATE biz.ai_call_ledger SET status = 'timeout' WHERE status = 'failed' AND error_code = 'Timeout';
ALTER TABLE biz.ai_call_ledger ADD CONSTRAINT ai_call_ledger_status_check
    CHECK (status IN ('running', 'success', 'failed', 'timeout', 'circuit_open', 'rate_limited', 'budget_exceeded'));
