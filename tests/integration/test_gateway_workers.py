"""KEYGATE_GATEWAY_WORKERS: several gateway processes on one port, supervised by one parent."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.harness.servers import free_port, wait_for_port
from tests.harness.stack import process_env

KEYGATE = str(Path(sys.executable).parent / "keygate")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(text.split(" ", 1)[0]))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def _listening(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on TCP ``port``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
    try:
        return any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


@pytest.fixture
def gateway(
    database_url: str, redis_url: str
) -> Iterator[tuple[subprocess.Popen[bytes], int, list[int]]]:
    """``keygate gateway`` with two workers (its dependencies need not answer): the parent
    process, the port and the workers' pids."""
    port = free_port()
    env = process_env(
        database_url,
        redis_url,
        free_port(),
        "http://127.0.0.1:9",
        KEYGATE_GATEWAY_PORT=str(port),
        KEYGATE_GATEWAY_WORKERS="2",
    )
    process = subprocess.Popen(
        [KEYGATE, "gateway"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_port(port, 30)
        deadline = time.monotonic() + 10
        workers: list[int] = []
        # Both workers listening: past their start-up, so a signal now meets their handlers.
        while time.monotonic() < deadline:
            workers = _children(process.pid)
            if len(workers) == 2 and all(_listening(pid, port) for pid in workers):
                break
            time.sleep(0.05)
        yield process, port, workers
    finally:
        # A graceful stop when a test left the gateway running, so it cleans up after itself.
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)
        if process.poll() is None:
            # Its workers first: a killed parent would leave them running, holding stderr open.
            for pid in _children(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.kill()
        process.communicate(timeout=30)


async def test_workers_share_the_port_and_stop_cleanly(
    gateway: tuple[subprocess.Popen[bytes], int, list[int]],
) -> None:
    """Two workers answer on the one port; SIGTERM to the parent stops both, exit 0."""
    process, port, workers = gateway
    assert len(workers) == 2
    for _ in range(20):
        # A new connection each time, so the kernel may hand it to either worker.
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
            session.get(f"http://127.0.0.1:{port}/_keygate/healthz") as response,
        ):
            assert response.status == 200
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.to_thread(process.communicate, None, 30)
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert not any(_alive(pid) for pid in workers)


async def test_a_worker_that_dies_stops_the_gateway(
    gateway: tuple[subprocess.Popen[bytes], int, list[int]],
) -> None:
    """A worker killed on its own takes the others down and the parent exits non-zero."""
    process, _, workers = gateway
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    await asyncio.to_thread(process.wait, 30)
    assert process.returncode != 0
    assert not any(_alive(pid) for pid in workers)
