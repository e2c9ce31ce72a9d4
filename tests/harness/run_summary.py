"""The run's closing sections: the real servers the tests used, and the reliability figures.

Fixtures note what they want shown in the ``run_notes`` fixture (:class:`RunNotes`); the
sections are printed at the end of the run. The suite runs on several pytest-xdist workers,
each a process with servers of its own: a worker hands what it noted to the controller when it
finishes (``workeroutput``, xdist's channel for this), and the controller, which runs no test,
prints everything once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class RunNotes:
    """What the closing sections show (the ``run_notes`` fixture)."""

    #: The xdist worker noting them (``gw0``…), ``None`` without xdist.
    worker: str | None = None
    servers: list[str] = field(default_factory=list)
    databases: int = 0
    redis_resets: int = 0
    figures: list[str] = field(default_factory=list)

    def server(self, line: str) -> None:
        """A real server the tests use: what it is and where it listens."""
        self.servers.append(f"{self.worker}: {line}" if self.worker else line)


_NOTES = pytest.StashKey[RunNotes]()
_OUTPUT = "keygate_run_notes"


def notes(config: pytest.Config) -> RunNotes:
    """This process's notes (a worker's own, or the whole run's without xdist)."""
    if _NOTES not in config.stash:
        worker = getattr(config, "workerinput", {}).get("workerid")
        config.stash[_NOTES] = RunNotes(worker)
    return config.stash[_NOTES]


@pytest.fixture(scope="session")
def run_notes(pytestconfig: pytest.Config) -> RunNotes:
    """Where fixtures and tests note what the run's closing sections show."""
    return notes(pytestconfig)


def pytest_sessionfinish(session: pytest.Session) -> None:
    output: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
    if output is not None:  # an xdist worker: the controller shows the sections
        found = notes(session.config)
        output[_OUTPUT] = (found.servers, found.databases, found.redis_resets, found.figures)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist's controller, as a worker finishes: its notes join the run's."""
    sent = getattr(node, "workeroutput", {}).get(_OUTPUT)
    if sent is None:
        return
    servers, databases, redis_resets, figures = sent
    found = notes(node.config)
    found.servers.extend(servers)
    found.databases += databases
    found.redis_resets += redis_resets
    found.figures.extend(figures)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    if hasattr(config, "workerinput"):
        return
    found = notes(config)
    if found.servers:
        terminalreporter.section("real servers used by this run")
        for line in found.servers:
            terminalreporter.write_line(line)
        terminalreporter.write_line(
            f"{found.databases} test databases cloned, Redis flushed {found.redis_resets} times"
        )
    if found.figures:
        terminalreporter.section("reliability figures")
        for line in sorted(found.figures):
            terminalreporter.write_line(line)
