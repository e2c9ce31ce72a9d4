"""The demo's seed (`keygate demo`) against the test Postgres."""

from __future__ import annotations

import asyncpg
from argon2 import extract_parameters

from introspector.settings import IntrospectorSettings
from keygate_core.token_format import parse_token
from keygate_demo.seed import ADMIN, MEMBER, seed


async def test_seed_hashes_with_the_configured_argon2_parameters(
    database_url: str, db: asyncpg.Connection
) -> None:
    """The demo token and the demo passwords are hashed with KEYGATE_ARGON2_*, not the defaults."""
    settings = IntrospectorSettings(
        database_url=database_url,
        argon2_time_cost=3,
        argon2_memory_kib=4096,
        argon2_parallelism=2,
        allow_weak_argon2=True,
    )
    seeded = await seed(settings)
    token_hash = await db.fetchval(
        "SELECT token_hash FROM api_token WHERE public_id = $1",
        parse_token(seeded.token).public_id,
    )
    password_hashes = await db.fetch(
        "SELECT password_hash FROM users WHERE email = any($1::text[])",
        [ADMIN.email, MEMBER.email],
    )
    hashes = [token_hash, *(row["password_hash"] for row in password_hashes)]
    assert len(hashes) == 3
    for encoded in hashes:
        found = extract_parameters(encoded)
        assert (found.time_cost, found.memory_cost, found.parallelism) == (3, 4096, 2)


async def test_a_second_seed_revokes_the_first_token(
    database_url: str, db: asyncpg.Connection
) -> None:
    """Seeding twice keeps the people, issues a new token and revokes the one printed before."""
    settings = IntrospectorSettings(
        database_url=database_url, argon2_memory_kib=1024, allow_weak_argon2=True
    )
    first = await seed(settings)
    second = await seed(settings)
    assert (first.created_people, second.created_people) == (True, False)
    assert second.revoked_previous == 1 and second.token != first.token
    revoked = await db.fetchval(
        "SELECT revoked_at IS NOT NULL FROM api_token WHERE public_id = $1",
        parse_token(first.token).public_id,
    )
    assert revoked is True
