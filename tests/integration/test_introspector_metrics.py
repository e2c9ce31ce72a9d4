"""Each introspector metric moves when it should, and no label carries a token or e-mail."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from keygate_core.token_format import generate_token, parse_token
from tests.harness.stack import Introspector


async def sample(introspector: Introspector, name: str, **labels: str) -> float:
    """The current value of one sample from /metrics (0 when absent)."""
    for family in text_string_to_metric_families(await introspector.metrics()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def test_token_lifecycle_metrics_move(introspector: Introspector) -> None:
    """create/revoke counters by scope, success and each failure reason, cache hit/miss."""
    alice = await introspector.user("alice@example.com")
    before = {
        "create": await sample(introspector, "keygate_api_token_create_total", scope="PERSONAL"),
        "revoke": await sample(introspector, "keygate_api_token_revoke_total", scope="PERSONAL"),
        "ok": await sample(introspector, "keygate_api_token_auth_success_total"),
        "hit": await sample(introspector, "keygate_introspection_cache_hit_total"),
        "miss": await sample(introspector, "keygate_introspection_cache_miss_total"),
        "argon2": await sample(introspector, "keygate_argon2_verify_duration_seconds_count"),
    }
    reasons = ("invalid", "revoked", "malformed")
    failures = {
        r: await sample(introspector, "keygate_api_token_auth_failure_total", reason=r)
        for r in reasons
    }
    created = await introspector.create_ok(alice)
    await introspector.introspect_json(created["token"])  # miss + fast verifier + success
    await introspector.introspect_json(created["token"])  # hit + success
    await introspector.introspect_json(generate_token()[0])  # invalid (unknown id)
    await introspector.introspect_json("kg_nonsense")  # malformed
    await introspector.revoke(alice, created["id"])
    await introspector.introspect_json(created["token"])  # revoked

    assert await sample(introspector, "keygate_api_token_create_total", scope="PERSONAL") == (
        before["create"] + 1
    )
    assert await sample(introspector, "keygate_api_token_revoke_total", scope="PERSONAL") == (
        before["revoke"] + 1
    )
    assert await sample(introspector, "keygate_api_token_auth_success_total") == before["ok"] + 2
    # A token made with a fast verifier is recognised without argon2.
    assert (
        await sample(introspector, "keygate_argon2_verify_duration_seconds_count")
        == (before["argon2"])
    )
    assert await sample(introspector, "keygate_introspection_cache_hit_total") >= before["hit"] + 1
    assert await sample(introspector, "keygate_introspection_cache_miss_total") >= (
        before["miss"] + 2
    )
    for reason in reasons:
        now = await sample(introspector, "keygate_api_token_auth_failure_total", reason=reason)
        assert now == failures[reason] + 1, reason


async def test_http_duration_is_labelled_by_route_template(introspector: Introspector) -> None:
    """Request durations use the route template, so ids never become label values."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    await introspector.revoke(alice, created["id"])
    text = await introspector.metrics()
    assert 'route="/api/platform/internal/api-tokens/{token_id}"' in text
    assert created["id"] not in text


async def test_metrics_never_contain_secrets_or_emails(introspector: Introspector) -> None:
    """After real traffic, /metrics holds no token, secret, public id or e-mail."""
    alice = await introspector.user("alice@example.com")
    created = await introspector.create_ok(alice)
    await introspector.introspect_json(created["token"])
    text = await introspector.metrics()
    parts = parse_token(created["token"])
    for secret in (created["token"], parts.secret, parts.public_id, "alice@example.com"):
        assert secret not in text
    assert not re.search(r"kg_[0-9A-Za-z]{12}", text)
