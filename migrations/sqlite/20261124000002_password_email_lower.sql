-- Login emails are looked up as lower(email) = lower($1) (the same text on Postgres);
-- this index keeps that lookup indexed on SQLite.
CREATE INDEX passwords_email_lower ON passwords (lower(email));
