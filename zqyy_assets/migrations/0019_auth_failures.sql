-- Failed bearer tokens per client address and minute, counted by every API worker and process
-- (api/auth_throttle.py): past AUTH_FAILURES_PER_MINUTE in one minute, the client is answered 429
-- with Retry-After until that minute is over. Rows older than ten minutes are deleted as new ones come.
CREATE TABLE IF NOT EXISTS biz.auth_failures (
    client        text NOT NULL,
    window_start  timestamptz NOT NULL,
    failures      integer NOT NULL CHECK (failures > 0),
    PRIMARY KEY (client, window_start)
);
CREATE INDEX IF NOT EXISTS auth_failures_window_idx ON biz.auth_failures (window_start);
