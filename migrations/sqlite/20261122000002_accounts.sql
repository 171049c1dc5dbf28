-- Password sign-in for local accounts: at most one per user. `email` is the login
-- name (normalised, unique without regard to case); `hash` is an argon2id PHC string.
CREATE TABLE passwords (
    user_id     INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    email       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    hash        TEXT NOT NULL,
    updated_at  INTEGER NOT NULL DEFAULT (unixepoch())
);

-- One row per signed-in browser ("login"). The server-side session holds only the
-- login id, and every request checks the row, so deleting it ends that session at
-- once. Ids are random and never reused.
CREATE TABLE logins (
    id            TEXT PRIMARY KEY NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    method        TEXT NOT NULL CHECK (method IN ('password', 'logi')),
    user_agent    TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL DEFAULT (unixepoch()),
    last_seen_at  INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE INDEX logins_user_id ON logins (user_id);

-- Failed (and in-flight) password checks, for throttling; rows older than the window are deleted.
CREATE TABLE sign_in_attempts (
    id    INTEGER PRIMARY KEY,
    key   TEXT NOT NULL,
    at    INTEGER NOT NULL
);
CREATE INDEX sign_in_attempts_key_at ON sign_in_attempts (key, at);
