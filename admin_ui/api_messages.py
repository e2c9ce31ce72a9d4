"""Plain-language sentences for the introspector's problem reasons.

Pages show these instead of the API's ``detail`` text: they speak to a person filling in a form
("Give the key a name"), not to a developer reading a log. Unknown combinations fall back to a
sentence per status, so a new reason never shows raw JSON.
"""

from __future__ import annotations

from keygate_core.headers import INTERNAL_SECRET_REFUSED

#: (reason, field) → sentence; ``None`` as field matches any field.
_BY_REASON: dict[tuple[str, str | None], str] = {
    ("invalid_request", "name"): (
        "Give the key a name of 1 to 100 characters, without line breaks or control characters."
    ),
    ("invalid_request", "expiresAt"): "Choose an expiry date in the future, or leave it empty.",
    ("invalid_request", "scope"): "Choose one of the scopes offered in the list.",
    ("invalid_request", "workspaceId"): "Choose the workspace this key is for.",
    ("invalid_request", "password"): "Use a password of at least 8 characters.",
    ("invalid_request", "email"): "Enter a valid e-mail address, like name@example.com.",
    ("conflict", "userId"): "You cannot deactivate your own account.",
    ("invalid_request", None): "Some of the details are not valid. Check them and try again.",
    ("edition_restricted", None): (
        "Workspace and organisation keys are only available in keygate's enterprise edition."
    ),
    ("forbidden", "scope"): "You may not create keys with this scope.",
    ("forbidden", "workspaceId"): "Only admins of that workspace may create keys for it.",
    ("forbidden", "expiresAt"): "This key may not outlive the credential that creates it.",
    ("forbidden", "rateLimit"): "Only organisation admins may set a key's rate limit.",
    ("too_many_tokens", None): (
        "You already hold as many active keys as allowed. Revoke one you no longer use first."
    ),
    ("forbidden", None): "You do not have permission to do that.",
    ("not_found", "workspaceId"): "That workspace does not exist, or you are not a member of it.",
    ("not_found", None): "That API key does not exist, or it is not yours to manage.",
    ("invalid_credentials", None): "Incorrect e-mail or password.",
    ("unauthenticated", None): "Your session has ended. Please sign in again.",
    ("conflict", "email"): (
        "Your e-mail address belongs to a keygate account that is not linked to your account "
        "of the app. Ask an administrator to link them."
    ),
    (INTERNAL_SECRET_REFUSED, None): (
        "keygate is temporarily unavailable because of a configuration problem on our side. "
        "Please try again later."
    ),
}

_BY_STATUS = {
    400: "Some of the details are not valid. Check them and try again.",
    401: "Your session has ended. Please sign in again.",
    403: "You do not have permission to do that.",
    404: "That was not found.",
    409: "That clashes with something that already exists.",
    502: "keygate's token service gave an answer we could not understand. Please try again.",
    503: "keygate's token service is not reachable right now. Please try again in a moment.",
}


def human_message(
    status: int, reason: str, field: str | None, retry_after: int | None = None
) -> str:
    """One sentence describing the problem to the person using the page."""
    if reason == "too_many_attempts":
        wait = _duration(retry_after or 60)
        return f"Too many attempts. Please wait {wait} before trying again."
    if reason == "too_many_requests":
        wait = _duration(retry_after or 60)
        return f"Too many keys were created just now. Please wait {wait} before creating another."
    message = _BY_REASON.get((reason, field)) or _BY_REASON.get((reason, None))
    if message:
        return message
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return "Something went wrong on our side. Please try again in a moment."
    return "That did not work. Please check the details and try again."


def _duration(seconds: int) -> str:
    if 55 <= seconds <= 65:
        return "a minute"
    if seconds < 90:
        return f"{seconds} second{'' if seconds == 1 else 's'}"
    minutes = round(seconds / 60)
    return f"{minutes} minutes"
