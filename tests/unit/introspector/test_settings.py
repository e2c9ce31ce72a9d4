"""The introspector's settings: typed and frozen, and errors that name the variable."""

from __future__ import annotations

import dataclasses

import pytest

from introspector.settings import Edition, IntrospectorSettings
from keygate_cli.settings import load_settings
from keygate_core.envconfig import SettingsError
from tests.harness.settings_errors import assert_refused


def test_defaults_load_from_an_empty_environment() -> None:
    """With no variables set, every field has its documented default."""
    settings = load_settings(IntrospectorSettings, {})
    assert settings.edition is Edition.COMMUNITY
    assert settings.argon2_memory_kib == 19456
    assert settings.argon2_time_cost == 2


def test_settings_are_frozen() -> None:
    """A loaded settings object cannot be changed afterwards."""
    settings = load_settings(IntrospectorSettings, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.edition = Edition.ENTERPRISE  # type: ignore[misc]


def test_values_are_parsed_into_types() -> None:
    """Text from the environment becomes enums, integers and booleans."""
    settings = load_settings(
        IntrospectorSettings,
        {
            "KEYGATE_EDITION": "Enterprise",
            "KEYGATE_ARGON2_MEMORY_KIB": "65536",
            "KEYGATE_ALLOW_WEAK_ARGON2": "yes",
            "PATH": "/irrelevant",
        },
    )
    assert settings.edition is Edition.ENTERPRISE
    assert settings.argon2_memory_kib == 65536
    assert settings.allow_weak_argon2 is True


@pytest.mark.parametrize(
    ("environ", "variable", "fragment"),
    [
        ({"KEYGATE_EDITION": "gold"}, "KEYGATE_EDITION", "community | enterprise"),
        ({"KEYGATE_ARGON2_TIME_COST": "two"}, "KEYGATE_ARGON2_TIME_COST", "whole number"),
        ({"KEYGATE_ARGON2_PARALLELISM": "0"}, "KEYGATE_ARGON2_PARALLELISM", "between 1 and 64"),
        ({"KEYGATE_ALLOW_WEAK_ARGON2": "maybe"}, "KEYGATE_ALLOW_WEAK_ARGON2", "true or false"),
        ({"KEYGATE_DATABASE_URL": "mysql://x/y"}, "KEYGATE_DATABASE_URL", "postgresql://"),
        ({"KEYGATE_ARGON2_MEMORY_KIB": "1024"}, "KEYGATE_ARGON2_MEMORY_KIB", "OWASP"),
        ({"KEYGATE_ARGON2_TIME_COST": "1"}, "KEYGATE_ARGON2_TIME_COST", "OWASP"),
    ],
    ids=[
        "bad-enum",
        "not-a-number",
        "out-of-range",
        "bad-bool",
        "bad-url",
        "weak-memory",
        "weak-time",
    ],
)
def test_bad_values_name_the_variable(
    environ: dict[str, str], variable: str, fragment: str
) -> None:
    """Every refusal is a SettingsError whose message starts with the variable's name."""
    assert_refused(IntrospectorSettings, environ, variable, fragment)


def test_secret_values_are_not_echoed_in_errors() -> None:
    """A malformed database URL is reported without its (possibly secret) text."""
    with pytest.raises(SettingsError) as caught:
        load_settings(IntrospectorSettings, {"KEYGATE_DATABASE_URL": "mysql://u:hunter2@h/db"})
    assert "hunter2" not in str(caught.value)
