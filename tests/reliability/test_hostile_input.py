"""Hostile input: oversized headers and tokens, request smuggling, and generated API calls
without a valid credential.

Oversized input must be refused by the gateway before any introspection (so before any hash or
database work); requests that different HTTP parsers could split differently must be refused
with 400 and never reach the upstream as two requests; no generated call to a documented
endpoint may get through without a valid credential, and none may cause a 5xx.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings

from keygate_core.token_format import generate_token, parse_token
from tests.docs.markdown_blocks import DOCS
from tests.harness.figures import Figures
from tests.harness.stack import INTERNAL_SECRET, Stack, StartStack
from tests.reliability.measure import sample
from tests.reliability.rawhttp import RawResponse, exchange, request_bytes

HOST = ("Host", "gateway")


async def introspector_work(stack: Stack) -> tuple[float, float]:
    """(introspections the introspector served, argon2 verifications): any hash or database
    work for a request shows up in the first."""
    metrics = await stack.introspector.metrics()
    return (
        sample(
            metrics, "keygate_introspector_http_request_duration_seconds_count", route="/introspect"
        ),
        sample(metrics, "keygate_argon2_verify_duration_seconds_count"),
    )


OVERSIZED: list[tuple[str, list[tuple[str, str]], set[int]]] = [
    ("authorization-1025", [("Authorization", "Bearer " + "k" * 1018)], {400}),
    ("authorization-8000", [("Authorization", "Bearer " + "k" * 7993)], {400}),
    ("authorization-over-8190", [("Authorization", "Bearer " + "k" * 9000)], {400, 431}),
    ("token-66", [("Authorization", "Bearer TOKEN0")], {401}),
    ("token-1000", [("Authorization", "Bearer TOKEN" + "0" * 935)], {401}),
    (
        "any-header-over-8190",
        [("X-Big", "a" * 9000), ("Authorization", "Bearer TOKEN")],
        {400, 431},
    ),
    ("cookie-over-8190", [("Cookie", "sid=" + "a" * 9000)], {400, 431}),
    ("200-headers", [(f"X-H{i}", "1") for i in range(200)], {400, 431}),
]


async def test_oversized_headers_and_tokens_are_refused_before_any_work(
    start_stack: StartStack, figures: Figures
) -> None:
    """Oversized headers and tokens are refused before any introspection or upstream call."""
    # Each oversized case, 20 times concurrently alongside valid traffic: 400/431 (or 401 for
    # a merely over-long token), the introspector never asked, the upstream never reached.
    stack = await start_stack()
    alice = await stack.introspector.user("alice@example.com")
    token = await stack.token_for(alice)
    assert (await stack.gateway.get("/x", headers={"Authorization": f"Bearer {token}"})).status
    port = stack.gateway.port
    assert port is not None
    before = await introspector_work(stack)
    forwarded = len(stack.upstream.requests)

    async def attempt(headers: list[tuple[str, str]]) -> list[RawResponse]:
        real = [(k, v.replace("TOKEN", token)) for k, v in headers]
        return await exchange(
            port, request_bytes("GET", "/x", [HOST, *real, ("Connection", "close")])
        )

    valid = [("Authorization", f"Bearer {token}")]
    results = await asyncio.gather(
        *(attempt(h) for _, h, _ in OVERSIZED for _ in range(20)),
        *(attempt(valid) for _ in range(40)),
    )
    by_case = [results[i * 20 : (i + 1) * 20] for i in range(len(OVERSIZED))]
    assert [r[0].status for r in results[-40:]] == [200] * 40
    for (name, _, allowed), answers in zip(OVERSIZED, by_case, strict=True):
        statuses = Counter(r[0].status for r in answers if r)
        # A server may also cut a connection that sends this much; it must never answer it.
        assert set(statuses) <= allowed, (name, statuses)
    assert await introspector_work(stack) == before
    assert len(stack.upstream.requests) == forwarded + 40
    figures.update(cases=len(OVERSIZED), requests=len(OVERSIZED) * 20)


#: Requests that HTTP parsers disagree about, each followed on the same connection by a second
#: request for /smuggled: a front end that read the first differently would pass that on.
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: gateway\r\n\r\n"
SMUGGLING = {
    "cl-and-te": b"POST /x HTTP/1.1\r\nHost: g\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-and-cl": b"POST /x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Length: 40\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "two-content-lengths": b"POST /x HTTP/1.1\r\nHost: g\r\nContent-Length: 0\r\n"
    b"Content-Length: 41\r\n\r\n" + SMUGGLED,
    "content-length-list": b"POST /x HTTP/1.1\r\nHost: g\r\nContent-Length: 0, 41\r\n\r\n"
    + SMUGGLED,
    "content-length-sign": b"POST /x HTTP/1.1\r\nHost: g\r\nContent-Length: +0\r\n\r\n" + SMUGGLED,
    "content-length-negative": b"POST /x HTTP/1.1\r\nHost: g\r\nContent-Length: -1\r\n\r\n"
    + SMUGGLED,
    "te-not-chunked-last": b"POST /x HTTP/1.1\r\nHost: g\r\n"
    b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-xchunked": b"POST /x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
    + SMUGGLED,
    "te-twice": b"POST /x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n"
    b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-space-before-colon": b"POST /x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding : chunked\r\n"
    b"Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-obs-fold": b"POST /x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding:\r\n chunked\r\n"
    b"Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-vertical-tab": b"POST /x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding:\x0bchunked\r\n\r\n"
    b"0\r\n\r\n" + SMUGGLED,
    "te-on-http-1.0": b"POST /x HTTP/1.0\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\n" + SMUGGLED,
    "bad-chunk-size": b"POST /x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\nabc\r\n0\r\n\r\n" + SMUGGLED,
    "chunk-size-overflow": b"POST /x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"fffffffffffffffff1\r\nabc\r\n0\r\n\r\n" + SMUGGLED,
    "chunk-without-crlf": b"POST /x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabcX\r\n0\r\n\r\n" + SMUGGLED,
    "chunk-extension-bare-lf": b"POST /x HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n"
    b"\r\n3;x\nabc\r\n0\r\n\r\n" + SMUGGLED,
    "bare-cr-in-header": b"GET /x HTTP/1.1\r\nHost: g\r\nX-A: 1\rContent-Length: 41\r\n\r\n"
    + SMUGGLED,
    "bare-lf-line-ends": b"GET /x HTTP/1.1\nHost: g\nContent-Length: 41\n\n" + SMUGGLED,
    "obs-fold": b"GET /x HTTP/1.1\r\nHost: g\r\nX-A: 1\r\n Content-Length: 41\r\n\r\n" + SMUGGLED,
    "nul-in-header": b"GET /x HTTP/1.1\r\nHost: g\r\nX-A: 1\x00\r\n\r\n" + SMUGGLED,
    "space-in-header-name": b"GET /x HTTP/1.1\r\nHost: g\r\nContent Length: 41\r\n\r\n" + SMUGGLED,
    "request-line-junk": b"GET /x HTTP/1.1 junk\r\nHost: g\r\n\r\n" + SMUGGLED,
    "two-hosts": b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + SMUGGLED,
}
#: Well-formed controls: the same bytes a smuggler would send, read the one correct way.
CONTROLS = {
    "pipelined-pair": (b"GET /x HTTP/1.1\r\nHost: g\r\n\r\n" + SMUGGLED, 2),
    "chunked-body-holding-a-request": (
        b"POST /upload HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
        + f"{len(SMUGGLED):x}".encode()
        + b"\r\n"
        + SMUGGLED
        + b"\r\n0\r\n\r\n",
        1,
    ),
}


async def test_smuggling_attempts_are_400_and_split_nothing(
    start_stack: StartStack, figures: Figures
) -> None:
    """Ambiguous framings get 400 and reach nothing; well-formed lookalikes pass as framed."""
    # Every ambiguous framing is answered 400 and closes the connection: the upstream sees
    # nothing from it, least of all /smuggled. Well-formed lookalikes pass exactly as framed,
    # and the gateway's upstream connections are still in step afterwards.
    stack = await start_stack()
    port = stack.gateway.port
    assert port is not None
    for name, data in SMUGGLING.items():
        before = len(stack.upstream.requests)
        responses = await exchange(port, data, quiet=2)
        assert [r.status for r in responses] == [400], (name, [r.status for r in responses])
        assert stack.upstream.requests[before:] == [], name
    for name, (data, expected) in CONTROLS.items():
        before = len(stack.upstream.requests)
        responses = await exchange(port, data, quiet=2)
        assert [r.status for r in responses] == [200] * expected, name
        seen = stack.upstream.requests[before:]
        assert len(seen) == expected, name
    assert [r.raw_path for r in stack.upstream.requests].count("/smuggled") == 1
    upload = stack.upstream.requests[-1]
    assert upload.raw_path == "/upload"
    # The pooled upstream connections were never desynchronised: 50 requests, 50 right answers.
    answers = await asyncio.gather(
        *(stack.gateway.get(f"/after/{i}", headers={"X-Probe": str(i)}) for i in range(50))
    )
    for i, answer in enumerate(answers):
        body = await answer.json()
        assert answer.status == 200 and body["path"] == f"/after/{i}"
        assert ["X-Probe", str(i)] in body["headers"]
    figures.update(attempts=len(SMUGGLING), controls=len(CONTROLS), smuggled_through=0)


DOCUMENT: dict[str, Any] = yaml.safe_load((DOCS / "api" / "openapi.yaml").read_text("utf-8"))
EXAMPLES = 6


def runner(
    operation: Any, base: str, label: str, headers: dict[str, str], sent: Counter[str]
) -> Any:
    """A Hypothesis test: EXAMPLES generated calls of ``operation`` to ``base``, with
    ``headers`` as their only credential; each must be answered 4xx."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        for name in list(case.headers or {}):
            if name.lower() in ("authorization", "cookie", "x-keygate-internal-secret"):
                del case.headers[name]
        response = case.call(base_url=base, headers=headers)
        sent[label] += 1
        assert 400 <= response.status_code < 500, (
            f"{operation.label} with {label}: {response.status_code} {response.text[:200]}"
        )

    return run


