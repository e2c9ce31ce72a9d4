"""Everything one benchmark run stands up: Postgres, Redis, keygate, nginx and the upstream.

One work folder holds the servers' data and every log (kept with ``--keep`` for reading).
Postgres runs as the ``postgres`` user when we are root, so the folder and its parents must be
searchable by it: it is made with ``tempfile.mkdtemp`` and opened up like the test suite does.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from introspector.migrate import migrate
from tests.bench import dataset
from tests.bench.processes import (
    Processes,
    Service,
    forward_auth_site,
    plain_proxy_site,
)
from tests.harness.servers import PostgresServer, RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "keygate_bench"
#: High enough that no benchmark request is ever refused; the limiter still runs on each one.
RATE_LIMIT_PER_MINUTE = 10_000_000


@dataclass
class Stack:
    """The running servers and the data the scenarios use."""

    work_dir: Path
    postgres: PostgresServer
    redis_server: RedisServer
    processes: Processes
    internal_secret: str
    workers: int
    keepalive: int
    services: dict[str, Service] = field(default_factory=dict)
    owner: uuid.UUID | None = None
    token_hash: str = ""

    @property
    def database_url(self) -> str:
        """The benchmark database."""
        return self.postgres.url(DATABASE)

    def keygate_env(self) -> dict[str, str]:
        """What every keygate process reads."""
        return {
            "KEYGATE_DATABASE_URL": self.database_url,
            "KEYGATE_REDIS_URL": self.redis_server.url(),
            "KEYGATE_INTERNAL_SECRET": self.internal_secret,
        }

    def gateway_env(self, **extra: str) -> dict[str, str]:
        """A gateway in front of the upstream, asking the introspector."""
        return {
            **self.keygate_env(),
            "KEYGATE_UPSTREAM_URL": self.services["upstream"].url,
            "KEYGATE_INTROSPECTOR_URL": self.services["introspector"].url,
            "KEYGATE_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT_PER_MINUTE),
            # Off, like nginx's: the contenders do the same work (its cost: relay_cost).
            "KEYGATE_ACCESS_LOG": "false",
            **self.worker_env(),
            **extra,
        }

    def worker_env(self) -> dict[str, str]:
        """The gateway's worker-process count (nginx gets the same number)."""
        return {"KEYGATE_GATEWAY_WORKERS": str(self.workers)}

    async def connect(self) -> asyncpg.Connection:
        """A connection to the benchmark database."""
        return await asyncpg.connect(self.database_url)

    def redis(self) -> aioredis.Redis:
        """A client of the benchmark Redis."""
        return aioredis.Redis.from_url(self.redis_server.url())

    def start_gateway(self, name: str, **extra: str) -> Service:
        """One more gateway process (or set of workers) with the common settings."""
        service = self.processes.gateway(name, self.gateway_env(**extra))
        self.services[name] = service
        return service

    def stop(self, keep: bool) -> None:
        """Stop everything; remove the work folder unless ``keep``."""
        self.processes.stop_all()
        self.redis_server.stop()
        self.postgres.stop()
        if not keep:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def make_work_dir() -> Path:
    """A fresh folder Postgres (running as ``postgres``) can reach."""
    path = Path(tempfile.mkdtemp(prefix="keygate-bench-"))
    path.chmod(path.stat().st_mode | stat.S_IRWXU | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP)
    return path


def _child_env() -> dict[str, str]:
    # Only what the bench sets: a stray KEYGATE_* of the caller's would change what is measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
    # The children run in the work folder and import tests.bench from the repository.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


async def start_stack(work_dir: Path, *, workers: int, keepalive: int) -> Stack:
    """Servers up, schema migrated, the owner and the shared hash made; services not yet."""
    postgres = PostgresServer(work_dir / "postgres", durable=False)
    postgres.init()
    postgres.start()
    postgres.create_database(DATABASE)
    redis_server = RedisServer(work_dir / "redis")
    redis_server.start()
    stack = Stack(
        work_dir=work_dir,
        postgres=postgres,
        redis_server=redis_server,
        processes=Processes(work_dir, _child_env()),
        internal_secret=secrets.token_urlsafe(48),
        workers=workers,
        keepalive=keepalive,
    )
    conn = await stack.connect()
    try:
        await migrate(conn)
        stack.owner = await dataset.create_owner(conn)
    finally:
        await conn.close()
    stack.token_hash = dataset.fixed_hash()
    return stack


def start_services(stack: Stack) -> None:
    """The upstream, the introspector, both contender gateways, both nginx configurations and
    the bare relay."""
    processes = stack.processes
    stack.services["upstream"] = processes.upstream()
    stack.services["introspector"] = processes.introspector(stack.keygate_env())
    routes = stack.work_dir / "passthrough-routes.toml"
    routes.write_text('[[route]]\nprefix = "/"\nauth = "none"\n')
    stack.start_gateway("keygate-passthrough", KEYGATE_ROUTES_FILE=str(routes))
    stack.start_gateway("keygate")
    app_port = stack.services["upstream"].port
    port = free_port()
    stack.services["nginx-plain"] = processes.nginx(
        "nginx-plain", plain_proxy_site(port, app_port, stack.keepalive), port, stack.workers
    )
    stack.services["bare-relay"] = processes.bare_relay(app_port, stack.workers)
    port = free_port()
    site = forward_auth_site(port, stack.services["keygate"].port, app_port, stack.keepalive)
    stack.services["nginx-auth-request"] = processes.nginx(
        "nginx-auth-request", site, port, stack.workers
    )
