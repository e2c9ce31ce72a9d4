"""The upstream URL on the aiohttp data path: base plus the client's origin-form target only
(security review finding 21)."""

from __future__ import annotations

import pytest

from gateway.errors import GatewayError
from gateway.pipeline.forward import upstream_url


@pytest.mark.parametrize(
    ("base", "target", "url"),
    [
        ("http://app:8000", "/a/b?q=%41", "http://app:8000/a/b?q=%41"),
        ("http://app:8000/", "/x", "http://app:8000/x"),
        ("http://app:8000/mount", "/x", "http://app:8000/mount/x"),
    ],
    ids=["path-and-query-kept", "base-slash-once", "base-path-is-a-prefix"],
)
def test_origin_form_target_joins_the_base(base: str, target: str, url: str) -> None:
    """A /-rooted target is appended to the base byte for byte."""
    assert str(upstream_url(base, target)) == url


@pytest.mark.parametrize(
    "target",
    ["evil.example:443", "*", "http://evil.example/x", "@evil.example/x", ""],
    ids=["authority-form", "asterisk-form", "absolute-form", "userinfo-trick", "empty"],
)
def test_other_targets_are_never_joined(target: str) -> None:
    """Without a leading / the target could name another host: 400, no URL built."""
    with pytest.raises(GatewayError) as refused:
        upstream_url("http://app", target)
    assert (refused.value.status, refused.value.reason) == (400, "ambiguous_path")
