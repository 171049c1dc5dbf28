-- OpenID Connect Back-Channel Logout: the logi user and logi session whose tokens a
-- login holds (from the id_token), and the logout tokens already used (each `jti`
-- until its `exp`, so a replay is refused).
ALTER TABLE login_tokens ADD COLUMN logi_sub TEXT;
ALTER TABLE login_tokens ADD COLUMN logi_sid TEXT;
CREATE INDEX login_tokens_logi_sub ON login_tokens (logi_sub);
CREATE INDEX login_tokens_logi_sid ON login_tokens (logi_sid);

CREATE TABLE used_logout_tokens (
    jti         TEXT PRIMARY KEY NOT NULL,
    expires_at  BIGINT NOT NULL
);
