"""``python -m tests.bench.first_run``: how long a newcomer waits for ``make demo`` to work.

Clones the repository's committed HEAD into a temporary folder, as ``git clone`` would, and
runs the README's ``make demo`` there with pip's and uv's caches disabled, so every package is
downloaded again. The clock runs from ``make demo`` until the curl line it prints answers
``200`` with the demo token's identity; then the demo gets Ctrl-C. It prints how long each part
took. The README states the figure (refresh it with this command when the install changes).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.harness.project import ROOT
from tests.harness.servers import free_port

PORT_FLAGS = ("gateway", "introspector", "admin-ui", "upstream")


def _answers_200(curl_line: str) -> bool:
    """Run the printed curl line (plus a status code at the end) and check it says 200."""
    command = [*shlex.split(curl_line), "-o", "/dev/null", "-w", "%{http_code}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    return result.stdout.strip() == "200"


def measure(clone: Path, timeout: float) -> dict[str, float]:
    """Seconds from ``make demo`` to: the demo starting (install done), the banner, and the
    printed curl answering 200."""
    flags = " ".join(f"--{name}-port {free_port()}" for name in PORT_FLAGS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
    env.update(PIP_NO_CACHE_DIR="1", UV_NO_CACHE="1")
    started = time.monotonic()
    demo = subprocess.Popen(
        ["make", "--no-print-directory", "demo", f"DEMO_FLAGS={flags}"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    marks: dict[str, float] = {}
    output: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            output.append(line)
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"make demo was not ready within {timeout}s")
            if line.startswith("Starting the keygate demo"):
                marks["installed"] = time.monotonic() - started
            if line.strip().startswith("curl "):
                marks["banner"] = time.monotonic() - started
                curl_line = line.strip()
                while not _answers_200(curl_line):
                    time.sleep(0.05)
                marks["curl answers 200"] = time.monotonic() - started
                return marks
        raise RuntimeError(
            f"make demo ended with {demo.wait()} before printing a curl line:\n"
            + "".join(output[-20:])
        )
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
            demo.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.first_run", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="fresh clones to time")
    parser.add_argument("--timeout", type=float, default=300, help="seconds one run may take")
    args = parser.parse_args()
    results = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory(prefix="keygate-first-run-") as work:
            Path(work).chmod(0o755)  # as root, the demo's Postgres runs as `postgres`
            clone = Path(work) / "keygate"
            subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
            marks = measure(clone, args.timeout)
        results.append(marks)
        print(f"run {run}: " + ", ".join(f"{k} {v:.1f} s" for k, v in marks.items()), flush=True)
    best = min(results, key=lambda marks: marks["curl answers 200"])
    print(json.dumps({"runs": results, "best": best}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
