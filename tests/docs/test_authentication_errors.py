"""Every row of the Authentication page's common-errors table happens as the row says.

The table is read from the page; each (status, reason) row has a scenario here that provokes it
against a live stack, for every cause the row lists. A row without a scenario, a scenario without
a row, or an answer that differs from the row fails the suite.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from gateway.appkeys import LISTENER
from gateway.settings import GatewaySettings
from keygate_core.token_format import generate_token, parse_token
from tests.docs.live import Live
from tests.docs.markdown_blocks import REFERENCE, section_text, table_rows
from tests.harness.forwarding import forwarding_app
from tests.harness.servers import free_port
from tests.harness.stack import PATIENT_MS

PAGE = REFERENCE / "authentication.md"
WHOAMI = "/api/platform/internal/whoami"


@dataclass(frozen=True)
class Row:
    """One documented error: status, reason id and the rest of the row's text."""

    status: int
    reason: str
    text: str


def documented_rows() -> list[Row]:
    """The rows of the page's ``## Common errors`` table."""
    rows = table_rows(section_text(PAGE, "Common errors"))
    assert rows[0] == ["Status", "Meaning", "Cause", "Fix"], rows[0]
    found = []
    for status, meaning, cause, fix in rows[1:]:
        reason = re.match(r"`([a-z_]+)`", meaning)
        assert reason, f"the Meaning of a {status} row must start with its `reason`"
        found.append(Row(int(status.strip("`")), reason[1], " ".join((meaning, cause, fix))))
    return found


@dataclass
class Answer:
    """What a client got back."""

    status: int
    headers: CIMultiDict[str]
    body: dict[str, Any]


async def call(client: Any, path: str, headers: Any = None) -> Answer:
    """One request; the body parsed as JSON when there is one."""
    response: aiohttp.ClientResponse = await client.get(path, headers=headers)
    text = await response.text()
    body = await response.json(content_type=None) if text else {}
    return Answer(response.status, CIMultiDict(response.headers), body)


@dataclass
class Extra:
    """What a scenario may need besides the live stack."""

    start_gateway: Any
    tmp_path: Path
    aiohttp_server: Any


Scenario = Callable[[Live, Extra], Awaitable[list[Answer]]]


async def malformed_authorization(live: Live, extra: Extra) -> list[Answer]:
    """Inner whitespace, duplicates, over-long values."""
    gateway = live.stack.gateway
    twice = CIMultiDict([("Authorization", f"Bearer {live.token}")] * 2)
    return [
        await call(
            gateway, WHOAMI, {"Authorization": f"Bearer {live.token[:20]} {live.token[20:]}"}
        ),
        await call(gateway, WHOAMI, twice),
        await call(gateway, WHOAMI, {"Authorization": "Bearer " + "a" * 1025}),
    ]


async def no_credential(live: Live, extra: Extra) -> list[Answer]:
    """No header, an empty or whitespace-only one, another scheme."""
    gateway = live.stack.gateway
    return [
        await call(gateway, WHOAMI),
        await call(gateway, WHOAMI, {"Authorization": ""}),
        await call(gateway, WHOAMI, {"Authorization": "   "}),
        await call(gateway, WHOAMI, {"Authorization": "Basic eW91OnNlY3JldA=="}),
    ]


async def invalid_token(live: Live, extra: Extra) -> list[Answer]:
    """Bearer with nothing after it; mistyped, truncated, unknown, revoked, expired tokens."""
    introspector = live.stack.introspector
    mistyped = live.token[:-1] + ("A" if live.token[-1] != "A" else "B")
    unknown, _ = generate_token()
    revoked = await introspector.create_ok(live.user, name="revoked")
    response = await introspector.revoke(live.user, revoked["id"])
    assert response.status == 204
    expired = await introspector.create_ok(live.user, name="expired")
    await introspector.db.execute(
        "UPDATE api_token SET created_at = now() - interval '1 hour', "
        "expires_at = now() - interval '1 second' WHERE id = $1::uuid",
        expired["id"],
    )
    blank = [
        await call(live.stack.gateway, WHOAMI, {"Authorization": value})
        for value in ("Bearer", "Bearer    ")
    ]
    return blank + [
        await call(live.stack.gateway, WHOAMI, {"Authorization": f"Bearer {token}"})
        for token in (mistyped, live.token[:40], unknown, revoked["token"], expired["token"])
    ]


