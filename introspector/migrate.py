"""Versioned SQL migrations, applied in order under a Postgres advisory lock.

Files are ``introspector/migrations/NNNN_name.sql``. Each is applied in its own transaction and
recorded in ``keygate_schema_migrations`` with a SHA-256 of its text; a recorded migration whose
file has since changed is refused rather than silently skipped. Every runner takes the same
session-level advisory lock first, so concurrent ``keygate migrate`` runs (several replicas
starting at once) serialise and the later ones find nothing left to do.

Written here instead of using alembic/yoyo: those are synchronous and SQLAlchemy- or DB-API-based,
and keygate's whole storage layer is asyncpg with plain SQL; the runner is ~100 lines.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

#: Arbitrary but fixed: every keygate migrate run contends on this advisory lock key.
ADVISORY_LOCK_KEY = 0x6B657967617465  # "keygate" in ASCII

#: The oldest PostgreSQL keygate runs on, as ``server_version_num`` (15.0): the oldest release
#: its tests run against. The schema itself needs 13 (``gen_random_uuid()`` without pgcrypto);
#: 13 and 14 are refused because nothing checks that the rest of keygate works on them.
MIN_SERVER_VERSION_NUM = 150000

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The database's migration history does not match the migration files."""


@dataclass(frozen=True)
class Migration:
    """One SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """The packaged migration files, ordered by version; gaps and duplicates are errors."""
    found: list[Migration] = []
    for entry in resources.files("introspector.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(f"migration versions must be 1..n without gaps; got {migration}")
    return found


def check_server_version(version_num: int, version: str) -> None:
    """Refuse (:class:`MigrationError`) a server older than :data:`MIN_SERVER_VERSION_NUM`;
    ``version_num`` and ``version`` are the server's ``server_version_num`` and
    ``server_version``. Checked before anything is written, so an old server is told so
    plainly instead of failing half-way with an unknown function."""
    if version_num < MIN_SERVER_VERSION_NUM:
        raise MigrationError(
            f"keygate needs PostgreSQL {MIN_SERVER_VERSION_NUM // 10000} or later; "
            f"this server is {version}"
        )


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply pending migrations, on a new enough server only (:func:`check_server_version`);
    return the versions this call applied (maybe none)."""
    migrations = load_migrations() if migrations is None else migrations
    check_server_version(
        int(await conn.fetchval("SHOW server_version_num")),
        await conn.fetchval("SHOW server_version"),
    )
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS keygate_schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM keygate_schema_migrations")
        applied = {row["version"]: row for row in rows}
        known = {m.version for m in migrations}
        unknown = sorted(set(applied) - known)
        if unknown:
            raise MigrationError(
                f"database has migrations {unknown} that this keygate does not know; "
                "is an older release running against a newer schema?"
            )
        done: list[int] = []
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} was edited after "
                        "it was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO keygate_schema_migrations (version, name, checksum) "
                    "VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            done.append(migration.version)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)


async def pending(conn: asyncpg.Connection) -> list[int]:
    """Versions not yet applied, in order."""
    exists = await conn.fetchval("SELECT to_regclass('keygate_schema_migrations') IS NOT NULL")
    applied: set[int] = set()
    if exists:
        applied = {
            r["version"] for r in await conn.fetch("SELECT version FROM keygate_schema_migrations")
        }
    return [m.version for m in load_migrations() if m.version not in applied]
