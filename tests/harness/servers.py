"""The test suite's throwaway Postgres and Redis servers (fast, nothing kept on disk).

They are keygate's embedded servers (the ones ``make demo`` uses) in their non-durable form;
this module is where the tests import them from. ``KEYGATE_TEST_PG_BINDIR`` names a folder of
PostgreSQL server binaries to use instead of the machine's (see README).
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Mapping
from pathlib import Path

from keygate_demo import embedded
from keygate_demo.embedded import RedisServer, ServerUnavailable, free_port, wait_for_port


def postgres_bindir_from_env(environ: Mapping[str, str] = os.environ) -> Path | None:
    """``KEYGATE_TEST_PG_BINDIR`` when it is set, else ``None`` (the machine's binaries)."""
    explicit = environ.get("KEYGATE_TEST_PG_BINDIR")
    return Path(explicit) if explicit else None


#: Ports no ``bind(("127.0.0.1", 0))`` is given: below Linux's default ephemeral range
#: (32768–60999, ``/proc/sys/net/ipv4/ip_local_port_range``), above the well-known services.
_QUIET_PORTS = range(20000, 32768)
_quiet_handed_out: set[int] = set()


def quiet_port() -> int:
    """A free TCP port on 127.0.0.1 outside the kernel's ephemeral range, for a server that
    binds it seconds after it is chosen (``make demo``): a port from :func:`free_port` may
    meanwhile be given to any other test's port-0 bind, and then the server cannot start."""
    while True:
        port = random.choice(_QUIET_PORTS)
        if port in _quiet_handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _quiet_handed_out.add(port)
        return port


class PostgresServer(embedded.PostgresServer):
    """The embedded Postgres, from ``KEYGATE_TEST_PG_BINDIR`` when that is set."""

    def __init__(
        self, base_dir: Path, *, durable: bool = False, settings: dict[str, str] | None = None
    ) -> None:
        super().__init__(
            base_dir, durable=durable, bindir=postgres_bindir_from_env(), settings=settings
        )


__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServerUnavailable",
    "free_port",
    "quiet_port",
    "wait_for_port",
]
