"""The admin UI's settings: its defaults, the variables it shares with other services, and
errors that name the variable."""

from __future__ import annotations

import dataclasses

import pytest

from admin_ui.settings import AdminUISettings
from gateway.settings import GatewaySettings
from keygate_cli.settings import load_settings
from keygate_core.shared_settings import LogLevel
from tests.harness.settings_errors import assert_refused


def test_defaults_load_from_an_empty_environment() -> None:
    """With no variables set, every field has its documented default."""
    settings = load_settings(AdminUISettings, {})
    assert (settings.host, settings.port) == ("127.0.0.1", 8082)
    assert settings.introspector_url == "http://127.0.0.1:8081"
    assert settings.session_ttl_seconds == 28800
    assert settings.log_level is LogLevel.INFO


def test_settings_are_frozen() -> None:
    """A loaded settings object cannot be changed afterwards."""
    settings = load_settings(AdminUISettings, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


def test_shared_variables_mean_the_same_as_in_the_gateway() -> None:
    """One .env feeds both services: the variables they share load to equal values."""
    environ = {
        "KEYGATE_INTROSPECTOR_URL": "https://introspector.internal:8443",
        "KEYGATE_INTERNAL_SECRET": "s" * 32,
        "KEYGATE_LOG_LEVEL": "WARNING",
        "KEYGATE_SHUTDOWN_DRAIN_SECONDS": "2.5",
    }
    admin_ui = load_settings(AdminUISettings, environ)
    gateway = load_settings(GatewaySettings, environ)
    for name in ("introspector_url", "internal_secret", "log_level", "shutdown_drain_seconds"):
        assert getattr(admin_ui, name) == getattr(gateway, name), name


def test_gateway_rules_do_not_bind_the_admin_ui() -> None:
    """A gateway-only variable is known to the admin UI, and its session rule does not apply."""
    settings = load_settings(AdminUISettings, {"KEYGATE_SESSION_AUTHENTICATOR": "upstream"})
    assert settings.port == 8082


@pytest.mark.parametrize(
    ("environ", "variable", "fragment"),
    [
        ({"KEYGATE_ADMIN_UI_PORT": "70000"}, "KEYGATE_ADMIN_UI_PORT", "between 0 and 65535"),
        ({"KEYGATE_ADMIN_UI_HOST": ""}, "KEYGATE_ADMIN_UI_HOST", "must not be empty"),
        ({"KEYGATE_SESSION_TTL_SECONDS": "10"}, "KEYGATE_SESSION_TTL_SECONDS", "between 60 and"),
        (
            {"KEYGATE_INTROSPECTOR_URL": "ftp://x"},
            "KEYGATE_INTROSPECTOR_URL",
            "http:// or https://",
        ),
        ({"KEYGATE_LOG_LEVEL": "loud"}, "KEYGATE_LOG_LEVEL", "debug | info | warning | error"),
        (
            {"KEYGATE_ADMIN_UI_PRT": "1"},
            "KEYGATE_ADMIN_UI_PRT",
            "did you mean KEYGATE_ADMIN_UI_PORT",
        ),
    ],
    ids=["port-out-of-range", "empty-host", "short-session", "bad-url", "bad-level", "typo"],
)
def test_bad_values_name_the_variable(
    environ: dict[str, str], variable: str, fragment: str
) -> None:
    """Every refusal is a SettingsError whose message starts with the variable's name."""
    assert_refused(AdminUISettings, environ, variable, fragment)
