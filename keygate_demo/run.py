"""``make demo``: the whole keygate stack on one machine, in one command.

Unless ``KEYGATE_DATABASE_URL`` / ``KEYGATE_REDIS_URL`` name servers of your own, Postgres and
Redis run from the machine's binaries with their data in the demo's folder (git-ignored
``.keygate/demo`` by default), so a second run finds everything the first one made. Then the
database is migrated, the demo people, workspace and a fresh token are seeded, and the
introspector, the admin UI, a demo upstream app and the gateway start as child processes, each
logging to a file in the folder. The banner says where everything is. A database of your own
is migrated and seeded only with ``--seed-external-database``: the demo people's passwords are
published, so the demo refuses to write them anywhere it did not create.

Ctrl-C (or SIGTERM) stops the services in order — the gateway first, the databases last — and
waits for each; a service that dies on its own stops the demo with its log's last lines (the
child processes are :mod:`keygate_demo.services`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from admin_ui.settings import AdminUISettings
from gateway.settings import GatewaySettings
from introspector.settings import IntrospectorSettings
from keygate_core.envconfig import load_settings
from keygate_demo.embedded import PostgresServer, RedisServer, ServerUnavailable, wait_for_port
from keygate_demo.seed import ADMIN, MEMBER, Seeded, seed
from keygate_demo.services import DemoFailed, DemoStack, keygate_command

DATABASE = "keygate"


@dataclass(frozen=True)
class DemoOptions:
    """Where the demo keeps its data and which ports its services use."""

    data_dir: Path
    gateway_port: int = 8080
    introspector_port: int = 8081
    admin_ui_port: int = 8082
    upstream_port: int = 3000
    #: Seed the demo people into the database KEYGATE_DATABASE_URL names (refused otherwise).
    seed_external_database: bool = False


class _Stop(Exception):
    """Ctrl-C or SIGTERM."""


def _say(text: str = "") -> None:
    print(text, flush=True)


def _internal_secret(data_dir: Path) -> str:
    """The services' shared secret, made once per data folder (readable by its owner only)."""
    path = data_dir / "internal-secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _start_postgres(stack: DemoStack, data_dir: Path) -> str:
    server = PostgresServer(data_dir / "postgres", durable=True)
    reused = server.initialised
    if not reused:
        _say("  creating a Postgres cluster …")
        server.init()
    stack.postgres = server
    server.start()
    server.create_database(DATABASE)
    _say(f"  Postgres {'(existing data)' if reused else '(new)'} on 127.0.0.1:{server.port}")
    return server.url(DATABASE)


def _start_redis(stack: DemoStack, data_dir: Path) -> str:
    server = RedisServer(data_dir / "redis", durable=True)
    stack.redis = server
    server.start()
    _say(f"  Redis on 127.0.0.1:{server.port}")
    return server.url()


def _environment(options: DemoOptions, database_url: str, redis_url: str) -> dict[str, str]:
    """The services' environment: yours, with the demo's wiring on top."""
    env = dict(os.environ)
    env.setdefault("KEYGATE_INTERNAL_SECRET", _internal_secret(options.data_dir))
    env.update(
        {
            "KEYGATE_DATABASE_URL": database_url,
            "KEYGATE_REDIS_URL": redis_url,
            "KEYGATE_INTROSPECTOR_PORT": str(options.introspector_port),
            "KEYGATE_INTROSPECTOR_URL": f"http://127.0.0.1:{options.introspector_port}",
            "KEYGATE_ADMIN_UI_PORT": str(options.admin_ui_port),
            "KEYGATE_ADMIN_UI_URL": f"http://127.0.0.1:{options.admin_ui_port}",
            "KEYGATE_GATEWAY_PORT": str(options.gateway_port),
            "KEYGATE_UPSTREAM_URL": f"http://127.0.0.1:{options.upstream_port}",
            "KEYGATE_SESSION_AUTHENTICATOR": "local",
        }
    )
    for host in ("KEYGATE_INTROSPECTOR_HOST", "KEYGATE_ADMIN_UI_HOST", "KEYGATE_GATEWAY_HOST"):
        env.setdefault(host, "127.0.0.1")
    return env


def _port_free(port: int) -> bool:
    try:
        wait_for_port(port, timeout=0.01)
    except ServerUnavailable:
        return True
    return False


