"""Load from another process, so that the test process's event loop only runs the servers.

``python -m tests.reliability.loadgen`` reads a plan from stdin and writes one JSON outcome per
request to stdout. A plan is ``{"base_url": ..., "streams": [{"kind": ..., "concurrency": n,
"requests": [[path, headers], ...]}, ...]}``; all streams run at once. A stream with
``"concurrency"`` keeps that many clients busy (each sends its next request when the last is
answered); a stream with ``"rate"`` sends that many requests per second on a fixed schedule,
however slowly they are answered (an attacker does not wait). Times are ``time.monotonic()``,
the clock the test's event loop uses too.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

from tests.reliability.measure import Outcome, send


async def run(plan: dict[str, Any]) -> list[Outcome]:
    """Send every stream of ``plan``; all outcomes."""
    outcomes: list[Outcome] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def one(kind: str, request: Any) -> None:
            path, headers = request
            outcomes.append(await send(http, plan["base_url"], kind, (path, headers), 30.0))

        async def stream(spec: dict[str, Any]) -> None:
            kind, requests = spec["kind"], spec["requests"]
            if "rate" in spec:
                loop = asyncio.get_running_loop()
                start = loop.time()
                sent = []
                for i, request in enumerate(requests):
                    await asyncio.sleep(max(0.0, start + i / spec["rate"] - loop.time()))
                    sent.append(asyncio.create_task(one(kind, request)))
                await asyncio.gather(*sent)
                return
            queue = iter(requests)

            async def client() -> None:
                for request in queue:
                    await one(kind, request)

            await asyncio.gather(*(client() for _ in range(spec["concurrency"])))

        await asyncio.gather(*(stream(spec) for spec in plan["streams"]))
    return outcomes


REPOSITORY = Path(__file__).resolve().parents[2]


async def load_from_another_process(plan: dict[str, Any]) -> list[Outcome]:
    """Run ``plan`` in a child Python process; its outcomes."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.reliability.loadgen",
        cwd=REPOSITORY,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await child.communicate(json.dumps(plan).encode())
    assert child.returncode == 0, stderr.decode()[-2000:]
    return [Outcome(**json.loads(line)) for line in stdout.decode().splitlines()]


def main() -> None:
    plan = json.load(sys.stdin)
    for outcome in asyncio.run(run(plan)):
        sys.stdout.write(json.dumps(asdict(outcome)) + "\n")


if __name__ == "__main__":
    main()
