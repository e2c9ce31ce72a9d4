"""An aiohttp test server that serves the gateway the way ``keygate gateway`` does: through the
relay (:class:`gateway.relay.server.RelaySite`), with aiohttp behind it for what the relay
hands over. Pass it to pytest-aiohttp's ``aiohttp_client`` like any ``TestServer``."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from gateway.relay.server import RelaySite


class RelayTestServer(TestServer):
    """``TestServer`` with the relay as its site."""

    async def start_server(
        self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any
    ) -> None:
        """Set the app up and listen on a free port of 127.0.0.1 through the relay."""
        if self.runner:
            return
        self._loop = loop
        self.runner = await self._make_runner(handler_cancellation=True, **kwargs)
        await self.runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port or 0))
        self.port = sock.getsockname()[1]
        assert isinstance(self.runner, web.AppRunner)
        await RelaySite(self.runner, self.host, self.port, sock=sock, grace=2.0).start()
        self.scheme = "http"
        self._root = URL(f"http://{self.host}:{self.port}")
