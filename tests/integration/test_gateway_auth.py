"""The gateway's authentication contract: bearer decides, bad bearer stops, cookies fall through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from keygate_core.token_format import generate_token, parse_token
from tests.harness.project import project_version
from tests.harness.stack import API, Stack

TOKEN_CHALLENGE = 'Bearer realm="keygate", error="invalid_token"'


async def test_whoami_through_the_gateway(stack: Stack) -> None:
    """A bearer call to whoami returns the owner's identity with rate-limit headers."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    response = await stack.gateway.get(
        f"{API}/whoami", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["userId"] == str(alice.id)
    assert body["email"] == "alice@example.com"
    assert body["authMethod"] == "token"
    assert response.headers["X-RateLimit-Limit"] == "600"
    assert response.headers["X-RateLimit-Remaining"] == "599"
    assert response.headers["RateLimit-Policy"] == '"per-token";q=600;w=60'


async def test_whoami_shows_the_tokens_expiry_and_rate_limit(stack: Stack) -> None:
    """whoami tells a token caller when its token expires and which per-minute limit applies:
    the gateway's default, or the token's own."""
    alice = await stack.introspector.user("alice@example.com")
    admin = await stack.introspector.user("root@example.com", admin=True)
    plain = await stack.token_for(alice)
    expires = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    own = await stack.token_for(admin, rateLimit=7, expiresAt=expires.isoformat())

    default_body = await (
        await stack.gateway.get(f"{API}/whoami", headers={"Authorization": f"Bearer {plain}"})
    ).json()
    assert default_body["expiresAt"] is None
    assert default_body["rateLimit"] == {"perMinute": 600, "source": "default"}

    response = await stack.gateway.get(f"{API}/whoami", headers={"Authorization": f"Bearer {own}"})
    body = await response.json()
    assert datetime.fromisoformat(body["expiresAt"]) == expires
    assert body["rateLimit"] == {"perMinute": 7, "source": "token"}
    assert response.headers["X-RateLimit-Limit"] == "7"


async def test_a_client_cannot_claim_a_rate_limit_to_whoami(stack: Stack) -> None:
    """The limit whoami reports is the gateway's, whatever header the client sends."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    response = await stack.gateway.get(
        f"{API}/whoami",
        headers={"Authorization": f"Bearer {token}", "X-Keygate-Rate-Limit": "99999"},
    )
    assert (await response.json())["rateLimit"] == {"perMinute": 600, "source": "default"}


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_scheme_is_case_insensitive(stack: Stack, scheme: str) -> None:
    """The Bearer scheme name matches in any case (RFC 7235)."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    response = await stack.gateway.get("/app", headers={"Authorization": f"{scheme} {token}"})
    assert response.status == 200
    assert stack.upstream.last.header("X-Keygate-User-Id") == [str(alice.id)]


