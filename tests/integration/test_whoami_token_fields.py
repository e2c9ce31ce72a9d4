"""whoami's fields for a token caller: its expiry and the rate limit the gateway applies."""

from __future__ import annotations

from tests.harness.stack import API, Introspector


async def test_whoami_tells_a_token_its_expiry_and_rate_limit(introspector: Introspector) -> None:
    """``expiresAt`` (null: never) and ``rateLimit``: the per-minute limit comes from the
    gateway next to the internal secret (the header it sets for token callers), the source from
    the token (no override: ``default``)."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    headers = introspector.headers(alice, token_id=created["id"])
    body = await (await introspector.client.get(f"{API}/whoami", headers=headers)).json()
    assert body["expiresAt"] is None
    assert body["rateLimit"] == {"perMinute": None, "source": "default"}
    limited = await introspector.client.get(
        f"{API}/whoami", headers={**headers, "X-Keygate-Rate-Limit": "42"}
    )
    assert (await limited.json())["rateLimit"] == {"perMinute": 42, "source": "default"}
