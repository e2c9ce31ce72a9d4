"""``/settings/api-keys``: a person's own API keys — list, create (and reveal once), revoke."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from admin_ui.api_client import ApiError, Caller, IntrospectorClient
from admin_ui.api_models import Token, WhoAmI
from admin_ui.appkeys import CLIENT, NONCES
from admin_ui.errors import PageNotFound
from admin_ui.forms import Form, session_form, text
from admin_ui.identity import HOME_PATH, Viewer, require_viewer
from admin_ui.nonces import Redemption
from admin_ui.pages import render
from admin_ui.timefmt import end_of_day_utc

log = logging.getLogger("keygate.admin_ui")

PAGE_SIZE = 50
ADMIN_PATH = "/settings/api-keys/admin"
#: Where a revoke may send people back to (never a free-form URL).
RETURN_PATHS = {"keys": HOME_PATH, "admin": ADMIN_PATH}


@dataclass(frozen=True)
class CreateForm:
    """What the create form shows: choices from whoami, values typed so far, any error."""

    scopes: tuple[str, ...]
    workspaces: tuple[tuple[str, str], ...]
    nonce: str
    values: dict[str, str]
    error: str | None = None
    error_field: str | None = None


def create_form(
    request: web.Request,
    me: WhoAmI,
    values: dict[str, str] | None = None,
    error: ApiError | str | None = None,
) -> CreateForm:
    """A freshly-nonced create form for ``me`` (refilled with ``values`` after an error)."""
    message = error.message if isinstance(error, ApiError) else error
    return CreateForm(
        scopes=me.scopes or ("PERSONAL",),
        workspaces=tuple((w.id, w.name) for w in me.admin_workspaces),
        nonce=request.app[NONCES].issue(),
        values=values or {},
        error=message,
        error_field=error.field if isinstance(error, ApiError) else None,
    )


def _offset(request: web.Request) -> int:
    raw = request.query.get("offset", "0")
    return int(raw) if raw.isdigit() and len(raw) <= 8 else 0


def path_token_id(request: web.Request) -> str:
    try:
        return str(uuid.UUID(request.match_info["token_id"]))
    except ValueError:
        raise PageNotFound("There is no API key with this id.") from None


def _list_flash(request: web.Request, shown: tuple[Token, ...]) -> str | None:
    """What the list says after a revoke (``?revoked=<id>``) or after the reveal's Done
    (``?created=<id>``); the key is named when it is on this page."""
    for param, named, unnamed in (
        ("revoked", "“{}” was revoked.", "The API key was revoked."),
        ("created", "“{}” is ready and listed below.", "Your new API key is ready."),
    ):
        token_id = request.query.get(param)
        if token_id:
            name = next((t.name for t in shown if t.id == token_id), None)
            head = named.format(name) if name else unnamed
            tail = (
                " Requests using it are refused from now on."
                if param == "revoked"
                else " Its secret is not shown again."
            )
            return head + tail
    return None


async def list_keys(request: web.Request) -> web.StreamResponse:
    """The person's keys, newest first, with the create and revoke dialogs."""
    viewer = require_viewer(request)
    client = request.app[CLIENT]
    offset = _offset(request)
    me, page, is_admin = await asyncio.gather(
        client.whoami(viewer.caller),
        client.list_tokens(viewer.caller, limit=PAGE_SIZE, offset=offset),
        client.is_org_admin(viewer.caller),
    )
    flash = _list_flash(request, page.items)
    return render(
        request,
        "keys.html",
        {
            "tokens": page.items,
            "workspace_names": {w.id: w.name for w in me.workspaces},
            "offset": offset,
            "page_size": PAGE_SIZE,
            "next_offset": page.next_offset,
            "flash": flash,
            "form": create_form(request, me),
            "return_to": "keys",
        },
        viewer=viewer,
        is_admin=is_admin,
        section="keys",
    )


async def new_key(request: web.Request) -> web.StreamResponse:
    """The create form on its own page (what the dialog shows, for browsers without JS)."""
    viewer = require_viewer(request)
    client = request.app[CLIENT]
    me, is_admin = await asyncio.gather(
        client.whoami(viewer.caller), client.is_org_admin(viewer.caller)
    )
    context = {"form": create_form(request, me)}
    return render(request, "new.html", context, viewer=viewer, is_admin=is_admin, section="keys")


def _form_values(form: Form) -> dict[str, str]:
    return {
        "name": text(form, "name").strip(),
        "scope": text(form, "scope", limit=32).strip() or "PERSONAL",
        "workspaceId": text(form, "workspaceId", limit=64).strip(),
        "expiresAt": text(form, "expiresAt", limit=32).strip(),
    }


