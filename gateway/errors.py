"""Gateway errors: values with a status, a fixed reason id and RFC 6750 challenge.

Stages raise them; one middleware renders them (problem+json, plus ``WWW-Authenticate: Bearer``
on 400/401/403 for bearer problems). The client sees the generic reason; ``internal_reason``
(malformed, invalid, revoked, expired, …) goes to metrics and logs only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from keygate_core import headers as wire
from keygate_core.problems import Problem

REALM = 'Bearer realm="keygate"'

#: Every ``result`` of ``keygate_gateway_auth_decisions_total`` for a refused bearer request
#: (``method="token"``), declared once: docs/metrics.md and the observability guide mirror it.
TokenRefusal = Literal[
    "malformed", "wrong_secret", "invalid", "invalid_request", "too_many_attempts", "unavailable"
]
#: The ``result`` values counted with ``method="session"``.
SessionRefusal = Literal["session_unavailable", "forged_session"]


class GatewayError(Problem):
    """An HTTP answer the gateway gives instead of forwarding."""

    def __init__(
        self,
        status: int,
        reason: str,
        title: str,
        detail: str,
        *,
        challenge: str | None = None,
        headers: Mapping[str, str] | None = None,
        internal_reason: str | None = None,
    ) -> None:
        super().__init__(detail, headers=headers)
        self.status = status
        self.reason = reason
        self.title = title
        self.challenge = challenge
        self.internal_reason = internal_reason or reason
        if challenge:
            self.headers["WWW-Authenticate"] = challenge


def invalid_request(detail: str) -> GatewayError:
    """400: the Authorization header itself is malformed (RFC 6750 ``invalid_request``)."""
    return GatewayError(
        400,
        "invalid_request",
        "Malformed authorization",
        detail,
        challenge=f'{REALM}, error="invalid_request"',
    )


def invalid_token(internal_reason: TokenRefusal) -> GatewayError:
    """401: the token is not valid; the client is not told whether it was revoked or expired."""
    return GatewayError(
        401,
        "invalid_token",
        "Invalid token",
        "the access token is invalid, revoked or expired",
        challenge=f'{REALM}, error="invalid_token"',
        internal_reason=internal_reason,
    )


def missing_credentials() -> GatewayError:
    """401: this route needs a credential and none was sent."""
    return GatewayError(
        401,
        "unauthenticated",
        "Authentication required",
        "send an API token as `Authorization: Bearer <token>`",
        challenge=REALM,
    )


def insufficient_scope(required: str, detail: str | None = None) -> GatewayError:
    """403: the token is valid but may not do this."""
    return GatewayError(
        403,
        "insufficient_scope",
        "Insufficient scope",
        detail or f"this route needs a token with scope {required}",
        challenge=f'{REALM}, error="insufficient_scope", scope="{required}"',
    )


def rate_limited(retry_after: int, headers: dict[str, str]) -> GatewayError:
    """429: the token's bucket is empty."""
    return GatewayError(
        429,
        "rate_limited",
        "Too many requests",
        f"rate limit exceeded; retry in {retry_after} s",
        headers={**headers, "Retry-After": str(retry_after)},
    )


def too_many_attempts(retry_after: int) -> GatewayError:
    """429: too many failed authentications from this client."""
    return GatewayError(
        429,
        "too_many_attempts",
        "Too many failed attempts",
        f"too many failed authentication attempts; retry in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


#: Internal reason of a 503 caused by the app's session-check service (not by keygate).
SESSION_UNAVAILABLE: Final = "session_unavailable"


def auth_unavailable(
    detail: str = "the token service is unavailable; retry shortly",
    internal_reason: TokenRefusal | SessionRefusal = "unavailable",
) -> GatewayError:
    """503: keygate cannot decide right now — never a 401, never a pass-through."""
    return GatewayError(
        503,
        "auth_unavailable",
        "Authentication unavailable",
        detail,
        headers={"Retry-After": "1"},
        internal_reason=internal_reason,
    )


def refused_secret(status: int, refused: str | None) -> bool:
    """Whether keygate's own service answered that it refused this gateway's internal secret
    (``X-Keygate-Refused`` on its 401)."""
    return status == 401 and refused == wire.INTERNAL_SECRET_REFUSED


def service_refused_secret() -> GatewayError:
    """503: keygate's own service refused this gateway's internal secret while answering a
    client's call (services on different secrets mid-rotation). The client's token is not at
    fault, so never the service's 401."""
    return auth_unavailable("keygate's services disagree on their internal secret; retry shortly")


def duplicate_header(name: str) -> GatewayError:
    """400: a header the decision depends on was sent more than once."""
    return GatewayError(400, "duplicate_header", "Bad request", f"send exactly one {name} header")


def bad_gateway() -> GatewayError:
    """502: the upstream could not be reached."""
    return GatewayError(502, "upstream_unreachable", "Bad gateway", "the upstream did not answer")


def gateway_timeout() -> GatewayError:
    """504: the upstream took too long."""
    return GatewayError(
        504, "upstream_timeout", "Gateway timeout", "the upstream did not answer in time"
    )


def body_timeout() -> GatewayError:
    """408: the client stopped sending its request body."""
    return GatewayError(
        408,
        "body_timeout",
        "Request timeout",
        "the request body stopped arriving",
    )


def bad_path(detail: str) -> GatewayError:
    """400: a path whose meaning depends on who decodes it."""
    return GatewayError(400, "ambiguous_path", "Bad request", detail)


def missing_original_path(names: tuple[str, ...]) -> GatewayError:
    """400: a forward-auth request that does not say which path it asks about."""
    return GatewayError(
        400,
        "missing_original_path",
        "Bad request",
        f"send the protected request's path in {', '.join(names[:-1])} or {names[-1]}",
    )


def missing_header(name: str) -> GatewayError:
    """400: a header the decision depends on was not sent (a workspace-bound token on a route
    that names its workspace in ``name``)."""
    return GatewayError(
        400,
        "missing_header",
        "Bad request",
        f"send the {name} header: this route names its workspace there, and the token is "
        "bound to one",
    )


def hop_by_hop_header(name: str) -> GatewayError:
    """400: a header the decision depends on was sent, but named in ``Connection`` (so it
    would not be forwarded)."""
    return GatewayError(
        400,
        "invalid_header",
        "Bad request",
        f"{name} decides this request and is forwarded: it cannot be named in Connection",
    )
