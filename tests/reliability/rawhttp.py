"""A raw HTTP/1.1 client over a plain socket, for requests no well-behaved client would send.

Smuggling attempts, bare CRs, obs-folds and odd header spellings are refused or rewritten by
aiohttp's and http.client's own request builders, so hostile-input tests write the bytes
themselves and read back every response the server sends on the connection. The HTTP-edge tests
(pipelining, HEAD, 1xx/204/304, HTTP/1.0) hold one :class:`RawConnection` open instead and read
each response framed as RFC 9112 §6.3 says.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")
#: Statuses whose responses end with their header section, whatever the headers say.
_BODYLESS = frozenset({204, 304})


@dataclass
class RawResponse:
    """One response read off the wire."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> list[str]:
        """Every value of ``name`` (case-insensitive)."""
        return [v for k, v in self.headers if k.lower() == name.lower()]


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
    names = {k.lower(): v for k, v in headers}
    if "chunked" in names.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size_line = await reader.readline()
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                return body
            body += await reader.readexactly(size)
            await reader.readline()
    length = int(names.get("content-length", "0"))
    return await reader.readexactly(length) if length else b""


async def exchange(
    port: int, data: bytes, *, quiet: float = 5.0, max_responses: int = 4
) -> list[RawResponse]:
    """Send ``data`` to 127.0.0.1:``port`` and read responses until the server closes the
    connection, ``max_responses`` arrive, or ``quiet`` seconds pass without a byte."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    responses: list[RawResponse] = []
    try:
        writer.write(data)
        await writer.drain()
        while len(responses) < max_responses:
            try:
                status_line = await asyncio.wait_for(reader.readline(), quiet)
            except TimeoutError:
                break
            if not status_line:
                break
            match = _STATUS.match(status_line)
            if match is None:
                raise AssertionError(f"not an HTTP response: {status_line[:80]!r}")
            headers: list[tuple[str, str]] = []
            while True:
                line = await asyncio.wait_for(reader.readline(), quiet)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers.append((name.strip(), value.strip()))
            body = await asyncio.wait_for(_read_body(reader, headers), quiet)
            responses.append(RawResponse(int(match.group(1)), headers, body))
    except (ConnectionResetError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
    return responses


def request_bytes(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
) -> bytes:
    """A request line, headers and body exactly as given (CRLF line ends, nothing added)."""
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode("latin-1") + b"\r\n" + body


def exchange_sync(port: int, data: bytes, *, quiet: float = 5.0) -> list[RawResponse]:
    """:func:`exchange` for code that runs in a thread of its own (Hypothesis tests)."""
    return asyncio.run(exchange(port, data, quiet=quiet))


@dataclass
class RawConnection:
    """One client connection, held open: write bytes, read responses one at a time."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, data: bytes) -> None:
        """Write ``data`` exactly as given."""
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, method: str = "GET", *, quiet: float = 5.0) -> RawResponse:
        """The next response (a 1xx is one too), its body framed as RFC 9112 §6.3 says for a
        response to ``method``: none after HEAD, 1xx, 204 and 304; chunked; Content-Length;
        else everything until the server closes. Fails when a byte takes over ``quiet`` s."""
        status_line = await asyncio.wait_for(self.reader.readline(), quiet)
        match = _STATUS.match(status_line)
        if match is None:
            raise AssertionError(f"not an HTTP response: {status_line[:80]!r}")
        status = int(match.group(1))
        headers: list[tuple[str, str]] = []
        while (line := await asyncio.wait_for(self.reader.readline(), quiet)) not in (
            b"\r\n",
            b"\n",
            b"",
        ):
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))
        response = RawResponse(status, headers)
        if method == "HEAD" or status < 200 or status in _BODYLESS:
            return response
        if response.header("Transfer-Encoding") or response.header("Content-Length"):
            response.body = await asyncio.wait_for(_read_body(self.reader, headers), quiet)
            return response
        try:
            response.body = await asyncio.wait_for(self.reader.read(), quiet)
        except TimeoutError:
            raise AssertionError(
                f"{status} response has neither Content-Length nor chunked framing, and the "
                f"server did not close the connection to end it within {quiet} s: {headers}"
            ) from None
        return response

    async def closed_by_server(self, *, quiet: float = 5.0) -> bool:
        """Whether the server closes the connection within ``quiet`` s, sending nothing more.

        Bytes that arrive instead fail the test: after a complete response there must be none.
        """
        try:
            extra = await asyncio.wait_for(self.reader.read(1024), quiet)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        assert extra == b"", f"bytes after the last response: {extra[:80]!r}"
        return True


@contextlib.asynccontextmanager
async def raw_connection(port: int) -> AsyncIterator[RawConnection]:
    """A :class:`RawConnection` to 127.0.0.1:``port``, closed on the way out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield RawConnection(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)
