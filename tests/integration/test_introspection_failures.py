"""Why introspection failed is in the gateway's log: timeout, refused, 5xx and bad JSON each
answer the client the same 503, but the operator reads the cause (GS-14)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from aiohttp import web

from keygate_core.logs import JsonFormatter
from keygate_core.token_format import generate_token
from tests.harness.servers import free_port
from tests.harness.stack import StartStack


async def _stall(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.json_response({"active": True})


async def _error(request: web.Request) -> web.Response:
    return web.Response(status=500, text="boom")


async def _garbled(request: web.Request) -> web.Response:
    return web.Response(status=200, text="<html>not json</html>", content_type="text/html")


#: What the fake introspector does, and the cause (plus extra fields) the log line must name.
CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "timeout": (_stall, {"cause": "timeout"}),
    "refused": (None, {"cause": "refused"}),
    "5xx": (_error, {"cause": "status", "introspector_status": 500}),
    "bad-json": (_garbled, {"cause": "bad_json"}),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_each_introspection_failure_logs_its_cause(
    case: str, start_stack: StartStack, aiohttp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A bearer request gets 503 auth_unavailable and the gateway logs why, without the token."""
    handler, expected = CASES[case]
    if handler is None:
        url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    else:
        fake = web.Application()
        fake.router.add_post("/introspect", handler)
        url = str((await aiohttp_server(fake)).make_url("")).rstrip("/")
    stack = await start_stack(KEYGATE_INTROSPECTOR_URL=url, KEYGATE_INTROSPECTOR_TIMEOUT_MS="300")
    token, _ = generate_token()
    with caplog.at_level(logging.WARNING, logger="keygate.gateway"):
        response = await stack.gateway.get("/x", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 503
    assert (await response.json())["reason"] == "auth_unavailable"
    lines = [
        json.loads(JsonFormatter().format(r))
        for r in caplog.records
        if r.getMessage() == "introspection failed"
    ]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert expected.items() <= lines[0].items(), lines[0]
    assert lines[0]["request_id"] == response.headers["X-Request-Id"]
    assert token not in caplog.text
