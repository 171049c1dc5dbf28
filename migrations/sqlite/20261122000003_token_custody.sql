-- logi's tokens for one login, sealed with XChaCha20-Poly1305 under a key derived from
-- SESSION_SECRET (nonce || ciphertext; the login id is the associated data, so a row
-- cannot be moved to another login). Deleting the login deletes its tokens.
CREATE TABLE login_tokens (
    login_id    TEXT PRIMARY KEY NOT NULL REFERENCES logins (id) ON DELETE CASCADE,
    sealed      BLOB NOT NULL,
    updated_at  INTEGER NOT NULL DEFAULT (unixepoch())
);
