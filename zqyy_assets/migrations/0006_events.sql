-- The business-event inbox the sensors read, and alerts raised by failed runs.
CREATE SCHEMA IF NOT EXISTS biz;

-- Written by the API (POST), by ODS ingestion of live settlements/notes/tasks and by admin
-- retries. Sensors read past a cursor (id) and request one run per event with run_key = id.
CREATE TABLE biz.ai_events (
    id               bigserial PRIMARY KEY,
    event_type       text NOT NULL CHECK (event_type IN ('consumption', 'note_created', 'task_assigned', 'dws_completed')),
    site_id          bigint NOT NULL,
    member_id        bigint,
    assistant_id     bigint,
    biz_date         date NOT NULL,            -- the venue's business date of the event (dedup key)
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_forced        boolean NOT NULL DEFAULT false,
    source           text NOT NULL DEFAULT 'api',   -- api / ods_ingest / admin / retry / live_traffic
    connector_type   text NOT NULL DEFAULT 'feiqiu',
    retry_of         bigint REFERENCES biz.ai_events (id),
    app_chain        text,                       -- e.g. app3→app8→app7, filled when runs are requested
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'launched', 'completed', 'failed', 'skipped_duplicate')),
    dagster_run_ids  text[] NOT NULL DEFAULT '{}',
    error_message    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX ai_events_dedup_idx ON biz.ai_events (event_type, site_id, member_id, biz_date);
CREATE INDEX ai_events_status_idx ON biz.ai_events (status, created_at);
CREATE INDEX ai_events_site_created_idx ON biz.ai_events (site_id, created_at DESC);

CREATE TABLE biz.ai_alerts (
    id               bigserial PRIMARY KEY,
    site_id          bigint,
    app_type         text NOT NULL,
    alert_type       text NOT NULL DEFAULT 'failed',   -- failed / circuit_open / rate_limited / budget_exceeded / timeout
    error_message    text,
    dagster_run_id   text UNIQUE,                      -- one alert per failed run, so a sensor restart can't duplicate
    event_id         bigint REFERENCES biz.ai_events (id),
    alert_status     text NOT NULL DEFAULT 'pending' CHECK (alert_status IN ('pending', 'acknowledged', 'ignored')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    handled_at       timestamptz,
    handled_by       text
);
CREATE INDEX ai_alerts_status_idx ON biz.ai_alerts (alert_status, created_at DESC);
