-- What a budget-aware prewarm run plans to spend (core/prewarm_budget.py): written in the same
-- transaction as its plan, under one advisory lock, so that a run planning after it (another
-- shard, at the same moment) counts the unspent part as spent. The run deletes its row when its
-- step ends; a row past expires_at (the run's deadline: a process that died) counts no more.
CREATE TABLE biz.ai_budget_plan_reservation (
    run_id      text PRIMARY KEY,                         -- the Dagster run, as ai_call_ledger.dagster_run_id
    tokens      bigint NOT NULL CHECK (tokens >= 0),      -- the estimate of the answers the plan asks
    created_at  timestamptz NOT NULL DEFAULT now(),       -- the run's calls booked from here count against it
    expires_at  timestamptz NOT NULL
);
