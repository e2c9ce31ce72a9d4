"""Turning one run's measurements into the markdown tables and the JSON document."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench.load import LoadResult


@dataclass(frozen=True)
class Target:
    """One target of the issue, evaluated."""

    name: str
    measured: float
    goal: float
    unit: str
    at_most: bool  # the measured value must be ≤ goal (else ≥)

    @property
    def holds(self) -> bool:
        """Whether the target is met."""
        return self.measured <= self.goal if self.at_most else self.measured >= self.goal

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return {
            "name": self.name,
            "measured": round(self.measured, 3),
            "goal": self.goal,
            "unit": self.unit,
            "comparison": "<=" if self.at_most else ">=",
            "holds": self.holds,
        }


def _fmt(value: float, unit: str) -> str:
    if unit == "×":
        return f"{value:.2f}×"
    if not unit:
        return f"{value:.3f}"
    return f"{value:.2f} {unit}" if value < 100 else f"{value:.0f} {unit}"


def load_table(title: str, results: dict[str, LoadResult]) -> list[str]:
    """A contender table: req/s, p50, p99."""
    lines = [f"#### {title}", "", "| Contender | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    for name, result in results.items():
        lines.append(f"| {name} | {result.rps:,.0f} | {result.p50_ms:.2f} | {result.p99_ms:.2f} |")
    return [*lines, ""]


def targets_table(targets: list[Target]) -> list[str]:
    """The ratios and whether each target holds."""
    lines = ["#### Targets", "", "| Target | Measured | Goal | Holds |", "|---|---:|---:|:---:|"]
    for target in targets:
        goal = ("≤ " if target.at_most else "≥ ") + _fmt(target.goal, target.unit)
        mark = "yes" if target.holds else "**no**"
        lines.append(f"| {target.name} | {_fmt(target.measured, target.unit)} | {goal} | {mark} |")
    return [*lines, ""]


def rows_table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Any small table."""
    lines = [f"#### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def _version(argv: list[str], pattern: str) -> str:
    if shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        return "not found"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "unknown"
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else "unknown"


def machine(nginx: str, postgres_bin: Path, redis_bin: str) -> dict[str, str]:
    """What the numbers came from — no host names, no paths."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0]
        mem_kib = int(first.split()[1])
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory_gib": f"{mem_kib / 1024 / 1024:.1f}",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": _version([nginx, "-v"], r"nginx/(\S+)"),
        "wrk": _version(["wrk", "-v"], r"wrk (\S+)"),
        "postgres": _version([str(postgres_bin / "postgres"), "--version"], r"(\d+\.\d+)"),
        "redis": _version([redis_bin, "--version"], r"v=(\S+)"),
    }


def load_average() -> str:
    """The 1/5/15-minute load averages, as ``uptime`` shows them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
