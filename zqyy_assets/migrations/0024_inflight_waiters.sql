-- Fair turns between processes at the shared in-flight cap (core/llm/inflight.py): a process
-- whose threads wait for a slot is in this queue (one row per process and pool); a free slot
-- goes to the process that has waited longest. The row stays when the process is served
-- (waiting_since NULL: not waiting), so that joining and leaving the queue are updates of one
-- row, not an insert and a delete per call.
CREATE TABLE biz.ai_inflight_waiter (
    pool           text NOT NULL,
    holder         text NOT NULL,                   -- host:pid, as the leases'
    waiting_since  timestamptz,                     -- NULL: not waiting
    seen_at        timestamptz NOT NULL,            -- refreshed while waiting: a crashed process's row stops counting
    PRIMARY KEY (pool, holder)
);
