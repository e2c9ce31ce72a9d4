-- Revocations waiting to be announced on Redis (cache tombstone + pub/sub). A revoke inserts its
-- row in the same transaction as the revocation, so a revoke made while Redis is unreachable
-- (or from the CLI, which has no Redis) is still delivered once Redis is back.
CREATE TABLE revocation_outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_id   uuid NOT NULL,
    public_id  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