#: A server's base URL and the credentials (by label) to try on it instead of a valid one.
Target = tuple[str, dict[str, dict[str, str]]]


def fuzz(gateway: Target, introspector: Target, sent: Counter[str]) -> list[str]:
    """Run :func:`runner` for each credential variant on each documented operation that needs
    a credential (introspector variants where it needs the internal secret); the failures."""
    schema: Any = schemathesis.openapi.from_dict(DOCUMENT)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        security = operation.definition.raw.get("security", DOCUMENT.get("security", []))
        if not security or {} in security:
            continue  # open, or anonymous allowed (forward auth decides per route)
        is_internal = any("internalSecret" in s for s in security)
        base, variants = introspector if is_internal else gateway
        for label, headers in variants.items():
            try:
                runner(operation, base, label, headers, sent)()
            except AssertionError as exc:
                failures.append(str(exc))
    return failures


@pytest.mark.slow
async def test_generated_api_calls_without_a_valid_credential_never_pass(
    start_stack: StartStack, figures: Figures
) -> None:
    """Generated calls to every guarded operation without a valid credential: no 2xx, no 5xx."""
    # Schemathesis generates requests for every documented operation that needs a credential
    # and sends them with none, a malformed, an unknown, a wrong-secret and a revoked token
    # (and, to the introspector, a wrong internal secret).
    stack = await start_stack(KEYGATE_RATE_LIMIT_PER_MINUTE="1000000")
    ki = stack.introspector
    alice = await ki.user("alice@example.com", admin=True)
    valid = await stack.token_for(alice, name="valid")
    revoked = await ki.create_ok(alice, name="revoked")
    assert (await ki.revoke(alice, revoked["id"])).status == 204
    credentials = {
        "none": {},
        "malformed": {"Authorization": "Bearer kg_not_a_token"},
        "unknown": {"Authorization": f"Bearer {generate_token()[0]}"},
        "wrong-secret": {
            "Authorization": f"Bearer {generate_token(parse_token(valid).public_id)[0]}"
        },
        "revoked": {"Authorization": f"Bearer {revoked['token']}"},
        "forged-cookie": {"Cookie": "kg_session=forged; sid=valid-" + str(alice.id)},
    }
    internal = {"wrong-secret": {"X-Keygate-Internal-Secret": "guess-" + INTERNAL_SECRET[6:]}}
    internal["none"] = {}
    gateway = str(stack.gateway.make_url("")).rstrip("/")
    introspector = str(ki.client.make_url("")).rstrip("/")
    sent: Counter[str] = Counter()
    failures = await asyncio.to_thread(fuzz, (gateway, credentials), (introspector, internal), sent)
    assert not failures, "\n".join(failures)
    figures.update(requests=sum(sent.values()), **sent)
