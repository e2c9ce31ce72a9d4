"""Load generation with wrk: one thread, a fixed number of connections, a fixed duration.

Every run uses the same Lua script. Its ``done`` hook prints one JSON line with the request
count and the latency percentiles (wrk measures them itself, in microseconds). Optionally the
script sends a different bearer token per request, cycling through a file of tokens. A run
started in the background can be ended early with :meth:`Wrk.interrupt` (wrk still reports).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

_SCRIPT = r"""
local token_file = os.getenv("BENCH_TOKENS") or ""
local tokens = nil
if token_file ~= "" then
  tokens = {}
  for line in io.lines(token_file) do tokens[#tokens + 1] = line end
end
local sent = 0
if tokens then
  request = function()
    sent = sent + 1
    local token = tokens[(sent - 1) % #tokens + 1]
    return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. token})
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%.1f,"p90_us":%.1f,' ..
    '"p99_us":%.1f,"max_us":%.1f,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


class LoadError(RuntimeError):
    """wrk failed or printed no result."""


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    errors: int
    status_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """For the JSON report."""
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p90_ms": round(self.p90_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "errors": self.errors,
            "status_errors": self.status_errors,
        }


class Wrk:
    """Runs wrk with the bench script; ``cpus`` pins it (``taskset``) when given."""

    def __init__(self, work_dir: Path, cpus: str | None = None) -> None:
        binary = shutil.which("wrk")
        if binary is None:
            raise LoadError("wrk is not installed; run tests/harness/ensure-packages.sh wrk")
        self.binary = binary
        self.script = work_dir / "bench.lua"
        self.script.write_text(_SCRIPT)
        self.cpus = cpus

    def command(
        self,
        url: str,
        *,
        connections: int,
        seconds: float,
        token: str | None = None,
        timeout_s: int = 5,
    ) -> list[str]:
        """The argv of one run."""
        argv = [
            self.binary,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout_s}s",
            "-s",
            str(self.script),
        ]
        if token is not None:
            argv += ["-H", f"Authorization: Bearer {token}"]
        argv.append(url)
        if self.cpus:
            argv = ["taskset", "-c", self.cpus, *argv]
        return argv

    def start(
        self,
        url: str,
        *,
        connections: int,
        seconds: float,
        token: str | None = None,
        token_file: Path | None = None,
    ) -> subprocess.Popen[str]:
        """Start a run in the background; collect it with :meth:`result`."""
        env = {
            "BENCH_TOKENS": str(token_file) if token_file else "",
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
        }
        return subprocess.Popen(
            self.command(url, connections=connections, seconds=seconds, token=token),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )

    @staticmethod
    def interrupt(process: subprocess.Popen[str]) -> LoadResult:
        """End a background run now (SIGINT: wrk stops and prints what it measured)."""
        process.send_signal(signal.SIGINT)
        return Wrk.result(process)

    @staticmethod
    def result(process: subprocess.Popen[str]) -> LoadResult:
        """Wait for a run started with :meth:`start` and parse its result line."""
        output, _ = process.communicate()
        for line in output.splitlines():
            if line.startswith("BENCH_RESULT "):
                data = json.loads(line.removeprefix("BENCH_RESULT "))
                errors = sum(
                    data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
                )
                return LoadResult(
                    requests=data["requests"],
                    seconds=data["duration_us"] / 1e6,
                    errors=errors,
                    status_errors=data["status_errors"],
                    p50_ms=data["p50_us"] / 1000,
                    p90_ms=data["p90_us"] / 1000,
                    p99_ms=data["p99_us"] / 1000,
                    max_ms=data["max_us"] / 1000,
                )
        raise LoadError(f"wrk printed no result:\n{output[-2000:]}")

    def run(
        self,
        url: str,
        *,
        connections: int,
        seconds: float,
        token: str | None = None,
        token_file: Path | None = None,
    ) -> LoadResult:
        """One run, waited for."""
        return self.result(
            self.start(
                url,
                connections=connections,
                seconds=seconds,
                token=token,
                token_file=token_file,
            )
        )
