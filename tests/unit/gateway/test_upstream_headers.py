"""What mutate tells an upstream beyond the identity: the bearer policy, keygate's own service
headers, and what strip must therefore never take from a client."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from gateway.identity import AuthMethod, Identity, RequestContext
from gateway.pipeline.authz import ADMIN_UI, APP, INTROSPECTOR
from gateway.pipeline.mutate import (
    SERVICE_IDENTITY,
    IdentityHeaderNames,
    forwards_bearer,
    identity_headers,
    service_headers,
    set_identity_headers,
)
from gateway.pipeline.strip import protected_headers

SECRET = "internal-secret"


def _person(*, external: bool = False) -> Identity:
    return Identity(
        user_id="u-1",
        email=None,
        workspace_id=None,
        token_id=None,
        token_scope=None,
        auth_method=AuthMethod.SESSION,
        external=external,
    )


@pytest.mark.parametrize(
    ("opted_in", "upstream", "forwarded"),
    [
        pytest.param(False, APP, False, id="default-app"),
        pytest.param(True, APP, True, id="opted-in-app"),
        pytest.param(True, "http://billing:8000", True, id="opted-in-rule-upstream"),
        pytest.param(True, INTROSPECTOR, False, id="never-to-the-introspector"),
        pytest.param(True, ADMIN_UI, False, id="never-to-the-admin-ui"),
    ],
)
def test_forwards_bearer_only_when_opted_in_and_never_to_keygate(
    opted_in: bool, upstream: str, forwarded: bool
) -> None:
    """The bearer goes on only with KEYGATE_FORWARD_BEARER and never to keygate's services."""
    assert forwards_bearer(opted_in, upstream) is forwarded


@pytest.mark.parametrize(
    ("address", "external", "expected"),
    [
        pytest.param(None, False, {"X-Keygate-Internal-Secret": SECRET}, id="secret-only"),
        pytest.param(
            "203.0.113.7",
            False,
            {"X-Keygate-Internal-Secret": SECRET, "X-Keygate-Client-Address": "203.0.113.7"},
            id="with-address",
        ),
        pytest.param(
            None,
            True,
            {"X-Keygate-Internal-Secret": SECRET, "X-Keygate-Identity-Source": "upstream"},
            id="vouched-for-by-the-app",
        ),
    ],
)
def test_service_headers(address: str | None, external: bool, expected: dict[str, str]) -> None:
    """keygate's services get the secret, the client address when known, and the source."""
    headers: CIMultiDict[str] = CIMultiDict()
    ctx = RequestContext("r-1", address)
    service_headers(headers, SECRET, ctx, _person(external=external), default_rate_limit=600)
    assert dict(headers) == expected


@pytest.mark.parametrize(
    ("own_limit", "expected"),
    [pytest.param(None, "600", id="gateway-default"), pytest.param(7, "7", id="token-own")],
)
def test_service_headers_tell_a_token_callers_limit(own_limit: int | None, expected: str) -> None:
    """A token caller's effective per-minute limit goes to keygate's services (for whoami)."""
    caller = Identity(
        user_id="u-1",
        email=None,
        workspace_id=None,
        token_id="t-1",
        token_scope="PERSONAL",
        auth_method=AuthMethod.TOKEN,
        rate_limit=own_limit,
    )
    headers: CIMultiDict[str] = CIMultiDict()
    service_headers(headers, SECRET, RequestContext("r-1", None), caller, default_rate_limit=600)
    assert headers["X-Keygate-Rate-Limit"] == expected


def test_set_identity_headers_replaces_and_matches_identity_headers() -> None:
    """Setting the identity headers replaces existing values with exactly identity_headers'."""
    names = IdentityHeaderNames(user_id="X-User")
    headers = CIMultiDict([("x-user", "forged"), ("Accept", "*/*")])
    set_identity_headers(headers, _person(), names)
    assert headers.getall("X-User") == ["u-1"]
    assert [(k, v) for k, v in headers.items() if k != "Accept"] == identity_headers(
        _person(), names
    )


def test_protected_headers_cover_both_name_sets_and_the_internal_headers() -> None:
    """Strip removes the app's names, the services' fixed names and the internal headers."""
    renamed = IdentityHeaderNames(user_id="X-User", email="X-Mail")
    protected = protected_headers(renamed, SERVICE_IDENTITY)
    assert {"X-User", "X-Mail", "X-Keygate-User-Id", "X-Keygate-User-Email"} <= set(protected)
    assert {
        "X-Keygate-Internal-Secret",
        "X-Keygate-Client-Address",
        "X-Keygate-Identity-Source",
        "X-Keygate-Rate-Limit",
    } <= set(protected)
    assert set(SERVICE_IDENTITY.all()) <= set(protected)
