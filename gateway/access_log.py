"""The gateway's access log: one JSON line per answered request, written once per loop turn.

A ``logging`` call per request (a record, the JSON formatter, a write and a flush) would cost
more than relaying the request. The relay and the aiohttp path only append the request's fields
here; after the callbacks of the loop turn, every waiting line is formatted and written with one
call to :func:`keygate_core.logs.write_json_lines`: to the same stream, in the same shape as
every other log line (and as the introspector's ``request`` lines).

Only what keygate decided is logged: the method, the route prefix that matched (never the
path or its query, which may carry anything a client put there), the status, the duration, the
request id and the client's address (the one per-client limits use). The lines are at level
``info``: ``KEYGATE_LOG_LEVEL=warning`` silences them, as does ``KEYGATE_ACCESS_LOG=false``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from keygate_core.logs import write_json_lines

LOGGER = "keygate.gateway.access"
#: Methods written as they are; anything else goes through ``json.dumps``.
_PLAIN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
)
#: Method and route pairs whose fields are kept formatted (routes come from the route table and
#: methods are few: the bound is only a guard).
_PAIRS = 4096
#: Client addresses kept as JSON strings, forgotten all at once when there are this many.
_CLIENTS = 4096


class AccessLog:
    """Lines waiting for the end of the loop turn."""

    def __init__(self, *, enabled: bool, sink: Callable[[str], None] = write_json_lines) -> None:
        #: ``KEYGATE_ACCESS_LOG``; the level is looked at when the lines are written.
        self.enabled = enabled
        #: Where the formatted lines go (tests hand in a stream's ``write``).
        self.sink = sink
        self._logger = logging.getLogger(LOGGER)
        self._waiting: list[tuple[str, str, str, int, float, str | None]] = []
        self._fields: dict[tuple[str, str], str] = {}
        self._clients: dict[str | None, str] = {None: "null"}

    def record(
        self,
        request_id: str,
        method: str,
        route: str,
        status: int,
        seconds: float,
        client: str | None,
    ) -> None:
        """One answered request; ``client`` is the client's address as the gateway decided it
        (``RequestContext.client_address``)."""
        if not self.enabled:
            return
        waiting = self._waiting
        if not waiting:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop: write it now
                waiting.append((request_id, method, route, status, seconds, client))
                self.flush()
                return
        waiting.append((request_id, method, route, status, seconds, client))

    def flush(self) -> None:
        """Write every waiting line (one timestamp for the turn that answered them)."""
        waiting, self._waiting = self._waiting, []
        if not waiting or not self._logger.isEnabledFor(logging.INFO):
            return
        head = (
            f'{{"time": "{datetime.now(UTC).isoformat()}", "level": "info", '
            f'"logger": "{LOGGER}", "message": "request", "request_id": '
        )
        known = self._fields.get
        clients = self._clients.get
        lines = [
            f'{head}"{request_id}", {known((method, route)) or self._method_route(method, route)}'
            f'"status": {status}, "duration_ms": {seconds * 1000:.2f}, '
            f'"client": {clients(client) or self._client(client)}}}\n'
            for request_id, method, route, status, seconds, client in waiting
        ]
        self.sink("".join(lines))

    def _client(self, client: str | None) -> str:
        quoted = json.dumps(client)
        if len(self._clients) >= _CLIENTS:
            self._clients = {None: "null"}
        self._clients[client] = quoted
        return quoted

    def _method_route(self, method: str, route: str) -> str:
        """The line's method and route fields, made once per pair."""
        quoted = f'"{method}"' if method in _PLAIN_METHODS else json.dumps(method)
        fields = f'"method": {quoted}, "route": {json.dumps(route)}, '
        if len(self._fields) < _PAIRS:
            self._fields[(method, route)] = fields
        return fields
