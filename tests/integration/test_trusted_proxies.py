"""An unset KEYGATE_TRUSTED_PROXIES behind a proxy shows: a startup warning, a counter, a log."""

from __future__ import annotations

import logging

import pytest

from tests.harness.stack import StartStack

IGNORED = "keygate_gateway_forwarded_for_ignored_total"


def _value(exposition: str, name: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


async def test_forwarded_for_from_an_untrusted_peer_is_counted_and_logged_once(
    start_stack: StartStack, caplog: pytest.LogCaptureFixture
) -> None:
    """Each request whose X-Forwarded-For is ignored is counted; the first one is logged."""
    stack = await start_stack()
    for _ in range(3):
        response = await stack.gateway.get("/page", headers={"X-Forwarded-For": "203.0.113.9"})
        assert response.status == 200
    response = await stack.gateway.get("/page")
    assert response.status == 200
    assert _value(await stack.metrics(), IGNORED) == 3
    assert len(_warnings(caplog, "X-Forwarded-For ignored")) == 1


async def test_forwarded_for_from_a_trusted_proxy_is_not_counted(
    start_stack: StartStack, caplog: pytest.LogCaptureFixture
) -> None:
    """A configured proxy's X-Forwarded-For is believed: nothing counted, nothing logged."""
    stack = await start_stack(KEYGATE_TRUSTED_PROXIES="127.0.0.1/32,::1/128")
    response = await stack.gateway.get("/page", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.status == 200
    assert _value(await stack.metrics(), IGNORED) == 0
    assert not _warnings(caplog, "X-Forwarded-For ignored")


@pytest.mark.parametrize(
    ("host", "trusted", "warned"),
    [
        ("192.0.2.10", "", True),
        ("192.0.2.10", "10.0.0.0/8", False),
        ("127.0.0.1", "", False),
    ],
    ids=["routable-untrusted", "routable-trusted", "loopback"],
)
async def test_startup_warns_when_reachable_beyond_loopback_without_trusted_proxies(
    start_stack: StartStack,
    caplog: pytest.LogCaptureFixture,
    host: str,
    trusted: str,
    warned: bool,
) -> None:
    """A gateway listening beyond loopback with no trusted proxy warns at startup."""
    await start_stack(KEYGATE_GATEWAY_HOST=host, KEYGATE_TRUSTED_PROXIES=trusted)
    assert bool(_warnings(caplog, "KEYGATE_TRUSTED_PROXIES is empty")) is warned
