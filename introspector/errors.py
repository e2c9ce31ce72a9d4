"""Domain errors: values with an HTTP status and a fixed reason id.

Services raise these; exactly one place per entry point renders them (the HTTP middleware as
``application/problem+json``, the CLI as a one-line message and exit code). The reason id is
stable and machine-readable; the detail is for people and never contains a secret.
"""

from __future__ import annotations

from keygate_core.headers import INTERNAL_SECRET_REFUSED, REFUSED
from keygate_core.problems import Problem


class KeygateError(Problem):
    """Base of every error the introspector reports to a caller."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(
            detail, field=field, headers={"Retry-After": "1"} if self.status == 503 else None
        )


class InvalidInput(KeygateError):
    """A request field is missing, malformed or out of range; ``field`` names it."""

    status = 400
    reason = "invalid_request"
    title = "Invalid request"


class NotFound(KeygateError):
    """The thing does not exist — or the caller may not know that it does."""

    status = 404
    reason = "not_found"
    title = "Not found"


class Forbidden(KeygateError):
    """The caller is known but may not do this."""

    status = 403
    reason = "forbidden"
    title = "Forbidden"


class EditionRestricted(Forbidden):
    """The feature exists only in the enterprise edition."""

    reason = "edition_restricted"
    title = "Not available in this edition"


class Conflict(KeygateError):
    """The request clashes with existing state (e.g. a duplicate e-mail)."""

    status = 409
    reason = "conflict"
    title = "Conflict"


class TooManyTokens(Conflict):
    """The owner already has as many live tokens as ``KEYGATE_MAX_TOKENS_PER_USER`` allows."""

    reason = "too_many_tokens"
    title = "Too many tokens"


class Unavailable(KeygateError):
    """A dependency (Postgres, Redis) cannot be reached; retrying later may work."""

    status = 503
    reason = "unavailable"
    title = "Service unavailable"


class Unauthenticated(KeygateError):
    """No acceptable credentials were presented."""

    status = 401
    reason = "unauthenticated"
    title = "Authentication required"


class InternalSecretRefused(Unauthenticated):
    """The caller did not present an accepted internal secret: not the gateway or the admin UI,
    or one configured with another ``KEYGATE_INTERNAL_SECRET`` (a misconfiguration to report as
    such, never as a person's wrong password)."""

    reason = INTERNAL_SECRET_REFUSED
    title = "Internal secret refused"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers[REFUSED] = INTERNAL_SECRET_REFUSED


class TooManyAttempts(KeygateError):
    """Too many failed attempts; try again after ``retry_after`` seconds."""

    status = 429
    reason = "too_many_attempts"
    title = "Too many attempts"

    def __init__(self, detail: str, *, retry_after: int = 60) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.headers["Retry-After"] = str(retry_after)


class TooManyRequests(KeygateError):
    """A rate limit on an expensive operation (e.g. token creation) is used up for now."""

    status = 429
    reason = "too_many_requests"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.headers["Retry-After"] = str(retry_after)
