"""The access log's lines: valid JSON in the shape of every other log line, one write per loop
turn, silent when switched off or below its level, token-shaped text redacted."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest

from gateway.access_log import LOGGER, AccessLog
from keygate_core import logs
from keygate_core.token_format import generate_token


@pytest.fixture(autouse=True)
def access_level() -> Iterator[logging.Logger]:
    """The access logger at ``info`` (whatever the test run's root level), put back after."""
    logger = logging.getLogger(LOGGER)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield logger
    logger.setLevel(level)


@pytest.fixture
def written() -> list[str]:
    """What the access log under test hands its sink, one entry per write."""
    return []


def entries(written: list[str]) -> list[dict[str, object]]:
    """Every line written, parsed (each must be one JSON object)."""
    text = "".join(written)
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


async def test_a_turns_requests_go_out_in_one_write_after_the_turn(written: list[str]) -> None:
    access = AccessLog(enabled=True, sink=written.append)
    access.record("a1", "GET", "/api/", 200, 0.001234, "203.0.113.9")
    access.record("a2", "POST", "/api/", 502, 1.5, "2001:db8::1")
    access.record("a3", "DELETE", "unmatched", 404, 0.0, None)
    assert written == []  # not during the turn that answered them
    await asyncio.sleep(0)
    assert len(written) == 1
    lines = entries(written)
    assert [
        (e["request_id"], e["method"], e["route"], e["status"], e["client"]) for e in lines
    ] == [
        ("a1", "GET", "/api/", 200, "203.0.113.9"),
        ("a2", "POST", "/api/", 502, "2001:db8::1"),
        ("a3", "DELETE", "unmatched", 404, None),
    ]
    assert [e["duration_ms"] for e in lines] == [1.23, 1500.0, 0.0]
    for entry in lines:
        assert set(entry) == {
            "time",
            "level",
            "logger",
            "message",
            "request_id",
            "method",
            "route",
            "status",
            "duration_ms",
            "client",
        }
        assert (entry["level"], entry["logger"], entry["message"]) == ("info", LOGGER, "request")
        assert datetime.fromisoformat(str(entry["time"])).utcoffset() is not None
    access.record("b1", "GET", "/", 200, 0.01, "127.0.0.1")
    await asyncio.sleep(0)
    assert len(written) == 2  # the next turn: a write of its own


async def test_odd_methods_routes_and_peers_still_make_valid_json(written: list[str]) -> None:
    access = AccessLog(enabled=True, sink=written.append)
    access.record("c1", 'X-"Q\\', 'a "quoted"\\route', 400, 0.002, 'not "an" address\\')
    access.record("c2", "PROPFIND", "/dav/ünïcode", 207, 0.002, "127.0.0.1")
    await asyncio.sleep(0)
    lines = entries(written)
    assert (lines[0]["method"], lines[0]["route"]) == ('X-"Q\\', 'a "quoted"\\route')
    assert lines[0]["client"] == 'not "an" address\\'
    assert (lines[1]["method"], lines[1]["route"]) == ("PROPFIND", "/dav/ünïcode")


async def test_switched_off_it_writes_nothing(written: list[str]) -> None:
    access = AccessLog(enabled=False, sink=written.append)
    access.record("d1", "GET", "/", 200, 0.001, "127.0.0.1")
    await asyncio.sleep(0)
    assert written == []


async def test_below_its_level_it_writes_nothing(
    written: list[str], access_level: logging.Logger
) -> None:
    access = AccessLog(enabled=True, sink=written.append)
    access_level.setLevel(logging.WARNING)
    access.record("e1", "GET", "/", 200, 0.001, "127.0.0.1")
    await asyncio.sleep(0)
    assert written == []
    access_level.setLevel(logging.INFO)
    access.record("e2", "GET", "/", 200, 0.001, "127.0.0.1")
    await asyncio.sleep(0)
    assert [e["request_id"] for e in entries(written)] == ["e2"]


@pytest.fixture
def keygate_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """keygate's own logging set up (as ``serve`` does) on a stream the test reads; the root
    logger's handlers and level are put back afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(logs, "_json_handler", None)
    logs.configure_logging("info")
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_lines_go_where_keygate_logs_go_with_tokens_redacted(
    keygate_logging: io.StringIO,
) -> None:
    """The default sink: the stream of keygate's JSON log handler, next to the other lines,
    with the secret of anything token-shaped cut off as the log formatter does."""
    token, _ = generate_token()
    logging.getLogger("keygate.gateway").info("before")
    access = AccessLog(enabled=True)
    access.record("f1", token, "/", 405, 0.001, "127.0.0.1")
    await asyncio.sleep(0)
    text = keygate_logging.getvalue()
    assert token not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["message"] == "before"
    assert second["logger"] == LOGGER
    assert second["method"] == f"{token[: token.rindex('_') + 1]}<redacted>"


async def test_without_keygate_logging_the_default_sink_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An app embedding the gateway without ``serve`` (keygate's logging never set up)."""
    monkeypatch.setattr(logs, "_json_handler", None)
    access = AccessLog(enabled=True)
    access.record("g1", "GET", "/", 200, 0.001, "127.0.0.1")
    await asyncio.sleep(0)
    captured = capsys.readouterr()
    assert "g1" not in captured.err + captured.out