def _banner(options: DemoOptions, token: str, owner: str, reused: bool) -> Iterator[str]:
    gateway = f"http://127.0.0.1:{options.gateway_port}"
    yield ""
    yield "keygate demo is running."
    yield ""
    yield f"  Your app (demo upstream), through the gateway:  {gateway}/"
    yield f"  Admin UI (Settings → API Keys):                 {gateway}/settings/api-keys"
    yield f"  Sign in to keygate:                             {gateway}/_keygate/login"
    yield ""
    yield "  Demo people (keygate's local login):"
    for person in (ADMIN, MEMBER):
        role = "organisation admin" if person.admin else "member"
        yield f"    {person.email:<28} password {person.password:<22} ({role})"
    yield ""
    yield f"  A demo token for {owner} (issued for this run; the previous run's is revoked):"
    yield f"    {token}"
    yield ""
    bearer = shlex.quote("Authorization: Bearer " + token)
    yield "  Ask keygate who that token is:"
    yield f"    curl -sS -H {bearer} {gateway}/api/platform/internal/whoami"
    yield ""
    # A browser cannot send a bearer token: this is how to see the app's side of one.
    yield "  See what the demo app receives with that token (identity headers keygate vouches for):"
    yield f"    curl -sS -H {bearer} {gateway}/api/echo"
    yield ""
    where = options.data_dir
    yield (
        f"  Data and logs: {where} ({'reused from an earlier run' if reused else 'new'}; "
        "delete the folder to start over)."
    )
    yield "  Press Ctrl-C to stop everything."


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _busy_ports(options: DemoOptions) -> list[int]:
    ports = (
        options.gateway_port,
        options.introspector_port,
        options.admin_ui_port,
        options.upstream_port,
    )
    return [port for port in ports if not _port_free(port)]


def _migrate(env: dict[str, str]) -> None:
    migrated = subprocess.run(
        [keygate_command(), "migrate"], env=env, capture_output=True, text=True, check=False
    )
    if migrated.returncode != 0:
        raise DemoFailed(f"`keygate migrate` failed:\n{migrated.stderr.strip()}")
    _say(f"  {migrated.stderr.strip()}")


def _start(stack: DemoStack, options: DemoOptions) -> Seeded:
    """Servers, schema, demo data and the four services, listening; what the banner shows."""
    database_url = os.environ.get("KEYGATE_DATABASE_URL") or _start_postgres(
        stack, options.data_dir
    )
    redis_url = os.environ.get("KEYGATE_REDIS_URL") or _start_redis(stack, options.data_dir)
    env = _environment(options, database_url, redis_url)
    _migrate(env)
    # `keygate migrate` has just refused any unknown variable in this environment.
    settings = load_settings(IntrospectorSettings, env, known=(GatewaySettings, AdminUISettings))
    seeded = asyncio.run(seed(settings))
    _say("  demo people created" if seeded.created_people else "  demo people already there")
    for name, port in (
        ("introspector", options.introspector_port),
        ("admin-ui", options.admin_ui_port),
        ("demo-upstream", options.upstream_port),
        ("gateway", options.gateway_port),
    ):
        stack.spawn(name, port, env, options.data_dir / "logs")
    for service in stack.services:
        service.wait_until_listening()
    return seeded


def _refuse_external_database(options: DemoOptions) -> str | None:
    """Why the demo must not start: it would write people with published passwords into a
    database it did not create, unless the operator said that database is a throwaway."""
    if not os.environ.get("KEYGATE_DATABASE_URL") or options.seed_external_database:
        return None
    return (
        "KEYGATE_DATABASE_URL names a database the demo did not create, and the demo would "
        f"write people with published passwords into it ({ADMIN.email}, an organisation "
        "admin). Unset KEYGATE_DATABASE_URL to use the demo's own Postgres, or, if that "
        "database is a throwaway, pass --seed-external-database "
        "(make demo DEMO_FLAGS=--seed-external-database)."
    )


def run(options: DemoOptions) -> int:
    """Start the demo, print the banner, and wait for Ctrl-C; the exit code."""
    refused = _refuse_external_database(options)
    if refused:
        print(f"keygate demo: {refused}", file=sys.stderr)
        return 1
    busy = _busy_ports(options)
    if busy:
        print(
            f"keygate demo: ports already in use: {', '.join(map(str, busy))} "
            "(stop what uses them, or choose others: keygate demo --help)",
            file=sys.stderr,
        )
        return 1
    reused = options.data_dir.exists()
    options.data_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    stack = DemoStack()
    status = 0
    try:
        _say("Starting the keygate demo …")
        seeded = _start(stack, options)
        for line in _banner(options, seeded.token, seeded.token_owner, reused):
            _say(line)
        while True:
            stack.check_running()
            time.sleep(0.5)
    except _Stop:
        _say("\nStopping the keygate demo …")
    except (DemoFailed, ServerUnavailable, subprocess.CalledProcessError, OSError) as exc:
        print(f"keygate demo: {exc}", file=sys.stderr)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        unclean = stack.stop()
    for problem in unclean:
        print(f"keygate demo: {problem}", file=sys.stderr)
    if unclean:
        return 1
    if status == 0:
        _say("Stopped cleanly.")
    return status
