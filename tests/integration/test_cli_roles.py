"""The operator's role commands: taking a role away revokes the tokens that relied on it."""

from __future__ import annotations

import json

from tests.integration.test_cli import keygate, ok


def _statuses(env: dict[str, str], email: str) -> dict[str, str]:
    listed = ok(env, "tokens", "list", "--email", email, "--json").splitlines()
    return {row["scope"]: row["status"] for row in map(json.loads, listed)}


def test_losing_a_role_revokes_the_tokens_that_relied_on_it(keygate_env: dict[str, str]) -> None:
    """add-member --role member, remove-member and set-admin --no-admin revoke the role's tokens."""
    env = {**keygate_env, "KEYGATE_EDITION": "enterprise"}
    ok(env, "users", "create", "--email", "boss@example.com", "--admin")
    ok(env, "workspaces", "create", "--name", "Acme")
    member = ["--workspace", "Acme", "--email", "boss@example.com"]
    ok(env, "workspaces", "add-member", *member, "--role", "admin")
    ws_token = ["--scope", "WORKSPACE", "--workspace", "Acme"]
    ok(env, "tokens", "create", "--email", "boss@example.com", "--name", "ws", *ws_token)
    ok(
        env,
        "tokens",
        "create",
        "--email",
        "boss@example.com",
        "--name",
        "org",
        "--scope",
        "ORGANIZATION",
    )
    ok(env, "tokens", "create", "--email", "boss@example.com", "--name", "mine")
    ok(env, "workspaces", "add-member", *member, "--role", "member")
    assert _statuses(env, "boss@example.com") == {
        "WORKSPACE": "revoked",
        "ORGANIZATION": "active",
        "PERSONAL": "active",
    }
    ok(env, "users", "set-admin", "--email", "boss@example.com", "--no-admin")
    assert _statuses(env, "boss@example.com")["ORGANIZATION"] == "revoked"
    ok(env, "workspaces", "remove-member", *member)
    again = keygate(env, "workspaces", "remove-member", *member)
    assert again.returncode == 1 and "not a member" in again.stderr
    assert _statuses(env, "boss@example.com")["PERSONAL"] == "active"
