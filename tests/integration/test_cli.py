"""The `keygate` operator CLI, run as a real process against the test Postgres."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import zlib
from pathlib import Path

import asyncpg
import pytest

from introspector.migrate import load_migrations
from keygate_core.token_format import ALPHABET, parse_token
from tests.harness.project import project_version

KEYGATE = str(Path(sys.executable).parent / "keygate")
TOKEN_SHAPE = re.compile(r"^kg_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}$")


def keygate(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KEYGATE, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def ok(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = keygate(env, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["migrate"],
        ["users"],
        ["users", "create"],
        ["users", "link"],
        ["workspaces", "create"],
        ["workspaces", "add-member"],
        ["workspaces", "remove-member"],
        ["users", "set-admin"],
        ["tokens"],
        ["tokens", "create"],
        ["tokens", "list"],
        ["tokens", "revoke"],
    ],
    ids=lambda a: " ".join(a) or "keygate",
)
def test_every_command_has_help(args: list[str]) -> None:
    """`--help` works at every level and exits 0."""
    result = subprocess.run([KEYGATE, *args, "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "usage: keygate" in result.stdout


def test_version_is_the_projects() -> None:
    """`keygate --version` prints the version pyproject.toml declares, and exits 0."""
    result = subprocess.run([KEYGATE, "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"keygate {project_version()}\n"


async def test_token_lifecycle_from_the_shell(
    keygate_env: dict[str, str], database_url: str
) -> None:
    """users create → tokens create (prints only the token) → list → revoke, with the DB checked."""
    env = keygate_env
    ok(env, "users", "create", "--email", "Dev@Example.com")
    stdout = ok(
        env,
        "tokens",
        "create",
        "--email",
        "dev@example.com",
        "--name",
        "laptop",
        "--expires-in",
        "30d",
    )
    token = stdout.strip()
    assert stdout == token + "\n"
    assert TOKEN_SHAPE.match(token)
    body, check = token[:-6], token[-6:]
    decoded = 0
    for char in check:
        decoded = decoded * 62 + ALPHABET.index(char)
    assert decoded == zlib.crc32(body.encode())

    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT id, token_hash, expires_at FROM api_token")
        rows = []
        for table in ("api_token", "audit_event", "users"):
            rows += await conn.fetch(f"SELECT row_to_json(x)::text FROM {table} x")
        dump = "\n".join(r[0] for r in rows)
    finally:
        await conn.close()
    assert row is not None
    assert row["token_hash"].startswith("$argon2id$")
    assert row["expires_at"] is not None
    assert token not in dump and parse_token(token).secret not in dump

    listing = ok(env, "tokens", "list", "--email", "dev@example.com")
    assert str(row["id"]) in listing and "laptop" in listing and "active" in listing
    assert parse_token(token).secret not in listing

    result = keygate(env, "tokens", "revoke", str(row["id"]))
    assert result.returncode == 0 and "revoked" in result.stderr
    assert "revoked" in ok(env, "tokens", "list", "--email", "dev@example.com")
    again = keygate(env, "tokens", "revoke", str(row["id"]))
    assert again.returncode == 0 and "already revoked" in again.stderr


def test_workspace_tokens_need_enterprise_and_an_admin(keygate_env: dict[str, str]) -> None:
    """WORKSPACE tokens: refused in community; in enterprise only for a workspace admin."""
    env = keygate_env
    ok(env, "users", "create", "--email", "boss@example.com")
    ok(env, "users", "create", "--email", "member@example.com")
    ok(env, "workspaces", "create", "--name", "Acme")
    ok(
        env,
        "workspaces",
        "add-member",
        "--workspace",
        "acme",
        "--email",
        "boss@example.com",
        "--role",
        "admin",
    )
    ok(env, "workspaces", "add-member", "--workspace", "Acme", "--email", "member@example.com")
    args = ["tokens", "create", "--name", "deploy", "--scope", "WORKSPACE", "--workspace", "Acme"]

    community = keygate(env, *args, "--email", "boss@example.com")
    assert community.returncode == 1
    assert "enterprise" in community.stderr and community.stdout == ""

    enterprise = {**env, "KEYGATE_EDITION": "enterprise"}
    refused = keygate(enterprise, *args, "--email", "member@example.com")
    assert refused.returncode == 1 and "admin" in refused.stderr
    assert TOKEN_SHAPE.match(ok(enterprise, *args, "--email", "boss@example.com").strip())


@pytest.mark.parametrize(
    ("args", "env_extra", "code", "message"),
    [
        (["tokens", "create", "--email", "nobody@example.com", "--name", "x"], {}, 1, "email"),
        (
            ["tokens", "create", "--email", "dev@example.com", "--name", "x", "--scope", "ALL"],
            {},
            2,
            "invalid choice",
        ),
        (
            [
                "tokens",
                "create",
                "--email",
                "dev@example.com",
                "--name",
                "x",
                "--expires-in",
                "soon",
            ],
            {},
            2,
            "--expires-in",
        ),
        (["tokens", "create", "--email", "dev@example.com", "--name", " "], {}, 1, "name"),
        (["tokens", "revoke", "not-a-uuid"], {}, 2, "not a token id"),
        (["tokens", "revoke", "00000000-0000-0000-0000-000000000000"], {}, 1, "not found"),
        (["users", "create", "--email", "dev@example.com"], {}, 1, "already exists"),
        (["users", "create", "--email", "not-an-email"], {}, 1, "email"),
        (
            ["tokens", "list", "--email", "dev@example.com"],
            {"KEYGATE_EDITON": "enterprise"},
            2,
            "KEYGATE_EDITON: unknown keygate setting (did you mean KEYGATE_EDITION?)",
        ),
        (
            ["tokens", "list", "--email", "dev@example.com"],
            {"KEYGATE_EDITION": "gold"},
            2,
            "KEYGATE_EDITION",
        ),
        (
            ["migrate"],
            {"KEYGATE_DATABASE_URL": "postgresql://user:hunter2@127.0.0.1:1/x"},
            1,
            "cannot reach Postgres at 127.0.0.1:1/x",
        ),
        (
            ["migrate"],
            {
                "KEYGATE_DATABASE_URL": "postgresql://user:hunter2@127.0.0.1:1,127.0.0.1:2/x"
                "?target_session_attrs=read-write"
            },
            1,
            "cannot reach Postgres at 127.0.0.1:1,127.0.0.1:2/x",
        ),
    ],
    ids=[
        "unknown-owner",
        "bad-scope",
        "bad-duration",
        "blank-name",
        "bad-id",
        "unknown-id",
        "duplicate-user",
        "bad-email",
        "typo-variable",
        "bad-edition",
        "unreachable-database",
        "unreachable-multi-host-database",
    ],
)
def test_bad_input_is_a_clear_error(
    keygate_env: dict[str, str],
    args: list[str],
    env_extra: dict[str, str],
    code: int,
    message: str,
) -> None:
    """Bad input exits non-zero with a message naming the problem, and prints no token."""
    ok(keygate_env, "users", "create", "--email", "dev@example.com")
    result = keygate({**keygate_env, **env_extra}, *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "hunter2" not in result.stderr
    assert "kg_" not in result.stdout


async def test_password_is_read_from_stdin_and_hashed(
    keygate_env: dict[str, str], database_url: str
) -> None:
    """--password-stdin stores an argon2id hash of the password, never the password."""
    ok(
        keygate_env,
        "users",
        "create",
        "--email",
        "p@example.com",
        "--admin",
        "--password-stdin",
        stdin="correct horse battery\n",
    )
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT password_hash, is_admin FROM users")
    finally:
        await conn.close()
    assert row is not None
    assert row["password_hash"].startswith("$argon2id$")
    assert "correct horse" not in row["password_hash"]
    assert row["is_admin"] is True


async def test_two_concurrent_migrate_runs_apply_once(
    empty_database_url: str, keygate_env: dict[str, str]
) -> None:
    """Two `keygate migrate` processes started together on an empty database both exit 0."""
    env = {**keygate_env, "KEYGATE_DATABASE_URL": empty_database_url}
    procs = [
        await asyncio.create_subprocess_exec(
            KEYGATE,
            "migrate",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    messages = sorted(err.decode() for _, err in outputs)
    assert any("applied migrations" in m for m in messages)
    conn = await asyncpg.connect(empty_database_url)
    try:
        versions = [r[0] for r in await conn.fetch("SELECT version FROM keygate_schema_migrations")]
    finally:
        await conn.close()
    assert sorted(versions) == [m.version for m in load_migrations()]
