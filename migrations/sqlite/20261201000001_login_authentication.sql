-- How the person behind a login authenticated at logi: the id_token's `acr` and
-- `auth_time` (unix seconds), what an API's step-up requirement is checked against. A step-up
-- updates both in place; password logins have neither.
ALTER TABLE logins ADD COLUMN acr TEXT;
ALTER TABLE logins ADD COLUMN auth_time INTEGER;
