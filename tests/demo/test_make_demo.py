"""`make demo`, run the way a newcomer runs it: a subprocess, its banner, its curl line, Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from keygate_demo.seed import MEMBER
from tests.harness.servers import ServerUnavailable, quiet_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 150


@dataclass
class Demo:
    """A running ``make demo`` and what it printed."""

    process: asyncio.subprocess.Process
    ports: dict[str, int]
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def curl_line(self) -> str:
        return next(line.strip() for line in self.lines if line.strip().startswith("curl "))

    @property
    def token(self) -> str:
        found = re.search(r"Bearer (kg_\w+)", self.curl_line)
        assert found, self.curl_line
        return found.group(1)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    async def wait_ready(self) -> None:
        """Read the output until the banner's last line (or the process ends)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(START_TIMEOUT):
            while not any("Press Ctrl-C" in line for line in self.lines):
                raw = await self.process.stdout.readline()
                if not raw:
                    await self.process.wait()
                    pytest.fail(f"make demo ended ({self.process.returncode}):\n{self.output}")
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    async def ctrl_c(self) -> str:
        """SIGINT to the whole process group, as a terminal's Ctrl-C; the rest of the output."""
        os.killpg(self.process.pid, signal.SIGINT)
        assert self.process.stdout is not None
        async with asyncio.timeout(60):
            rest = await self.process.stdout.read()
            await self.process.wait()
        self.lines += rest.decode(errors="replace").splitlines()
        return self.output


async def _start(data_dir: Path, ports: dict[str, int]) -> Demo:
    flags = f"--data-dir {data_dir} " + " ".join(
        f"--{name}-port {port}" for name, port in ports.items()
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
    process = await asyncio.create_subprocess_exec(
        "make",
        "--no-print-directory",
        "demo",
        f"DEMO_FLAGS={flags}",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    return Demo(process, ports)


@pytest.fixture
def demo_run() -> Iterator[tuple[Path, dict[str, int]]]:
    # Bound seconds from now, after make and the demo's servers start: out of the range other
    # tests' port-0 binds draw from (a CI run once lost the admin UI's port to one).
    ports = {name: quiet_port() for name in ("gateway", "introspector", "admin-ui", "upstream")}
    # Not pytest's tmp_path: its parent is private to root, and Postgres runs as `postgres`.
    base = Path(tempfile.mkdtemp(prefix="keygate-demo-"))
    base.chmod(0o755)
    yield base / "data", ports
    shutil.rmtree(base, ignore_errors=True)
    # Whatever happened, nothing the demo started may outlive the test.
    for port in ports.values():
        try:
            wait_for_port(port, timeout=0.01)
        except ServerUnavailable:
            continue
        pytest.fail(f"something still listens on port {port} after the demo stopped")


async def test_make_demo_prints_a_curl_line_that_returns_the_demo_users_identity(
    demo_run: tuple[Path, dict[str, int]],
) -> None:
    """The printed curl line returns the demo user; the demo app sees token and cookie logins."""
    data_dir, ports = demo_run
    demo = await _start(data_dir, ports)
    try:
        await demo.wait_ready()
        assert MEMBER.email in demo.output and MEMBER.password in demo.output
        assert f"{demo.gateway}/settings/api-keys" in demo.output

        result = await asyncio.to_thread(
            subprocess.run, ["bash", "-c", demo.curl_line], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        identity = json.loads(result.stdout)
        assert identity["email"] == MEMBER.email
        assert identity["authMethod"] == "token"
        assert [w["name"] for w in identity["workspaces"]] == ["Demo workspace"]

        # unsafe=True: keep cookies for an IP-address host, as a browser does.
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            # The demo app sees the identity keygate vouches for…
            bearer = {"Authorization": f"Bearer {demo.token}"}
            async with http.get(f"{demo.gateway}/api/echo", headers=bearer) as r:
                seen = await r.json()
            assert seen["identity"]["X-Keygate-User-Email"] == MEMBER.email
            # …and its own cookie login falls through keygate untouched.
            async with http.post(f"{demo.gateway}/login", data={"name": "Ada"}) as r:
                assert r.status == 200  # after the redirect to /
            async with http.get(f"{demo.gateway}/api/echo") as r:
                seen = await r.json()
            assert seen["appSession"] == "Ada"
            assert "X-Keygate-User-Id" not in seen["identity"]
            async with http.get(f"{demo.gateway}/_keygate/login") as r:
                assert r.status == 200
    finally:
        output = await demo.ctrl_c()
    assert "Stopped cleanly." in output, output


async def test_a_second_make_demo_reuses_the_data_and_replaces_the_token(
    demo_run: tuple[Path, dict[str, int]],
) -> None:
    """A second run reuses data and people; its new token works, the first one no longer does."""
    data_dir, ports = demo_run
    first = await _start(data_dir, ports)
    try:
        await first.wait_ready()
    finally:
        assert "Stopped cleanly." in await first.ctrl_c()

    second = await _start(data_dir, ports)
    try:
        await second.wait_ready()
        assert "reused from an earlier run" in second.output
        assert "demo people already there" in second.output
        async with aiohttp.ClientSession() as http:
            url = f"{second.gateway}/api/platform/internal/whoami"
            for token, status in ((second.token, 200), (first.token, 401)):
                async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                    assert r.status == status, token[:16]
    finally:
        assert "Stopped cleanly." in await second.ctrl_c()
