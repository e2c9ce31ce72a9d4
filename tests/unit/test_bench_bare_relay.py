"""``python -m tests.bench.bare_relay``: the benchmark's floor, a relay that checks nothing."""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import sys
from collections.abc import Iterator

from tests.bench import upstream
from tests.harness.servers import free_port, wait_for_port

WORKERS = 2


@contextlib.contextmanager
def _serving(module: str, *args: int) -> Iterator[tuple[int, int]]:
    """``python -m module PORT args…`` in a session of its own, until every process of it is
    killed; yields PORT and the session's id once PORT accepts connections."""
    port = free_port()
    argv = [sys.executable, "-m", module, str(port), *map(str, args)]
    process = subprocess.Popen(argv, start_new_session=True)
    try:
        wait_for_port(port, 30)
        yield port, process.pid
    finally:
        subprocess.run(["pkill", "-KILL", "-s", str(process.pid)], check=False)
        process.wait(10)


def test_it_relays_every_request_on_kept_alive_connections() -> None:
    """Requests reach the upstream and its answers come back unchanged, several on each client
    connection, from as many processes as asked for."""
    with (
        _serving("tests.bench.upstream") as (app_port, _),
        _serving("tests.bench.bare_relay", app_port, WORKERS) as (port, session_id),
    ):
        for _ in range(4):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            for _ in range(5):
                connection.request("GET", "/bench")
                response = connection.getresponse()
                assert (response.status, response.read()) == (200, upstream.BODY)
            connection.close()
        session = subprocess.run(
            ["pgrep", "-s", str(session_id)], capture_output=True, text=True, check=True
        )
        assert len(session.stdout.split()) == WORKERS
