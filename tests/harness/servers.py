"""The test suite's throwaway Postgres and Redis servers (fast, nothing kept on disk).

They are keygate's embedded servers (the ones ``make demo`` uses) in their non-durable form;
this module is where the tests import them from. ``KEYGATE_TEST_PG_BINDIR`` names a folder of
PostgreSQL server binaries to use instead of the machine's (see README).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from keygate_demo import embedded
from keygate_demo.embedded import RedisServer, ServerUnavailable, free_port, wait_for_port


def postgres_bindir_from_env(environ: Mapping[str, str] = os.environ) -> Path | None:
    """``KEYGATE_TEST_PG_BINDIR`` when it is set, else ``None`` (the machine's binaries)."""
    explicit = environ.get("KEYGATE_TEST_PG_BINDIR")
    return Path(explicit) if explicit else None


class PostgresServer(embedded.PostgresServer):
    """The embedded Postgres, from ``KEYGATE_TEST_PG_BINDIR`` when that is set."""

    def __init__(
        self, base_dir: Path, *, durable: bool = False, settings: dict[str, str] | None = None
    ) -> None:
        super().__init__(
            base_dir, durable=durable, bindir=postgres_bindir_from_env(), settings=settings
        )


__all__ = ["PostgresServer", "RedisServer", "ServerUnavailable", "free_port", "wait_for_port"]
