-- Cost in CNY (core/pricing.py prices each call from its model's tokens, usage.models[*]).
-- Rows written before this migration keep NULL: they were never priced (sums skip them);
-- every row written from now on has its cost (0 until the call ends, and for a refusal).
ALTER TABLE biz.ai_call_ledger ADD COLUMN cost_cny numeric(14, 6) CHECK (cost_cny >= 0);
ALTER TABLE biz.ai_call_ledger ALTER COLUMN cost_cny SET DEFAULT 0;

-- One row per answer memoization gave (an unchanged input's cached answer, no call): what the
-- call would have cost, from the app's recent successful calls (their average tokens in and out
-- and CNY), else from the cached answer's own tokens. The dashboard and /metrics sum them.
CREATE TABLE biz.ai_memo_hits (
    id                  bigserial PRIMARY KEY,
    hit_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    site_id             bigint NOT NULL,
    app_name            text NOT NULL,
    target_id           text NOT NULL,
    cache_id            bigint,
    dagster_run_id      text,
    trigger_type        text NOT NULL,
    tokens_in_avoided   integer NOT NULL DEFAULT 0 CHECK (tokens_in_avoided >= 0),
    tokens_out_avoided  integer NOT NULL DEFAULT 0 CHECK (tokens_out_avoided >= 0),
    cost_avoided_cny    numeric(14, 6) NOT NULL DEFAULT 0 CHECK (cost_avoided_cny >= 0)
);
CREATE INDEX ai_memo_hits_site_idx ON biz.ai_memo_hits (site_id, hit_at DESC);
CREATE INDEX ai_memo_hits_hit_at_idx ON biz.ai_memo_hits (hit_at);
