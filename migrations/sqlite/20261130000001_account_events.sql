-- The account activity record: what happened to an account, one row per event, written in
-- the transaction of the change it records. Append-only: rows are never updated (the
-- trigger refuses it); the sweeper deletes those older than ACTIVITY_RETENTION_DAYS.
-- `login_id` names the login an event concerns; logins are deleted when they end, so it
-- is no reference. `device` is the login's User-Agent or device name at the time;
-- `detail` a small JSON object that never holds a secret.
CREATE TABLE account_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    login_id    TEXT,
    kind        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    client_ip   TEXT,
    device      TEXT,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX account_events_user ON account_events (user_id, id);
CREATE INDEX account_events_at ON account_events (at);
CREATE TRIGGER account_events_append_only BEFORE UPDATE ON account_events
BEGIN
    SELECT RAISE(ABORT, 'account_events is append-only');
END;
