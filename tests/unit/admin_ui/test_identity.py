"""Where the login page may send people afterwards: same-site paths under /settings/ only."""

from __future__ import annotations

import pytest

from admin_ui.identity import HOME_PATH, safe_next


@pytest.mark.parametrize(
    "target",
    ["/settings/api-keys", "/settings/api-keys/admin", "/settings/api-keys/audit?before=10"],
)
def test_settings_paths_are_kept(target: str) -> None:
    """A same-site path under /settings/ is where the person wanted to go."""
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "/",
        "/admin",
        "https://evil.example/settings/api-keys",
        "//evil.example/settings/api-keys",
        "/\\evil.example/settings/",
        "/settings/../logout",
        "/settings/%2e%2e/x",
        "/settings//evil",
        "/settings/api-keys\r\nSet-Cookie: x=y",
        "javascript:alert(1)",
        "/settings/" + "a" * 3000,
    ],
    ids=[
        "missing",
        "empty",
        "root",
        "other-path",
        "absolute-url",
        "scheme-relative",
        "backslash",
        "dot-segment",
        "encoded-dot-segment",
        "double-slash",
        "header-injection",
        "javascript-url",
        "too-long",
    ],
)
def test_anything_else_goes_to_the_api_keys_page(target: str | None) -> None:
    """Open redirects, dot segments and control characters all fall back to the keys page."""
    assert safe_next(target) == HOME_PATH
