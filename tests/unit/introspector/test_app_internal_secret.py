"""The introspector's composition root refuses to build an app its secret guard cannot protect."""

from __future__ import annotations

import pytest

from introspector.app import create_app
from introspector.settings import IntrospectorSettings
from keygate_core.envconfig import SettingsError


@pytest.mark.parametrize("secret", ["", "x" * 31], ids=["empty", "31 characters"])
def test_create_app_refuses_a_missing_or_short_internal_secret(secret: str) -> None:
    """Without 32+ characters of KEYGATE_INTERNAL_SECRET create_app raises, naming the variable."""
    with pytest.raises(SettingsError, match=r"^KEYGATE_INTERNAL_SECRET"):
        create_app(IntrospectorSettings(internal_secret=secret))


def test_create_app_builds_with_a_usable_secret() -> None:
    """32 characters are enough; building connects to nothing."""
    assert create_app(IntrospectorSettings(internal_secret="s" * 32)).router.routes()
