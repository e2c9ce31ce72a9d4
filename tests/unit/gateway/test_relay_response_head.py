"""The relay reads a plain response head itself, exactly as llhttp reads it, or leaves it to
llhttp: status, fields, framing, keep-alive and the head the client gets are the same."""

from __future__ import annotations

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.pipeline.limit import RateDecision
from gateway.relay.added import added, answer_fields
from gateway.relay.response_head import ResponseHead, whole_answer
from tests.unit.gateway.head_fields import SEPARATORS, field_values

ADDED = added({"X-Request-Id": "rid-1", "X-RateLimit-Remaining": "9"})
#: What a bearer answer gets: every field the relay ever adds.
BEARER_ADDED = answer_fields("rid-2", RateDecision(True, 600, 599, 0.1, 0))
#: Fields the relay never adds: its own reading cannot know they are absent.
OTHER_ADDED = added({"X-Other": "1", "Date": "today"})


def _same_reading(head: bytes) -> ResponseHead | None:
    """Both readings of ``head`` agree (or both refuse it); the relay's own, if any."""
    try:
        expected = ResponseHead(head, plain=False)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade, ValueError):
        expected = None
    try:
        read = ResponseHead(head)
    except (httptools.HttpParserError, httptools.HttpParserUpgrade, ValueError):
        read = None
    if expected is None or read is None:
        assert expected is None and read is None, head
        return None
    facts = ("status", "reason", "fields", "length", "chunked", "keep_alive")
    assert [getattr(read, f) for f in facts] == [getattr(expected, f) for f in facts], head
    for fields in (ADDED, BEARER_ADDED, OTHER_ADDED):
        for foreign in (True, False):
            for chunked, close, keep_alive in ((False, False, False), (True, True, False)):
                flags = {"chunked": chunked, "close": close, "keep_alive": keep_alive}
                assert read.client_head(fields, foreign=foreign, **flags) == expected.client_head(
                    fields, foreign=foreign, **flags
                ), head
    _same_whole_answer(head, read)
    return read


def _same_whole_answer(head: bytes, read: ResponseHead) -> None:
    """Where the one-step path takes ``head`` with its whole body, the client gets what the
    head's reading gives; it takes only answers kept alive, with a body of their length."""
    body = b"b" * (read.length or 0)
    for fields in (ADDED, BEARER_ADDED, OTHER_ADDED):
        for close, keep_alive in ((False, False), (True, False), (False, True)):
            whole = whole_answer(head + body, fields, close=close, keep_alive=keep_alive)
            if whole is None:
                continue
            flags = {"chunked": False, "close": close, "keep_alive": keep_alive}
            assert whole == (read.status, read.client_head(fields, **flags) + body), head
            assert read.keep_alive and read.length is not None and read.status >= 200, head
            assert read.status not in (204, 304) and fields is not OTHER_ADDED, head


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 38\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n',
        b"HTTP/1.1 200 OK\r\n\r\n",  # read until close: not kept alive
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: X-Secret, close\r\nX-Secret: 1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Request-Id: upstream's\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nSet-Cookie: kg_session=x\r\nSet-Cookie: a=b\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Trailing: v  \r\nX-Tab:\tw\r\nX-None:\r\n\r\n",
        b"HTTP/1.1 200 \xc3\xa9\r\nX-Utf8: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
    ],
)
def test_plain_heads_are_read_as_llhttp_reads_them(head: bytes) -> None:
    """Each head: the same facts and the same client head either way."""
    _same_reading(head)


def test_the_common_answer_is_read_without_llhttp() -> None:
    """The answer most upstreams send takes the relay's own reading (otherwise it buys
    nothing), and goes to the client as it came, with the relay's fields added."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 38\r\n\r\n"
    read = _same_reading(head)
    assert read is not None and read._reader is None
    assert read.client_head(ADDED, chunked=False, close=False) == (
        head[:-2] + b"X-Request-Id: rid-1\r\nX-RateLimit-Remaining: 9\r\n\r\n"
    )


def test_an_answer_with_nothing_to_drop_is_passed_on_without_splitting_its_fields() -> None:
    """Only the fields that matter are looked at: an answer without framing, hop-by-hop,
    Set-Cookie or relay-written fields is never split into lines, even for a bearer answer
    carrying every field the relay adds."""
    head = b"HTTP/1.1 201 Created\r\nLocation: /o/1\r\nContent-Length: 0\r\n\r\n"
    read = ResponseHead(head)
    assert read.client_head(BEARER_ADDED, chunked=False, close=False).startswith(head[:-2])
    assert read._fields is None  # not split: written as it came
    assert read.field(b"location") == b"/o/1"  # and still read when asked


COMMON = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n"


def test_the_common_answer_whole_in_one_read_goes_to_the_client_in_one_step() -> None:
    """Head and body in one read: the client's bytes at once, the relay's fields added."""
    whole = whole_answer(COMMON + b"{}", BEARER_ADDED, close=False)
    assert whole == (200, COMMON[:-2] + BEARER_ADDED.lines + b"\r\n{}")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(COMMON + b"{", id="body-still-coming"),
        pytest.param(COMMON + b"{}HTTP/1.1 200 OK\r\n", id="bytes-after-the-body"),
        pytest.param(COMMON[:-2], id="head-still-coming"),
        pytest.param(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", id="204"),
        pytest.param(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\n\r\n", id="304"),
        pytest.param(b"HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\n\r\n", id="interim"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", id="close"
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nContent-Length: 0\r\n\r\n", id="cookie"
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nX-Request-Id: u\r\nContent-Length: 0\r\n\r\n", id="added"
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", id="twice"
        ),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id="chunked"
        ),
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", id="http-1.0"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX-Bad: a\x01b\r\nContent-Length: 0\r\n\r\n", id="odd"),
    ],
)
def test_every_other_answer_is_read_into_a_head(data: bytes) -> None:
    """Anything but the common whole answer is left to :class:`ResponseHead`."""
    assert whole_answer(data, BEARER_ADDED, close=False) is None


_NAMES = st.sampled_from(
    [
        b"Content-Length",
        b"content-length",
        b"Connection",
        b"Transfer-Encoding",
        b"Keep-Alive",
        b"Set-Cookie",
        b"X-Request-Id",
        b"RateLimit",
        b"x-ratelimit-reset",
        b"Date",
        b"X-A",
        b"x-a",
        b"Bad Name",
        b"",
    ]
)
_VALUES = field_values(b"kg_session=1", b"X-A")


@settings(max_examples=600, deadline=None)
@given(
    status=st.sampled_from([b"200", b"204", b"304", b"101", b"404", b"999", b"20"]),
    reason=st.sampled_from([b" OK", b" ", b"", b" Not \tFound"]),
    fields=st.lists(st.tuples(_NAMES, SEPARATORS, _VALUES), max_size=5),
)
def test_any_head_gets_the_same_reading(
    status: bytes, reason: bytes, fields: list[tuple[bytes, bytes, bytes]]
) -> None:
    """Random heads mixing the fields that frame a body with odd spacing and characters."""
    lines = b"".join(name + sep + value + b"\r\n" for name, sep, value in fields)
    _same_reading(b"HTTP/1.1 " + status + reason + b"\r\n" + lines + b"\r\n")
