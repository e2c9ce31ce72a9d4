"""Forwarding headers from an untrusted peer: the address keygate counts and records is the peer's.

Any client may write X-Forwarded-For, X-Real-IP, Forwarded or keygate's own client-address
header. From a peer that is not a trusted proxy, none of them may move failed verifications to
another address's count or put another address into the audit log.
"""

from __future__ import annotations

from keygate_core.token_format import generate_token, parse_token
from tests.harness.figures import Figures
from tests.harness.stack import API, StartStack


async def test_forwarding_headers_from_an_untrusted_peer_change_no_limit_or_record(
    start_stack: StartStack, figures: Figures
) -> None:
    """Claimed forwarding addresses change neither the failure limit nor the audit record."""
    # Wrong secrets sent under a new X-Forwarded-For, X-Real-IP and Forwarded each time are
    # still counted against the real peer (429 after the limit), and the audit log records the
    # real peer, not the claimed one.
    limit = 5
    stack = await start_stack(
        {
            "KEYGATE_FAILED_VERIFY_LIMIT_PER_ADDRESS": str(limit),
            "KEYGATE_FAILED_VERIFY_LIMIT_PER_TOKEN": "1000",
        }
    )
    ki = stack.introspector
    alice = await ki.user("alice@example.com")
    # Tokens without a fast verifier: only their wrong secrets reach argon2 and its counters.
    victims = [await ki.legacy_token(alice, f"victim {i}") for i in range(limit + 3)]
    # Warm before the address is throttled (a warm token is checked without argon2).
    own = await stack.token_for(alice, name="own")
    assert (await stack.gateway.get("/x", headers={"Authorization": f"Bearer {own}"})).status == 200
    statuses = []
    for i, victim in enumerate(victims):
        claimed = f"198.51.100.{i + 1}"
        response = await stack.gateway.get(
            "/x",
            headers={
                "Authorization": f"Bearer {generate_token(parse_token(victim).public_id)[0]}",
                "X-Forwarded-For": claimed,
                "X-Real-IP": claimed,
                "Forwarded": f"for={claimed}",
                "X-Keygate-Client-Address": claimed,
            },
        )
        statuses.append(response.status)
    assert statuses == [401] * limit + [429] * 3, statuses
    assert len(stack.upstream.requests) == 1

    # A management call with a claimed address: the audit event keeps the real peer.
    target = await ki.create_ok(alice, name="target")
    response = await stack.gateway.delete(
        f"{API}/api-tokens/{target['id']}",
        headers={"Authorization": f"Bearer {own}", "X-Forwarded-For": "203.0.113.9"},
    )
    assert response.status == 204, await response.text()
    source = await ki.db.fetchval(
        "SELECT source_ip::text FROM audit_event WHERE action = 'token.revoke'"
    )
    assert source in ("127.0.0.1", "127.0.0.1/32"), source
    figures.update(claimed_addresses=len(victims), throttled_after=limit)
