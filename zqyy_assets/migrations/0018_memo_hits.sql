-- Memoization hits: an answer reused because its input hash was unchanged makes no call, so the
-- ledger never sees it. Counted here per day, site and app by whichever process had the hit
-- (Dagster run workers, mostly), so the API's /metrics reads one truth for every process.
-- tokens_saved: what the reused answer cost when it was asked (its cache row's tokens).
CREATE TABLE biz.ai_memo_hits (
    day           date NOT NULL,
    site_id       bigint NOT NULL,
    app_name      text NOT NULL,
    hits          bigint NOT NULL DEFAULT 0 CHECK (hits >= 0),
    tokens_saved  bigint NOT NULL DEFAULT 0 CHECK (tokens_saved >= 0),
    PRIMARY KEY (day, site_id, app_name)
);
