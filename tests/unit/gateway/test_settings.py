"""The gateway's settings: the session-check rule, identity header names, errors that name the
variable."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from gateway.settings import GatewaySettings, SessionMode
from keygate_cli.settings import load_settings
from tests.harness.settings_errors import assert_refused

CHECK_URL = "http://app.internal/session"


def test_defaults_load_from_an_empty_environment() -> None:
    """With no variables set: passthrough sessions, no check URL, default identity headers."""
    settings = load_settings(GatewaySettings, {})
    assert settings.session_mode is SessionMode.PASSTHROUGH
    assert settings.session_check_url == ""
    assert settings.identity_headers is None
    assert settings.trusted_proxies == ()


def test_settings_are_frozen() -> None:
    """A loaded settings object cannot be changed afterwards."""
    settings = load_settings(GatewaySettings, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.session_mode = SessionMode.LOCAL  # type: ignore[misc]


@pytest.mark.parametrize(
    ("environ", "mode", "check_url"),
    [
        (
            {"KEYGATE_SESSION_AUTHENTICATOR": "upstream", "KEYGATE_SESSION_CHECK_URL": CHECK_URL},
            SessionMode.UPSTREAM,
            CHECK_URL,
        ),
        ({"KEYGATE_SESSION_AUTHENTICATOR": "Local"}, SessionMode.LOCAL, ""),
        ({"KEYGATE_SESSION_AUTHENTICATOR": "passthrough"}, SessionMode.PASSTHROUGH, ""),
        ({"KEYGATE_SESSION_CHECK_URL": CHECK_URL}, SessionMode.PASSTHROUGH, CHECK_URL),
    ],
    ids=["upstream-with-url", "local-without-url", "passthrough-without-url", "url-unused"],
)
def test_only_upstream_sessions_need_a_check_url(
    environ: dict[str, str], mode: SessionMode, check_url: str
) -> None:
    """The check URL is required by the upstream mode and by no other."""
    settings = load_settings(GatewaySettings, environ)
    assert (settings.session_mode, settings.session_check_url) == (mode, check_url)


def test_identity_header_names_are_parsed_per_field() -> None:
    """``field=Header-Name`` pairs, spaces around them allowed, override only the named fields."""
    settings = load_settings(
        GatewaySettings, {"KEYGATE_IDENTITY_HEADERS": " user_id = X-User-Id , email=X-Mail"}
    )
    assert settings.identity_headers == {"user_id": "X-User-Id", "email": "X-Mail"}


def test_trusted_proxies_are_parsed_into_networks() -> None:
    """Comma-separated CIDRs and single addresses become networks."""
    settings = load_settings(GatewaySettings, {"KEYGATE_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1"})
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
    )


@pytest.mark.parametrize(
    ("environ", "variable", "fragment"),
    [
        (
            {"KEYGATE_SESSION_AUTHENTICATOR": "upstream"},
            "KEYGATE_SESSION_CHECK_URL",
            "required when KEYGATE_SESSION_AUTHENTICATOR=upstream",
        ),
        (
            {"KEYGATE_SESSION_AUTHENTICATOR": "upstream", "KEYGATE_SESSION_CHECK_URL": ""},
            "KEYGATE_SESSION_CHECK_URL",
            "required when KEYGATE_SESSION_AUTHENTICATOR=upstream",
        ),
        (
            {"KEYGATE_SESSION_AUTHENTICATOR": "cookie"},
            "KEYGATE_SESSION_AUTHENTICATOR",
            "passthrough | upstream | local",
        ),
        (
            {"KEYGATE_IDENTITY_HEADERS": "user=X-User"},
            "KEYGATE_IDENTITY_HEADERS",
            "expected field=Header-Name",
        ),
        (
            {"KEYGATE_IDENTITY_HEADERS": "user_id"},
            "KEYGATE_IDENTITY_HEADERS",
            "expected field=Header-Name",
        ),
        (
            {"KEYGATE_IDENTITY_HEADERS": "user_id=X User"},
            "KEYGATE_IDENTITY_HEADERS",
            "'X User' is not a valid header name",
        ),
        (
            {"KEYGATE_IDENTITY_HEADERS": "user_id=X_User"},
            "KEYGATE_IDENTITY_HEADERS",
            "'X_User' is not a valid header name",
        ),
        (
            {"KEYGATE_IDENTITY_HEADERS": "email="},
            "KEYGATE_IDENTITY_HEADERS",
            "'' is not a valid header name",
        ),
        (
            {"KEYGATE_TRUSTED_PROXIES": "10.0.0.0/8, nope"},
            "KEYGATE_TRUSTED_PROXIES",
            "'nope' is not an IP address or CIDR range",
        ),
        ({"KEYGATE_UPSTREAM_URL": "ftp://app"}, "KEYGATE_UPSTREAM_URL", "http:// or https://"),
        ({"KEYGATE_GATEWAY_WORKERS": "0"}, "KEYGATE_GATEWAY_WORKERS", "between 1 and 64"),
        ({"KEYGATE_FORWARD_BEARER": "maybe"}, "KEYGATE_FORWARD_BEARER", "true or false"),
    ],
    ids=[
        "upstream-without-check-url",
        "upstream-with-empty-check-url",
        "unknown-session-mode",
        "unknown-identity-field",
        "identity-pair-without-name",
        "header-name-with-space",
        "header-name-with-underscore",
        "empty-header-name",
        "bad-proxy-address",
        "upstream-not-http",
        "no-workers",
        "bad-bool",
    ],
)
def test_bad_values_name_the_variable(
    environ: dict[str, str], variable: str, fragment: str
) -> None:
    """Every refusal is a SettingsError whose message starts with the variable's name."""
    assert_refused(GatewaySettings, environ, variable, fragment)
