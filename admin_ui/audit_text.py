"""How audit event details read on the audit page: words, not Python or JSON literals."""

from __future__ import annotations

import json


def detail_text(value: object) -> str:
    """One detail value for people: ``yes``/``no``, ``—`` for nothing, compact JSON for nesting."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "), ensure_ascii=False, default=str)
    return str(value)
