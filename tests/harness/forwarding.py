"""A real HTTP server that passes every request on to another, for tests that need the
network between keygate's services to fail in a controlled way."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web


async def forwarding_app(introspector_url: str, *, stall: str | None = None) -> Any:
    """A real HTTP server in front of the live introspector that passes every request on,
    except that requests for ``stall`` get no answer (the introspector "accepts but hangs")."""

    async def relay(request: web.Request) -> web.StreamResponse:
        if request.path == stall:
            await asyncio.sleep(30)
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                introspector_url + request.path_qs,
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
                data=await request.read(),
            ) as answer,
        ):
            body = await answer.read()
            return web.Response(status=answer.status, body=body, headers=answer.headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", relay)
    return app
