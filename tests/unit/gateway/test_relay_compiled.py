"""The compiled readings (``gateway/relay/_plain.c``) give exactly what llhttp's reading gives,
or decline: for request heads with every kind of lane verdict, and for whole answers.

Declining is always safe (the Python readings then run), so each test also checks that the
compiled reading answers the heads it exists for; otherwise it would buy nothing.
"""

from __future__ import annotations

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.pipeline.limit import RateDecision
from gateway.pipeline.mutate import SERVICE_IDENTITY, IdentityHeaderNames
from gateway.pipeline.strip import GATEWAY_WRITTEN, UNTRUSTED_FORWARDING, protected_headers
from gateway.relay import _plain, fields
from gateway.relay.added import Added, answer_fields
from gateway.relay.fields import FieldNames
from gateway.relay.heads import NO_LANE, RelayRequest, read_request
from gateway.relay.lane import Lane
from gateway.relay.response_head import ResponseHead, whole_answer
from tests.unit.gateway.head_fields import SEPARATORS, field_values

PEER = "198.51.100.7"
FACTS = (
    "method",
    "target",
    "raw_path",
    "path",
    "raw_fields",
    "remote",
    "body_length",
    "keep_alive",
    "http10",
    "host",
    "authorization",
    "lane_lines",
)


def _lane(*, forward_bearer: bool) -> Lane:
    names = IdentityHeaderNames()
    stripped = (
        *protected_headers(names, SERVICE_IDENTITY),
        *GATEWAY_WRITTEN,
        *UNTRUSTED_FORWARDING,
    )
    return Lane(stripped, names, forward_bearer=forward_bearer, trusted_proxies=())


#: Every verdict: no lane (the stages decide everything), a lane that drops Bearer
#: ``Authorization`` values, and one that forwards them.
NAMES = {
    "no-lane": NO_LANE,
    "lane": _lane(forward_bearer=False),
    "forwarding-lane": _lane(forward_bearer=True),
}


def _compiled(head: bytes, names: FieldNames) -> RelayRequest | None:
    """The compiled reading of ``head``, once the memo knows its names (the first reading of
    a name is Python's, which fills the memo), compared with llhttp's whenever it answers."""
    read_request(head, PEER, names)
    compiled = _plain.read_request(head, names.kinds, PEER)
    if compiled is None:
        return None
    read = RelayRequest(*compiled)
    expected = read_request(head, PEER, names, plain=False)
    assert expected is not None, head
    assert [getattr(read, f) for f in FACTS] == [getattr(expected, f) for f in FACTS], head
    assert read.headers == expected.headers, head
    return read


def test_the_verdicts_are_the_lanes() -> None:
    """The compiled reading numbers the lane's verdicts as :mod:`gateway.relay.fields` does."""
    assert (_plain.KEEP, _plain.DROP, _plain.BEARER, _plain.COOKIE, _plain.STAGES) == (
        fields.KEEP,
        fields.DROP,
        fields.BEARER,
        fields.COOKIE,
        fields.STAGES,
    )


COMMON = [
    b"GET /orders?id=7 HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer kg_x.y\r\nUser-Agent: wrk\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nauthorization: bEaReR kg_x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Bearerkg_x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: Basic dTpw\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nContent-Type: a/b\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nCookie: theme=dark; sid=1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nCookie: KG_session=1\r\n\r\n",
    b"GET /caf%C3%A9 HTTP/1.1\r\nHost: a\r\nX-Utf8: caf\xc3\xa9\r\nX-None: \r\n\r\n",
    b"DELETE /o/1 HTTP/1.1\r\nHost: a\r\nX-User-Id: forged\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
]


@pytest.mark.parametrize("names", NAMES.values(), ids=NAMES.keys())
@pytest.mark.parametrize("head", COMMON)
def test_common_heads_are_read_compiled(head: bytes, names: FieldNames) -> None:
    """Every common head is read by the compiled reading, as llhttp reads it, whatever the
    lane's verdicts: Bearer values of any case dropped or kept, keygate's cookies, forged
    identity headers, Connection tokens."""
    assert _compiled(head, names) is not None


@pytest.mark.parametrize(
    "head",
    [
        b"GET /_keygate/healthz HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Trailing: v \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Tight:v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n",
    ],
)
def test_the_compiled_reading_declines_what_it_does_not_decide(head: bytes) -> None:
    """Keygate's own paths, framing and protocol switches for aiohttp, Content-Length for
    llhttp to judge, heads not in the plain form: the compiled reading declines, and the
    reading the relay uses is still llhttp's."""
    for names in NAMES.values():
        read_request(head, PEER, names)
        assert _plain.read_request(head, names.kinds, PEER) is None, head
        expected = read_request(head, PEER, names, plain=False)
        read = read_request(head, PEER, names)
        assert (read is None) == (expected is None), head
        if read is not None and expected is not None:
            assert [getattr(read, f) for f in FACTS] == [getattr(expected, f) for f in FACTS]


