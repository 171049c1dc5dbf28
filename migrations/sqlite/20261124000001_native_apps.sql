-- Native apps (the "Confidential + BFF" exchange). A device is a login like a browser:
-- `client` tells them apart, and for a device `user_agent` holds the app's sanitised
-- `device_name`. Device logins live by the NATIVE_REFRESH_* lifetimes.
ALTER TABLE logins ADD COLUMN client TEXT NOT NULL DEFAULT 'browser' CHECK (client IN ('browser', 'device'));

-- Our refresh tokens, one family per device login, stored only as SHA-256 hashes. The
-- family's current token has `rotated_at` NULL (at most one, by the partial index);
-- rotated tokens are kept to recognise their reuse, with the token that replaced them.
CREATE TABLE device_refresh_tokens (
    hash        BLOB PRIMARY KEY NOT NULL,
    login_id    TEXT NOT NULL REFERENCES logins (id) ON DELETE CASCADE,
    issued_at   INTEGER NOT NULL,
    rotated_at  INTEGER,
    successor   BLOB
);
CREATE INDEX device_refresh_tokens_login_id ON device_refresh_tokens (login_id);
CREATE UNIQUE INDEX device_refresh_tokens_one_current ON device_refresh_tokens (login_id) WHERE rotated_at IS NULL;
CREATE INDEX device_refresh_tokens_rotated_at ON device_refresh_tokens (rotated_at);

-- The P-256 keys that sign our access tokens: the private scalar sealed with
-- XChaCha20-Poly1305 under a key derived from SESSION_SECRET (the kid is the associated
-- data). The newest unretired key signs; a retired key stays published until every
-- token it signed has expired, then is deleted.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    sealed      BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
