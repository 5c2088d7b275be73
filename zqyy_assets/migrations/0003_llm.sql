-- LLM layer: the ledger of every call (refusals included) and the guards shared by every
-- process that calls the LLM (Dagster run workers and the API). See zqyy_assets/defs/llm/guards.py.
CREATE SCHEMA IF NOT EXISTS biz;

-- One row per call: 'running' while in flight (reserving budget), then 'success' or 'failed';
-- a refused call is one row with the refusal as its status. The admin API reads run logs here.
CREATE TABLE biz.ai_call_ledger (
    id               bigserial PRIMARY KEY,
    called_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at      timestamptz,
    site_id          bigint NOT NULL,
    app_name         text NOT NULL,
    app_id           text,
    provider         text NOT NULL CHECK (provider IN ('dashscope', 'offline')),
    model            text,
    status           text NOT NULL CHECK (status IN ('running', 'success', 'failed',
                                                     'circuit_open', 'rate_limited', 'budget_exceeded')),
    error_code       text,
    error_message    text,
    tokens_in        integer NOT NULL DEFAULT 0 CHECK (tokens_in >= 0),
    tokens_out       integer NOT NULL DEFAULT 0 CHECK (tokens_out >= 0),
    tokens_used      integer GENERATED ALWAYS AS (tokens_in + tokens_out) STORED,
    tokens_reserved  integer NOT NULL DEFAULT 0 CHECK (tokens_reserved >= 0),
    latency_ms       integer CHECK (latency_ms >= 0),
    attempts         smallint NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    request_prompt   text,
    response_text    text,
    session_id       text,
    request_id       text,
    prompt_version   text,
    dagster_run_id   text,
    trigger_type     text NOT NULL DEFAULT 'event',
    target_id        text,
    streamed         boolean NOT NULL DEFAULT false
);
CREATE INDEX ai_call_ledger_called_at_idx ON biz.ai_call_ledger (called_at);
CREATE INDEX ai_call_ledger_site_idx ON biz.ai_call_ledger (site_id, called_at DESC);
CREATE INDEX ai_call_ledger_app_idx ON biz.ai_call_ledger (app_name, called_at DESC);
CREATE INDEX ai_call_ledger_answer_idx ON biz.ai_call_ledger (dagster_run_id, app_name, site_id, target_id)
    WHERE dagster_run_id IS NOT NULL;

-- One circuit breaker per app.
CREATE TABLE biz.ai_circuit_breaker (
    app_name              text PRIMARY KEY,
    state                 text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive_failures  integer NOT NULL DEFAULT 0,
    opened_at             timestamptz,
    probe_started_at      timestamptz,
    last_error_code       text,
    updated_at            timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One token bucket per app: the level at refilled_at; the refill is computed on each take.
CREATE TABLE biz.ai_rate_bucket (
    bucket_key   text PRIMARY KEY,
    tokens       double precision NOT NULL,
    refilled_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
