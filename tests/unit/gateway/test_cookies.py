"""Which Cookie pairs and Set-Cookie values are keygate's (gateway.pipeline.cookies)."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from gateway.pipeline.cookies import drop_keygate_cookies, sets_keygate_cookie


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (["app=1"], ["app=1"]),
        (["kg_session=s"], []),
        (["a=1; kg_session=s; b=2"], ["a=1; b=2"]),
        (["a=1;kg_csrf=c;b=2"], ["a=1; b=2"]),
        (["  kg_ui_csrf = u ; b=2"], ["b=2"]),
        (["__Host-kg_session=s; a=1"], ["a=1"]),
        (
            ["kg_session_x=1; my_kg_session=2; kg_sessions=3"],
            ["kg_session_x=1; my_kg_session=2; kg_sessions=3"],
        ),
        (["kg_session"], []),
        (["a=kg_session=x"], ["a=kg_session=x"]),
        (["kg_session=s", "theme=dark"], ["theme=dark"]),
        (["KG_Session=s; a=1"], ["a=1"]),
        (["a=1", "b=2; kg_csrf=c"], ["a=1", "b=2"]),
    ],
    ids=[
        "none-of-ours",
        "only-ours",
        "between-others",
        "no-spaces",
        "padded",
        "host-prefixed",
        "names-that-contain-ours",
        "bare-name",
        "our-name-in-a-value",
        "two-headers",
        "letter-case",
        "second-header",
    ],
)
def test_drop_keygate_cookies(sent: list[str], kept: list[str]) -> None:
    """keygate's pairs go, whatever the spacing; other cookies stay in order; empty headers go."""
    headers: CIMultiDict[str] = CIMultiDict([("Accept", "*/*"), *(("Cookie", v) for v in sent)])
    drop_keygate_cookies(headers)
    assert headers.getall("Cookie", []) == kept
    assert headers["Accept"] == "*/*"


@pytest.mark.parametrize(
    ("value", "ours"),
    [
        ("kg_session=x; Path=/; HttpOnly", True),
        ("__Host-kg_csrf=x; Path=/; Secure", True),
        ("=kg_session=x", True),
        (" KG_UI_CSRF=x", True),
        ("kg_session", True),
        ("kg_session_theme=dark; Path=/", False),
        ("theme=kg_session; Path=/", False),
        ("a=1; Path=/kg_session", False),
    ],
    ids=[
        "plain",
        "host-prefixed",
        "nameless",
        "letter-case",
        "bare",
        "longer-name",
        "in-value",
        "in-attribute",
    ],
)
def test_sets_keygate_cookie(value: str, ours: bool) -> None:
    """A Set-Cookie is keygate's by the name it sets, not by text elsewhere in it."""
    assert sets_keygate_cookie(value) is ours
