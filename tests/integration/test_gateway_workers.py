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
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

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


def _gateway_env(database_url: str, redis_url: str, port: int, workers: int) -> dict[str, str]:
    """``keygate gateway`` on ``port`` with ``workers`` workers; its dependencies need not
    answer."""
    return process_env(
        database_url,
        redis_url,
        free_port(),
        "http://127.0.0.1:9",
        KEYGATE_GATEWAY_PORT=str(port),
        KEYGATE_GATEWAY_WORKERS=str(workers),
    )


@pytest.fixture
def gateway(
    database_url: str, redis_url: str
) -> Iterator[tuple[subprocess.Popen[bytes], int, list[int]]]:
    """``keygate gateway`` with two workers (its dependencies need not answer): the parent
    process, the port and the workers' pids."""
    port = free_port()
    process = subprocess.Popen(
        [KEYGATE, "gateway"],
        env=_gateway_env(database_url, redis_url, port, 2),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, 30)
        deadline = time.monotonic() + 10
        workers: list[int] = []
        # Both workers listening, so a test's connections may reach either.
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


async def test_a_stop_while_workers_start_is_a_clean_stop(
    database_url: str, redis_url: str
) -> None:
    """SIGTERM the moment the parent has forked, while its workers are still starting (the
    gateway answers once one listens, the others may be behind): every worker stops
    gracefully and the gateway exits 0, not "killed by SIGTERM"."""
    process = await asyncio.create_subprocess_exec(
        KEYGATE,
        "gateway",
        env=_gateway_env(database_url, redis_url, free_port(), 4),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    workers: list[int] = []
    deadline = time.monotonic() + 30
    while len(workers) < 4 and process.returncode is None and time.monotonic() < deadline:
        workers = _children(process.pid)
        await asyncio.sleep(0.001)
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        _, stderr = await process.communicate()
    assert len(workers) == 4, stderr.decode()[-2000:]
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


async def _get(port: int, path: str, accept: str = "") -> tuple[int, str]:
    """One GET on a connection of its own, so the kernel may hand it to either worker."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.get(f"http://127.0.0.1:{port}{path}", headers={"Accept": accept}) as response,
    ):
        return response.status, await response.text()


def _totals(exposition: str) -> dict[str, float]:
    """The proxied requests' count, the upstream errors by kind and the pre-created series."""
    totals = {"proxied": 0.0}
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == "keygate_gateway_request_duration_seconds_count":
                if not s.labels["route"].startswith("/_keygate/"):
                    totals["proxied"] += s.value
            elif s.name == "keygate_gateway_upstream_errors_total":
                totals[s.labels["kind"]] = s.value
            elif s.name == "keygate_ratelimit_decisions_total":
                totals[s.labels["result"]] = s.value
            elif s.name == "keygate_gateway_l1_cache_entries":
                totals["l1_entries"] = s.value
    return totals


def _mapped_metrics_dirs(pids: list[int]) -> set[Path]:
    """The directories of the metrics files these processes have mapped (/proc/PID/maps)."""
    return {
        Path(line.split(maxsplit=5)[5]).parent
        for pid in pids
        for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
        if line.endswith(".db") and "keygate-metrics-" in line
    }


async def test_every_scrape_reports_every_workers_requests(
    gateway: tuple[subprocess.Popen[bytes], int, list[int]],
) -> None:
    """Requests spread over both workers; each scrape, whichever worker answers, counts them all."""
    _, port, workers = gateway
    assert len(workers) == 2
    requests = 200
    for _ in range(requests):
        # The upstream (port 9) refuses connections: each request is a counted 502.
        assert (await _get(port, "/some/page"))[0] == 502
    expected = {
        "proxied": requests,
        "unreachable": requests,
        "timeout": 0,
        "allowed": 0,
        "limited": 0,
        "l1_entries": 0,
    }
    for _ in range(10):
        status, text = await _get(port, "/_keygate/metrics")
        assert status == 200
        assert _totals(text) == expected
    status, text = await _get(port, "/_keygate/metrics", "application/openmetrics-text")
    assert status == 200 and text.endswith("# EOF\n")
    names = {family.name for family in openmetrics_families(text)}
    assert "keygate_gateway_upstream_errors" in names


async def test_the_shared_metrics_directory_is_private_and_removed_at_exit(
    gateway: tuple[subprocess.Popen[bytes], int, list[int]],
) -> None:
    """The workers' metrics files live in one 0700 directory that is gone once the gateway stops."""
    process, _, workers = gateway
    directories = _mapped_metrics_dirs(workers)
    assert len(directories) == 1
    directory = directories.pop()
    assert directory.stat().st_mode & 0o777 == 0o700
    assert {p.name for p in directory.iterdir()} >= {f"counter_{pid}.db" for pid in workers}
    process.send_signal(signal.SIGTERM)
    await asyncio.to_thread(process.communicate, None, 30)
    assert process.returncode == 0
    assert not directory.exists()
