"""Loading settings: every service's variables are known, others are refused, docs in sync."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from introspector.settings import Edition, IntrospectorSettings
from keygate_cli.settings import all_variables, load_settings
from keygate_core.envconfig import SettingsError
from tests.harness.settings_errors import assert_refused

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"
ROW = re.compile(r"^\|\s*`(KEYGATE_[A-Z0-9_]+)`\s*\|\s*`([^`]*)`\s*\|")


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
    ],
    ids=["typo", "unknown"],
)
def test_unknown_variables_name_the_variable(
    environ: dict[str, str], variable: str, fragment: str
) -> None:
    """A KEYGATE_* variable no service declares is refused by name, with a likely intended one."""
    assert_refused(IntrospectorSettings, environ, variable, fragment)


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


def test_a_multi_host_database_url_is_accepted_and_its_password_never_shown() -> None:
    """A primary-and-standbys URL loads as given; a bad one is refused without its password."""
    url = "postgresql://kg:hunter2@db1:5432,db2:5432/keygate?target_session_attrs=read-write"
    settings = load_settings(IntrospectorSettings, {"KEYGATE_DATABASE_URL": url})
    assert settings.database_url == url
    with pytest.raises(SettingsError) as refused:
        load_settings(
            IntrospectorSettings, {"KEYGATE_DATABASE_URL": "mysql://kg:hunter2@db1,db2/x"}
        )
    assert "KEYGATE_DATABASE_URL" in str(refused.value)
    assert "hunter2" not in str(refused.value)
