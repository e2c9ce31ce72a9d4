"""Organisation admin pages: everyone's keys, the audit log and a key's usage chart.

Who counts as admin is the introspector's decision: these pages ask it for data only admins may
read and show a 403 page when it refuses. The UI never keeps its own list of admins.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from multidict import MultiMapping

from admin_ui.api_client import ApiError, Caller, IntrospectorClient
from admin_ui.api_models import Token
from admin_ui.appkeys import CLIENT
from admin_ui.errors import Forbidden
from admin_ui.identity import require_viewer
from admin_ui.pages import render
from admin_ui.usage_chart import render_usage_svg, summarise, window
from admin_ui.views.keys import find_token, path_token_id

ADMINS_ONLY = "This page is only for organisation admins."
SCOPES = ("PERSONAL", "WORKSPACE", "ORGANIZATION")
STATUSES = ("active", "revoked", "expired")
#: Everyone's keys are filtered here, not by the API; past this many the page says so.
MAX_SCANNED = 2000
PAGE_SIZE = 50


@dataclass(frozen=True)
class Filters:
    """The admin list's filters, from the query string (unknown values are ignored)."""

    user: str = ""
    scope: str = ""
    status: str = ""

    @classmethod
    def from_query(cls, query: MultiMapping[str]) -> Filters:
        scope = query.get("scope", "")
        status = query.get("status", "")
        return cls(
            user=query.get("user", "").strip()[:200],
            scope=scope if scope in SCOPES else "",
            status=status if status in STATUSES else "",
        )

    def matches(self, token: Token) -> bool:
        """Whether ``token`` passes every filter that is set."""
        return (
            (not self.user or self.user.lower() in token.user_email.lower())
            and (not self.scope or token.scope == self.scope)
            and (not self.status or token.status == self.status)
        )

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return bool(self.user or self.scope or self.status)


async def _everyones_tokens(client: IntrospectorClient, caller: Caller) -> tuple[list[Token], bool]:
    """Everyone's tokens, newest first, up to :data:`MAX_SCANNED`; and whether it stopped early."""
    tokens: list[Token] = []
    offset: int | None = 0
    while offset is not None and len(tokens) < MAX_SCANNED:
        try:
            page = await client.list_tokens(caller, everyone=True, limit=200, offset=offset)
        except ApiError as error:
            if error.status == 403:
                raise Forbidden(ADMINS_ONLY, reason="not_admin") from None
            raise
        tokens.extend(page.items)
        offset = page.next_offset
    return tokens, offset is not None


def _page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    return max(1, int(raw)) if raw.isdigit() and len(raw) <= 6 else 1


async def all_keys(request: web.Request) -> web.StreamResponse:
    """Everyone's keys with filters by owner, scope and status; admins may revoke any."""
    viewer = require_viewer(request)
    client = request.app[CLIENT]
    tokens, capped = await _everyones_tokens(client, viewer.caller)
    me = await client.whoami(viewer.caller)
    filters = Filters.from_query(request.query)
    matching = [t for t in tokens if filters.matches(t)]
    page = _page_number(request)
    start = (page - 1) * PAGE_SIZE
    revoked_id = request.query.get("revoked")
    flash = None
    if revoked_id:
        name = next((t.name for t in tokens if t.id == revoked_id), "The API key")
        flash = f"“{name}” was revoked. Requests using it are refused from now on."
    return render(
        request,
        "admin.html",
        {
            "tokens": matching[start : start + PAGE_SIZE],
            "total": len(matching),
            "scanned": len(tokens),
            "capped": capped,
            "page": page,
            "has_next": start + PAGE_SIZE < len(matching),
            "filters": filters,
            "scopes": SCOPES,
            "statuses": STATUSES,
            "workspace_names": {w.id: w.name for w in me.workspaces},
            "flash": flash,
            "return_to": "admin",
        },
        viewer=viewer,
        is_admin=True,
        section="admin",
    )


async def audit_log(request: web.Request) -> web.StreamResponse:
    """The audit log, newest first, one page at a time (``?before=<id>`` for older ones)."""
    viewer = require_viewer(request)
    client = request.app[CLIENT]
    raw_before = request.query.get("before", "")
    before = int(raw_before) if raw_before.isdigit() and len(raw_before) <= 18 else None
    try:
        events, (tokens, _) = await asyncio.gather(
            client.audit_events(viewer.caller, limit=PAGE_SIZE, before=before),
            _everyones_tokens(client, viewer.caller),
        )
    except ApiError as error:
        if error.status == 403:
            raise Forbidden(ADMINS_ONLY, reason="not_admin") from None
        raise
    emails = {t.user_id: t.user_email for t in tokens}
    emails[viewer.user_id] = viewer.email
    for event in events.items:
        # user.create events name the new person, who may have no tokens yet.
        email = event.details.get("email")
        if event.target_type == "user" and event.target_id and isinstance(email, str):
            emails.setdefault(event.target_id, email)
    return render(
        request,
        "audit.html",
        {
            "events": events.items,
            "next_before": events.next_before,
            "is_first_page": before is None,
            "emails": emails,
            "token_names": {t.id: f"{t.name} ({t.start}…)" for t in tokens},
        },
        viewer=viewer,
        is_admin=True,
        section="audit",
    )


async def usage(request: web.Request) -> web.StreamResponse:
    """Requests per minute for one key over the last 24 hours, as an inline SVG chart."""
    viewer = require_viewer(request)
    token_id = path_token_id(request)
    client = request.app[CLIENT]
    if not await client.is_org_admin(viewer.caller):
        raise Forbidden(ADMINS_ONLY, reason="not_admin")
    token, minutes = await asyncio.gather(
        find_token(client, viewer.caller, token_id, everyone=True),
        client.token_usage(viewer.caller, token_id),
    )
    now = datetime.now(UTC)
    return render(
        request,
        "usage.html",
        {
            "token": token,
            "token_id": token_id,
            "chart": render_usage_svg(minutes, now),
            "summary": summarise(window(minutes, now)),
        },
        viewer=viewer,
        is_admin=True,
        section="admin",
    )
