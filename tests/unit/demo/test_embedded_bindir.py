"""Where the embedded Postgres takes its binaries from: the caller's folder, else the machine's."""

from __future__ import annotations

from pathlib import Path

from keygate_demo import embedded
from tests.harness.servers import PostgresServer, postgres_bindir_from_env


def test_an_explicit_bindir_is_used(tmp_path: Path) -> None:
    """A bindir passed by the caller wins over the machine's binaries."""
    chosen = tmp_path / "pg" / "bin"
    assert embedded.PostgresServer(tmp_path, bindir=chosen).bindir == chosen


def test_without_a_bindir_the_machines_binaries_are_used(tmp_path: Path) -> None:
    """No bindir: the newest Debian PostgreSQL, else initdb on the PATH."""
    assert embedded.PostgresServer(tmp_path).bindir == embedded.postgres_bindir()


def test_the_suite_reads_keygate_test_pg_bindir() -> None:
    """The harness, not the demo package, turns KEYGATE_TEST_PG_BINDIR into a bindir."""
    assert postgres_bindir_from_env({"KEYGATE_TEST_PG_BINDIR": "/opt/pg/bin"}) == Path(
        "/opt/pg/bin"
    )
    assert postgres_bindir_from_env({}) is None
    assert PostgresServer(Path("unused")).bindir == (
        postgres_bindir_from_env() or embedded.postgres_bindir()
    )
