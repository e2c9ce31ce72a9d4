"""``/api/platform/internal/audit-events``: the audit log, newest first, for organisation admins."""

from __future__ import annotations

from aiohttp import web

from introspector import audit
from introspector.appkeys import POOL
from introspector.caller import load_caller
from introspector.errors import Forbidden
from introspector.views.request_body import query_int


async def list_audit_events(request: web.Request) -> web.Response:
    """GET /audit-events: newest first, for organisation admins; page with ``?before=<id>``."""
    limit = query_int(request, "limit", 50, 1, 200)
    before = request.query.get("before")
    before_id = None
    if before is not None:
        before_id = query_int(request, "before", 0, 1, 2**62)
    async with request.app[POOL].acquire() as conn:
        caller = await load_caller(request, conn)
        if not caller.acts_as_org_admin:
            raise Forbidden("only an organisation admin can read the audit log")
        events = await audit.list_events(conn, limit=limit + 1, before_id=before_id)
    items = [
        {
            "id": e.id,
            "occurredAt": e.occurred_at.isoformat(),
            "actorKind": e.actor_kind,
            "actorUserId": None if e.actor_user_id is None else str(e.actor_user_id),
            "actorTokenId": None if e.actor_token_id is None else str(e.actor_token_id),
            "action": e.action,
            "targetType": e.target_type,
            "targetId": e.target_id,
            "sourceIp": e.source_ip,
            "requestId": e.request_id,
            "details": e.details,
        }
        for e in events[:limit]
    ]
    next_before = events[limit - 1].id if len(events) > limit else None
    return web.json_response(
        {"items": items, "nextBefore": next_before}, headers={"Cache-Control": "no-store"}
    )
