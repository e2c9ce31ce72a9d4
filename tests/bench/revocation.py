"""Revocation propagation: how long until every gateway refuses a token that was just revoked.

Each trial warms one token into both gateways' L1 caches, starts a poller per gateway (one
request after another with that token), then revokes it through the introspector's API (as the
admin UI or automation would, via the gateway). The sample is the time from sending the revoke
until *both* pollers got their first 401 — the poll round trip included, so it is an upper
bound.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from tests.bench.coldpath import Latencies
from tests.bench.dataset import BenchToken
from tests.bench.stack import Stack


@dataclass(frozen=True)
class Propagation:
    """Revoke-to-refused times over every gateway, and per gateway."""

    gateways: int
    everywhere: Latencies
    per_gateway: dict[str, Latencies]

    def as_dict(self) -> dict[str, object]:
        """For the JSON report."""
        return {
            "gateways": self.gateways,
            "everywhere": self.everywhere.as_dict(),
            "per_gateway": {k: v.as_dict() for k, v in self.per_gateway.items()},
        }


async def _status(session: aiohttp.ClientSession, url: str, token: str) -> int:
    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        await response.read()
        return response.status


async def _until_refused(
    session: aiohttp.ClientSession, url: str, token: str, revoked: asyncio.Event, limit: float
) -> float:
    """Poll until 401; the time of that answer (monotonic)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status = await _status(session, url, token)
        if status == 401:
            if not revoked.is_set():
                raise RuntimeError("token refused before it was revoked")
            return time.monotonic()
        if status != 200:
            raise RuntimeError(f"unexpected status {status} while polling")
    raise RuntimeError(f"token still accepted {limit}s after the revoke")


async def propagation(stack: Stack, gateways: list[str], tokens: list[BenchToken]) -> Propagation:
    """One trial per token."""
    assert stack.owner is not None
    urls = {name: stack.services[name].url + "/bench" for name in gateways}
    api = stack.services["introspector"].url + "/api/platform/internal/api-tokens/"
    caller = {
        "X-Keygate-Internal-Secret": stack.internal_secret,
        "X-Keygate-User-Id": str(stack.owner),
        "X-Keygate-Auth-Method": "session",
    }
    everywhere: list[float] = []
    per_gateway: dict[str, list[float]] = {name: [] for name in gateways}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for token in tokens:
            for url in urls.values():
                for _ in range(2):
                    if await _status(session, url, token.plaintext) != 200:
                        raise RuntimeError("a warm token was refused before its revoke")
            revoked = asyncio.Event()
            pollers = {
                name: asyncio.create_task(
                    _until_refused(session, url, token.plaintext, revoked, 5.0)
                )
                for name, url in urls.items()
            }
            await asyncio.sleep(0.01)
            started = time.monotonic()
            revoked.set()
            async with session.delete(api + str(token.token_id), headers=caller) as response:
                if response.status != 204:
                    raise RuntimeError(f"revoke answered {response.status}")
            seen = {name: await task for name, task in pollers.items()}
            for name, at in seen.items():
                per_gateway[name].append((at - started) * 1000)
            everywhere.append((max(seen.values()) - started) * 1000)
    return Propagation(
        len(gateways),
        Latencies(everywhere),
        {name: Latencies(samples) for name, samples in per_gateway.items()},
    )
