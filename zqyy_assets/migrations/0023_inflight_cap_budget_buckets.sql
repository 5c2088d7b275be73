-- One cap on LLM calls in flight, shared by every run process and the API (core/llm/inflight.py).
-- The cap adapts to the provider (AIMD): cut multiplicatively on a throttling answer, grown
-- additively on successes; it is a float so that growth of a fraction of a slot adds up.
CREATE TABLE biz.ai_inflight_cap (
    pool         text PRIMARY KEY,
    cap          double precision NOT NULL CHECK (cap > 0),
    slow_start   boolean NOT NULL DEFAULT true,   -- until the first throttle: +1 per success
    cuts         bigint NOT NULL DEFAULT 0,       -- multiplicative decreases so far
    throttles    bigint NOT NULL DEFAULT 0,       -- throttling answers heard so far
    held         integer NOT NULL DEFAULT 0 CHECK (held >= 0),  -- leases held: one row lock per statement
    last_cut_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- A slot held by a call (counted in ai_inflight_cap.held); a crashed holder's lease is swept
-- (and uncounted) once past expires_at.
CREATE TABLE biz.ai_inflight_lease (
    id           bigserial PRIMARY KEY,
    pool         text NOT NULL,
    holder       text NOT NULL,                   -- host:pid, for diagnosis
    acquired_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX ai_inflight_lease_pool_idx ON biz.ai_inflight_lease (pool, expires_at);

-- What finished calls spent, per 15-minute slot of called_at (core/llm/budget.py): the budget
-- guard sums ~100 slots for a day and ~3,000 for a month instead of every ledger row of the
-- month under its lock (25 ms at 3,600 rows, 290 ms at 72,000 measured: admission was the
-- prewarm's bottleneck). Every day start of every time zone (offsets in whole quarter hours)
-- is a slot boundary. A trigger keeps the slots equal to the ledger's finished rows; running
-- rows (few: the calls in flight) are still read from the ledger itself.
CREATE TABLE biz.ai_budget_bucket (
    bucket_start  timestamptz PRIMARY KEY,
    tokens        bigint NOT NULL DEFAULT 0,
    cost_cny      numeric(18, 6) NOT NULL DEFAULT 0
);

CREATE FUNCTION biz.ai_budget_bucket_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status <> 'running' THEN
        INSERT INTO biz.ai_budget_bucket AS b (bucket_start, tokens, cost_cny)
        VALUES (date_bin('15 minutes', OLD.called_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
                -(OLD.tokens_in + OLD.tokens_out), -COALESCE(OLD.cost_cny, 0))
        ON CONFLICT (bucket_start) DO UPDATE
            SET tokens = b.tokens + EXCLUDED.tokens, cost_cny = b.cost_cny + EXCLUDED.cost_cny;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status <> 'running' THEN
        INSERT INTO biz.ai_budget_bucket AS b (bucket_start, tokens, cost_cny)
        VALUES (date_bin('15 minutes', NEW.called_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
                NEW.tokens_in + NEW.tokens_out, COALESCE(NEW.cost_cny, 0))
        ON CONFLICT (bucket_start) DO UPDATE
            SET tokens = b.tokens + EXCLUDED.tokens, cost_cny = b.cost_cny + EXCLUDED.cost_cny;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ai_call_ledger_budget_bucket
    AFTER INSERT OR DELETE OR UPDATE OF status, tokens_in, tokens_out, cost_cny, called_at ON biz.ai_call_ledger
    FOR EACH ROW EXECUTE FUNCTION biz.ai_budget_bucket_apply();

INSERT INTO biz.ai_budget_bucket (bucket_start, tokens, cost_cny)
SELECT date_bin('15 minutes', called_at, TIMESTAMPTZ '2000-01-01 00:00+00'),
       sum(tokens_in + tokens_out), COALESCE(sum(cost_cny), 0)
  FROM biz.ai_call_ledger WHERE status <> 'running'
 GROUP BY 1;

CREATE INDEX ai_call_ledger_running_idx ON biz.ai_call_ledger (called_at) WHERE status = 'running';
