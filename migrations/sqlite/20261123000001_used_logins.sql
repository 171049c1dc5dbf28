-- Logins in progress live in a sealed browser cookie (login/pending.rs); this table
-- only makes each one single-use. A row is written after a callback has opened the
-- cookie and matched its state, and is swept once the login could no longer finish.
CREATE TABLE used_logins (
    marker      TEXT PRIMARY KEY NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX used_logins_expires_at ON used_logins (expires_at);
