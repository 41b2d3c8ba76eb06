-- Operators of the web console (docs/console.md): a name and an argon2id hash
-- of the password (argon2-cffi's encoded form, salt and parameters included).
-- `ingest operators add` writes a row; the console's sign-in reads it.

CREATE TABLE console_operator (
    name           text        PRIMARY KEY
                               CONSTRAINT console_operator_name_format
                               CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    password_hash  text        NOT NULL CHECK (password_hash LIKE '$argon2%'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz,
    disabled_at    timestamptz
);