async def insufficient_scope(live: Live, extra: Extra) -> list[Answer]:
    """A Personal token on a route whose rule requires the Workspace scope."""
    rules = extra.tmp_path / "routes.toml"
    rules.write_text(
        '[[route]]\nprefix = "/reports/"\nauth = "required"\nscope = "WORKSPACE"\n',
        encoding="utf-8",
    )
    gateway = await extra.start_gateway(
        live.introspector_url, live.stack.upstream_url, KEYGATE_ROUTES_FILE=str(rules)
    )
    answer = await call(gateway, "/reports/q3", {"Authorization": f"Bearer {live.token}"})
    assert 'scope="WORKSPACE"' in answer.headers["WWW-Authenticate"]
    return [answer]


async def rate_limited(live: Live, extra: Extra) -> list[Answer]:
    """At the default limit a burst of 600 passes, then the bucket is empty."""
    headers = {"Authorization": f"Bearer {live.token}", "X-Original-URI": "/"}
    gateway = live.stack.gateway
    started = time.monotonic()
    allowed = 0
    # /_keygate/auth takes from the same bucket without calling the application behind.
    while (await gateway.get("/_keygate/auth", headers=headers)).status == 200:
        allowed += 1
        assert allowed <= 2000, "the bucket never ran out"
    refilled = (time.monotonic() - started) * 600 / 60
    default = GatewaySettings().rate_limit_per_minute
    assert default <= allowed <= default + refilled + 1
    for _ in range(50):
        answer = await call(gateway, WHOAMI, headers)
        if answer.status == 429:
            break
    assert answer.headers["X-RateLimit-Limit"] == str(default) == "600"
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert answer.headers["Retry-After"] == "1"
    assert answer.headers["RateLimit-Policy"] == '"per-token";q=600;w=60'
    return [answer]


async def too_many_attempts(live: Live, extra: Extra) -> list[Answer]:
    """Ten wrong secrets for a token id without a fast verifier (made before verifiers existed,
    never used since); the eleventh try is throttled for the minute."""
    public_id = parse_token(await live.stack.introspector.legacy_token(live.user)).public_id
    answers = []
    for _ in range(11):
        wrong, _ = generate_token(public_id)
        answers.append(await call(live.stack.gateway, WHOAMI, {"Authorization": f"Bearer {wrong}"}))
    assert [a.status for a in answers[:10]] == [401] * 10
    assert answers[-1].headers["Retry-After"] == "60"
    return answers[-1:]


async def auth_unavailable(live: Live, extra: Extra) -> list[Answer]:
    """A gateway whose token service does not answer."""
    gateway = await extra.start_gateway(f"http://127.0.0.1:{free_port()}", live.stack.upstream_url)
    answer = await call(gateway, WHOAMI, {"Authorization": f"Bearer {live.token}"})
    assert answer.headers["Retry-After"] == "1"
    return [answer]


async def upstream_unreachable(live: Live, extra: Extra) -> list[Answer]:
    """whoami with a recently used token while the token service refuses connections."""
    # Here and in upstream_timeout the token check goes through the forwarding server, a
    # connection of its own each time: slower than the harness's 1 s on a busy machine (the
    # whole chain in the test's one event loop) it would be another row's cause (503), as one
    # run got here.
    server = await extra.aiohttp_server(await forwarding_app(live.introspector_url))
    gateway = await extra.start_gateway(
        str(server.make_url("")).rstrip("/"),
        live.stack.upstream_url,
        KEYGATE_INTROSPECTOR_TIMEOUT_MS=PATIENT_MS,
    )
    # Listening for revocations, the gateway trusts what it knows for its cache's lifetime.
    await asyncio.wait_for(gateway.server.app[LISTENER].connected.wait(), 10)
    headers = {"Authorization": f"Bearer {live.token}"}
    assert (await call(gateway, WHOAMI, headers)).status == 200  # now the gateway knows it
    await server.close()
    answer = await call(gateway, WHOAMI, headers)
    return [answer]


