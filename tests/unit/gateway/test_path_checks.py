"""Strip's path checks: the path a proxied or forward-auth request is decided on, or 400."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import GatewayError
from gateway.pipeline.strip import original_path, unambiguous_path


def _headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


@pytest.mark.parametrize(
    ("target", "path"),
    [
        pytest.param("/a/b", "/a/b", id="plain"),
        pytest.param("/a/b?next=%2f..%2f", "/a/b", id="query-not-checked"),
        pytest.param("/%70rivate/x", "/%70rivate/x", id="encoded-letter-kept-raw"),
        pytest.param("/a/b?x=1;y=2", "/a/b", id="semicolon-in-query-allowed"),
    ],
)
def test_unambiguous_path_is_the_raw_path_without_query(target: str, path: str) -> None:
    """An unambiguous target gives its raw path, undecoded, without the query."""
    assert unambiguous_path(target) == path


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/public/%2e%2e/private", id="encoded-dots"),
        pytest.param("/public%2fprivate", id="encoded-slash"),
        pytest.param("/public/%252e%252e/private", id="encoded-twice"),
        pytest.param("/public/..;/private", id="dot-segment-with-parameters"),
        pytest.param("/public\\..\\private", id="backslash"),
        pytest.param("//evil.example/x", id="double-slash"),
        pytest.param("/admin;x=1/users", id="path-parameter"),
        pytest.param("/admin/users;jsessionid=1", id="path-parameter-last-segment"),
        pytest.param("/admin;/users", id="empty-path-parameter"),
        pytest.param("/admin%3bx/users", id="encoded-semicolon"),
        pytest.param("/admin%3Bx/users", id="encoded-semicolon-upper"),
        pytest.param("http://evil.example/x", id="absolute-form"),
        pytest.param("evil.example:443", id="authority-form"),
        pytest.param("*", id="asterisk-form"),
        pytest.param("", id="empty"),
        pytest.param("?x=1", id="query-only"),
    ],
)
def test_ambiguous_paths_are_400_ambiguous_path(target: str) -> None:
    """A path different servers could read differently is refused, named in the detail."""
    with pytest.raises(GatewayError) as refused:
        unambiguous_path(target, "the original path")
    assert (refused.value.status, refused.value.reason) == (400, "ambiguous_path")
    assert refused.value.detail.startswith("the original path ")


@pytest.mark.parametrize(
    ("headers", "path"),
    [
        pytest.param((("X-Envoy-Original-Path", "/p/x?y=1"),), "/p/x", id="envoy"),
        pytest.param(
            (("X-Original-URI", "/p"), ("X-Envoy-Original-Path", "/p")), "/p", id="envoy-agrees"
        ),
        pytest.param((("X-Original-URI", "/p/x?y=1"),), "/p/x", id="nginx"),
        pytest.param((("X-Forwarded-Uri", "/p/x"),), "/p/x", id="traefik"),
        pytest.param((("X-Original-URI", "/p"), ("X-Forwarded-Uri", "/p")), "/p", id="both-agree"),
        pytest.param((("X-Original-URI", "/p"), ("X-Original-URI", "/p")), "/p", id="repeated"),
    ],
)
def test_original_path_from_the_proxy_headers(
    headers: tuple[tuple[str, str], ...], path: str
) -> None:
    """The forward-auth path comes from X-Original-URI, X-Forwarded-Uri or X-Envoy-Original-Path."""
    assert original_path(_headers(*headers)) == path


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        pytest.param(
            (("X-Original-URI", "/public"), ("X-Forwarded-Uri", "/private")),
            "X-Original-URI, X-Forwarded-Uri and X-Envoy-Original-Path disagree",
            id="the-two-disagree",
        ),
        pytest.param(
            (("X-Original-URI", "/public"), ("X-Original-URI", "/private")),
            "X-Original-URI, X-Forwarded-Uri and X-Envoy-Original-Path disagree",
            id="one-repeated-with-two-values",
        ),
        pytest.param(
            (("X-Original-URI", "/public"), ("X-Envoy-Original-Path", "/private")),
            "X-Original-URI, X-Forwarded-Uri and X-Envoy-Original-Path disagree",
            id="envoy-disagrees",
        ),
        pytest.param(
            (("X-Forwarded-Uri", "/private;x=1/report"),),
            "the original path contains a ; parameter",
            id="path-parameter",
        ),
        pytest.param(
            (("X-Forwarded-Uri", "/public/%2e%2e/private"),),
            "the original path contains encoded slashes or dot segments",
            id="ambiguous",
        ),
    ],
)
def test_original_path_refusals(headers: tuple[tuple[str, str], ...], detail: str) -> None:
    """Two different claimed paths, or an ambiguous one, are 400 ambiguous_path."""
    with pytest.raises(GatewayError) as refused:
        original_path(_headers(*headers))
    assert (refused.value.status, refused.value.reason) == (400, "ambiguous_path")
    assert refused.value.detail == detail


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param((), id="none"),
        pytest.param((("X-Original-Url", "/private"), ("X-Rewrite-URL", "/private")), id="others"),
    ],
)
def test_original_path_missing_is_400_naming_the_headers(
    headers: tuple[tuple[str, str], ...],
) -> None:
    """Without a path header the decision is refused, never made for `/` (fail closed)."""
    with pytest.raises(GatewayError) as refused:
        original_path(_headers(*headers))
    assert (refused.value.status, refused.value.reason) == (400, "missing_original_path")
    for name in ("X-Original-URI", "X-Forwarded-Uri", "X-Envoy-Original-Path"):
        assert name in refused.value.detail
