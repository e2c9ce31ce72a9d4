"""Fixtures for the reliability suite: the figures each test measured.

Every test here breaks something during traffic and asserts a measurable outcome. The numbers
behind those outcomes (requests sent, latencies, recovery times) are printed in a "reliability
figures" section at the end of the run (:mod:`tests.harness.run_summary`), which is where
docs/reliability.md takes them from. The stacks the tests break (``start_stack``, ``spawn``,
…) come from :mod:`tests.harness.fixtures`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.harness.figures import Figures

if TYPE_CHECKING:
    from tests.harness.run_summary import RunNotes


@pytest.fixture
def figures(request: pytest.FixtureRequest, run_notes: RunNotes) -> Iterator[Figures]:
    """A place for the test to put its measured figures."""
    found = Figures()
    yield found
    if found:
        text = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in found.items()
        )
        run_notes.figures.append(f"{request.node.name}: {text}")
