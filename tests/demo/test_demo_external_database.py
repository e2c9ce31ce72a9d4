"""`keygate demo` and a database it did not create: no demo people without an explicit flag."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from pathlib import Path

import asyncpg

from keygate_demo.services import keygate_command
from tests.harness.servers import free_port

EXIT_TIMEOUT = 60
SERVICES = ("gateway", "introspector", "admin-ui", "upstream")


async def _run_demo(env: dict[str, str], data_dir: Path) -> tuple[int | None, str]:
    """``keygate demo`` until it exits (Ctrl-C after EXIT_TIMEOUT): exit code and stderr."""
    process = await asyncio.create_subprocess_exec(
        keygate_command(),
        "demo",
        f"--data-dir={data_dir}",
        *(f"--{name}-port={free_port()}" for name in SERVICES),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT)
    except TimeoutError:
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), EXIT_TIMEOUT)
        return None, "still running: " + stderr.decode(errors="replace")
    return process.returncode, stderr.decode(errors="replace")


async def test_demo_refuses_to_seed_a_database_named_by_keygate_database_url(
    empty_database_url: str, redis_url: str
) -> None:
    """With KEYGATE_DATABASE_URL set and no flag, the demo exits 1 before writing anything."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
    env.update({"KEYGATE_DATABASE_URL": empty_database_url, "KEYGATE_REDIS_URL": redis_url})
    base = Path(tempfile.mkdtemp(prefix="keygate-demo-ext-"))
    try:
        returncode, stderr = await _run_demo(env, base / "data")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    conn = await asyncpg.connect(empty_database_url)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    assert tables == 0, f"the demo migrated and seeded a database it did not create: {stderr}"
    assert returncode == 1
    assert "KEYGATE_DATABASE_URL" in stderr and "--seed-external-database" in stderr
