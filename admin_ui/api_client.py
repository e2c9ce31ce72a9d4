"""The admin UI's only way to the data: typed calls to the introspector's HTTP API.

Every call carries the internal secret; calls made for a signed-in person also carry the identity
the gateway vouched for (``X-Keygate-User-Id`` + ``X-Keygate-Auth-Method: session``), so the
introspector applies exactly the permission rules it applies to everyone else. A problem+json
answer becomes an :class:`ApiError` with a message for people; raw JSON never reaches a page.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp

from admin_ui.api_messages import human_message
from admin_ui.api_models import (
    AuditPage,
    CreatedToken,
    LoginSession,
    MalformedAnswer,
    TokenPage,
    WhoAmI,
    parse_usage,
)
from keygate_core import headers as wire

log = logging.getLogger("keygate.admin_ui")

API = wire.API_PREFIX

T = TypeVar("T")


class ApiError(Exception):
    """The introspector refused or could not be reached.

    ``status`` and ``reason`` are the problem's; ``field`` names the offending input when the
    API says so; ``message`` is a sentence fit for the page; ``retry_after`` is in seconds.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}" + (f" ({field})" if field else ""))
        self.status = status
        self.reason = reason
        self.field = field
        self.retry_after = retry_after
        self.message = human_message(status, reason, field, retry_after)


@dataclass(frozen=True)
class Caller:
    """Who a management call is made for, as the gateway told the UI."""

    user_id: str
    client_address: str | None = None
    request_id: str | None = None
    #: Signed in to the protected app: ``user_id`` is the app's, vouched for with ``email``.
    app_session_email: str | None = None
    #: The app's session check said it verified that e-mail.
    app_session_email_verified: bool = False

    def headers(self) -> dict[str, str]:
        """Identity and tracing headers for the introspector."""
        headers = {wire.USER_ID: self.user_id, wire.AUTH_METHOD: "session"}
        if self.app_session_email is not None:
            headers[wire.IDENTITY_SOURCE] = "upstream"
            headers[wire.EMAIL] = quote(self.app_session_email, safe="@._+-")
            if self.app_session_email_verified:
                headers[wire.EMAIL_VERIFIED] = "true"
        if self.client_address:
            headers[wire.CLIENT_ADDRESS] = self.client_address
        if self.request_id:
            headers[wire.REQUEST_ID] = self.request_id
        return headers


