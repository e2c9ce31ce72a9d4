"""What the pipeline's stages read of a request, whichever server parsed it.

The relay (:mod:`gateway.relay`) parses the common request itself; aiohttp parses the rest
(:mod:`gateway.app`). Both hand the stages an object with these attributes, so a rule is written
once and means the same on both paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from multidict import CIMultiDictProxy


class ProxiedRequest(Protocol):
    """A request as the stages see it: aiohttp's ``web.Request`` is one."""

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The request's fields, as received."""
        ...

    @property
    def remote(self) -> str | None:
        """The peer's address (the client, or the proxy in front of us)."""
        ...

    @property
    def path(self) -> str:
        """The percent-decoded path, without the query."""
        ...

    @property
    def raw_path(self) -> str:
        """The request target as sent: path and query, still encoded."""
        ...

    @property
    def host(self) -> str:
        """The Host header (or this server's address without one)."""
        ...

    @property
    def scheme(self) -> str:
        """``http`` or ``https``, as this server was reached."""
        ...

    @property
    def cookies(self) -> Mapping[str, str]:
        """The Cookie header's pairs."""
        ...


def authorization_values(request: ProxiedRequest) -> list[str]:
    """Every ``Authorization`` field's value. The relay's request has them at hand (read with
    its head), which spares it making the whole header multidict for a bearer token."""
    known: list[str] | None = getattr(request, "authorization", None)
    return known if known is not None else request.headers.getall("Authorization", [])
