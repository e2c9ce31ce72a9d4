"""Errors the pages raise; the error middleware renders each as a friendly HTML page.

Views never build error responses by hand: they raise one of these (or let an
:class:`~admin_ui.api_client.ApiError` through) and :mod:`admin_ui.middlewares` renders it.
"""

from __future__ import annotations


class PageError(Exception):
    """A page that cannot be shown: an HTTP status, a short title and a sentence for people."""

    status = 500
    title = "Something went wrong"

    def __init__(self, message: str, *, reason: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


class Forbidden(PageError):
    """The signed-in person may not see or do this."""

    status = 403
    title = "Not allowed"


class CsrfFailed(Forbidden):
    """A form failed the cross-site request forgery checks; nothing was changed."""

    title = "This form could not be accepted"

    def __init__(self, reason: str) -> None:
        super().__init__(
            "The form was not accepted because it did not come from this page, or it is out of "
            "date. Nothing was changed. Go back, reload the page and try again.",
            reason=reason,
        )


class PageNotFound(PageError):
    """No such page or API key (or one the person may not know about)."""

    status = 404
    title = "Not found"
