"""``keygate``: the operator command line.

Operators with database access use it to migrate, create people and workspaces, and issue, list
and revoke tokens. It calls the same service layer as the HTTP API. ``tokens create`` prints the
plaintext token and nothing else on stdout, so it can be captured (``TOKEN=$(keygate tokens
create ...)``); everything meant for people goes to stderr. The same command serves each keygate
process (``introspector``, ``gateway``, ``admin-ui``, ``demo-upstream``) and runs the demo.

Exit codes: 0 success, 1 the request was refused (not found, forbidden, conflict, unreachable
database), 2 bad usage or configuration.

This module is the command tree and the mapping of errors to exit codes; the commands
themselves are in :mod:`keygate_cli.serve` and :mod:`keygate_cli.operator`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import TextIO, TypeAlias

from introspector.errors import KeygateError
from introspector.migrate import MigrationError
from introspector.models import Role
from introspector.settings import IntrospectorSettings
from keygate_cli import operator
from keygate_cli.operator import UsageError
from keygate_cli.serve import SERVING
from keygate_cli.settings import load_settings
from keygate_core.envconfig import SettingsError
from keygate_core.scopes import Scope
from keygate_core.version import VERSION

EXIT_REFUSED = 1
EXIT_USAGE = 2

#: What ``add_subparsers`` returns: the place each command is added to.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keygate",
        description="keygate operator commands. Configuration comes from KEYGATE_* variables "
        "(see docs/configuration.md); the database is KEYGATE_DATABASE_URL.",
    )
    parser.add_argument("--version", action="version", version=f"keygate {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", help="apply pending database migrations (safe to run twice)")
    _add_service_commands(commands)
    _add_demo_commands(commands)
    _add_people_commands(commands)
    _add_token_commands(commands)
    return parser


def _add_service_commands(commands: Commands) -> None:
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


def _add_demo_commands(commands: Commands) -> None:
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
    demo.add_argument(
        "--seed-external-database",
        action="store_true",
        help="seed the demo people (published passwords) into the database "
        "KEYGATE_DATABASE_URL names; without it the demo refuses to use that database",
    )
    demo_upstream = commands.add_parser(
        "demo-upstream",
        help="serve the demo app that shows the identity headers it receives",
        description="A stand-in for your application, for demos: it shows the identity "
        "headers keygate injects and has a cookie login of its own. Never expose it.",
    )
    demo_upstream.add_argument("--host", default="127.0.0.1")
    demo_upstream.add_argument("--port", type=int, default=3000)


def _add_people_commands(commands: Commands) -> None:
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
    link_user = users_cmd.add_parser(
        "link",
        help="link a person to their account of the app (upstream sessions)",
        description="Make the keygate user with this e-mail the one the app's session check "
        "names with this user id. The way to link admins and people with a password, which "
        "keygate never links by e-mail on its own.",
    )
    link_user.add_argument("--email", required=True)
    link_user.add_argument("--external-id", required=True, help="the app's user id (`userId`)")
    set_admin = users_cmd.add_parser(
        "set-admin",
        help="make a person an organisation admin (--admin) or not (--no-admin; revokes their "
        "ORGANIZATION tokens)",
    )
    set_admin.add_argument("--email", required=True)
    set_admin.add_argument("--admin", action=argparse.BooleanOptionalAction, required=True)
    _add_lifecycle_commands(users_cmd)

    ws_cmd = commands.add_parser("workspaces", help="manage workspaces").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create_ws = ws_cmd.add_parser("create", help="create a workspace")
    create_ws.add_argument("--name", required=True)
    add_member = ws_cmd.add_parser("add-member", help="add a person to a workspace")
    add_member.add_argument("--workspace", required=True, help="workspace name or id")
    add_member.add_argument("--email", required=True)
    add_member.add_argument("--role", choices=[r.value for r in Role], default=Role.MEMBER.value)
    remove_member = ws_cmd.add_parser(
        "remove-member", help="take a person out of a workspace (revokes their tokens bound to it)"
    )
    remove_member.add_argument("--workspace", required=True, help="workspace name or id")
    remove_member.add_argument("--email", required=True)


def _add_lifecycle_commands(users_cmd: Commands) -> None:
    list_users = users_cmd.add_parser("list", help="list everyone, by e-mail")
    list_users.add_argument("--json", action="store_true", help="one JSON object per line")
    set_password = users_cmd.add_parser(
        "set-password", help="set or reset a person's password (ends all their sessions)"
    )
    set_password.add_argument("--email", required=True)
    source = set_password.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    source.add_argument(
        "--generate",
        action="store_true",
        help="generate a random password and print it (once) on stdout",
    )
    deactivate = users_cmd.add_parser(
        "deactivate",
        help="offboard a person: revoke all their tokens, end their sessions, refuse sign-in",
    )
    deactivate.add_argument("--email", required=True)
    reactivate = users_cmd.add_parser(
        "reactivate", help="let a deactivated person sign in again (tokens stay revoked)"
    )
    reactivate.add_argument("--email", required=True)


def _add_token_commands(commands: Commands) -> None:
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


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None) -> int:
    """Entry point of the ``keygate`` console script; returns the exit code."""
    args = _build_parser().parse_args(argv)
    try:
        serving = SERVING.get(args.command)
        if serving is not None:
            return serving(args)
        settings = load_settings(IntrospectorSettings)
        return asyncio.run(operator.run_command(args, settings, stdin or sys.stdin))
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
