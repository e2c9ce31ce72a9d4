-- People whose sessions belong to the protected app (KEYGATE_SESSION_AUTHENTICATOR=upstream):
-- the app's own user id, so keygate knows them again on every visit. NULL for everyone else.
ALTER TABLE users
    ADD COLUMN external_id text NULL
        CONSTRAINT users_external_id_shape CHECK (external_id IS NULL OR length(external_id) BETWEEN 1 AND 255);
CREATE UNIQUE INDEX users_external_id_key ON users (external_id) WHERE external_id IS NOT NULL;
