"""``keygate``: the operator command line.

Operators with database access use it to migrate, create people and workspaces, and issue, list
and revoke tokens. It calls the same service layer as the HTTP API. ``tokens create`` prints the
plaintext token and nothing else on stdout, so it can be captured (``TOKEN=$(keygate tokens
create ...)``); everything meant for people goes to stderr.

Exit codes: 0 success, 1 the request was refused (not found, forbidden, conflict, unreachable
database), 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
from aiohttp import web

from introspector import tokens, users, workspaces
from introspector.errors import KeygateError
from introspector.hashing import Argon2Params, SecretHasher
from introspector.migrate import MigrationError, migrate
from introspector.models import Actor, Role
from introspector.settings import IntrospectorSettings
from keygate_cli.settings import load_settings
from keygate_core.envconfig import SettingsError
from keygate_core.scopes import Scope
from keygate_core.version import VERSION

EXIT_REFUSED = 1
EXIT_USAGE = 2

_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class UsageError(Exception):
    """The command line itself is wrong (exit 2)."""


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``1w2d``, ``30m``… → a positive timedelta."""
    compact = text.strip().lower()
    parts = _DURATION_PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise UsageError(f"--expires-in: {text!r} is not a duration like 30d, 12h or 1w2d")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError("--expires-in: must be longer than zero")
    if seconds > 10 * 365 * 86400:
        raise UsageError("--expires-in: must be at most ten years")
    return timedelta(seconds=seconds)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keygate",
        description="keygate operator commands. Configuration comes from KEYGATE_* variables "
        "(see docs/configuration.md); the database is KEYGATE_DATABASE_URL.",
    )
    parser.add_argument("--version", action="version", version=f"keygate {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("migrate", help="apply pending database migrations (safe to run twice)")
    commands.add_parser(
        "introspector",
        help="serve the introspector (KEYGATE_INTROSPECTOR_HOST/PORT)",
        description="Serve the token authority: the management API, whoami, /introspect, "
        "health and metrics. Stops cleanly on SIGTERM or Ctrl-C.",
    )

    commands.add_parser(
        "gateway",
        help="serve the gateway (KEYGATE_GATEWAY_HOST/PORT) in front of KEYGATE_UPSTREAM_URL",
        description="Serve the reverse proxy: bearer tokens are checked with the introspector, "
        "everything else falls through to the upstream's own sessions.",
    )
    commands.add_parser(
        "admin-ui",
        help="serve the admin UI (KEYGATE_ADMIN_UI_HOST/PORT); reached through the gateway",
        description="Serve the pages where people sign in and manage their API keys.",
    )
    demo = commands.add_parser(
        "demo",
        help="run the whole stack with demo data on this machine (what `make demo` runs)",
        description="Start Postgres and Redis (unless KEYGATE_DATABASE_URL / KEYGATE_REDIS_URL "
        "are set), migrate, seed demo people and a token, and run the introspector, the admin "
        "UI, a demo upstream app and the gateway until Ctrl-C.",
    )
    demo.add_argument(
        "--data-dir",
        default=".keygate/demo",
        help="where the demo keeps its databases, secret and logs (default: %(default)s)",
    )
    for service, port in (
        ("gateway", 8080),
        ("introspector", 8081),
        ("admin-ui", 8082),
        ("upstream", 3000),
    ):
        demo.add_argument(f"--{service}-port", type=int, default=port, metavar="PORT")
    demo_upstream = commands.add_parser(
        "demo-upstream",
        help="serve the demo app that shows the identity headers it receives",
        description="A stand-in for your application, for demos: it shows the identity "
        "headers keygate injects and has a cookie login of its own. Never expose it.",
    )
    demo_upstream.add_argument("--host", default="127.0.0.1")
    demo_upstream.add_argument("--port", type=int, default=3000)
    users_cmd = commands.add_parser("users", help="manage people").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create_user = users_cmd.add_parser("create", help="create a person")
    create_user.add_argument("--email", required=True)
    create_user.add_argument(
        "--password-stdin",
        action="store_true",
        help="read a password for the local login from standard input",
    )
    create_user.add_argument("--admin", action="store_true", help="make an organisation admin")

    ws_cmd = commands.add_parser("workspaces", help="manage workspaces").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create_ws = ws_cmd.add_parser("create", help="create a workspace")
    create_ws.add_argument("--name", required=True)
    add_member = ws_cmd.add_parser("add-member", help="add a person to a workspace")
    add_member.add_argument("--workspace", required=True, help="workspace name or id")
    add_member.add_argument("--email", required=True)
    add_member.add_argument("--role", choices=[r.value for r in Role], default=Role.MEMBER.value)

    tok_cmd = commands.add_parser("tokens", help="manage API tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create_tok = tok_cmd.add_parser(
        "create", help="issue a token; prints the plaintext token (only) on stdout"
    )
    create_tok.add_argument("--email", required=True, help="the token's owner")
    create_tok.add_argument("--name", required=True, help="what the token is for")
    create_tok.add_argument(
        "--scope", choices=[s.value for s in Scope], default=Scope.PERSONAL.value
    )
    create_tok.add_argument("--workspace", help="workspace name or id (WORKSPACE scope)")
    create_tok.add_argument("--expires-in", help="lifetime such as 30d, 12h or 1w2d")
    create_tok.add_argument("--rate-limit", type=int, help="requests per minute for this token")
    list_tok = tok_cmd.add_parser("list", help="list a person's tokens (never the secrets)")
    list_tok.add_argument("--email", required=True)
    list_tok.add_argument("--json", action="store_true", help="one JSON object per line")
    revoke_tok = tok_cmd.add_parser("revoke", help="revoke a token by id")
    revoke_tok.add_argument("id", help="the token id (a UUID, as shown by `tokens list`)")
    return parser


def _describe_database(url: str) -> str:
    """Host, port and database of a URL, without user or password."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


async def _with_connection(
    settings: IntrospectorSettings, work: Callable[[asyncpg.Connection], Awaitable[int]]
) -> int:
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        where = _describe_database(settings.database_url)
        raise KeygateError(f"cannot reach Postgres at {where}: {type(exc).__name__}") from None
    try:
        return await work(conn)
    except asyncpg.UndefinedTableError:
        raise KeygateError(
            "the database has no keygate schema yet; run `keygate migrate` first"
        ) from None
    finally:
        await conn.close()


def _hasher(settings: IntrospectorSettings) -> SecretHasher:
    params = Argon2Params(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )
    return SecretHasher(params, settings.argon2_max_concurrency)


async def _run(args: argparse.Namespace, settings: IntrospectorSettings, stdin: TextIO) -> int:
    actor = Actor.operator()
    hasher = _hasher(settings)

    async def do_migrate(conn: asyncpg.Connection) -> int:
        applied = await migrate(conn)
        print(
            f"applied migrations: {applied}" if applied else "database is up to date",
            file=sys.stderr,
        )
        return 0

    async def do_users_create(conn: asyncpg.Connection) -> int:
        password = None
        if args.password_stdin:
            password = stdin.readline().rstrip("\r\n")
        user = await users.create_user(
            conn, hasher, actor, email=args.email, password=password, is_admin=args.admin
        )
        print(user.id)
        return 0

    async def do_workspaces_create(conn: asyncpg.Connection) -> int:
        workspace = await workspaces.create_workspace(conn, actor, name=args.name)
        print(workspace.id)
        return 0

    async def do_add_member(conn: asyncpg.Connection) -> int:
        workspace = await workspaces.find_workspace(conn, args.workspace)
        user = await users.get_user_by_email(conn, args.email)
        await workspaces.add_member(conn, actor, workspace, user, Role(args.role))
        print(f"{user.email} is {args.role} of {workspace.name}", file=sys.stderr)
        return 0

    async def do_tokens_create(conn: asyncpg.Connection) -> int:
        owner = await users.get_user_by_email(conn, args.email)
        workspace_id = None
        if args.workspace:
            workspace_id = (await workspaces.find_workspace(conn, args.workspace)).id
        expires_at = None
        if args.expires_in:
            expires_at = datetime.now(UTC) + parse_duration(args.expires_in)
        created = await tokens.create_token(
            conn,
            hasher,
            actor,
            owner=owner,
            name=args.name,
            edition=settings.edition,
            scope=Scope(args.scope),
            workspace_id=workspace_id,
            expires_at=expires_at,
            rate_limit=args.rate_limit,
        )
        print(created.plaintext)
        print(
            f"created token {created.record.id} ({created.record.display_start}…); "
            "it will not be shown again",
            file=sys.stderr,
        )
        return 0

    async def do_tokens_list(conn: asyncpg.Connection) -> int:
        owner = await users.get_user_by_email(conn, args.email)
        records = await tokens.list_tokens(conn, user_id=owner.id)
        now = datetime.now(UTC)
        if args.json:
            for r in records:
                print(json.dumps(r.to_json(now)))
            return 0
        _print_table(
            ["ID", "START", "NAME", "SCOPE", "CREATED", "LAST USED", "EXPIRES", "STATUS"],
            [
                [
                    str(r.id),
                    r.display_start + "…",
                    r.name,
                    r.scope.value,
                    _when(r.created_at),
                    _when(r.last_used_at, "never"),
                    _when(r.expires_at, "never"),
                    r.status(now).value,
                ]
                for r in records
            ],
        )
        if not records:
            print(f"{owner.email} has no tokens", file=sys.stderr)
        return 0

    async def do_tokens_revoke(conn: asyncpg.Connection) -> int:
        try:
            token_id = UUID(args.id)
        except ValueError:
            raise UsageError(f"id: {args.id!r} is not a token id (a UUID)") from None
        record, revoked_now = await tokens.revoke_token(conn, actor, token_id)
        state = "revoked" if revoked_now else "was already revoked"
        print(f"token {record.id} ({record.display_start}…) {state}", file=sys.stderr)
        return 0

    handlers: dict[tuple[str, str | None], Callable[[asyncpg.Connection], Awaitable[int]]] = {
        ("migrate", None): do_migrate,
        ("users", "create"): do_users_create,
        ("workspaces", "create"): do_workspaces_create,
        ("workspaces", "add-member"): do_add_member,
        ("tokens", "create"): do_tokens_create,
        ("tokens", "list"): do_tokens_list,
        ("tokens", "revoke"): do_tokens_revoke,
    }
    try:
        return await _with_connection(
            settings, handlers[(args.command, getattr(args, "action", None))]
        )
    finally:
        hasher.close()


def _when(value: datetime | None, missing: str = "-") -> str:
    return missing if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _serve(
    app_factory: Callable[[], web.Application],
    host: str,
    port: int,
    level: str,
    drain_seconds: float = 0.0,
) -> int:
    """Run an aiohttp service until SIGTERM/Ctrl-C (see keygate_core.serving)."""
    from keygate_core.serving import serve

    return serve(app_factory(), host, port, log_level=level, drain_seconds=drain_seconds)


def _serve_introspector(settings: IntrospectorSettings) -> int:
    from introspector.app import create_app

    return _serve(
        lambda: create_app(settings),
        settings.host,
        settings.port,
        settings.log_level.value,
        settings.shutdown_drain_seconds,
    )


def _serve_gateway() -> int:
    from gateway.app import create_app
    from gateway.settings import GatewaySettings
    from keygate_core.workers import serve_workers

    settings = load_settings(GatewaySettings)
    return serve_workers(
        lambda: create_app(settings),
        settings.host,
        settings.port,
        workers=settings.workers,
        log_level=settings.log_level.value,
        drain_seconds=settings.shutdown_drain_seconds,
    )


def _serve_admin_ui() -> int:
    from admin_ui.app import create_app
    from admin_ui.settings import AdminUISettings

    settings = load_settings(AdminUISettings)
    return _serve(
        lambda: create_app(settings),
        settings.host,
        settings.port,
        settings.log_level.value,
        settings.shutdown_drain_seconds,
    )


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None) -> int:
    """Entry point of the ``keygate`` console script; returns the exit code."""
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "gateway":
            return _serve_gateway()
        if args.command == "admin-ui":
            return _serve_admin_ui()
        if args.command == "demo":
            from keygate_demo.run import DemoOptions, run

            return run(
                DemoOptions(
                    data_dir=Path(args.data_dir).resolve(),
                    gateway_port=args.gateway_port,
                    introspector_port=args.introspector_port,
                    admin_ui_port=args.admin_ui_port,
                    upstream_port=args.upstream_port,
                )
            )
        if args.command == "demo-upstream":
            from keygate_demo.upstream import create_app as create_demo_upstream

            return _serve(create_demo_upstream, args.host, args.port, "info")
        settings = load_settings(IntrospectorSettings)
        if args.command == "introspector":
            return _serve_introspector(settings)
        return asyncio.run(_run(args, settings, stdin or sys.stdin))
    except SettingsError as exc:
        print(f"keygate: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"keygate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeygateError as exc:
        field = f" ({exc.field})" if exc.field else ""
        print(f"keygate: {exc.title.lower()}{field}: {exc.detail}", file=sys.stderr)
        return EXIT_REFUSED
    except MigrationError as exc:
        print(f"keygate: migration refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