def test_values_only_pythons_case_rules_read_are_left_to_python() -> None:
    """``is_bearer`` strips Unicode blanks (U+00A0) and ``may_name_keygate_cookie`` lower-cases
    the Kelvin sign to "k": where the lane's verdict reads such a value, the compiled reading
    declines, and the Python reading drops the token and leaves the cookie to the stages."""
    lane = NAMES["lane"]
    token = b"GET / HTTP/1.1\r\nHost: a\r\nAuthorization: \xc2\xa0Bearer kg_x\r\n\r\n"
    cookie = b"GET / HTTP/1.1\r\nHost: a\r\nCookie: \xe2\x84\xaag_session=1\r\n\r\n"
    for head in (token, cookie):
        read_request(head, PEER, lane)
        assert _plain.read_request(head, lane.kinds, PEER) is None
    read = read_request(token, PEER, lane)
    assert read is not None and read.lane_lines == b""  # Host is the relay's to write
    read = read_request(cookie, PEER, lane)
    assert read is not None and read.lane_lines is None


def test_an_unknown_name_is_read_by_python_once_then_compiled() -> None:
    """A name the memo does not know yet is read by Python, which remembers it; the next head
    with it is read compiled."""
    names = _lane(forward_bearer=False)
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Brand-New: 1\r\n\r\n"
    assert _plain.read_request(head, names.kinds, PEER) is None
    assert _compiled(head, names) is not None


_NAMES = st.sampled_from(
    [
        b"Host",
        b"host",
        b"Content-Length",
        b"Connection",
        b"Transfer-Encoding",
        b"Expect",
        b"Authorization",
        b"authorization",
        b"Cookie",
        b"X-User-Id",
        b"X-Forwarded-For",
        b"Proxy-Authorization",
        b"X-A",
        b"Bad Name",
    ]
)
_VALUES = field_values(
    b"Bearer kg_x",
    b"bearer",
    b"BEARER ",
    b"Basic",
    b"kg_",
    b"KG_",
    b"\xe2\x84\xaa",
    b"\xc2\xa0",
    b"\x00",
    b"\x80",
)
_TARGETS = st.lists(
    st.sampled_from([b"/", b"a", b"%2F", b"?", b"=", b"#", b"_keygate", b"\xc3\xa9", b"~"]),
    max_size=5,
).map(lambda parts: b"/" + b"".join(parts))


@settings(max_examples=800, deadline=None)
@given(
    method=st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"OPTIONS", b"BREW", b"get"]),
    target=st.one_of(_TARGETS, st.sampled_from([b"", b"*", b"http://a/"])),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.10"]),
    lines=st.lists(st.tuples(_NAMES, SEPARATORS, _VALUES), max_size=6),
    names=st.sampled_from(list(NAMES.values())),
)
def test_any_head_gets_llhttps_reading_when_compiled(
    method: bytes,
    target: bytes,
    version: bytes,
    lines: list[tuple[bytes, bytes, bytes]],
    names: FieldNames,
) -> None:
    """Random heads mixing the fields the relay reads, every lane verdict, Bearer values and
    cookies of any case, odd targets and characters: whenever the compiled reading answers,
    it is llhttp's."""
    fields_ = b"".join(name + sep + value + b"\r\n" for name, sep, value in lines)
    _compiled(method + b" " + target + b" " + version + b"\r\n" + fields_ + b"\r\n", names)


#: Values in the plain form: no blank at either end (blanks and odd bytes inside).
_PLAIN_VALUES = _VALUES.map(lambda value: value.strip(b" \t"))
_PLAIN_TARGETS = st.lists(
    st.sampled_from([b"/", b"a", b"%2F", b"?", b"=", b"_keygate/", b"~", b"@"]), max_size=4
).map(lambda parts: b"/" + b"".join(parts))


