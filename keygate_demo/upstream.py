"""The demo's stand-in for "your app": it shows what keygate tells it, and has a login of its own.

``keygate demo-upstream`` serves it. Every page shows the identity headers the gateway injected
(or that none arrived) and the app's own cookie session, so a visitor can watch the three paths
side by side: a bearer token (identity headers, no app session), the app's own login (the cookie
falls through keygate untouched) and keygate's local login (identity headers from a session).

It is a demo: sessions live in memory, the "password" is anything, and it must never face the
internet. ``GET /api/echo`` answers the same as JSON for scripts and curl.
"""

from __future__ import annotations

import html
import secrets

from aiohttp import web

SESSION_COOKIE = "demo_app_session"
IDENTITY_PREFIX = "x-keygate-"

SESSIONS = web.AppKey("sessions", dict[str, str])

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo app · behind keygate</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1d2430; }}
main {{ max-width: 46rem; margin: 2.5rem auto; padding: 0 1rem; }}
section {{ background: #fff; border: 1px solid #dde1e7; border-radius: 10px; padding: 1rem 1.25rem;
  margin-bottom: 1rem; }}
h1 {{ font-size: 1.4rem; }} h2 {{ font-size: 1.05rem; margin-top: 0; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eef0f3; }}
code {{ font: 13px ui-monospace, monospace; }}
.muted {{ color: #5b6576; }}
button, input {{ font: inherit; padding: .35rem .6rem; }}
</style></head>
<body><main>
<h1>Demo app</h1>
<p class="muted">This page belongs to the application behind the gateway. keygate decides who the
caller is; the app only reads the headers below.</p>
<section><h2>What keygate told this app</h2>{identity}</section>
<section><h2>This app's own login</h2>{app_session}</section>
<section><h2>Elsewhere</h2><ul>
<li><a href="/settings/api-keys">Settings → API Keys</a> (keygate's admin UI)</li>
<li><a href="/_keygate/login">keygate sign-in</a></li>
<li><a href="/api/echo">This page as JSON</a></li>
</ul></section>
</main></body></html>
"""


def _identity(request: web.Request) -> dict[str, str]:
    return {
        name: value
        for name, value in request.headers.items()
        if name.lower().startswith(IDENTITY_PREFIX)
    }


def _app_user(request: web.Request) -> str | None:
    session_id = request.cookies.get(SESSION_COOKIE)
    return request.app[SESSIONS].get(session_id) if session_id else None


async def index(request: web.Request) -> web.Response:
    """The identity headers and the app's own session, as a page."""
    identity = _identity(request)
    vouched = {k: v for k, v in identity.items() if k.lower() != "x-keygate-auth-method"}
    if vouched:
        rows = "".join(
            f"<tr><th><code>{html.escape(k)}</code></th><td><code>{html.escape(v)}</code></td></tr>"
            for k, v in sorted(identity.items())
        )
        identity_html = f"<table>{rows}</table>"
    else:
        identity_html = (
            "<p>Nobody: this request carried no token and no keygate session, so keygate let "
            "it through untouched (<code>X-Keygate-Auth-Method: anonymous</code>).</p>"
        )
    user = _app_user(request)
    if user:
        session_html = (
            f"<p>Signed in to the app as <strong>{html.escape(user)}</strong> with its own "
            f"cookie (<code>{SESSION_COOKIE}</code>), which passed through keygate.</p>"
            '<form method="post" action="/logout"><button>Sign out of the app</button></form>'
        )
    else:
        session_html = (
            '<form method="post" action="/login"><label>Name '
            '<input name="name" required maxlength="60" autocomplete="username"></label> '
            "<button>Sign in to the app</button></form>"
            '<p class="muted">Any name will do: this is the app\'s own demo login.</p>'
        )
    page = _PAGE.format(identity=identity_html, app_session=session_html)
    return web.Response(text=page, content_type="text/html")


async def echo(request: web.Request) -> web.Response:
    """What this request looked like to the app, as JSON."""
    return web.json_response(
        {
            "identity": _identity(request),
            "appSession": _app_user(request),
            "method": request.method,
            "path": request.path,
        }
    )


async def login(request: web.Request) -> web.Response:
    """Start an app session for any non-empty name."""
    form = await request.post()
    name = str(form.get("name", "")).strip()[:60]
    if not name:
        raise web.HTTPBadRequest(text="name: required")
    session_id = secrets.token_urlsafe(24)
    request.app[SESSIONS][session_id] = name
    response = web.HTTPSeeOther("/")
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="Lax", path="/")
    return response


async def logout(request: web.Request) -> web.Response:
    """End the app session."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        request.app[SESSIONS].pop(session_id, None)
    response = web.HTTPSeeOther("/")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def create_app() -> web.Application:
    """The demo upstream application."""
    app = web.Application()
    app[SESSIONS] = {}
    app.router.add_get("/", index)
    app.router.add_get("/api/echo", echo)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    return app
