"""Fixtures for the reliability suite: the figures each test measured.

Every test here breaks something during traffic and asserts a measurable outcome. The numbers
behind those outcomes (requests sent, latencies, recovery times) are printed in a "reliability
figures" section at the end of the run, which is where docs/reliability.md takes them from.
The stacks the tests break (``start_stack``, ``spawn``, …) come from :mod:`tests.harness.fixtures`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.figures import Figures

_FIGURES = pytest.StashKey[list[str]]()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(_FIGURES, [])
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


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
