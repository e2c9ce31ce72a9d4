"""``keygate admin-ui``: run the admin UI until stopped (the operator CLI calls :func:`serve`)."""

from __future__ import annotations

from admin_ui.settings import AdminUISettings
from introspector.envconfig import load_settings


def serve() -> int:
    """Load settings, check the shared secret, log JSON and serve until stopped; exit code 0.

    A bad or missing ``KEYGATE_*`` value raises ``SettingsError`` (naming the variable), which
    the CLI reports as a configuration error. Stopping follows introspector.serving.
    """
    from admin_ui.app import create_app
    from introspector import serving

    settings = load_settings(AdminUISettings)
    settings.require_internal_secret()
    return serving.serve(
        create_app(settings),
        settings.host,
        settings.port,
        log_level=settings.log_level.value,
        drain_seconds=settings.shutdown_drain_seconds,
    )
