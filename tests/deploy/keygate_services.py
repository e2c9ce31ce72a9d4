"""What the deployment files need to know about keygate's own services.

Each service is started by ``keygate <command>`` and reads one settings class; the deployment
tests use this to check that a container is given only variables its service declares, that
those values load, and which variables say where it listens.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from admin_ui.settings import AdminUISettings
from gateway.settings import GatewaySettings
from introspector.settings import IntrospectorSettings
from keygate_cli.settings import all_variables
from keygate_core.envconfig import SettingSpec, specs

#: ``keygate <command>`` → the settings class that command loads.
SETTINGS_BY_COMMAND: dict[str, type[Any]] = {
    "migrate": IntrospectorSettings,
    "introspector": IntrospectorSettings,
    "gateway": GatewaySettings,
    "admin-ui": AdminUISettings,
}

#: Where each long-running service answers health and metrics on its own port.
HEALTH_PATHS = {
    "introspector": {"shallow": "/healthz", "deep": "/readyz", "metrics": "/metrics"},
    "gateway": {
        "shallow": "/_keygate/healthz",
        "deep": "/_keygate/readyz",
        "metrics": "/_keygate/metrics",
    },
}


def declared(settings_cls: type[Any]) -> set[str]:
    """The variables ``settings_cls`` reads."""
    return {spec.env for spec in specs(settings_cls)}


def registry() -> dict[str, SettingSpec]:
    """Every variable any keygate service declares."""
    return all_variables()


def secret_variables() -> set[str]:
    """Variables whose values are secrets (never in an image, a ConfigMap or a committed file)."""
    return {name for name, spec in registry().items() if spec.secret}


def listen_variables(settings_cls: type[Any]) -> tuple[str, str]:
    """The (host, port) variables of a service's listening socket."""
    by_field = {
        f.name: f.metadata["spec"].env
        for f in dataclasses.fields(settings_cls)
        if "spec" in f.metadata
    }
    return by_field["host"], by_field["port"]
