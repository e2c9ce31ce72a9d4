-- The user lifecycle: a person can be deactivated (and reactivated). Deactivation revokes their
-- tokens and queues the end of their sessions in the same transaction; the sessions live in
-- Redis, so (like revocations) the purge waits in an outbox until the introspector delivers it.
ALTER TABLE users ADD COLUMN deactivated_at timestamptz NULL;

CREATE TABLE session_purge_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A row in either outbox wakes the introspectors that LISTEN on this channel when its
-- transaction commits, so a writer without Redis (the CLI) is delivered at once rather than at
-- the next poll. The payload is empty: the outbox row, not the message, is the work.
CREATE FUNCTION keygate_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keygate_outbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER revocation_outbox_notify AFTER INSERT ON revocation_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_outbox_notify();
CREATE TRIGGER session_purge_outbox_notify AFTER INSERT ON session_purge_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION keygate_outbox_notify();
