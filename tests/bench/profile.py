"""Where a gateway's CPU goes under load: py-spy samples it while wrk drives it.

Recorded in a run of its own, after the measured ones, so sampling never slows a measurement.
The collapsed stacks are written next to the JSON report (open them with speedscope or
``flamegraph.pl``); the report keeps the functions with the most samples of their own, grouped
by package, which is what docs/performance.md quotes.
"""

from __future__ import annotations

import asyncio
import collections
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.bench.load import Wrk
from tests.bench.processes import Service

_LINE = re.compile(r":\d+\)$")


@dataclass(frozen=True)
class Profile:
    """Self time by function and by package, in percent of the samples."""

    samples: int
    functions: list[tuple[str, float]]
    packages: list[tuple[str, float]]
    stacks_file: str

    def as_dict(self) -> dict[str, object]:
        """For the JSON report."""
        return {
            "samples": self.samples,
            "top_functions": [{"function": f, "percent": p} for f, p in self.functions],
            "packages": [{"package": k, "percent": p} for k, p in self.packages],
            "stacks_file": self.stacks_file,
        }


def py_spy() -> str | None:
    """The py-spy next to this interpreter (the ``bench`` extra), or on the PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


#: What a sampled function is part of, first match wins (matched on ``name (path)``).
_GROUPS = (
    ("socket writes (aiohttp StreamWriter._write)", r"StreamWriter\._write \(aiohttp/"),
    ("aiohttp client", r"\(aiohttp/(client|client_reqrep|client_proto|connector)\.py"),
    ("aiohttp server", r"\(aiohttp/"),
    ("keygate (gateway, introspector)", r"\((gateway|introspector)/"),
    ("rate limiter I/O (redis-py, asyncio streams)", r"\((redis/|asyncio/streams\.py)"),
    ("event loop (uvloop, asyncio)", r"\(asyncio/"),
    ("metrics (prometheus_client)", r"\(prometheus_client/"),
)


def _package(frame: str) -> str:
    for name, pattern in _GROUPS:
        if re.search(pattern, frame):
            return name
    return "other (stdlib, C)"


def summarise(
    raw: Path, top: int = 15
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """Total samples, the ``top`` functions by self samples and the share of each package."""
    functions: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = _LINE.sub(")", stack.split(";")[-1])
        functions[leaf] += int(count)
        packages[_package(leaf)] += int(count)
        total += int(count)
    if not total:
        return 0, [], []

    def share(counter: collections.Counter[str], n: int) -> list[tuple[str, float]]:
        return [(name, round(100 * c / total, 1)) for name, c in counter.most_common(n)]

    return total, share(functions, top), share(packages, 10)


async def record(
    service: Service, wrk: Wrk, token: str, out: Path, *, connections: int, seconds: float
) -> Profile | None:
    """Sample ``service`` (every worker process) for ``seconds`` under full load."""
    binary = py_spy()
    if binary is None:
        return None
    pids = service.pids()
    workers = pids[1:] or pids  # with workers, the parent only supervises
    load = wrk.start(
        service.url + "/bench", connections=connections, seconds=seconds + 2, token=token
    )
    await asyncio.sleep(1)
    raws = [out.with_name(f"{out.stem}-{pid}.txt") for pid in workers]
    samplers = [
        await asyncio.create_subprocess_exec(
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(raw),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, raw in zip(workers, raws, strict=True)
    ]
    for sampler in samplers:
        await sampler.wait()
    await asyncio.to_thread(Wrk.result, load)
    return _merge(raws, out)


def _merge(raws: list[Path], out: Path) -> Profile | None:
    present = [raw for raw in raws if raw.exists()]
    if not present:
        return None
    out.write_text("".join(raw.read_text() for raw in present))
    for raw in present:
        raw.unlink()
    samples, functions, packages = summarise(out)
    return Profile(samples, functions, packages, out.name)
