"""Loading any service's settings with every service's variables known.

One shared ``.env`` feeds every service, so a variable meant for the gateway must not be
"unknown" to the introspector. This is the one place that lists all settings classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from admin_ui.settings import AdminUISettings
from gateway.settings import GatewaySettings
from introspector.settings import IntrospectorSettings
from keygate_core import envconfig
from keygate_core.envconfig import SettingSpec

ALL_SETTINGS: tuple[type[Any], ...] = (IntrospectorSettings, GatewaySettings, AdminUISettings)

S = TypeVar("S")


def load_settings(settings_cls: type[S], environ: Mapping[str, str] | None = None) -> S:
    """``settings_cls`` from ``environ`` (default: the process), refusing unknown variables."""
    return envconfig.load_settings(settings_cls, environ, known=ALL_SETTINGS)


def all_variables() -> dict[str, SettingSpec]:
    """Every variable any keygate service declares, by name."""
    return envconfig.known_variables(ALL_SETTINGS)
