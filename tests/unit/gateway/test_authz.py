"""Route rules: the TOML file is checked when it loads, and matching is by longest prefix.

What ``authorize`` makes of a matched rule is in ``test_authz_authorize.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.pipeline.authz import (
    ADMIN_UI,
    API_PREFIX,
    APP,
    BUILT_IN_RULES,
    INTROSPECTOR,
    AuthPolicy,
    RouteError,
    RouteRule,
    RouteTable,
    workspace_of,
)

VALID = """
[[route]]
prefix = "/api/workspaces/{workspace}/"
upstream = "http://billing:8000"
auth = "required"
scope = "WORKSPACE"

[[route]]
prefix = "/public/"
auth = "none"

[[route]]
prefix = "/reports/"
upstream = "https://reports.internal"
workspace_header = "X-Workspace-Id"
"""

FIRST_RULE_OK = '[[route]]\nprefix = "/ok/"\n\n'


def write(tmp_path: Path, text: str) -> str:
    """``text`` as a routes file under ``tmp_path``; returns its path."""
    path = tmp_path / "routes.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(tmp_path: Path, text: str) -> RouteTable:
    return RouteTable.load(write(tmp_path, text))


# --- loading ----------------------------------------------------------------------------------


def test_valid_rules_parse_into_typed_rules(tmp_path: Path) -> None:
    """Every key of a valid file lands in a RouteRule, omitted keys take their defaults."""
    rules = {r.prefix: r for r in load(tmp_path, VALID).rules if r not in BUILT_IN_RULES}
    assert len(rules) == 3
    assert rules["/api/workspaces/{workspace}/"] == RouteRule(
        "/api/workspaces/{workspace}/", "http://billing:8000", AuthPolicy.REQUIRED, "WORKSPACE"
    )
    assert rules["/public/"] == RouteRule("/public/", APP, AuthPolicy.NONE)
    assert rules["/reports/"] == RouteRule(
        "/reports/", "https://reports.internal", AuthPolicy.OPTIONAL, None, "X-Workspace-Id"
    )


def test_without_rules_only_the_builtin_rules_apply(tmp_path: Path) -> None:
    """No routes file, or an empty one, leaves just keygate's own rules (API and admin UI)."""
    assert set(RouteTable.load("").rules) == set(BUILT_IN_RULES)
    assert set(load(tmp_path, "").rules) == set(BUILT_IN_RULES)


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ('[[route]]\nprefix = "/x/"\nauht = "required"\n', ["route #2", "'auht'"]),
        ('[[route]]\nprefix = "/x/"\nauth = "always"\n', ["route #2", "'auth'"]),
        ('[[route]]\nprefix = "/x/"\nauth = true\n', ["route #2", "'auth'"]),
        ('[[route]]\nprefix = "/x/"\nscope = "ADMIN"\n', ["route #2", "'scope'"]),
        ('[[route]]\nprefix = "/x/"\nscope = "workspace"\n', ["route #2", "'scope'"]),
        ('[[route]]\nprefix = "/x/"\nscope = ["WORKSPACE"]\n', ["route #2", "'scope'"]),
        ('[[route]]\nprefix = "x/"\n', ["route #2", "'prefix'"]),
        ("[[route]]\nprefix = 3\n", ["route #2", "'prefix'"]),
        ('[[route]]\nauth = "none"\n', ["route #2", "'prefix'"]),
        ('[[route]]\nprefix = "/x/"\nupstream = "ftp://files"\n', ["route #2", "'upstream'"]),
        ('[[route]]\nprefix = "/x/"\nupstream = "billing"\n', ["route #2", "'upstream'"]),
        ('[[route]]\nprefix = "/x/"\nupstream = 8000\n', ["route #2", "'upstream'"]),
        ('[[route]]\nprefix = "/x/"\nworkspace_header = 1\n', ["route #2", "'workspace_header'"]),
        ('[[route]]\nprefix = "/x/"\nworkspace_header = ""\n', ["route #2", "'workspace_header'"]),
        (
            '[[route]]\nprefix = "/x/"\nworkspace_header = "X Workspace"\n',
            ["route #2", "'workspace_header'"],
        ),
        (
            '[[route]]\nprefix = "/x/"\nworkspace_header = "X-Workspace\\n"\n',
            ["route #2", "'workspace_header'"],
        ),
    ],
    ids=[
        "unknown-key",
        "bad-auth",
        "auth-not-a-string",
        "bad-scope",
        "scope-wrong-case",
        "scope-not-a-string",
        "prefix-without-slash",
        "prefix-not-a-string",
        "prefix-missing",
        "upstream-bad-scheme",
        "upstream-bare-name",
        "upstream-not-a-string",
        "header-not-a-string",
        "header-empty",
        "header-with-space",
        "header-with-newline",
    ],
)
def test_invalid_rule_names_the_rule_and_the_key(
    tmp_path: Path, body: str, fragments: list[str]
) -> None:
    """A bad rule is a RouteError naming its position (1-based) and the offending key."""
    with pytest.raises(RouteError) as caught:
        load(tmp_path, FIRST_RULE_OK + body)
    for fragment in fragments:
        assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("route = 1\n", ["'route'", "[[route]]"]),
        ('route = ["/x/"]\n', ["route #1", "table"]),
        ('[route]\nprefix = "/x/"\n', ["'route'", "[[route]]"]),
        ('[[routes]]\nprefix = "/x/"\nauth = "required"\n', ["'routes'"]),
        ('[[route]]\nprefix = "/x/"\n[[route]\n', ["cannot read routes file", "line 3"]),
        ('[[route]]\nprefix = "/x/"\nprefix = "/y/"\n', ["cannot read routes file"]),
    ],
    ids=[
        "route-not-an-array",
        "rule-not-a-table",
        "route-is-one-table",
        "unknown-top-level-key",
        "unreadable-toml",
        "duplicate-key",
    ],
)
def test_invalid_file_shape_is_refused(tmp_path: Path, text: str, fragments: list[str]) -> None:
    """A file that is not TOML, or not an array of [[route]] tables, is a RouteError."""
    with pytest.raises(RouteError) as caught:
        load(tmp_path, text)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_missing_file_is_a_route_error(tmp_path: Path) -> None:
    """A routes file that does not exist is refused with the reason, not an OSError."""
    with pytest.raises(RouteError, match="cannot read routes file"):
        RouteTable.load(str(tmp_path / "nope.toml"))


