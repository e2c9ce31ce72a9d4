"""Fixtures for the reliability suite: the integration stack, and the figures each test measured.

Every test here breaks something during traffic and asserts a measurable outcome. The numbers
behind those outcomes (requests sent, latencies, recovery times) are printed in a "reliability
figures" section at the end of the run, which is where docs/reliability.md takes them from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.servers import free_port
from tests.integration import conftest as integration
from tests.reliability.services import Service, base_environment

# The integration suite's in-process stack (gateway + introspector + recording upstream).
start_introspector = integration.start_introspector
start_stack = integration.start_stack

_FIGURES = pytest.StashKey[list[str]]()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(_FIGURES, [])
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


class Figures(dict[str, object]):
    """What one test measured, by name (shown in the run's summary)."""


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """A place for the test to put its measured figures."""
    found = Figures()
    yield found
    if found:
        text = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in found.items()
        )
        request.config.stash.setdefault(_FIGURES, []).append(f"{request.node.name}: {text}")


Spawn = Callable[..., Awaitable[Service]]
_PORT_VARIABLE = {"introspector": "KEYGATE_INTROSPECTOR_PORT", "gateway": "KEYGATE_GATEWAY_PORT"}


@pytest.fixture
async def spawn(database_url: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Spawn]:
    """Start a keygate process: ``await spawn("introspector", env)``; stopped after the test
    (before its database goes)."""
    started: list[Service] = []

    async def start(command: str, env: dict[str, str], port: int | None = None) -> Service:
        port = port or free_port()
        service = Service(
            command,
            {**base_environment(), **env, _PORT_VARIABLE[command]: str(port)},
            port,
            tmp_path / f"{command}-{len(started)}.log",
        )
        started.append(service)
        await service.start()
        return service

    yield start
    for service in started:
        await service.stop()
