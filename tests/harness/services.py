"""keygate services as real processes (``keygate introspector`` / ``keygate gateway``).

For faults that only a process can show — SIGKILL, SIGSTOP, a restart on the same port — and for
what only a process has: its own log on stderr, its resident memory and open descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

KEYGATE = str(Path(sys.executable).parent / "keygate")
HEALTH = {"introspector": "/healthz", "gateway": "/_keygate/healthz"}


def base_environment() -> dict[str, str]:
    """This process's environment without any KEYGATE_ variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}


@dataclass
class Service:
    """One keygate process on a fixed port; its stderr (JSON log lines) goes to ``log_path``."""

    command: str
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [KEYGATE, self.command], env=self.env, stdout=log, stderr=log
            )

    async def start(self, within: float = 30.0) -> None:
        """Spawn the process and return once its health endpoint answers 200."""
        self._spawn()
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        async with aiohttp.ClientSession() as http:
            while loop.time() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.command} exited: {self.log_path.read_text()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(self.url + HEALTH[self.command]) as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise AssertionError(f"{self.command} did not become healthy in {within} s")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    async def stop(self, within: float = 20.0) -> int:
        """SIGTERM and wait; the exit code (SIGKILL after ``within`` seconds)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
        try:
            return await asyncio.to_thread(self.proc.wait, within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return await asyncio.to_thread(self.proc.wait)

    def _proc_path(self, *parts: str) -> Path:
        assert self.proc is not None
        return Path("/proc", str(self.proc.pid), *parts)

    def rss_kib(self) -> int:
        """Resident memory, from /proc/<pid>/status."""
        for line in self._proc_path("status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def descriptors(self) -> tuple[int, int]:
        """(open file descriptors, of which sockets)."""
        fds = sockets = 0
        for entry in self._proc_path("fd").iterdir():
            with contextlib.suppress(OSError):
                fds += 1
                sockets += os.readlink(entry).startswith("socket:")
        return fds, sockets

    def log_lines(self) -> list[str]:
        """Everything the process wrote so far."""
        if not self.log_path.exists():
            return []
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
