-- A fast keyed verifier of each token's secret, beside its argon2id hash: HMAC-SHA256 under a
-- key derived from the internal secret, and that key's id. The introspector recognises the right
-- secret with it before any failed-attempt counter is consulted, so nobody's wrong guesses can
-- lock a token's owner out (argon2 and its counters remain for rows without a current verifier).
-- NULL for tokens created before this migration until their first successful verification.
ALTER TABLE api_token
    ADD COLUMN secret_verifier text NULL
        CONSTRAINT api_token_secret_verifier_shape
            CHECK (secret_verifier IS NULL OR secret_verifier ~ '^[0-9a-f]{64}$'),
    ADD COLUMN secret_verifier_key_id text NULL
        CONSTRAINT api_token_secret_verifier_key_id_shape
            CHECK (secret_verifier_key_id IS NULL OR secret_verifier_key_id ~ '^[0-9a-f]{8}$'),
    ADD CONSTRAINT api_token_secret_verifier_has_key_id
        CHECK ((secret_verifier IS NULL) = (secret_verifier_key_id IS NULL));
