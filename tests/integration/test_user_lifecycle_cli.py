"""The operator's user lifecycle commands, run as real processes against a running stack: a CLI
deactivation or revocation reaches the gateway at once (NOTIFY wakes the introspector), not at
the next outbox poll."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from introspector import users
from introspector.outbox_wakeup import LISTENER_NAME
from tests.harness.polling import eventually
from tests.harness.stack import API, Stack, StartStack
from tests.integration.test_cli import KEYGATE
from tests.integration.test_user_lifecycle import PASSWORD, login, person, seconds_until_refused

#: Far longer than the test: whatever reaches the gateway did not come from the poll.
SLOW_POLL = {"KEYGATE_OUTBOX_POLL_SECONDS": "30"}


async def run(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run ``keygate`` without blocking the event loop the stack serves on."""
    process = await asyncio.create_subprocess_exec(
        KEYGATE,
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(None if stdin is None else stdin.encode())
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def slow_poll_stack(start_stack: StartStack) -> Stack:
    stack = await start_stack(
        introspector_env_extra=SLOW_POLL, KEYGATE_SESSION_AUTHENTICATOR="local"
    )
    # Let the delivery loop run its first round and open its LISTEN connection.
    await asyncio.sleep(0.3)
    return stack


async def warm(stack: Stack, token: str) -> dict[str, str]:
    bearer = {"Authorization": f"Bearer {token}"}
    for _ in range(2):
        assert (await stack.gateway.get("/app", headers=bearer)).status == 200
    return bearer


async def test_cli_revoke_reaches_the_gateway_without_waiting_for_the_poll(
    start_stack: StartStack, keygate_env: dict[str, str]
) -> None:
    """`keygate tokens revoke` with a 30 s poll: the warm token is 401 within 100 ms."""
    stack = await slow_poll_stack(start_stack)
    alice = await stack.introspector.user("alice@example.com")
    created = await stack.introspector.create_ok(alice)
    bearer = await warm(stack, created["token"])
    code, _, err = await run(keygate_env, "tokens", "revoke", created["id"])
    returned = time.monotonic()
    assert code == 0, err
    elapsed = await seconds_until_refused(stack, bearer, returned)
    assert elapsed < 0.1, f"the token was still accepted {elapsed * 1000:.0f} ms after the CLI"


async def test_cli_deactivation_end_to_end(
    start_stack: StartStack, keygate_env: dict[str, str]
) -> None:
    """`keygate users deactivate --email`: warm token 401 within 100 ms, session gone, audited
    as the operator; reactivate: sign-in works, the old token stays refused."""
    stack = await slow_poll_stack(start_stack)
    introspector = stack.introspector
    await person(introspector, "alice@example.com")
    alice = await users.get_user_by_email(introspector.db, "alice@example.com")
    session = await (await login(introspector, "alice@example.com", PASSWORD)).json()
    cookie = {"Cookie": f"kg_session={session['sessionId']}"}
    assert (await stack.gateway.get(f"{API}/whoami", headers=cookie)).status == 200
    bearer = await warm(stack, await stack.token_for(alice))

    code, out, err = await run(keygate_env, "users", "deactivate", "--email", "alice@example.com")
    returned = time.monotonic()
    assert code == 0, err
    elapsed = await seconds_until_refused(stack, bearer, returned)
    assert elapsed < 0.1, f"the token was still accepted {elapsed * 1000:.0f} ms after the CLI"
    assert out == "" and "1 token(s) revoked" in err
    assert (await stack.gateway.get(f"{API}/whoami", headers=cookie)).status == 401
    actors = await introspector.db.fetch(
        "SELECT action, actor_kind FROM audit_event WHERE action IN "
        "('user.deactivate', 'token.revoke')"
    )
    assert {(a["action"], a["actor_kind"]) for a in actors} == {
        ("user.deactivate", "operator"),
        ("token.revoke", "operator"),
    }
    assert (await login(introspector, "alice@example.com", PASSWORD)).status == 401
    code, _, err = await run(keygate_env, "users", "deactivate", "--email", "alice@example.com")
    assert code == 0 and "already deactivated" in err

    code, _, err = await run(keygate_env, "users", "reactivate", "--email", "alice@example.com")
    assert code == 0, err
    assert (await login(introspector, "alice@example.com", PASSWORD)).status == 201
    assert (await stack.gateway.get(f"{API}/whoami", headers=bearer)).status == 401


async def test_cli_refuses_tokens_for_a_deactivated_person(
    start_stack: StartStack, keygate_env: dict[str, str]
) -> None:
    """`tokens create` for a deactivated person is refused (exit 1, 409 on email)."""
    stack = await slow_poll_stack(start_stack)
    await person(stack.introspector, "alice@example.com")
    await run(keygate_env, "users", "deactivate", "--email", "alice@example.com")
    code, out, err = await run(
        keygate_env, "tokens", "create", "--email", "alice@example.com", "--name", "x"
    )
    assert code == 1 and out == ""
    assert "(email)" in err and "deactivated" in err


async def test_cli_lists_and_sets_passwords(
    start_stack: StartStack, keygate_env: dict[str, str]
) -> None:
    """`users list --json` shows everyone; `set-password --generate` prints a working password
    once and ends sessions; `--password-stdin` reads one; a short one is refused (exit 1)."""
    stack = await slow_poll_stack(start_stack)
    introspector = stack.introspector
    await person(introspector, "alice@example.com")
    await person(introspector, "root@example.com", admin=True)
    code, out, _ = await run(keygate_env, "users", "list", "--json")
    listed: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert [(u["email"], u["isAdmin"]) for u in listed] == [
        ("alice@example.com", False),
        ("root@example.com", True),
    ]
    session = await (await login(introspector, "alice@example.com", PASSWORD)).json()
    cookie = {"Cookie": f"kg_session={session['sessionId']}"}
    args = ("users", "set-password", "--email", "alice@example.com")
    code, generated, err = await run(keygate_env, *args, "--generate")
    assert code == 0, err
    generated = generated.strip()
    assert len(generated) >= 16 and generated not in err
    await asyncio.sleep(0.05)
    assert (await stack.gateway.get(f"{API}/whoami", headers=cookie)).status == 401
    assert (await login(introspector, "alice@example.com", generated)).status == 201
    code, _, err = await run(keygate_env, *args, "--password-stdin", stdin="short\n")
    assert code == 1 and "(password)" in err
    code, _, err = await run(keygate_env, *args, "--password-stdin", stdin="from stdin 1\n")
    assert code == 0, err
    assert (await login(introspector, "alice@example.com", "from stdin 1")).status == 201
    code, _, err = await run(keygate_env, *args)
    assert code == 2
    code, _, err = await run(keygate_env, "users", "deactivate", "--email", "nobody@example.com")
    assert code == 1 and "(email)" in err


async def listeners(stack: Stack) -> list[int]:
    """Backend pids of the connections listening on the outbox channel."""
    rows = await stack.introspector.db.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 "
        "AND datname = current_database()",
        LISTENER_NAME,
    )
    return [r["pid"] for r in rows]


async def test_a_lost_listener_is_reopened_by_the_poll(start_stack: StartStack) -> None:
    """Postgres drops the LISTEN connection (as in a failover): the next poll opens a new one."""
    stack = await start_stack(introspector_env_extra={"KEYGATE_OUTBOX_POLL_SECONDS": "0.5"})
    first = await eventually(lambda: listeners(stack))
    assert len(first) == 1
    await stack.introspector.db.execute("SELECT pg_terminate_backend($1)", first[0])

    async def reopened() -> list[int]:
        return [pid for pid in await listeners(stack) if pid != first[0]]

    assert len(await eventually(reopened)) == 1
