"""Introspector problems become plain sentences on the page, never raw JSON."""

from __future__ import annotations

import pytest

from admin_ui.api_client import ApiError


@pytest.mark.parametrize(
    ("status", "reason", "field", "fragment"),
    [
        (400, "invalid_request", "name", "Give the key a name"),
        (400, "invalid_request", "expiresAt", "expiry date in the future"),
        (400, "invalid_request", "rateLimit", "not valid"),
        (403, "edition_restricted", "scope", "enterprise edition"),
        (403, "forbidden", "workspaceId", "admins of that workspace"),
        (404, "not_found", "workspaceId", "workspace does not exist"),
        (409, "too_many_tokens", None, "Revoke one you no longer use"),
        (400, "invalid_request", "password", "at least 8 characters"),
        (400, "invalid_request", "email", "valid e-mail address"),
        (409, "conflict", "userId", "cannot deactivate your own account"),
        (401, "invalid_credentials", None, "Incorrect e-mail or password."),
        (503, "unavailable", None, "not reachable right now"),
        (503, "unreachable", None, "not reachable right now"),
        (418, "brand_new_reason", None, "did not work"),
        (500, "internal_error", None, "on our side"),
    ],
    ids=lambda value: str(value),
)
def test_problems_read_as_sentences(
    status: int, reason: str, field: str | None, fragment: str
) -> None:
    """Each known reason/field has its own sentence; unknown ones fall back by status."""
    error = ApiError(status, reason, field=field)
    assert fragment in error.message
    assert "{" not in error.message and reason not in error.message
    assert (error.status, error.reason, error.field) == (status, reason, field)


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [(None, "a minute"), (60, "a minute"), (5, "5 seconds"), (600, "10 minutes")],
)
def test_throttling_says_how_long_to_wait(retry_after: int | None, wait: str) -> None:
    """429 too_many_attempts tells the person how long to wait, from Retry-After."""
    error = ApiError(429, "too_many_attempts", retry_after=retry_after)
    assert f"wait {wait}" in error.message


def test_creation_throttling_says_how_long_to_wait() -> None:
    """429 too_many_requests (token creation) tells the person how long to wait."""
    error = ApiError(429, "too_many_requests", retry_after=30)
    assert "wait 30 seconds" in error.message
