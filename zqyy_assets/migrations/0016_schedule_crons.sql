-- A schedule's cron as the admin set it (PATCH /api/admin/ai/triggers/{id}), over the default in
-- the code location's settings (APP2_PREWARM_CRON for the daily prewarm). The code location
-- reads it each time it loads (zqyy_assets/definitions.py), so the change survives restarts of
-- the API, the Dagster webserver, its code server and the daemon; the API asks Dagster to reload
-- the code location after writing it. Only the prewarm schedule is editable today.
CREATE TABLE biz.schedule_crons (
    schedule_name    text PRIMARY KEY,
    cron_expression  text NOT NULL CHECK (cron_expression <> ''),
    updated_by       text NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