async def upstream_timeout(live: Live, extra: Extra) -> list[Answer]:
    """whoami while the token service accepts the forwarded call but never answers."""
    server = await extra.aiohttp_server(await forwarding_app(live.introspector_url, stall=WHOAMI))
    gateway = await extra.start_gateway(
        str(server.make_url("")).rstrip("/"),
        live.stack.upstream_url,
        KEYGATE_UPSTREAM_TIMEOUT_SECONDS="1",
        KEYGATE_INTROSPECTOR_TIMEOUT_MS=PATIENT_MS,
    )
    return [await call(gateway, WHOAMI, {"Authorization": f"Bearer {live.token}"})]


SCENARIOS: dict[tuple[int, str], Scenario] = {
    (400, "invalid_request"): malformed_authorization,
    (401, "unauthenticated"): no_credential,
    (401, "invalid_token"): invalid_token,
    (403, "insufficient_scope"): insufficient_scope,
    (429, "rate_limited"): rate_limited,
    (429, "too_many_attempts"): too_many_attempts,
    (502, "upstream_unreachable"): upstream_unreachable,
    (503, "auth_unavailable"): auth_unavailable,
    (504, "upstream_timeout"): upstream_timeout,
}
ROWS = documented_rows()


def test_every_documented_error_has_a_scenario_and_every_scenario_a_row() -> None:
    """The table and the scenarios below list the same (status, reason) pairs."""
    assert [(r.status, r.reason) for r in ROWS] == list(SCENARIOS)


def test_documented_limits_are_the_code_defaults() -> None:
    """The numbers in the table are the settings' defaults."""
    from introspector.settings import IntrospectorSettings

    gateway, introspector = GatewaySettings(), IntrospectorSettings()
    text = {(r.status, r.reason): r.text for r in ROWS}
    assert f"{gateway.rate_limit_per_minute} requests per minute" in text[429, "rate_limited"]
    assert f"{gateway.rate_limit_per_minute // 60} per second" in text[429, "rate_limited"]
    attempts = text[429, "too_many_attempts"]
    assert f"{introspector.failed_verify_limit_per_token} wrong secrets" in attempts
    assert f"{introspector.failed_verify_limit_per_address} from one client" in attempts
    seconds = gateway.introspector_timeout_ms // 1000
    assert f"within {seconds} seconds" in text[503, "auth_unavailable"]
    assert f"{gateway.upstream_timeout_seconds} by default" in text[504, "upstream_timeout"]


def test_numbers_in_the_text_are_the_code_defaults() -> None:
    """Lengths, limits, lifetimes and the default address on the page come from the code."""
    from gateway.pipeline.authn import MAX_AUTHORIZATION_LENGTH
    from introspector.settings import IntrospectorSettings
    from keygate_core import token_format

    text = " ".join(PAGE.read_text(encoding="utf-8").split())
    gateway = GatewaySettings()
    for fragment in (
        f"at most {MAX_AUTHORIZATION_LENGTH} characters",
        f"a {token_format.PUBLIC_ID_LENGTH}-character public id",
        f"a {token_format.SECRET_LENGTH}-character secret",
        f"a {token_format.CHECKSUM_LENGTH}-character checksum",
        f"{token_format.TOKEN_LENGTH} characters in total",
        f"expires after {IntrospectorSettings().session_ttl_seconds // 3600} hours",
        f"`http://{gateway.host}:{gateway.port}` by default",
        f"By default it holds **{gateway.rate_limit_per_minute}**",
    ):
        assert fragment in text, fragment


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.status}-{r.reason}")
async def test_documented_error_happens_as_documented(
    row: Row, live: Live, start_gateway: Any, tmp_path: Path, aiohttp_server: Any
) -> None:
    """Each cause of the row gets the row's status, reason and problem+json body."""
    extra = Extra(start_gateway, tmp_path, aiohttp_server)
    answers = await SCENARIOS[row.status, row.reason](live, extra)
    for answer in answers:
        assert (answer.status, answer.body.get("reason")) == (row.status, row.reason), answer
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.body["requestId"] == answer.headers["X-Request-Id"]
        if row.status in (400, 401, 403):
            assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="keygate"')