# --- matching ---------------------------------------------------------------------------------

NESTED = """
[[route]]
prefix = "/docs/"
auth = "required"

[[route]]
prefix = "/docs/public/"
auth = "none"

[[route]]
prefix = "/ws/{workspace}/"
scope = "WORKSPACE"

[[route]]
prefix = "/ws/{workspace}/admin/"
scope = "ORGANIZATION"
"""


@pytest.mark.parametrize(
    ("path", "prefix", "workspace"),
    [
        ("/docs/guide", "/docs/", None),
        ("/docs/public/intro", "/docs/public/", None),
        ("/docs/publicity", "/docs/", None),
        ("/ws/acme/orders", "/ws/{workspace}/", "acme"),
        ("/ws/3f1c-uuid/admin/users", "/ws/{workspace}/admin/", "3f1c-uuid"),
        ("/ws/acme/administer", "/ws/{workspace}/", "acme"),
        ("/ws/", "/", None),
        ("/elsewhere", "/", None),
    ],
    ids=[
        "short-prefix",
        "longest-prefix-wins",
        "prefix-is-not-a-word-match",
        "placeholder-binds-segment",
        "placeholder-in-longer-rule",
        "placeholder-longest-wins",
        "placeholder-needs-a-segment",
        "unmatched-default",
    ],
)
def test_longest_prefix_wins_and_binds_the_workspace(
    tmp_path: Path, path: str, prefix: str, workspace: str | None
) -> None:
    """match() picks the most specific rule and returns the segment {workspace} captured."""
    rule, bound = load(tmp_path, NESTED).match(path)
    assert (rule.prefix, bound) == (prefix, workspace)


def test_unmatched_path_gets_the_default_rule(tmp_path: Path) -> None:
    """A path no rule covers goes to the app with authentication optional."""
    rule, bound = load(tmp_path, NESTED).match("/anything/else")
    assert (rule.upstream, rule.auth, rule.scope, bound) == (APP, AuthPolicy.OPTIONAL, None, None)


@pytest.mark.parametrize(
    ("prefix", "path", "upstream", "auth"),
    [
        (API_PREFIX, API_PREFIX + "whoami", INTROSPECTOR, AuthPolicy.REQUIRED),
        (API_PREFIX + "api-tokens", API_PREFIX + "api-tokens/1", INTROSPECTOR, AuthPolicy.REQUIRED),
        ("/api/{workspace}/internal/", API_PREFIX + "whoami", INTROSPECTOR, AuthPolicy.REQUIRED),
        ("/api/platform/{workspace}/x/", API_PREFIX + "x/1", INTROSPECTOR, AuthPolicy.REQUIRED),
        ("/settings/api-keys", "/settings/api-keys", ADMIN_UI, AuthPolicy.OPTIONAL),
        ("/settings/{workspace}/new", "/settings/api-keys/new", ADMIN_UI, AuthPolicy.OPTIONAL),
        ("/_keygate/{workspace}/", "/_keygate/static/app.css", ADMIN_UI, AuthPolicy.OPTIONAL),
    ],
    ids=[
        "api-same-prefix",
        "api-longer-prefix",
        "api-placeholder-shadow",
        "api-placeholder-deeper",
        "admin-ui-same-prefix",
        "admin-ui-placeholder-shadow",
        "admin-ui-static-placeholder",
    ],
)
def test_builtin_rules_cannot_be_overridden(
    tmp_path: Path, prefix: str, path: str, upstream: str, auth: AuthPolicy
) -> None:
    """keygate's own paths keep their built-in rule whatever a file rule for them says."""
    table = load(
        tmp_path, f'[[route]]\nprefix = "{prefix}"\nupstream = "http://app:1"\nauth = "none"\n'
    )
    rule, workspace = table.match(path)
    assert (rule.upstream, rule.auth, workspace) == (upstream, auth, None)


@pytest.mark.parametrize(
    ("rule", "path_value", "header_value", "expected"),
    [
        (RouteRule("/ws/{workspace}/"), "w-1", None, "w-1"),
        (RouteRule("/b/", workspace_header="X-Ws"), None, "w-2", "w-2"),
        (RouteRule("/b/", workspace_header="X-Ws"), None, None, None),
        (RouteRule("/w/{workspace}/", workspace_header="X-Ws"), "w-1", "w-2", "w-2"),
    ],
    ids=["from-path", "from-header", "header-absent", "header-wins-over-path"],
)
def test_workspace_of(
    rule: RouteRule, path_value: str | None, header_value: str | None, expected: str | None
) -> None:
    """The workspace comes from the configured header when there is one, else from the path."""
    assert workspace_of(rule, path_value, header_value) == expected
