"""``authorize``: a route rule plus an identity become 401/403 or a pass."""

from __future__ import annotations

import pytest

from gateway.errors import GatewayError
from gateway.identity import AuthMethod, Identity
from gateway.pipeline.authz import AuthPolicy, RouteRule, authorize

ANONYMOUS = Identity.anonymous()
SESSION = Identity("u-1", "a@example.com", None, None, None, AuthMethod.SESSION)


def token(scope: str | None, workspace: str | None = None) -> Identity:
    """A token identity of ``scope`` (bound to ``workspace`` for WORKSPACE tokens)."""
    return Identity("u-1", "a@example.com", workspace, "t-1", scope, AuthMethod.TOKEN)


REQUIRED = RouteRule("/r/", auth=AuthPolicy.REQUIRED)
OPTIONAL = RouteRule("/o/")


def scoped(scope: str) -> RouteRule:
    return RouteRule("/s/", auth=AuthPolicy.REQUIRED, scope=scope)


@pytest.mark.parametrize(
    ("identity", "rule", "workspace"),
    [
        (ANONYMOUS, OPTIONAL, None),
        (ANONYMOUS, RouteRule("/n/", auth=AuthPolicy.NONE), None),
        (SESSION, REQUIRED, None),
        (token("PERSONAL"), REQUIRED, None),
        (token("PERSONAL"), scoped("PERSONAL"), None),
        (token("WORKSPACE", "w-1"), scoped("PERSONAL"), None),
        (token("WORKSPACE", "w-1"), scoped("WORKSPACE"), None),
        (token("ORGANIZATION"), scoped("WORKSPACE"), None),
        (token("ORGANIZATION"), scoped("ORGANIZATION"), None),
        (SESSION, scoped("ORGANIZATION"), None),
        (SESSION, scoped("WORKSPACE"), "w-2"),
        (token("WORKSPACE", "w-1"), REQUIRED, "w-1"),
        (token("ORGANIZATION"), REQUIRED, "w-2"),
        (token("PERSONAL"), REQUIRED, "w-2"),
    ],
    ids=[
        "anonymous-optional",
        "anonymous-none",
        "session-required",
        "personal-required",
        "personal-needs-personal",
        "workspace-needs-personal",
        "workspace-needs-workspace",
        "organization-needs-workspace",
        "organization-needs-organization",
        "session-not-scope-limited",
        "session-not-workspace-bound",
        "workspace-same-workspace",
        "organization-any-workspace",
        "personal-upstream-decides",
    ],
)
def test_authorize_allows(identity: Identity, rule: RouteRule, workspace: str | None) -> None:
    """These identity/rule/workspace combinations pass authorization."""
    authorize(identity, rule, workspace)


def test_required_route_refuses_anonymous_with_a_challenge() -> None:
    """Anonymous on an auth=required route: 401 with a bare Bearer challenge (no error code)."""
    with pytest.raises(GatewayError) as caught:
        authorize(ANONYMOUS, REQUIRED, None)
    error = caught.value
    assert (error.status, error.reason) == (401, "unauthenticated")
    assert error.challenge == 'Bearer realm="keygate"'


@pytest.mark.parametrize(
    ("identity", "rule", "workspace", "scope"),
    [
        (token("PERSONAL"), scoped("WORKSPACE"), None, "WORKSPACE"),
        (token("PERSONAL"), scoped("ORGANIZATION"), None, "ORGANIZATION"),
        (token("WORKSPACE", "w-1"), scoped("ORGANIZATION"), None, "ORGANIZATION"),
        (token(None), scoped("WORKSPACE"), None, "WORKSPACE"),
        (token("SUPERUSER"), scoped("PERSONAL"), None, "PERSONAL"),
        (token("WORKSPACE", "w-1"), REQUIRED, "w-2", "WORKSPACE"),
        (token("WORKSPACE", "w-1"), OPTIONAL, "w-2", "WORKSPACE"),
        (token("WORKSPACE", None), REQUIRED, "w-2", "WORKSPACE"),
    ],
    ids=[
        "personal-below-workspace",
        "personal-below-organization",
        "workspace-below-organization",
        "missing-scope-counts-as-personal",
        "unknown-scope-ranks-lowest",
        "workspace-other-workspace",
        "workspace-other-workspace-optional-route",
        "workspace-token-without-workspace",
    ],
)
def test_authorize_refuses_insufficient_scope(
    identity: Identity, rule: RouteRule, workspace: str | None, scope: str
) -> None:
    """Too narrow a token, or one bound to another workspace: 403 naming the needed scope."""
    with pytest.raises(GatewayError) as caught:
        authorize(identity, rule, workspace)
    error = caught.value
    assert (error.status, error.reason) == (403, "insufficient_scope")
    assert error.challenge == f'Bearer realm="keygate", error="insufficient_scope", scope="{scope}"'
