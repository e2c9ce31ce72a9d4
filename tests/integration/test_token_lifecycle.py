"""The token lifecycle as the Authentication page tells it: rotate by creating the new token
as a person, switching, and letting the old token revoke itself by the id whoami gives."""

from __future__ import annotations

from typing import Any

from tests.harness.stack import API, Stack


async def _whoami(stack: Stack, token: str) -> tuple[int, dict[str, Any]]:
    response = await stack.gateway.get(
        f"{API}/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    return response.status, (await response.json())


async def test_rotate_then_the_old_token_revokes_itself(stack: Stack) -> None:
    """New token made by the person; the old one DELETEs itself (204); only the new one works."""
    alice = await stack.introspector.user("alice@example.com")
    old = await stack.token_for(alice)
    new = await stack.token_for(alice)
    status, me = await _whoami(stack, old)
    assert status == 200
    assert (await _whoami(stack, new))[0] == 200  # both work during the switch
    revoked = await stack.gateway.delete(
        f"{API}/api-tokens/{me['tokenId']}", headers={"Authorization": f"Bearer {old}"}
    )
    assert revoked.status == 204
    assert (await _whoami(stack, old))[0] == 401
    assert (await _whoami(stack, new))[0] == 200


async def test_a_token_made_with_the_old_token_dies_with_it(stack: Stack) -> None:
    """Why rotation must not create the new token with the old one: revoking the old one
    revokes what it created."""
    alice = await stack.introspector.user("alice@example.com")
    old = await stack.token_for(alice)
    headers = {"Authorization": f"Bearer {old}"}
    created = await stack.gateway.post(f"{API}/api-tokens", json={"name": "next"}, headers=headers)
    assert created.status == 201
    child = (await created.json())["token"]
    old_id = (await _whoami(stack, old))[1]["tokenId"]
    assert (await stack.gateway.delete(f"{API}/api-tokens/{old_id}", headers=headers)).status == 204
    assert (await _whoami(stack, child))[0] == 401
