-- Admin back office state the API keeps itself (any API worker reads and writes it).

-- Stable numeric ids for Dagster's sensors and schedules: the admin web's TriggerItem.id is a
-- number, Dagster names them by string. A row is added the first time a trigger is listed and
-- never renumbered, so an id the client holds keeps pointing at the same sensor or schedule.
-- `description` is the admin's own note; Dagster's description is code-defined.
CREATE TABLE biz.admin_triggers (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('sensor', 'schedule')),
    name         text NOT NULL,
    description  text,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, name)
);

-- A batch run: estimated by POST /batch-run, launched by POST /batch-run/confirm before
-- expires_at. `plan` is the runs to launch (computed with the estimate, so the confirmation
-- launches exactly what was estimated); `run_ids` the Dagster runs launched.
CREATE TABLE biz.admin_batches (
    batch_id          uuid PRIMARY KEY,
    site_id           bigint NOT NULL,
    created_by        text NOT NULL,
    app_types         text[] NOT NULL,
    member_ids        bigint[] NOT NULL,
    estimated_calls   integer NOT NULL CHECK (estimated_calls >= 0),
    estimated_tokens  bigint NOT NULL CHECK (estimated_tokens >= 0),
    plan              jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'estimated'
                      CHECK (status IN ('estimated', 'launching', 'launched', 'failed')),
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    confirmed_at      timestamptz,
    confirmed_by      text,
    run_ids           text[] NOT NULL DEFAULT '{}',
    error_message     text
);
CREATE INDEX admin_batches_site_idx ON biz.admin_batches (site_id, created_at DESC);
