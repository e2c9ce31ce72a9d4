"""Rendering a page: the template plus what every page needs (viewer, CSRF token, assets)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from admin_ui import csrf
from admin_ui.appkeys import ASSET_URLS, CSRF_KEYS
from admin_ui.identity import Viewer

STATIC_ROUTE = "static"


def asset_urls(app: web.Application) -> dict[str, str]:
    """Every static asset's URL with its content hash, so browsers never use a stale copy."""
    resource = app.router[STATIC_ROUTE]
    directory = Path(resource.get_info()["directory"])
    return {
        path.name: str(resource.url_for(filename=path.name))
        for path in sorted(directory.iterdir())
        if path.is_file()
    }


def static_url(request: web.Request, name: str) -> str:
    """The URL of the static asset ``name`` (computed at start-up by :func:`asset_urls`)."""
    return request.app[ASSET_URLS][name]


def session_csrf(request: web.Request, viewer: Viewer | None) -> str:
    """The synchronizer token for the viewer's session forms ('' for anonymous visitors)."""
    if viewer is None:
        return ""
    return csrf.session_token(request.app[CSRF_KEYS][0], viewer.session_id)


def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    viewer: Viewer | None,
    status: int = 200,
    is_admin: bool = False,
    section: str = "",
) -> web.Response:
    """``template`` rendered with ``context`` and the shared page context."""
    shared: dict[str, Any] = {
        "viewer": viewer,
        "csrf_token": session_csrf(request, viewer),
        "is_admin": is_admin,
        "section": section,
        "now": datetime.now(UTC),
        "static": lambda name: static_url(request, name),
    }
    shared.update(context or {})
    return aiohttp_jinja2.render_template(template, request, shared, status=status)
