"""Route matching reads a path the way the upstream may: letter case, bare prefixes and one
segment per ``{workspace}`` (security review finding 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.pipeline.authz import ADMIN_UI, APP, INTROSPECTOR, AuthPolicy, RouteError, RouteTable

RULES = """
[[route]]
prefix = "/admin/"
auth = "required"

[[route]]
prefix = "/admin/health/"
auth = "none"

[[route]]
prefix = "/Exact/"
auth = "required"
case_sensitive = true

[[route]]
prefix = "/billing/{workspace}/"
auth = "required"
scope = "WORKSPACE"

[[route]]
prefix = "/files"
auth = "required"
"""


def load(tmp_path: Path, text: str) -> RouteTable:
    path = tmp_path / "routes.toml"
    path.write_text(text, encoding="utf-8")
    return RouteTable.load(str(path))


@pytest.mark.parametrize(
    ("path", "prefix", "workspace"),
    [
        ("/admin/users", "/admin/", None),
        ("/ADMIN/users", "/admin/", None),
        ("/Admin/Users", "/admin/", None),
        ("/aDmIn/health/x", "/admin/health/", None),
        ("/admin", "/admin/", None),
        ("/ADMIN", "/admin/", None),
        ("/administrator", "/", None),
        ("/Exact/x", "/Exact/", None),
        ("/Exact", "/Exact/", None),
        ("/exact/x", "/", None),
        ("/EXACT/x", "/", None),
        ("/billing/ws-a/invoices", "/billing/{workspace}/", "ws-a"),
        ("/billing/ws-b", "/billing/{workspace}/", "ws-b"),
        ("/BILLING/Ws-B/x", "/billing/{workspace}/", "Ws-B"),
        ("/billing/", "/", None),
        ("/billing", "/", None),
        ("/files", "/files", None),
        ("/FILESystem", "/files", None),
    ],
    ids=[
        "exact-case",
        "upper-case",
        "mixed-case",
        "mixed-case-longer-rule",
        "bare-prefix",
        "bare-prefix-upper-case",
        "segment-boundary",
        "case-sensitive-exact",
        "case-sensitive-bare",
        "case-sensitive-other-case",
        "case-sensitive-upper",
        "workspace-then-more",
        "workspace-bare",
        "workspace-case-kept",
        "workspace-empty",
        "workspace-absent",
        "no-slash-prefix",
        "no-slash-prefix-is-a-string-prefix",
    ],
)
def test_rules_match_case_insensitively_by_segment(
    tmp_path: Path, path: str, prefix: str, workspace: str | None
) -> None:
    """A rule covers every letter case (unless case_sensitive), its bare path, and {workspace}
    exactly one segment, whose value keeps the case it was sent in."""
    rule, bound = load(tmp_path, RULES).match(path)
    assert (rule.prefix, bound) == (prefix, workspace)


@pytest.mark.parametrize(
    ("path", "upstream", "auth"),
    [
        ("/API/platform/internal/whoami", INTROSPECTOR, AuthPolicy.REQUIRED),
        ("/api/Platform/INTERNAL/api-tokens", INTROSPECTOR, AuthPolicy.REQUIRED),
        ("/api/platform/internal", INTROSPECTOR, AuthPolicy.REQUIRED),
        ("/Settings/api-keys", ADMIN_UI, AuthPolicy.OPTIONAL),
        ("/_KEYGATE/login", ADMIN_UI, AuthPolicy.OPTIONAL),
    ],
    ids=["api-upper", "api-mixed", "api-bare", "admin-ui-mixed", "login-upper"],
)
def test_builtin_rules_cover_every_letter_case(
    tmp_path: Path, path: str, upstream: str, auth: AuthPolicy
) -> None:
    """A case variant of keygate's own paths never falls to the app's default rule."""
    rule, _ = load(tmp_path, "").match(path)
    assert (rule.upstream, rule.auth) == (upstream, auth)


def test_file_rule_in_another_case_cannot_shadow_a_builtin(tmp_path: Path) -> None:
    """A case-sensitive file rule spelled /API/platform/internal/ is ignored like the exact one."""
    table = load(
        tmp_path,
        '[[route]]\nprefix = "/API/platform/internal/"\nauth = "none"\ncase_sensitive = true\n',
    )
    rule, _ = table.match("/API/platform/internal/whoami")
    assert (rule.upstream, rule.auth) == (INTROSPECTOR, AuthPolicy.REQUIRED)
    assert all(r.upstream != APP or r.prefix != "/API/platform/internal/" for r in table.rules)


def test_equal_length_exact_rule_wins_over_a_case_insensitive_one(tmp_path: Path) -> None:
    """Of two prefixes of equal length that both match, the case-sensitive one is chosen."""
    table = load(
        tmp_path,
        '[[route]]\nprefix = "/docs/"\nauth = "required"\n\n'
        '[[route]]\nprefix = "/DOCS/"\nauth = "none"\ncase_sensitive = true\n',
    )
    assert table.match("/DOCS/x")[0].auth is AuthPolicy.NONE
    assert table.match("/Docs/x")[0].auth is AuthPolicy.REQUIRED


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ('prefix = "/x/"\ncase_sensitive = "yes"\n', ["route #2", "'case_sensitive'"]),
        ('prefix = "/x/"\ncase_sensitive = 1\n', ["route #2", "'case_sensitive'"]),
        ('prefix = "/x/"\ncase_sensitive = "true"\n', ["route #2", "'case_sensitive'"]),
        ('prefix = "/x/"\ncase_sensitive = []\n', ["route #2", "'case_sensitive'"]),
        ('prefix = "/x-{workspace}/"\n', ["route #2", "'prefix'", "{workspace}"]),
        ('prefix = "/x/{workspace}y/"\n', ["route #2", "'prefix'", "{workspace}"]),
        ('prefix = "/{workspace}/{workspace}/"\n', ["route #2", "'prefix'", "{workspace}"]),
        ('prefix = "/a;b/"\n', ["route #2", "'prefix'", ";"]),
        ('prefix = "/ok/"\n', ["route #2", "'prefix'", "route #1"]),
        ('prefix = "/OK/"\n', ["route #2", "'prefix'", "route #1"]),
    ],
    ids=[
        "case-sensitive-string",
        "case-sensitive-number",
        "case-sensitive-quoted-true",
        "case-sensitive-array",
        "placeholder-inside-a-segment",
        "placeholder-then-text",
        "two-placeholders",
        "semicolon-in-prefix",
        "duplicate-prefix",
        "duplicate-prefix-other-case",
    ],
)
def test_invalid_matching_keys_name_the_rule_and_the_key(
    tmp_path: Path, body: str, fragments: list[str]
) -> None:
    """Bad case_sensitive values and prefixes that cannot match as written are RouteErrors."""
    with pytest.raises(RouteError) as caught:
        load(tmp_path, '[[route]]\nprefix = "/ok/"\n\n[[route]]\n' + body)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_same_prefix_in_two_cases_is_allowed_when_both_are_case_sensitive(
    tmp_path: Path,
) -> None:
    """/A/ and /a/ are distinct rules when both match case-sensitively."""
    table = load(
        tmp_path,
        '[[route]]\nprefix = "/A/"\ncase_sensitive = true\nauth = "required"\n\n'
        '[[route]]\nprefix = "/a/"\ncase_sensitive = true\nauth = "none"\n',
    )
    assert table.match("/A/x")[0].auth is AuthPolicy.REQUIRED
    assert table.match("/a/x")[0].auth is AuthPolicy.NONE