async def test_upstream_gets_identity_and_never_the_token(stack: Stack) -> None:
    """Bearer requests reach the upstream with identity headers and without Authorization."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    response = await stack.gateway.get("/orders?x=1", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    seen = stack.upstream.last
    assert seen.header("X-Keygate-User-Id") == [str(alice.id)]
    assert seen.header("X-Keygate-User-Email") == ["alice@example.com"]
    assert seen.header("X-Keygate-Auth-Method") == ["token"]
    assert seen.header("X-Keygate-Token-Scope") == ["PERSONAL"]
    assert len(seen.header("X-Keygate-Token-Id")) == 1
    assert seen.header("Authorization") == []
    assert token not in repr(seen.headers)
    assert seen.header("X-Keygate-Internal-Secret") == []


async def test_no_token_falls_through_with_cookies_untouched(stack: Stack) -> None:
    """Without a bearer token the request reaches the upstream as anonymous, cookie intact."""
    response = await stack.gateway.get("/dashboard", headers={"Cookie": "sid=abc; theme=dark"})
    assert response.status == 200
    seen = stack.upstream.last
    assert seen.header("Cookie") == ["sid=abc; theme=dark"]
    assert seen.header("X-Keygate-Auth-Method") == ["anonymous"]
    assert seen.header("X-Keygate-User-Id") == []


async def test_bad_token_is_401_and_never_falls_through(stack: Stack) -> None:
    """An unknown (well-formed) token with a valid-looking cookie: 401, zero upstream hits."""
    response = await stack.gateway.get(
        "/dashboard",
        headers={"Authorization": f"Bearer {generate_token()[0]}", "Cookie": "sid=valid"},
    )
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == TOKEN_CHALLENGE
    assert response.content_type == "application/problem+json"
    assert (await response.json())["reason"] == "invalid_token"
    assert stack.upstream.requests == []


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        ("Bearer ", 401),
        ("Bearer    ", 401),
        ("Bearer kg_abc", 401),
        ("Bearer kg_" + "a" * 62, 401),
        ("Bearer not-a-keygate-token", 401),
        ("Bearer a b", 400),
        ("Bearer " + "x" * 5000, 400),
    ],
    ids=["empty", "whitespace", "short", "bad-checksum", "foreign", "two-words", "over-long"],
)
async def test_malformed_bearer_is_refused_without_io(
    stack: Stack, authorization: str, status: int
) -> None:
    """Malformed credentials are refused by the gateway alone: no introspection, no upstream."""
    before = await stack.introspector.metrics()
    response = await stack.gateway.get("/x", headers={"Authorization": authorization})
    assert response.status == status
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="keygate"')
    assert stack.upstream.requests == []
    after = await stack.introspector.metrics()
    assert _count(before, "keygate_introspection_cache_miss_total") == _count(
        after, "keygate_introspection_cache_miss_total"
    )


async def test_two_authorization_headers_are_400(stack: Stack) -> None:
    """Two Authorization headers are ambiguous: 400 invalid_request, nothing forwarded."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    response = await stack.gateway.get(
        "/x", headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    )
    assert response.status == 400
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]
    assert stack.upstream.requests == []


async def test_token_in_query_string_authenticates_nothing(stack: Stack) -> None:
    """?access_token=… is not a credential: the request stays anonymous."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    response = await stack.gateway.get(f"/x?access_token={token}")
    assert response.status == 200
    assert stack.upstream.last.header("X-Keygate-Auth-Method") == ["anonymous"]
    assert (await stack.gateway.get(f"{API}/whoami?access_token={token}")).status == 401


async def test_revoked_token_is_refused_within_a_second(stack: Stack) -> None:
    """After a revoke, the gateway (with a warm L1 cache) refuses the token promptly."""
    import asyncio

    alice = await stack.introspector.user("alice@example.com")
    created = await stack.introspector.create_ok(alice)
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert (await stack.gateway.get("/x", headers=headers)).status == 200
    assert (await stack.gateway.get("/x", headers=headers)).status == 200  # L1 warm
    assert (await stack.introspector.revoke(alice, created["id"])).status == 204
    for _ in range(20):
        if (await stack.gateway.get("/x", headers=headers)).status == 401:
            break
        await asyncio.sleep(0.05)
    assert (await stack.gateway.get("/x", headers=headers)).status == 401


async def test_reserved_paths_never_reach_the_upstream(stack: Stack) -> None:
    """Anything under /_keygate/ is answered by the gateway itself."""
    for path in ("/_keygate/healthz", "/_keygate/nope", "/_keygate/metrics", "/_keygate/"):
        await stack.gateway.get(path)
    assert stack.upstream.requests == []
    assert (await stack.gateway.get("/_keygate/nope")).status == 404


async def test_health_names_the_release(stack: Stack) -> None:
    """healthz answers with the version in pyproject.toml, the one `keygate --version` prints."""
    response = await stack.gateway.get("/_keygate/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "version": project_version()}


async def test_readiness_reflects_dependencies(stack: Stack) -> None:
    """readyz is 200 with the introspector and Redis up."""
    response = await stack.gateway.get("/_keygate/readyz")
    assert response.status == 200
    assert (await response.json())["checks"] == {"introspector": "ok", "redis": "ok"}


def _count(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def test_secret_never_appears_in_gateway_metrics(stack: Stack) -> None:
    """After bearer traffic, the gateway's /metrics holds no token or public id."""
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    await stack.gateway.get("/x", headers={"Authorization": f"Bearer {token}"})
    text = await stack.metrics()
    assert token not in text
    assert parse_token(token).public_id not in text
    assert 'keygate_gateway_auth_decisions_total{method="token",result="ok"} 1.0' in text
