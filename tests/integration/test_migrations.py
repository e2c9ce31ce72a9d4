"""Migrations: applied once under a lock, checksummed; a schema that refuses bad states."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from introspector.migrate import (
    MIN_SERVER_VERSION_NUM,
    MigrationError,
    load_migrations,
    migrate,
    pending,
)

ARGON2_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"


async def test_migrate_applies_every_migration_once(empty_database_url: str) -> None:
    """A first run applies all migrations; a second run applies none."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        assert await pending(conn) == [m.version for m in load_migrations()]
        assert await migrate(conn) == [m.version for m in load_migrations()]
        assert await migrate(conn) == []
        assert await pending(conn) == []
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert {"users", "workspaces", "workspace_members", "api_token", "audit_event"} <= tables
    finally:
        await conn.close()


async def test_the_harness_postgres_passes_the_version_check(empty_database_url: str) -> None:
    """The real server (the harness's PostgreSQL 15) meets the minimum, so migrate runs."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        version_num = int(await conn.fetchval("SHOW server_version_num"))
        assert version_num >= MIN_SERVER_VERSION_NUM
        assert await migrate(conn) == [m.version for m in load_migrations()]
    finally:
        await conn.close()


async def test_concurrent_migrations_both_succeed_and_apply_once(empty_database_url: str) -> None:
    """Two runners started together on an empty database: both succeed, the work is done once."""
    conns = [await asyncpg.connect(empty_database_url) for _ in range(2)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        applied = sorted(v for result in results for v in result)
        assert applied == [m.version for m in load_migrations()]
        count = await conns[0].fetchval("SELECT count(*) FROM keygate_schema_migrations")
        assert count == len(load_migrations())
    finally:
        for c in conns:
            await c.close()


async def test_edited_applied_migration_is_refused(empty_database_url: str) -> None:
    """If an applied migration's file changes, migrate refuses instead of skipping it."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn)
        edited = [dataclasses.replace(m, sql=m.sql + "\n-- edited") for m in load_migrations()]
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await migrate(conn, edited)
    finally:
        await conn.close()


async def test_unknown_applied_version_is_refused(empty_database_url: str) -> None:
    """A database migrated by a newer keygate is not touched by an older one."""
    conn = await asyncpg.connect(empty_database_url)
    try:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO keygate_schema_migrations (version, name, checksum) VALUES (999, 'x', 'y')"
        )
        with pytest.raises(MigrationError, match="does not know"):
            await migrate(conn)
    finally:
        await conn.close()


async def _user(db: asyncpg.Connection, email: str = "a@example.com") -> asyncpg.Record:
    row = await db.fetchrow("INSERT INTO users (email) VALUES ($1) RETURNING id", email)
    assert row is not None
    return row


@pytest.mark.parametrize(
    ("scope", "with_workspace"),
    [("WORKSPACE", False), ("PERSONAL", True), ("ORGANIZATION", True)],
    ids=["workspace-token-without-workspace", "personal-with-workspace", "org-with-workspace"],
)
async def test_scope_and_workspace_must_agree(
    db: asyncpg.Connection, scope: str, with_workspace: bool
) -> None:
    """Only a WORKSPACE token has a workspace, and it must have one."""
    user = await _user(db)
    ws = await db.fetchval("INSERT INTO workspaces (name) VALUES ('Acme') RETURNING id")
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "INSERT INTO api_token (public_id, user_id, workspace_id, name, token_hash, scope) "
            "VALUES ('abcdefABCDEF', $1, $2, 'n', $3, $4::token_scope)",
            user["id"],
            ws if with_workspace else None,
            ARGON2_HASH,
            scope,
        )


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("public_id", "short"),
        ("token_hash", "plaintext-secret"),
        ("name", ""),
        ("name", "  padded  "),
        ("rate_limit", 0),
    ],
    ids=["short-public-id", "non-argon2-hash", "empty-name", "untrimmed-name", "zero-rate-limit"],
)
async def test_token_rows_refuse_bad_values(
    db: asyncpg.Connection, column: str, value: object
) -> None:
    """The table itself refuses values the service would never write."""
    user = await _user(db)
    row: dict[str, object] = {
        "public_id": "abcdefABCDEF",
        "name": "ok",
        "token_hash": ARGON2_HASH,
        "rate_limit": None,
    }
    row[column] = value
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute(
            "INSERT INTO api_token (public_id, user_id, name, token_hash, rate_limit) "
            "VALUES ($1, $2, $3, $4, $5)",
            row["public_id"],
            user["id"],
            row["name"],
            row["token_hash"],
            row["rate_limit"],
        )


async def test_public_ids_are_unique(db: asyncpg.Connection) -> None:
    """Two tokens can never share a public id."""
    user = await _user(db)
    insert = (
        "INSERT INTO api_token (public_id, user_id, name, token_hash) "
        "VALUES ('abcdefABCDEF', $1, 'n', $2)"
    )
    await db.execute(insert, user["id"], ARGON2_HASH)
    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(insert, user["id"], ARGON2_HASH)


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_event SET action = 'x.y'", "DELETE FROM audit_event", "TRUNCATE audit_event"],
    ids=["update", "delete", "truncate"],
)
async def test_audit_log_is_append_only(db: asyncpg.Connection, statement: str) -> None:
    """Rows of the audit log can be added but never changed or removed."""
    await db.execute("INSERT INTO audit_event (actor_kind, action) VALUES ('system', 'test.event')")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await db.execute(statement)
    assert await db.fetchval("SELECT count(*) FROM audit_event") == 1


async def test_emails_are_unique_and_normalised(db: asyncpg.Connection) -> None:
    """The users table refuses duplicate and non-normalised e-mails."""
    await _user(db, "a@example.com")
    with pytest.raises(asyncpg.UniqueViolationError):
        await _user(db, "a@example.com")
    with pytest.raises(asyncpg.CheckViolationError):
        await _user(db, "Mixed@Example.com")
