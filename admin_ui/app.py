"""The admin UI's composition root: ``create_app(settings)`` wires everything together.

Server-rendered pages (aiohttp-jinja2, autoescaped) behind the gateway. The UI holds no data of
its own: every page is built from calls to the introspector, made on behalf of the person the
gateway vouched for. The one resource, an HTTP client session for those calls, opens and closes
in ``cleanup_ctx``. Nothing connects eagerly, so the UI starts while the introspector is down.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import aiohttp_jinja2
import jinja2
from aiohttp import web

from admin_ui import csrf, timefmt
from admin_ui.api_client import IntrospectorClient
from admin_ui.appkeys import ASSET_URLS, CLIENT, CSRF_KEYS, HTTP, NONCES, SETTINGS
from admin_ui.audit_text import detail_text
from admin_ui.cookies import COOKIES, Cookies
from admin_ui.middlewares import (
    app_session_cookie,
    is_static,
    log,
    refuse_without_secret,
    render_errors,
    security_headers,
)
from admin_ui.nonces import NonceStore
from admin_ui.pages import STATIC_ROUTE, asset_urls
from admin_ui.settings import AdminUISettings
from admin_ui.views import admin, keys, login, people
from keygate_core.middlewares import internal_secret_guard, request_context
from keygate_core.shared_settings import check_internal_secret

HERE = Path(__file__).resolve().parent
#: Forms are tiny; anything bigger is refused before it is read.
MAX_BODY_BYTES = 64 * 1024
#: How long one introspector call may take before the page says "try again".
INTROSPECTOR_TIMEOUT_SECONDS = 10.0
KEYS = "/settings/api-keys"
TOKEN = "{token_id:[0-9a-fA-F-]{36}}"
PERSON = "{person_id:[0-9a-fA-F-]{36}}"


async def _introspector_client(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[HTTP] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30),
        raise_for_status=False,
    )
    app[CLIENT] = IntrospectorClient(
        app[HTTP],
        settings.introspector_url,
        settings.internal_secret,
        timeout=INTROSPECTOR_TIMEOUT_SECONDS,
    )
    yield
    await app[HTTP].close()


def _templates(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        default_helpers=False,
    )
    env.filters["relative"] = timefmt.relative_time
    env.filters["exact_utc"] = timefmt.exact_utc
    env.filters["iso_utc"] = timefmt.iso_utc
    env.filters["detail"] = detail_text
    env.globals["today_utc"] = timefmt.today_utc


def create_app(settings: AdminUISettings) -> web.Application:
    """The admin UI application for ``settings``."""
    # The guard's precondition, not settings validation: with an empty secret the guard below
    # lets every caller in (and a short one is guessable), so no caller can build an open app.
    secrets = check_internal_secret(settings.internal_secret, settings.internal_secret_previous)
    app = web.Application(
        middlewares=[
            security_headers,
            request_context(log),
            internal_secret_guard(secrets, is_open=is_static, refuse=refuse_without_secret),
            app_session_cookie,
            render_errors,
        ],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app[COOKIES] = Cookies(settings.public_https)
    app[CSRF_KEYS] = csrf.derive_keys(secrets)
    app[NONCES] = NonceStore(settings.internal_secret, previous=settings.internal_secret_previous)
    app.cleanup_ctx.append(_introspector_client)
    _templates(app)

    app.router.add_get("/_keygate/login", login.show_login)
    app.router.add_post("/_keygate/login", login.submit_login)
    app.router.add_post("/_keygate/logout", login.logout)
    app.router.add_get(KEYS, keys.list_keys)
    app.router.add_post(KEYS, keys.create_key)
    app.router.add_get(f"{KEYS}/new", keys.new_key)
    app.router.add_get(f"{KEYS}/admin", admin.all_keys)
    app.router.add_get(f"{KEYS}/audit", admin.audit_log)
    app.router.add_get(f"{KEYS}/{TOKEN}/revoke", keys.confirm_revoke)
    app.router.add_post(f"{KEYS}/{TOKEN}/revoke", keys.revoke_key)
    app.router.add_get(f"{KEYS}/{TOKEN}/usage", admin.usage)
    app.router.add_get(f"{KEYS}/users", people.list_people)
    app.router.add_get(f"{KEYS}/users/new", people.new_person)
    app.router.add_post(f"{KEYS}/users/new", people.new_person)
    app.router.add_get(f"{KEYS}/users/{PERSON}/password", people.password_page)
    app.router.add_post(f"{KEYS}/users/{PERSON}/password", people.password_page)
    app.router.add_get(f"{KEYS}/users/{PERSON}/deactivate", people.deactivate_page)
    app.router.add_post(f"{KEYS}/users/{PERSON}/deactivate", people.deactivate_page)
    app.router.add_post(f"{KEYS}/users/{PERSON}/reactivate", people.reactivate)
    app.router.add_static(
        "/_keygate/static/", HERE / "static", name=STATIC_ROUTE, append_version=True
    )
    app[ASSET_URLS] = asset_urls(app)
    return app
