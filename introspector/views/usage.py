"""``/api/platform/internal/api-tokens/{id}/usage``: a token's requests per minute.

The gateway counts each token's requests per minute in Redis (``keygate_core.redis_keys``); this
view reads the last 24 hours of those counters for the token's owner (within the reach of the
token they call with, see :mod:`introspector.reach`) or an organisation admin.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from redis.exceptions import RedisError

from introspector import tokens
from introspector.appkeys import POOL, REDIS
from introspector.caller import load_caller
from introspector.errors import NotFound, Unavailable
from introspector.reach import reaches
from introspector.views.api_tokens import token_id_of
from keygate_core.redis_keys import usage_key

USAGE_MINUTES = 24 * 60


async def token_usage(request: web.Request) -> web.Response:
    """GET …/{id}/usage: requests per minute over the last 24 h (owner or org admin)."""
    token_id = token_id_of(request)
    app = request.app
    async with app[POOL].acquire() as conn:
        caller = await load_caller(request, conn)
        record = await tokens.get_token(conn, token_id)
    own = record.user_id == caller.user.id and reaches(caller.token, record)
    if not own and not caller.acts_as_org_admin:
        raise NotFound("no such token")
    now_minute = int(datetime.now(UTC).timestamp()) // 60
    minutes = list(range(now_minute - USAGE_MINUTES + 1, now_minute + 1))
    try:
        counts = await app[REDIS].mget([usage_key(str(token_id), m) for m in minutes])
    except (RedisError, OSError):
        raise Unavailable("usage counts are temporarily unavailable") from None
    series = [[m, int(c)] for m, c in zip(minutes, counts, strict=True) if c]
    return web.json_response(
        {"tokenId": str(token_id), "minutes": series}, headers={"Cache-Control": "no-store"}
    )
