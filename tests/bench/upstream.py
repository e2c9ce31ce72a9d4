"""The fixed upstream every contender forwards to: a minimal aiohttp app on uvloop.

Every path and method answers ``200`` with the same small JSON body, so what differs between
contenders is only what sits in front of it. Run as ``python -m tests.bench.upstream PORT``.
"""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

BODY = b'{"ok":true,"service":"bench-upstream"}'


async def answer(request: web.Request) -> web.Response:
    """The one response, whatever was asked."""
    return web.Response(body=BODY, content_type="application/json")


def create_app() -> web.Application:
    """The upstream app: one catch-all route, no middleware."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def main(argv: list[str]) -> int:
    """Serve on 127.0.0.1:``argv[0]`` until killed."""
    uvloop.install()
    web.run_app(create_app(), host="127.0.0.1", port=int(argv[0]), access_log=None, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
