-- A member's latest inbox event, per key of the `members` / `assistant_members` partitions:
-- the daily retirement (core/member_keys.py) asks, for each page of keys, which members had an
-- event since the cut-off. One index probe per key instead of a scan of the window's events.
-- (Built inside the migration's transaction: on a large existing inbox, create it
-- CONCURRENTLY by hand first; the IF NOT EXISTS then keeps this a no-op.)
CREATE INDEX IF NOT EXISTS ai_events_member_created_idx
    ON biz.ai_events (site_id, member_id, created_at DESC)
    WHERE member_id IS NOT NULL;