@settings(max_examples=800, deadline=None)
@given(
    method=st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"]),
    target=_PLAIN_TARGETS,
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]),
    host=st.booleans(),
    lines=st.lists(st.tuples(_NAMES, _PLAIN_VALUES), max_size=6),
    names=st.sampled_from(list(NAMES.values())),
)
def test_plain_heads_get_llhttps_reading_when_compiled(
    method: bytes,
    target: bytes,
    version: bytes,
    host: bool,
    lines: list[tuple[bytes, bytes]],
    names: FieldNames,
) -> None:
    """Heads in the plain form, the ones the compiled reading exists for, with the same mix
    of fields and values: whenever it answers, it is llhttp's."""
    fields_ = b"".join(name + b": " + value + b"\r\n" for name, value in lines)
    first = method + b" " + target + b" " + version + b"\r\n"
    _compiled(first + (b"Host: h\r\n" if host else b"") + fields_ + b"\r\n", names)


#: What the relay adds to an anonymous answer, and to a token's (every field it ever adds).
ANSWER_FIELDS = (
    answer_fields("rid-1", None),
    answer_fields("rid-2", RateDecision(True, 600, 599, 0.1, 0)),
)
#: Fields every answer carries, three times in four; else one that keeps it from the one step.
_COMMON_ANSWER_NAMES = st.sampled_from(
    [b"Content-Type", b"Date", b"ETag", b"Cache-Control", b"Vary", b"X-A"]
)
_ANSWER_NAMES = st.one_of(
    _COMMON_ANSWER_NAMES,
    _COMMON_ANSWER_NAMES,
    _COMMON_ANSWER_NAMES,
    st.sampled_from(
        [
            b"Content-Length",
            b"content-length",
            b"Connection",
            b"Keep-Alive",
            b"Transfer-Encoding",
            b"Set-Cookie",
            b"X-Request-Id",
            b"x-ratelimit-remaining",
            b"TE",
            b"Proxy-Connection",
        ]
    ),
)


def _whole(data: bytes, fields: Added, close: bool, keep_alive: bool) -> tuple[int, bytes] | None:
    """The compiled one-step answer for ``data``, compared with llhttp's reading of its head
    whenever it answers."""
    whole = whole_answer(data, fields, close=close, keep_alive=keep_alive)
    if whole is None:
        return None
    end = data.index(b"\r\n\r\n") + 4
    read = ResponseHead(data[:end], plain=False)
    flags = {"chunked": False, "close": close, "keep_alive": keep_alive}
    assert whole == (read.status, read.client_head(fields, **flags) + data[end:]), data
    assert read.keep_alive and read.length == len(data) - end, data
    assert read.status >= 200 and read.status not in (204, 304), data
    return whole


@pytest.mark.parametrize("fields", ANSWER_FIELDS, ids=["anonymous", "token"])
def test_the_common_answer_is_read_compiled(fields: Added) -> None:
    """The answer most upstreams send, head and body in one read, goes to the client in one
    compiled step, with the relay's fields after the upstream's."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n"
    for close, keep_alive in ((False, False), (True, False), (False, True)):
        assert _whole(head + b"{}", fields, close, keep_alive) is not None


@settings(max_examples=800, deadline=None)
@given(
    status=st.sampled_from([b"200", b"201", b"204", b"304", b"103", b"404", b"599"]),
    reason=st.sampled_from([b" OK", b" ", b" Not \tFound", b" caf\xc3\xa9"]),
    lines=st.lists(st.tuples(_ANSWER_NAMES, _PLAIN_VALUES), max_size=5),
    length=st.sampled_from([2, 0, 10, None]),
    extra=st.sampled_from([b"", b"", b"", b"x", b"HTTP/1.1 200 OK\r\n"]),
    fields=st.sampled_from(ANSWER_FIELDS),
    ending=st.sampled_from([(False, False), (True, False), (False, True)]),
)
def test_plain_answers_get_llhttps_reading_when_compiled(
    status: bytes,
    reason: bytes,
    lines: list[tuple[bytes, bytes]],
    length: int | None,
    extra: bytes,
    fields: Added,
    ending: tuple[bool, bool],
) -> None:
    """Plain answer heads mixing framing, hop-by-hop, cookie and relay-written fields, a
    body of the length they give or not, bytes after it: whenever the compiled step answers,
    the client gets what llhttp's reading of the head gives; never for a body of another
    length."""
    fields_ = b"".join(name + b": " + value + b"\r\n" for name, value in lines)
    framing = b"" if length is None else b"Content-Length: %d\r\n" % length
    head = b"HTTP/1.1 " + status + reason + b"\r\n" + fields_ + framing + b"\r\n"
    try:
        ResponseHead(head, plain=False)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade, ValueError):
        assert whole_answer(head + b"b" * (length or 0), fields, close=False) is None
        return
    whole = _whole(head + b"b" * (length or 0) + extra, fields, *ending)
    if extra:
        assert whole is None
