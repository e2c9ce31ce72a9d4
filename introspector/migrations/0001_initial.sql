-- keygate initial schema: people, workspaces, API tokens and the append-only audit log.

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL,
    password_hash text NULL CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%'),
    is_admin      boolean NOT NULL DEFAULT false,  -- organisation admin
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_normalised CHECK (email = lower(btrim(email))),
    CONSTRAINT users_email_shape CHECK (email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 254)
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE workspaces (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100 AND name = btrim(name)),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX workspaces_name_key ON workspaces (lower(name));

CREATE TYPE workspace_role AS ENUM ('member', 'admin');

CREATE TABLE workspace_members (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         workspace_role NOT NULL DEFAULT 'member',
    added_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_user ON workspace_members (user_id);

CREATE TYPE token_scope AS ENUM ('PERSONAL', 'WORKSPACE', 'ORGANIZATION');

CREATE TABLE api_token (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    public_id    text NOT NULL CHECK (public_id ~ '^[0-9A-Za-z]{12}$'),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    workspace_id uuid NULL REFERENCES workspaces (id) ON DELETE RESTRICT,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100 AND name = btrim(name)),
    token_hash   text NOT NULL CHECK (token_hash LIKE '$argon2id$%'),
    scope        token_scope NOT NULL DEFAULT 'PERSONAL',
    rate_limit   integer NULL CHECK (rate_limit > 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz NULL,
    expires_at   timestamptz NULL,
    revoked_at   timestamptz NULL,
    -- A WORKSPACE token is bound to exactly one workspace; PERSONAL and ORGANIZATION never are.
    CONSTRAINT api_token_workspace_matches_scope
        CHECK ((scope = 'WORKSPACE') = (workspace_id IS NOT NULL)),
    CONSTRAINT api_token_expires_after_creation
        CHECK (expires_at IS NULL OR expires_at > created_at),
    CONSTRAINT api_token_revoked_after_creation
        CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);
CREATE UNIQUE INDEX api_token_public_id_key ON api_token (public_id);
CREATE INDEX api_token_user ON api_token (user_id, created_at DESC);
CREATE INDEX api_token_workspace ON api_token (workspace_id) WHERE workspace_id IS NOT NULL;

CREATE TABLE audit_event (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    actor_user_id uuid NULL,        -- no FK: the log outlives what it talks about
    actor_token_id uuid NULL,
    actor_kind    text NOT NULL CHECK (actor_kind IN ('operator', 'session', 'token', 'system')),
    action        text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    target_type   text NULL,
    target_id     text NULL,
    source_ip     inet NULL,
    request_id    text NULL,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_event_recent ON audit_event (occurred_at DESC, id DESC);

CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_event is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_event_no_update BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