class IntrospectorClient:
    """Typed methods for the introspector endpoints the admin UI uses."""

    def __init__(
        self, http: aiohttp.ClientSession, base_url: str, internal_secret: str, *, timeout: float
    ) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._secret = internal_secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    # --- sessions -----------------------------------------------------------------------------

    async def create_session(
        self,
        email: str,
        password: str,
        *,
        client_address: str | None,
        request_id: str | None,
        device_token: str | None = None,
    ) -> LoginSession:
        """Check the password and open a session (401 ``invalid_credentials``, 429 throttled);
        ``device_token`` is the browser's ``kg_device`` cookie, if it has one."""
        caller_headers = {}
        if client_address:
            caller_headers[wire.CLIENT_ADDRESS] = client_address
        if request_id:
            caller_headers[wire.REQUEST_ID] = request_id
        payload = {"email": email, "password": password}
        if device_token:
            payload["deviceToken"] = device_token
        body = await self.call("POST", "/sessions", headers=caller_headers, json=payload)
        return parsed(LoginSession.parse, body)

    async def revoke_session(self, session_id: str, *, request_id: str | None) -> None:
        """End a session server-side (idempotent)."""
        headers = {wire.REQUEST_ID: request_id} if request_id else {}
        await self.call("POST", "/sessions/revoke", headers=headers, json={"sessionId": session_id})

    # --- management API -----------------------------------------------------------------------

    async def whoami(self, caller: Caller) -> WhoAmI:
        """The user, their workspaces and the scopes they may create."""
        return parsed(WhoAmI.parse, await self.call("GET", f"{API}/whoami", caller=caller))

    async def list_tokens(
        self, caller: Caller, *, everyone: bool = False, limit: int = 50, offset: int = 0
    ) -> TokenPage:
        """One page of the caller's tokens (or everyone's, for organisation admins)."""
        params = {"limit": str(limit), "offset": str(offset)}
        if everyone:
            params["all"] = "true"
        body = await self.call("GET", f"{API}/api-tokens", caller=caller, params=params)
        return parsed(TokenPage.parse, body)

    async def is_org_admin(self, caller: Caller) -> bool:
        """Whether the caller may list everyone's tokens (whoami has no explicit flag)."""
        try:
            await self.list_tokens(caller, everyone=True, limit=1)
        except ApiError as error:
            if error.status == 403:
                return False
            raise
        return True

    async def create_token(
        self,
        caller: Caller,
        *,
        name: str,
        scope: str,
        workspace_id: str | None,
        expires_at: str | None,
    ) -> CreatedToken:
        """Create a token for the caller; the answer holds the plaintext, once."""
        payload: dict[str, Any] = {"name": name, "scope": scope}
        if workspace_id:
            payload["workspaceId"] = workspace_id
        if expires_at:
            payload["expiresAt"] = expires_at
        body = await self.call("POST", f"{API}/api-tokens", caller=caller, json=payload)
        return parsed(CreatedToken.parse, body)

    async def revoke_token(self, caller: Caller, token_id: str) -> None:
        """Revoke a token (idempotent; 404 when missing or not the caller's to revoke)."""
        await self.call("DELETE", f"{API}/api-tokens/{token_id}", caller=caller)

    async def audit_events(
        self, caller: Caller, *, limit: int = 50, before: int | None = None
    ) -> AuditPage:
        """One page of the audit log, newest first (organisation admins only)."""
        params = {"limit": str(limit)}
        if before is not None:
            params["before"] = str(before)
        body = await self.call("GET", f"{API}/audit-events", caller=caller, params=params)
        return parsed(AuditPage.parse, body)

    async def token_usage(self, caller: Caller, token_id: str) -> list[tuple[int, int]]:
        """Requests per minute over the last 24 h, only minutes with traffic."""
        body = await self.call("GET", f"{API}/api-tokens/{token_id}/usage", caller=caller)
        return parsed(parse_usage, body)

    # --- transport ----------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        path: str,
        *,
        caller: Caller | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> Any:
        sent = {wire.INTERNAL_SECRET: self._secret, "Accept": "application/json"}
        sent.update(caller.headers() if caller else {})
        sent.update(headers or {})
        try:
            async with self._http.request(
                method,
                self._base + path,
                headers=sent,
                params=params,
                json=json,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                text = await response.text()
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "introspector unreachable", extra={"path": path, "error": type(exc).__name__}
            )
            raise ApiError(503, "unreachable", retry_after=1) from None
        if 200 <= status < 300:
            return _decode(text) if text else None
        problem = _problem(text)
        reason = problem.get("reason")
        field = problem.get("field")
        if status == 401 and reason == wire.INTERNAL_SECRET_REFUSED:
            # Our own misconfiguration, not the person's credentials: never "wrong password".
            log.error(
                "the introspector refused the admin UI's internal secret: "
                "KEYGATE_INTERNAL_SECRET differs between the two services",
                extra={"path": path},
            )
            raise ApiError(503, wire.INTERNAL_SECRET_REFUSED, retry_after=30)
        raise ApiError(
            status,
            reason if isinstance(reason, str) else "unexpected_response",
            field=field if isinstance(field, str) else None,
            retry_after=retry_after,
        )


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ApiError(502, "unexpected_response") from None


def _problem(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def parsed(parse: Callable[[Any], T], body: Any) -> T:
    try:
        return parse(body)
    except MalformedAnswer as exc:
        log.error("introspector answer not understood", extra={"error": str(exc)})
        raise ApiError(502, "unexpected_response") from None
