-- AI answers (validated before insert) and the retention clues App8 derives from them.
CREATE SCHEMA IF NOT EXISTS biz;

-- History is kept: reads take the newest valid row per (site, cache_type, target_id).
CREATE TABLE biz.ai_cache (
    id              bigserial PRIMARY KEY,
    site_id         bigint NOT NULL,
    cache_type      text NOT NULL,          -- the app name, e.g. app2_finance, app2a_finance_area, app3_clue
    target_id       text NOT NULL,          -- {time_dimension}__{area} | member id | {assistant_id}_{member_id}
    input_hash      text NOT NULL,          -- sha256 of (app, app version, prompt): memoization key
    prompt_version  text NOT NULL,
    result_json     jsonb NOT NULL,
    score           numeric(6,2),           -- App6 keeps a score
    status          text NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'invalidated')),
    triggered_by    text NOT NULL,          -- consumption / note_created / task_assigned / dws_completed / schedule / admin_manual ...
    provider        text NOT NULL,          -- dashscope / offline
    model           text,
    tokens_in       integer NOT NULL DEFAULT 0,
    tokens_out      integer NOT NULL DEFAULT 0,
    latency_ms      integer,
    dagster_run_id  text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ai_cache_latest_idx ON biz.ai_cache (site_id, cache_type, target_id, created_at DESC, id DESC);
CREATE INDEX ai_cache_created_idx ON biz.ai_cache (created_at);

CREATE TABLE biz.member_retention_clue (
    id                        bigserial PRIMARY KEY,
    site_id                   bigint NOT NULL,
    member_id                 bigint NOT NULL,
    category                  text NOT NULL,
    summary                   text NOT NULL,   -- emoji + ' ' + summary, as the clients show it
    detail                    text NOT NULL DEFAULT '',
    source                    text NOT NULL CHECK (source IN ('manual', 'ai_consumption', 'ai_note')),
    recorded_by_name          text NOT NULL DEFAULT '',   -- App8 providers, or the staff member
    recorded_by_assistant_id  bigint,
    dagster_run_id            text,
    created_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX member_retention_clue_member_idx ON biz.member_retention_clue (site_id, member_id, source);
