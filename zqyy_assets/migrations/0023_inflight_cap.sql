-- One cap on LLM calls in flight, shared by every run process and the API (core/llm/inflight.py).
-- The cap adapts to the provider (AIMD): cut multiplicatively on a throttling answer, grown
-- additively on successes; it is a float so that growth of a fraction of a slot adds up.
CREATE TABLE biz.ai_inflight_cap (
    pool         text PRIMARY KEY,
    cap          double precision NOT NULL CHECK (cap > 0),
    slow_start   boolean NOT NULL DEFAULT true,   -- until the first throttle: +1 per success
    cuts         bigint NOT NULL DEFAULT 0,       -- multiplicative decreases so far
    throttles    bigint NOT NULL DEFAULT 0,       -- throttling answers heard so far
    last_cut_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- A slot held by a call; a crashed holder's lease stops counting at expires_at.
CREATE TABLE biz.ai_inflight_lease (
    id           bigserial PRIMARY KEY,
    pool         text NOT NULL,
    holder       text NOT NULL,                   -- host:pid, for diagnosis
    acquired_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX ai_inflight_lease_pool_idx ON biz.ai_inflight_lease (pool, expires_at);
