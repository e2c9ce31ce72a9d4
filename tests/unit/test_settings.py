"""Settings: typed and frozen, errors that name the variable, docs in sync with code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from introspector.settings import Edition, IntrospectorSettings
from keygate_cli.settings import all_variables, load_settings
from keygate_core.envconfig import SettingsError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
ROW = re.compile(r"^\|\s*`(KEYGATE_[A-Z0-9_]+)`\s*\|\s*`([^`]*)`\s*\|")


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


def test_client_and_test_variables_are_not_mistaken_for_settings() -> None:
    """The docs' samples export KEYGATE_TOKEN and KEYGATE_BASE_URL; the CLI must still run."""
    settings = load_settings(
        IntrospectorSettings,
        {
            "KEYGATE_TOKEN": "kg_x",
            "KEYGATE_BASE_URL": "https://keygate.example/api",
            "KEYGATE_TEST_CHROMIUM": "/nowhere",
            "KEYGATE_EDITION": "enterprise",
        },
    )
    assert settings.edition is Edition.ENTERPRISE
    with pytest.raises(SettingsError, match="KEYGATE_TOKENS"):
        load_settings(IntrospectorSettings, {"KEYGATE_TOKENS": "x"})


@pytest.mark.parametrize(
    ("environ", "variable", "fragment"),
    [
        ({"KEYGATE_EDITON": "enterprise"}, "KEYGATE_EDITON", "did you mean KEYGATE_EDITION"),
        ({"KEYGATE_NOPE": "1"}, "KEYGATE_NOPE", "unknown keygate setting"),
        ({"KEYGATE_EDITION": "gold"}, "KEYGATE_EDITION", "community | enterprise"),
        ({"KEYGATE_ARGON2_TIME_COST": "two"}, "KEYGATE_ARGON2_TIME_COST", "whole number"),
        ({"KEYGATE_ARGON2_PARALLELISM": "0"}, "KEYGATE_ARGON2_PARALLELISM", "between 1 and 64"),
        ({"KEYGATE_ALLOW_WEAK_ARGON2": "maybe"}, "KEYGATE_ALLOW_WEAK_ARGON2", "true or false"),
        ({"KEYGATE_DATABASE_URL": "mysql://x/y"}, "KEYGATE_DATABASE_URL", "postgresql://"),
        ({"KEYGATE_ARGON2_MEMORY_KIB": "1024"}, "KEYGATE_ARGON2_MEMORY_KIB", "OWASP"),
        ({"KEYGATE_ARGON2_TIME_COST": "1"}, "KEYGATE_ARGON2_TIME_COST", "OWASP"),
    ],
    ids=[
        "typo",
        "unknown",
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
    with pytest.raises(SettingsError) as caught:
        load_settings(IntrospectorSettings, environ)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(variable + ":")
    assert fragment in str(caught.value)


def test_secret_values_are_not_echoed_in_errors() -> None:
    """A malformed database URL is reported without its (possibly secret) text."""
    with pytest.raises(SettingsError) as caught:
        load_settings(IntrospectorSettings, {"KEYGATE_DATABASE_URL": "mysql://u:hunter2@h/db"})
    assert "hunter2" not in str(caught.value)


def documented_variables() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            assert match[1] not in rows, f"{match[1]} is documented twice"
            rows[match[1]] = match[2]
    return rows


def test_documentation_lists_every_variable_with_its_default() -> None:
    """docs/configuration.md and the code declare the same variables with the same defaults."""
    documented = documented_variables()
    declared = {name: spec.default_text for name, spec in all_variables().items()}
    assert sorted(documented) == sorted(declared), "variables differ between code and docs"
    assert documented == declared, "defaults differ between code and docs"
