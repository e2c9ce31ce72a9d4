"""Asking the introspector about a token, over HTTP, with honest failure modes."""

from __future__ import annotations

import json
import logging
import time

import aiohttp

from gateway.errors import GatewayError, auth_unavailable, too_many_attempts
from keygate_core import headers as wire
from keygate_core.introspection_result import IntrospectionResult

log = logging.getLogger("keygate.gateway")
#: The misconfiguration is logged at most this often, not once per bearer request.
_REFUSAL_LOG_SECONDS = 60.0


class IntrospectionClient:
    """POSTs RFC 7662 form bodies to the introspector's ``/introspect``."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, secret: str, timeout: float
    ) -> None:
        self._session = session
        self._url = base_url.rstrip("/") + "/introspect"
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._refusal_logged_at = -_REFUSAL_LOG_SECONDS

    async def introspect(
        self, token: str, *, client_address: str | None, request_id: str
    ) -> IntrospectionResult:
        """The introspector's verdict. Raises a 503 :class:`GatewayError` when it cannot be had
        (unreachable, slow, 5xx, garbled), logging which, and 429 when the introspector
        throttles the client."""
        headers = {wire.INTERNAL_SECRET: self._secret, wire.REQUEST_ID: request_id}
        if client_address:
            headers[wire.CLIENT_ADDRESS] = client_address
        try:
            async with self._session.post(
                self._url, data={"token": token}, headers=headers, timeout=self._timeout
            ) as response:
                if response.status == 429:
                    raise too_many_attempts(int(response.headers.get("Retry-After", "60")))
                if response.status == 401:
                    self._log_refused_secret()
                if response.status != 200:
                    raise _failed(request_id, "status", introspector_status=response.status)
                body = json.loads(await response.read())
        except GatewayError:
            raise
        except TimeoutError:
            raise _failed(request_id, "timeout") from None
        except (aiohttp.ClientConnectorError, ConnectionRefusedError):
            raise _failed(request_id, "refused") from None
        except ValueError:
            raise _failed(request_id, "bad_json") from None
        except (aiohttp.ClientError, OSError) as error:
            raise _failed(request_id, "connection", error=type(error).__name__) from None
        if not isinstance(body, dict):
            raise _failed(request_id, "bad_json")
        return IntrospectionResult.from_rfc7662(body)

    def _log_refused_secret(self) -> None:
        now = time.monotonic()
        if now - self._refusal_logged_at >= _REFUSAL_LOG_SECONDS:
            self._refusal_logged_at = now
            log.error(
                "the introspector refused the gateway's internal secret: KEYGATE_INTERNAL_SECRET "
                "differs between the two services; bearer requests are answered 503"
            )


def _failed(request_id: str, cause: str, **details: object) -> GatewayError:
    """The 503 for a failed introspection, after logging why (GS-14): the client is only told
    to retry, and the operator needs to tell a timeout from a refused connection, a 5xx or a
    garbled answer. ``cause`` is one of ``timeout``, ``refused``, ``status`` (with
    ``introspector_status``), ``bad_json`` and ``connection`` (with the error's class)."""
    log.warning("introspection failed", extra={"cause": cause, "request_id": request_id, **details})
    return auth_unavailable()
