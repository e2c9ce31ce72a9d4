"""Structured JSON logs with the request id of the request being served.

Log calls pass context as ``extra={...}``; the formatter writes one JSON object per line. Nothing
that is logged may contain a token or secret: log the token's id or ``kg_<public_id>`` instead.
As a last line of defence the formatter also cuts the secret off anything token-shaped, whoever
logged it (a path a client put a token in, a library quoting the header it could not parse).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "keygate_request_id", default=None
)

#: The handler :func:`configure_logging` installed (``None`` until it is called).
_json_handler: logging.StreamHandler[Any] | None = None

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
# Looser than token_format.SCANNER_REGEX on purpose: a mistyped, truncated or run-together token
# still carries (most of) a secret.
_TOKEN_LIKE = re.compile(r"(kg_[0-9A-Za-z]{12}_)[0-9A-Za-z]+")


def redact_tokens(text: str) -> str:
    """``text`` with everything after ``kg_<public_id>_`` in token-shaped strings replaced."""
    return _TOKEN_LIKE.sub(r"\1<redacted>", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact_tokens(json.dumps(entry, default=str))


def configure_logging(level: str) -> None:
    """Route every logger to stderr as JSON at ``level``."""
    global _json_handler
    handler = _json_handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log repeats what our own request log says, minus the request id.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def write_json_lines(text: str) -> None:
    """Write ``text``, JSON lines formatted by the caller (each ending in a newline), where
    :func:`configure_logging` sends log lines, token-shaped text redacted as there; nothing
    before it is called. For lines too frequent for a ``logging`` call each (the gateway's
    access log)."""
    handler = _json_handler
    if handler is None:
        return
    handler.acquire()
    try:
        handler.stream.write(redact_tokens(text))
        handler.stream.flush()
    except (OSError, ValueError):  # stderr closed: the lines are lost, as a record's would be
        pass
    finally:
        handler.release()