async def create_key(request: web.Request) -> web.StreamResponse:
    """Create a key and reveal it once; a resubmitted form goes back to the list instead.

    The list page's dialog posts here with ``fetch`` (app.js) and shows this same answer: the
    ``#reveal`` section in its reveal dialog, or the ``#create-form`` with errors in place of its
    own. Browsers without JavaScript show the answer as the page it is.
    """
    viewer = require_viewer(request)
    form = await session_form(request, viewer)
    client = request.app[CLIENT]
    values = _form_values(form)
    redemption = request.app[NONCES].redeem(text(form, "nonce", limit=200))
    if redemption is Redemption.REUSED:
        raise web.HTTPSeeOther(HOME_PATH)
    me = await client.whoami(viewer.caller)
    if redemption is Redemption.INVALID:
        expired = "This form has expired. Check the details and create the key again."
        return _form_again(request, viewer, me, values, expired, status=400)
    expires_at = None
    if values["expiresAt"]:
        try:
            expires_at = end_of_day_utc(values["expiresAt"])
        except ValueError:
            return _form_again(
                request, viewer, me, values, "Enter the expiry date as YYYY-MM-DD.", status=400
            )
    scope = values["scope"]
    try:
        created = await client.create_token(
            viewer.caller,
            name=values["name"],
            scope=scope,
            workspace_id=values["workspaceId"] if scope == "WORKSPACE" else None,
            expires_at=expires_at,
        )
    except ApiError as error:
        if error.status == 401:
            raise
        return _form_again(request, viewer, me, values, error, status=error.status)
    log.info("token created", extra={"token_id": created.token.id, "scope": created.token.scope})
    response = render(
        request,
        "reveal.html",
        {"created": created.token, "plaintext": created.plaintext},
        viewer=viewer,
        section="keys",
    )
    response.headers["Pragma"] = "no-cache"
    return response


def _form_again(
    request: web.Request,
    viewer: Viewer,
    me: WhoAmI,
    values: dict[str, str],
    error: ApiError | str,
    *,
    status: int,
) -> web.Response:
    context = {"form": create_form(request, me, values, error)}
    return render(request, "new.html", context, viewer=viewer, status=status, section="keys")


async def find_token(
    client: IntrospectorClient, caller: Caller, token_id: str, *, everyone: bool
) -> Token | None:
    """The token ``token_id`` among those the caller may list (own, or everyone's)."""
    offset: int | None = 0
    for _ in range(20):
        if offset is None:
            break
        page = await client.list_tokens(caller, everyone=everyone, limit=200, offset=offset)
        found = next((t for t in page.items if t.id == token_id), None)
        if found is not None:
            return found
        offset = page.next_offset
    return None


async def confirm_revoke(request: web.Request) -> web.StreamResponse:
    """ "Revoke this key?" — the confirmation for browsers without JS."""
    viewer = require_viewer(request)
    token_id = path_token_id(request)
    return_to = "admin" if request.query.get("return_to") == "admin" else "keys"
    if set(request.query) - {"return_to"}:
        # Only return_to belongs in this URL; anything else (say, a form field) is dropped
        # from the address bar and history.
        suffix = "?return_to=admin" if return_to == "admin" else ""
        raise web.HTTPSeeOther(f"{HOME_PATH}/{token_id}/revoke{suffix}")
    client = request.app[CLIENT]
    token = await find_token(client, viewer.caller, token_id, everyone=False)
    if token is None and await client.is_org_admin(viewer.caller):
        token = await find_token(client, viewer.caller, token_id, everyone=True)
    if token is None:
        raise PageNotFound("That API key does not exist, or it is not yours to revoke.")
    context: dict[str, Any] = {"token": token, "return_to": return_to}
    return render(request, "revoke_confirm.html", context, viewer=viewer, section="keys")


async def revoke_key(request: web.Request) -> web.StreamResponse:
    """Revoke a key and go back to the list with a confirmation message."""
    viewer = require_viewer(request)
    form = await session_form(request, viewer)
    token_id = path_token_id(request)
    await request.app[CLIENT].revoke_token(viewer.caller, token_id)
    log.info("token revoked", extra={"token_id": token_id})
    back = RETURN_PATHS.get(text(form, "return_to", limit=16), HOME_PATH)
    raise web.HTTPSeeOther(f"{back}?revoked={token_id}")
