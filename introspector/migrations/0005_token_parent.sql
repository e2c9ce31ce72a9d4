-- A token minted by another token records its parent, so revoking the parent revokes the
-- children too (in the same transaction), and the UI and audit log can show where it came from.
-- NULL for tokens made by a person (a session) or by the operator.
ALTER TABLE api_token
    ADD COLUMN parent_id uuid NULL REFERENCES api_token (id) ON DELETE RESTRICT;
CREATE INDEX api_token_parent ON api_token (parent_id) WHERE parent_id IS NOT NULL;
