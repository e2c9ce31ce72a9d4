"""Comparing what a sample printed with the output its page documents — by shape, not value.

Ids, e-mails and timestamps differ between the page and a live run; keys, types and header
names must not.
"""

from __future__ import annotations

import json
import re
from typing import Any

_WORD = re.compile(r"[A-Za-z0-9]+")


def json_differences(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where ``actual`` does not have the shape of ``expected`` (same keys, same JSON types;
    every list element shaped like the documented first element)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {_kind(actual)}"]
        found = []
        if sorted(expected) != sorted(actual):
            found.append(f"{path}: keys {sorted(actual)} differ from documented {sorted(expected)}")
        for key in expected.keys() & actual.keys():
            found += json_differences(expected[key], actual[key], f"{path}.{key}")
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected an array, got {_kind(actual)}"]
        if expected and not actual:
            return [f"{path}: documented with elements, got an empty array"]
        found = []
        for index, item in enumerate(actual):
            if expected:
                found += json_differences(expected[0], item, f"{path}[{index}]")
        return found
    if _kind(expected) != _kind(actual):
        return [f"{path}: expected {_kind(expected)}, got {_kind(actual)}"]
    return []


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def is_pretty_json(text: str) -> bool:
    """Whether ``text`` is JSON printed with two-space indentation, as the pages show it."""
    return text.strip() == json.dumps(json.loads(text), indent=2, ensure_ascii=False)


def parse_http_head(text: str) -> tuple[int, list[tuple[str, str]]]:
    """Status code and headers of the (last) response head in ``text``."""
    heads = [h for h in re.split(r"\r?\n\r?\n", text.strip()) if h.startswith("HTTP/")]
    assert heads, f"no HTTP response head in {text!r}"
    lines = heads[-1].splitlines()
    status = int(lines[0].split()[1])
    headers = [
        (name.strip(), value.strip()) for name, _, value in (h.partition(":") for h in lines[1:])
    ]
    return status, headers


def value_pattern(value: str) -> re.Pattern[str]:
    """A pattern for header values shaped like ``value``: numbers stand for any number, words
    with digits for any such word, everything else literally."""
    parts: list[str] = []
    position = 0
    for word in _WORD.finditer(value):
        parts.append(re.escape(value[position : word.start()]))
        text = word.group()
        if text.isdigit():
            parts.append("[0-9]+")
        elif any(c.isdigit() for c in text):
            parts.append("[A-Za-z0-9]+")
        else:
            parts.append(re.escape(text))
        position = word.end()
    parts.append(re.escape(value[position:]))
    return re.compile("".join(parts))


def http_differences(expected: str, actual: str) -> list[str]:
    """Where the response head ``actual`` lacks the status or a header shaped as documented."""
    want_status, want_headers = parse_http_head(expected)
    status, headers = parse_http_head(actual)
    found = []
    if status != want_status:
        found.append(f"status {status}, documented {want_status}")
    received = {name.lower(): value for name, value in headers}
    for name, value in want_headers:
        if name.lower() not in received:
            found.append(f"header {name} is missing")
        elif not value_pattern(value).fullmatch(received[name.lower()]):
            found.append(f"header {name}: {received[name.lower()]!r} is not shaped like {value!r}")
    return found
