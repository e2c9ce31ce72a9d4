"""Running a page's shell recipe as a reader would, and reading what it printed."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any


async def run_recipe(
    script: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``script`` in one bash shell that stops at the first failing command; the services it
    starts in the background stop with the shell. Fails the test when the shell fails."""
    wrapped = f"set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n{script}"
    result = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-c", wrapped],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-3000:]}"
    return result


def json_documents(text: str) -> list[Any]:
    """Every JSON object printed in ``text``, in order (curl adds no newline after a body)."""
    decoder = json.JSONDecoder()
    found = []
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError:
            position = text.find("{", position + 1)
            continue
        found.append(value)
        position = text.find("{", end)
    return found
