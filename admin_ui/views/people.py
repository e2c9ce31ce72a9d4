"""People, for organisation admins: list, add, set a password, deactivate and reactivate.

Offboarding is one confirmed action: deactivating a person revokes every key they hold and ends
every session they have, in the introspector's one transaction, and the audit log names the admin
who did it. Each page is one management API call made as the signed-in admin (see
:mod:`admin_ui.api_people`); the API refuses anyone else, and the refusal becomes the 403 page.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from aiohttp import web

from admin_ui.api_client import ApiError
from admin_ui.api_people import PAGE_SIZE, PeopleClient, Person
from admin_ui.appkeys import CLIENT
from admin_ui.errors import Forbidden, PageNotFound
from admin_ui.forms import session_form, text
from admin_ui.identity import Viewer, require_viewer
from admin_ui.pages import render

PEOPLE_PATH = "/settings/api-keys/users"
STATUSES = ("active", "deactivated")
ADMINS_ONLY = "This page is only for organisation admins."
_FLASHES = {
    "added": "{who} was added.",
    "password": "A new password was set for {who}. They were signed out everywhere.",
    "deactivated": (
        "{who} was deactivated: {revoked} key{s} revoked and every session ended. "
        "Their keys stop working within a second."
    ),
    "reactivated": "{who} can sign in again. Keys revoked when they were deactivated stay revoked.",
}


def _people(request: web.Request) -> PeopleClient:
    return PeopleClient(request.app[CLIENT])


def _person_id(request: web.Request) -> str:
    try:
        return str(uuid.UUID(request.match_info["person_id"]))
    except ValueError:
        raise PageNotFound("There is no person with this id.") from None


def _refused(error: ApiError) -> Exception:
    """A 403 from the people API as the admins-only page, a 404 as "no such person"."""
    if error.status == 403:
        return Forbidden(ADMINS_ONLY, reason="not_admin")
    if error.status == 404:
        return PageNotFound("There is no person with this id.")
    return error


async def _person(request: web.Request, viewer: Viewer) -> Person:
    try:
        person = await _people(request).find(viewer.caller, _person_id(request))
    except ApiError as error:
        raise _refused(error) from None
    if person is None:
        raise PageNotFound("There is no person with this id.")
    return person


async def _flash(request: web.Request, viewer: Viewer, shown: tuple[Person, ...]) -> str | None:
    template = _FLASHES.get(request.query.get("done", ""))
    if template is None:
        return None
    person_id = request.query.get("id", "")
    person = next((p for p in shown if p.id == person_id), None)
    if person is None and person_id:
        person = await _people(request).find(viewer.caller, person_id)
    raw = request.query.get("revoked", "0")
    revoked = int(raw) if raw.isdigit() and len(raw) <= 6 else 0
    who = f"“{person.email}”" if person else "The person"
    return template.format(who=who, revoked=revoked, s="" if revoked == 1 else "s")


async def list_people(request: web.Request) -> web.StreamResponse:
    """Everyone, by e-mail, filtered by an e-mail fragment and status, 50 at a time."""
    viewer = require_viewer(request)
    query = request.query.get("q", "").strip()[:200]
    status = request.query.get("status", "")
    status = status if status in STATUSES else ""
    raw = request.query.get("offset", "0")
    offset = int(raw) if raw.isdigit() and len(raw) <= 8 else 0
    try:
        page = await _people(request).list(viewer.caller, query=query, status=status, offset=offset)
    except ApiError as error:
        raise _refused(error) from None
    context = {
        "people": page.items,
        "query": query,
        "status": status,
        "statuses": STATUSES,
        "offset": offset,
        "page_size": PAGE_SIZE,
        "next_offset": page.next_offset,
        "flash": await _flash(request, viewer, page.items),
    }
    return render(request, "users.html", context, viewer=viewer, is_admin=True, section="users")


def _done(action: str, person_id: str, **extra: int) -> web.HTTPSeeOther:
    suffix = "".join(f"&{key}={value}" for key, value in extra.items())
    return web.HTTPSeeOther(f"{PEOPLE_PATH}?done={action}&id={person_id}{suffix}")


def _form_page(
    request: web.Request,
    viewer: Viewer,
    template: str,
    context: Mapping[str, object],
    *,
    status: int = 200,
) -> web.Response:
    return render(
        request, template, context, viewer=viewer, status=status, is_admin=True, section="users"
    )


async def new_person(request: web.Request) -> web.StreamResponse:
    """The form to add a person."""
    viewer = require_viewer(request)
    if request.method == "GET":
        try:
            await _people(request).list(viewer.caller, limit=1)
        except ApiError as refused:
            raise _refused(refused) from None
        return _form_page(
            request, viewer, "user_new.html", {"email": "", "error": None, "error_field": None}
        )
    form = await session_form(request, viewer)
    email = text(form, "email", limit=254).strip()
    password = text(form, "password")
    error, field = _password_mismatch(password, text(form, "confirm"))
    if error is None:
        try:
            person = await _people(request).add(viewer.caller, email=email, password=password)
        except ApiError as refused:
            if refused.status not in (400, 409):
                raise _refused(refused) from None
            error, field = refused.message, refused.field
            if refused.status == 409:
                error = "Someone with this e-mail address already has an account."
        else:
            raise _done("added", person.id)
    context = {"email": email, "error": error, "error_field": field}
    return _form_page(request, viewer, "user_new.html", context, status=400)


def _password_mismatch(password: str, confirm: str) -> tuple[str | None, str | None]:
    if password != confirm:
        return "The two passwords are not the same. Type the new password twice.", "confirm"
    return None, None


async def password_page(request: web.Request) -> web.StreamResponse:
    """Set or reset a person's password (GET shows the form, POST sets it)."""
    viewer = require_viewer(request)
    person = await _person(request, viewer)
    if request.method == "GET":
        context: dict[str, object] = {"person": person, "error": None, "error_field": None}
        return _form_page(request, viewer, "user_password.html", context)
    form = await session_form(request, viewer)
    password = text(form, "password")
    error, field = _password_mismatch(password, text(form, "confirm"))
    if error is None:
        try:
            await _people(request).set_password(viewer.caller, person.id, password)
        except ApiError as refused:
            if refused.status != 400:
                raise _refused(refused) from None
            error, field = refused.message, refused.field
        else:
            raise _done("password", person.id)
    context = {"person": person, "error": error, "error_field": field}
    return _form_page(request, viewer, "user_password.html", context, status=400)


async def deactivate_page(request: web.Request) -> web.StreamResponse:
    """Deactivate a person: a confirmation page (GET), then the deed (POST)."""
    viewer = require_viewer(request)
    person = await _person(request, viewer)
    context: dict[str, object] = {"person": person, "error": None}
    if request.method == "GET":
        return _form_page(request, viewer, "user_deactivate.html", context)
    await session_form(request, viewer)
    try:
        done = await _people(request).deactivate(viewer.caller, person.id)
    except ApiError as refused:
        if refused.status != 409:
            raise _refused(refused) from None
        context["error"] = refused.message
        return _form_page(request, viewer, "user_deactivate.html", context, status=409)
    raise _done("deactivated", person.id, revoked=done.revoked_tokens)


async def reactivate(request: web.Request) -> web.StreamResponse:
    """Let a deactivated person sign in again."""
    viewer = require_viewer(request)
    await session_form(request, viewer)
    person_id = _person_id(request)
    try:
        await _people(request).reactivate(viewer.caller, person_id)
    except ApiError as refused:
        raise _refused(refused) from None
    raise _done("reactivated", person_id)
