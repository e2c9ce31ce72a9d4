"""``python -m tests.bench.bare_relay``: the benchmark's floor, a relay that checks nothing."""

from __future__ import annotations

import http.client
import os
import subprocess
from pathlib import Path

from tests.bench import upstream
from tests.bench.processes import Processes

WORKERS = 2
ROOT = Path(__file__).resolve().parents[2]


def test_it_relays_every_request_and_stops_with_all_its_workers(tmp_path: Path) -> None:
    """Requests reach the upstream and its answers come back unchanged, several on each client
    connection, from as many workers as asked for; stopped as the benchmark stops it, none of
    its processes is left."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = Processes(tmp_path, env)
    try:
        app = processes.upstream()
        relay = processes.bare_relay(app.port, WORKERS)
        for _ in range(4):
            connection = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=10)
            for _ in range(5):
                connection.request("GET", "/bench")
                response = connection.getresponse()
                assert (response.status, response.read()) == (200, upstream.BODY)
            connection.close()
        assert len(relay.pids()) == 1 + WORKERS
        session = str(relay.process.pid)
    finally:
        processes.stop_all()
    left = subprocess.run(["pgrep", "-s", session], capture_output=True, text=True, check=False)
    assert left.stdout.split() == [], f"processes left: {left.stdout}"
