"""Authorization: route rules decide where a request goes and what it needs.

Rules come from an optional TOML file (``KEYGATE_ROUTES_FILE``) and are checked when loaded,
not per request. The longest matching prefix wins. keygate's own API prefix always routes to the
introspector with authentication required, whatever the file says::

    [[route]]
    prefix = "/api/workspaces/{workspace}/"   # {workspace} binds the path segment
    upstream = "http://billing:8000"          # default: KEYGATE_UPSTREAM_URL
    auth = "required"                         # required | optional | none
    scope = "WORKSPACE"                       # minimum token scope (sessions are not limited)
    # workspace_header = "X-Workspace-Id"     # or bind the workspace to a request header
"""

from __future__ import annotations

import enum
import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import GatewayError, insufficient_scope, missing_credentials
from gateway.identity import AuthMethod, Identity
from keygate_core import headers
from keygate_core.scopes import Scope

INTROSPECTOR = "introspector"
ADMIN_UI = "admin_ui"
APP = "app"
#: keygate's management API, served by the introspector.
API_PREFIX = f"{headers.API_PREFIX}/"
_PLACEHOLDER = re.compile(r"\{workspace\}")


class AuthPolicy(enum.Enum):
    """What a route demands of the caller."""

    REQUIRED = "required"
    OPTIONAL = "optional"
    NONE = "none"  # keygate authenticates nothing here; identity headers are still stripped


class RouteError(ValueError):
    """The routes file is invalid; the message names the rule and the key."""


@dataclass(frozen=True)
class RouteRule:
    """One path prefix and its policy."""

    prefix: str
    upstream: str = APP
    auth: AuthPolicy = AuthPolicy.OPTIONAL
    scope: str | None = None
    workspace_header: str | None = None

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        """The prefix as a regex; ``{workspace}`` captures one path segment (built once)."""
        parts = _PLACEHOLDER.split(self.prefix)
        body = "(?P<workspace>[^/]+)".join(re.escape(p) for p in parts)
        return re.compile("^" + body)


DEFAULT_RULE = RouteRule(prefix="/")
API_RULE = RouteRule(prefix=API_PREFIX, upstream=INTROSPECTOR, auth=AuthPolicy.REQUIRED)
#: The admin UI's pages; it redirects anonymous visitors to its login page itself.
ADMIN_UI_PREFIXES = (
    "/settings/api-keys",
    "/_keygate/login",
    "/_keygate/logout",
    "/_keygate/static/",
)
BUILT_IN_RULES = (
    API_RULE,
    *(RouteRule(prefix=p, upstream=ADMIN_UI, auth=AuthPolicy.OPTIONAL) for p in ADMIN_UI_PREFIXES),
)


class RouteTable:
    """Rules by prefix; :meth:`match` finds the most specific one."""

    def __init__(self, rules: list[RouteRule]) -> None:
        # keygate's own rules cannot be shadowed by a file rule for the same prefixes.
        reserved = (API_PREFIX, *ADMIN_UI_PREFIXES)
        own = [r for r in rules if not r.prefix.startswith(reserved)]
        self.rules = sorted([*BUILT_IN_RULES, *own], key=lambda r: len(r.prefix), reverse=True)

    def match(self, path: str) -> tuple[RouteRule, str | None]:
        """The rule for ``path`` and the workspace bound by its path, if any."""
        for builtin in BUILT_IN_RULES:
            # Checked first: a longer file rule with {workspace} could otherwise match here.
            if path.startswith(builtin.prefix):
                return builtin, None
        for rule in self.rules:
            found = rule.pattern.match(path)
            if found:
                return rule, found.groupdict().get("workspace")
        return DEFAULT_RULE, None

    @classmethod
    def load(cls, path: str) -> RouteTable:
        """Rules from a TOML file (empty path: built-in rules only)."""
        if not path:
            return cls([])
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise RouteError(f"cannot read routes file: {exc}") from None
        unknown = set(data) - {"route"}
        if unknown:
            raise RouteError(f"unknown key {sorted(unknown)[0]!r} (rules go in [[route]] tables)")
        rules = data.get("route", [])
        if not isinstance(rules, list):
            raise RouteError("'route' must be an array of tables: write each rule as [[route]]")
        return cls([_rule(i, raw) for i, raw in enumerate(rules, start=1)])


_KEYS = {"prefix", "upstream", "auth", "scope", "workspace_header"}
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")


def _rule(index: int, raw: object) -> RouteRule:
    where = f"route #{index}"
    if not isinstance(raw, dict):
        raise RouteError(f"{where}: must be a table")
    unknown = set(raw) - _KEYS
    if unknown:
        raise RouteError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    prefix = raw.get("prefix")
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise RouteError(f"{where}: 'prefix' must be a path starting with /")
    try:
        auth = AuthPolicy(raw.get("auth", "optional"))
    except ValueError:
        raise RouteError(f"{where}: 'auth' must be required, optional or none") from None
    scope = raw.get("scope")
    if scope is not None and (not isinstance(scope, str) or scope not in Scope.__members__):
        raise RouteError(f"{where}: 'scope' must be one of {', '.join(Scope.__members__)}")
    upstream = raw.get("upstream", APP)
    # Not "introspector": its routes carry keygate's internal secret and are built in only.
    if not isinstance(upstream, str) or not (
        upstream == APP or upstream.startswith(("http://", "https://"))
    ):
        raise RouteError(f"{where}: 'upstream' must be app or an http(s) URL")
    header = raw.get("workspace_header")
    if header is not None and not (isinstance(header, str) and _HEADER_NAME.fullmatch(header)):
        raise RouteError(f"{where}: 'workspace_header' must be a header name")
    return RouteRule(prefix, upstream, auth, scope, header)


def authorize(identity: Identity, rule: RouteRule, workspace: str | None) -> None:
    """Refuse ``identity`` on ``rule``: 401 without a required credential, 403 on scope or
    workspace mismatch. Sessions are the user themself and are not scope-limited."""
    if rule.auth is AuthPolicy.REQUIRED and identity.auth_method is AuthMethod.ANONYMOUS:
        raise missing_credentials()
    if identity.auth_method is not AuthMethod.TOKEN:
        return
    scope = identity.token_scope or "PERSONAL"
    if rule.scope is not None and not _covers(scope, Scope[rule.scope]):
        raise insufficient_scope(rule.scope)
    if workspace is not None and scope == "WORKSPACE" and workspace != identity.workspace_id:
        raise insufficient_scope(
            "WORKSPACE", "this token is bound to another workspace than the one requested"
        )


def _covers(granted: str, required: Scope) -> bool:
    # The introspector only issues known scopes; an unknown one covers nothing.
    known = Scope.__members__.get(granted)
    return known is not None and known.covers(required)


def workspace_of(rule: RouteRule, path_value: str | None, header_value: str | None) -> str | None:
    """The workspace a request is about, from the path binding or the configured header."""
    if rule.workspace_header is not None:
        return header_value
    return path_value


__all__ = [
    "API_PREFIX",
    "APP",
    "INTROSPECTOR",
    "AuthPolicy",
    "GatewayError",
    "RouteError",
    "RouteRule",
    "RouteTable",
    "authorize",
    "workspace_of",
]
