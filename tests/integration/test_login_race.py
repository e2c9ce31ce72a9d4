"""Sign-in racing a deactivation: a login whose password check began before the deactivation
committed must not leave a live session behind it."""

from __future__ import annotations

import asyncio
from typing import Any

from argon2 import PasswordHasher

from tests.harness.stack import Introspector
from tests.integration.test_user_lifecycle import PASSWORD, call, login, person

#: A hash that takes about a second to verify on the test machine, so the deactivation
#: certainly commits (and delivers its session purge) while the login is checking it.
SLOW = PasswordHasher(time_cost=24, memory_cost=65536, parallelism=1)


async def test_a_login_overtaken_by_a_deactivation_is_refused(
    introspector: Introspector, redis_client: Any
) -> None:
    """Password checked while the admin deactivates: the login answers 401 and no session of the
    person is left in Redis."""
    root = await person(introspector, "root@example.com", admin=True)
    alice = await person(introspector, "alice@example.com")
    await introspector.db.execute(
        "UPDATE users SET password_hash = $2 WHERE id = $1", alice.id, SLOW.hash(PASSWORD)
    )
    signing_in = asyncio.create_task(login(introspector, "alice@example.com", PASSWORD))
    await asyncio.sleep(0.3)  # the login has read the (active) user and is verifying
    assert not signing_in.done()
    deactivated = await call(introspector, root, "POST", f"/users/{alice.id}/deactivate")
    assert deactivated.status == 200
    assert not signing_in.done(), "the password check ended before the deactivation"
    response = await signing_in
    assert response.status == 401
    assert await redis_client.keys("kg:sess:*") == []
