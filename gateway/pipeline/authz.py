"""Authorization: route rules decide where a request goes and what it needs.

Rules come from an optional TOML file (``KEYGATE_ROUTES_FILE``) and are checked when loaded,
not per request. The longest matching prefix wins. A rule matches every letter case of its
prefix unless it says ``case_sensitive = true`` (Express, ASP.NET and IIS route ``/ADMIN/`` to
``/admin/``), a prefix ending in ``/`` also covers the bare path, and ``{workspace}`` is exactly
one segment. keygate's own API prefix always routes to the introspector with authentication
required, whatever the file says::

    [[route]]
    prefix = "/api/workspaces/{workspace}/"   # {workspace} binds the path segment
    upstream = "http://billing:8000"          # default: KEYGATE_UPSTREAM_URL
    auth = "required"                         # required | optional | none
    scope = "WORKSPACE"                       # minimum token scope (sessions are not limited)
    # workspace_header = "X-Workspace-Id"     # or bind the workspace to a request header
    # case_sensitive = true                   # match /Admin/ only as written
"""

from __future__ import annotations

import enum
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
PLACEHOLDER = "{workspace}"
# One path segment: not empty, no ``/``, and no ``;`` (refused before matching anyway).
_SEGMENT = "[^/;]+"


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
    case_sensitive: bool = False

    def regex(self, *, capture: bool) -> str:
        """The prefix as a regex: ``{workspace}`` is one segment (the group ``workspace`` when
        ``capture``); a prefix ending in ``/`` or ``{workspace}`` ends at a segment boundary,
        so ``/x/`` also covers ``/x``. Letter case is ignored unless :attr:`case_sensitive`."""
        head, _, tail = self.prefix.rpartition("/")
        bounded = tail in ("", PLACEHOLDER)
        text = head if tail == "" else self.prefix
        segment = f"(?P<workspace>{_SEGMENT})" if capture else _SEGMENT
        body = segment.join(re.escape(part) for part in text.split(PLACEHOLDER))
        if bounded:
            body += "(?:/|$)"
        return body if self.case_sensitive else f"(?i:{body})"


DEFAULT_RULE = RouteRule(prefix="/")
API_RULE = RouteRule(prefix=API_PREFIX, upstream=INTROSPECTOR, auth=AuthPolicy.REQUIRED)
#: The admin UI's pages; it redirects anonymous visitors to its login page itself.
ADMIN_UI_PREFIXES = (
    "/settings/api-keys",
    "/_keygate/login",
    "/_keygate/logout",
    "/_keygate/static/",
)
#: keygate's own paths. Their servers route case-sensitively, but a case variant must not
#: reach the app under a weaker policy either: it gets the built-in rule (and a 404 there).
BUILT_IN_RULES = (
    API_RULE,
    *(RouteRule(prefix=p, upstream=ADMIN_UI, auth=AuthPolicy.OPTIONAL) for p in ADMIN_UI_PREFIXES),
)
_RESERVED = tuple(r.prefix.lower() for r in BUILT_IN_RULES)


class RouteTable:
    """Rules by prefix; :meth:`match` finds the most specific one with one regex match (and a
    second for the rule's ``{workspace}``, if it has one)."""

    def __init__(self, rules: list[RouteRule]) -> None:
        # keygate's own rules cannot be shadowed by a file rule for the same prefixes, in any
        # letter case. They are tried first: a longer file rule with {workspace} could match.
        own = [r for r in rules if not r.prefix.lower().startswith(_RESERVED)]
        # Longest prefix first; of two equally long, the case-sensitive one (it names exactly
        # this spelling). The order is the alternation's: the first alternative that matches wins.
        own.sort(key=lambda r: (len(r.prefix), r.case_sensitive), reverse=True)
        self.rules = [*BUILT_IN_RULES, *own]
        # Each alternative ends in an empty group whose number says which rule matched. Groups
        # around the alternatives would make sre save them at every branch: 400 rules took
        # 0.5 ms a path that way, and take 20 µs like this.
        self._pattern = re.compile("|".join(f"{r.regex(capture=False)}()" for r in self.rules))
        self._found = [
            (rule, re.compile(rule.regex(capture=True)) if PLACEHOLDER in rule.prefix else None)
            for rule in self.rules
        ]

    def match(self, path: str) -> tuple[RouteRule, str | None]:
        """The rule for ``path`` (decoded) and the workspace bound by its path, if any."""
        found = self._pattern.match(path)
        if found is None:
            return DEFAULT_RULE, None
        rule, binding = self._found[(found.lastindex or 1) - 1]
        if binding is None:
            return rule, None
        bound = binding.match(path)
        assert bound is not None  # the same regex, with a group
        return rule, bound.group("workspace")

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
        parsed = [_rule(i, raw) for i, raw in enumerate(rules, start=1)]
        _refuse_repeats(parsed)
        return cls(parsed)


_KEYS = {"prefix", "upstream", "auth", "scope", "workspace_header", "case_sensitive"}
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
# {workspace} stands for a whole segment: after a / and before a / or the end.
_WHOLE_SEGMENT = re.compile(r"(?<=/)\{workspace\}(?=/|$)")


def _rule(index: int, raw: object) -> RouteRule:
    where = f"route #{index}"
    if not isinstance(raw, dict):
        raise RouteError(f"{where}: must be a table")
    unknown = set(raw) - _KEYS
    if unknown:
        raise RouteError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    prefix = _prefix(where, raw.get("prefix"))
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
    case_sensitive = raw.get("case_sensitive", False)
    if not isinstance(case_sensitive, bool):
        raise RouteError(f"{where}: 'case_sensitive' must be true or false (unquoted)")
    return RouteRule(prefix, upstream, auth, scope, header, case_sensitive)


def _prefix(where: str, prefix: object) -> str:
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise RouteError(f"{where}: 'prefix' must be a path starting with /")
    if ";" in prefix:
        raise RouteError(f"{where}: 'prefix' cannot contain ; (paths with ; are refused)")
    placeholders = prefix.count(PLACEHOLDER)
    if placeholders > 1 or placeholders != len(_WHOLE_SEGMENT.findall(prefix)):
        raise RouteError(f"{where}: 'prefix' may hold one {PLACEHOLDER}, as a whole segment")
    return prefix


def _refuse_repeats(rules: list[RouteRule]) -> None:
    """Two rules that match the same paths leave the choice to file order: refused."""
    seen: dict[tuple[str, bool], int] = {}
    for index, rule in enumerate(rules, start=1):
        key = (rule.prefix if rule.case_sensitive else rule.prefix.lower(), rule.case_sensitive)
        if key in seen:
            raise RouteError(
                f"route #{index}: 'prefix' {rule.prefix!r} matches the same paths as "
                f"route #{seen[key]}"
            )
        seen[key] = index


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
