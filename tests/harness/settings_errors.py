"""How a settings refusal must read, checked the same way for every service."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from keygate_cli.settings import load_settings
from keygate_core.envconfig import SettingsError


def assert_refused(
    settings_cls: type[object], environ: Mapping[str, str], variable: str, fragment: str
) -> None:
    """Loading ``environ`` raises a SettingsError for ``variable`` that starts with its name and
    says ``fragment``."""
    with pytest.raises(SettingsError) as caught:
        load_settings(settings_cls, environ)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(variable + ":")
    assert fragment in str(caught.value)
