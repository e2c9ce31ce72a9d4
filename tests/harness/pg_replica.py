"""A Postgres primary with a streaming standby (``pg_basebackup -R``), for failover tests.

Both are the suite's own throwaway servers (:class:`tests.harness.servers.PostgresServer`) on
free 127.0.0.1 ports. Replication is synchronous (``synchronous_standby_names='*'`` with
``synchronous_commit=on``): a commit is acknowledged only once the standby has flushed it, so a
promoted standby holds every commit a client was told about. With asynchronous replication the
last acknowledged commits before a crash may be missing on the standby — Postgres's property,
not keygate's (see docs/reliability.md).

``crash_primary()`` SIGKILLs the postmaster and every backend, as a dying host would;
``fence_primary()`` makes it read-only while it runs (a switchover's first step);
``standby.promote()`` runs ``pg_ctl promote``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from keygate_demo.server_process import _children
from tests.harness.servers import PostgresServer, ServerUnavailable

#: Off the suite's speed settings: a commit waits for its WAL, here and on the standby.
REPLICATED = {"synchronous_commit": "on", "wal_level": "replica", "max_wal_senders": "4"}


class StandbyServer(PostgresServer):
    """A standby cloned from a running primary with ``pg_basebackup -R`` (streaming)."""

    def clone_from(self, primary: PostgresServer) -> None:
        """Copy the primary's cluster and write the standby's connection settings (``-R``)."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            shutil.chown(self.base_dir, user=self._run_as)
        source = ["-h", "127.0.0.1", "-p", str(primary.port), "-U", primary.user]
        # -c fast: checkpoint at once rather than spread over minutes.
        target = ["-D", str(self.data_dir), "-R", "-c", "fast"]
        result = subprocess.run(
            [str(self.bindir / "pg_basebackup"), *source, *target],
            capture_output=True,
            text=True,
            cwd=self.base_dir,
            check=False,
            **self._as_owner(),
        )
        if result.returncode != 0:
            raise ServerUnavailable(f"pg_basebackup failed: {result.stderr.strip()}")

    def promote(self) -> None:
        """``pg_ctl promote`` and wait until the standby accepts writes."""
        subprocess.run(
            [str(self.bindir / "pg_ctl"), "promote", "-w", "-t", "30", "-D", str(self.data_dir)],
            capture_output=True,
            check=True,
            cwd=self.base_dir,
            **self._as_owner(),
        )


class ReplicatedPostgres:
    """A primary and its synchronous streaming standby; ``url()`` names both (multi-host)."""

    def __init__(self, base_dir: Path) -> None:
        self.primary = PostgresServer(base_dir / "primary", settings=REPLICATED)
        self.standby = StandbyServer(base_dir / "standby", settings=REPLICATED)

    def start(self, database: str) -> None:
        """Start the primary, create ``database``, clone and start the standby, and make it
        synchronous once it streams."""
        self.primary.init()
        self.primary.start()
        self.primary.create_database(database)
        self.standby.clone_from(self.primary)
        self.standby.start()
        self._psql(self.primary, "ALTER SYSTEM SET synchronous_standby_names = '*'")
        self._psql(self.primary, "SELECT pg_reload_conf()")
        self._wait_synchronous()

    def _psql(self, server: PostgresServer, sql: str) -> str:
        where = ["-h", "127.0.0.1", "-p", str(server.port), "-U", server.user, "-d", "postgres"]
        result = subprocess.run(
            [str(server.bindir / "psql"), *where, "-At", "-c", sql],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()

    def _wait_synchronous(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        query = "SELECT sync_state FROM pg_stat_replication"
        while time.monotonic() < deadline:
            if self._psql(self.primary, query) == "sync":
                return
            time.sleep(0.05)
        raise ServerUnavailable(f"the standby did not become synchronous in {timeout}s")

    def url(self, database: str, *, standby_first: bool = False, **query: str | None) -> str:
        """The multi-host URL, primary first; ``target_session_attrs=read-write`` by default
        (pass ``target_session_attrs=None`` for a URL that does not say)."""
        query.setdefault("target_session_attrs", "read-write")
        ports = [self.primary.port, self.standby.port]
        hosts = ",".join(f"127.0.0.1:{port}" for port in (ports[::-1] if standby_first else ports))
        params = "&".join(f"{k}={v}" for k, v in query.items() if v is not None)
        return f"postgresql://{self.primary.user}@{hosts}/{database}?{params}"

    async def connect_standby(self, database: str) -> asyncpg.Connection:
        """A direct connection to the standby (the new primary once promoted)."""
        return await asyncpg.connect(self.standby.url(database))

    def fence_primary(self) -> None:
        """Make the running primary refuse writes (``default_transaction_read_only``), as a
        switchover fences the old primary before promoting the standby; its open sessions see
        the change too."""
        self._psql(self.primary, "ALTER SYSTEM SET default_transaction_read_only = on")
        self._psql(self.primary, "SELECT pg_reload_conf()")

    def crash_primary(self) -> None:
        """SIGKILL the primary's postmaster and every backend: a host that died."""
        proc = self.primary.proc
        assert proc is not None
        # Stopped first, so it forks no backend between the listing and the kill.
        os.kill(proc.pid, signal.SIGSTOP)
        children = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        proc.wait()
        self.primary.proc = None

    def stop(self) -> None:
        """Stop whatever still runs."""
        for server in (self.standby, self.primary):
            with contextlib.suppress(Exception):
                server.stop()


@contextlib.contextmanager
def replicated_postgres(database: str) -> Iterator[ReplicatedPostgres]:
    """A started pair with ``database``, stopped and deleted afterwards, even on failure.

    Its folder is not pytest's tmp_path when Postgres runs as another user (as root, it runs as
    `postgres`, which cannot enter pytest's private temp root) — the same choice as the suite's
    own Postgres in tests/conftest.py.
    """
    base = Path(tempfile.mkdtemp(prefix="keygate-test-pg-replica-"))
    base.chmod(base.stat().st_mode | stat.S_IRWXU | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP)
    pair = ReplicatedPostgres(base)
    try:
        pair.start(database)
        yield pair
    finally:
        pair.stop()
        shutil.rmtree(base, ignore_errors=True)
