-- Local users. A user may exist without any external identity (local accounts)
-- and may have several identities linked to it.
CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    email       TEXT,
    name        TEXT,
    anonymous   INTEGER NOT NULL DEFAULT 0 CHECK (anonymous IN (0, 1)),
    created_at  INTEGER NOT NULL DEFAULT (unixepoch()),
    updated_at  INTEGER NOT NULL DEFAULT (unixepoch())
);

-- External identities (an OpenID provider's issuer + subject) linked to a local user.
-- Never matched by email: (issuer, subject) is the only key.
CREATE TABLE identities (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    linked_at   INTEGER NOT NULL DEFAULT (unixepoch()),
    UNIQUE (issuer, subject)
);
CREATE INDEX identities_user_id ON identities (user_id);

-- tower-sessions' SQLite store table (schema owned here so all DDL lives in migrations).
CREATE TABLE tower_sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    data        BLOB NOT NULL,
    expiry_date INTEGER NOT NULL
);
CREATE INDEX tower_sessions_expiry ON tower_sessions (expiry_date);
