"""Path tricks: whatever a client writes, the route policy the gateway applies is the one the
upstream application will believe applies.

The gateway decides on the percent-decoded path and forwards the raw path byte for byte. An
application may read that raw path in other ways: resolve dot segments, decode once or twice,
treat ``\\`` as ``/``, drop ``;parameters`` (Java servlet containers), collapse ``//``, ignore
letter case (Express, ASP.NET, IIS) or serve ``/private`` as ``/private/``. For every request
the gateway lets through, each of those readings must select the same route rule as the gateway
did, and bind the same ``{workspace}``; otherwise an anonymous caller could reach ``/private/``
through ``/public/``, ``/PRIVATE/`` or ``/private;a=b/``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.pipeline.authz import RouteTable
from tests.harness.cases import PRIVATE_AND_PUBLIC_ROUTES
from tests.harness.figures import Figures
from tests.harness.stack import Stack, StartStack
from tests.reliability.rawhttp import exchange_sync, request_bytes

#: Segments that mean something different to different path readers.
SEGMENTS = [
    "private",
    "public",
    "x",
    "..",
    ".",
    "",
    "%2e",
    "%2E%2e",
    ".%2e",
    "%252e%252e",
    "%25252e%25252e",
    "%2f",
    "%2F",
    "%252f",
    "%25252F",
    "%5c",
    "%255c",
    "\\",
    "..\\",
    "..;",
    "..;a=b",
    ".;",
    "x;a=b",
    "private;a=b",
    "private;",
    "PRIVATE;x",
    "%3b",
    "private%3bx",
    "..%3b",
    "%70rivate",
    "%2570rivate",
    "pri%76ate",
    "PRIVATE",
    "Private",
    "pRiVaTe",
    "%50rivate",
    "%50RIVATE",
    "ws",
    "WS",
    "%00",
    "%2500",
    "%20",
    "%",
    "%zz",
]


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 on an absolute path."""
    output: list[str] = []
    for segment in path.split("/")[1:]:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    trailing = path.endswith(("/.", "/..")) and output and output[-1] != ""
    return "/" + "/".join(output) + ("/" if trailing else "")


def normalise(path: str) -> str:
    """What a tidy router does after decoding: collapse ``//`` and resolve dot segments."""
    return remove_dot_segments(re.sub("/+", "/", path))


def _strip_parameters(raw: str) -> str:
    return "/".join(segment.split(";", 1)[0] for segment in raw.split("/"))


def _as_directory(path: str) -> str:
    return path if path.endswith("/") else path + "/"


#: How an application behind the gateway might read the raw path it receives.
READINGS: dict[str, Callable[[str], str]] = {
    "rfc3986": remove_dot_segments,
    "decoded": lambda raw: normalise(unquote(raw)),
    "decoded-twice": lambda raw: normalise(unquote(unquote(raw))),
    "backslash-is-slash": lambda raw: normalise(unquote(raw).replace("\\", "/")),
    "path-parameters": lambda raw: normalise(unquote(_strip_parameters(raw))),
    "case-insensitive": lambda raw: normalise(unquote(raw)).lower(),
    "bare-is-directory": lambda raw: _as_directory(normalise(unquote(raw))),
}
#: Readings that fold case: they route like the gateway but keep the segment's own letters
#: (Express's req.params), so only the rule is compared, not the workspace value.
CASE_FOLDING = frozenset({"case-insensitive"})

#: The hostile-path routes plus a workspace rule whose binding must not depend on the reading.
ROUTES = (
    PRIVATE_AND_PUBLIC_ROUTES
    + """
[[route]]
prefix = "/ws/{workspace}/"
scope = "WORKSPACE"
"""
)

#: Ordinary segments, so that many generated paths are forwarded and their readings compared.
PLAIN = [
    "public",
    "private",
    "x",
    "a.b",
    "...",
    "%41",
    "%C3%A9",
    "100%25",
    "~u",
    "a;b=c",
    "PRIVATE",
    "Public",
    "ws",
    "ws-a",
    "Ws-B",
]

paths = st.lists(
    st.one_of(st.sampled_from(SEGMENTS), st.sampled_from(PLAIN)), min_size=1, max_size=5
).map(lambda segments: "/" + "/".join(segments))


class PathProbe:
    """Sends generated paths anonymously over a raw socket; checks how each was routed."""

    def __init__(self, stack: Stack, table: RouteTable) -> None:
        assert stack.gateway.port is not None
        self.port = stack.gateway.port
        self.upstream = stack.upstream
        self.table = table
        self.outcomes = {"refused": 0, "forwarded": 0, "unauthenticated": 0}

    def check(self, path: str) -> None:
        """Send ``path``: never a 5xx, and if forwarded, forwarded byte for byte under a rule
        that needs no credential and that every reading in READINGS selects as well."""
        seen_before = len(self.upstream.requests)
        marker = f"p{seen_before}-{len(path)}"
        responses = exchange_sync(
            self.port,
            request_bytes(
                "GET", path, [("Host", "gateway"), ("X-Probe", marker), ("Connection", "close")]
            ),
        )
        assert len(responses) == 1, path
        status = responses[0].status
        assert status < 500, (path, status, responses[0].body[:200])
        forwarded = [
            r for r in self.upstream.requests[seen_before:] if r.header("X-Probe") == [marker]
        ]
        if status == 401:
            self.outcomes["unauthenticated"] += 1
        if not forwarded:
            self.outcomes["refused"] += 1
            return
        self.outcomes["forwarded"] += 1
        assert forwarded[0].raw_path == path, "the upstream must get the raw path as sent"
        applied, workspace = self.table.match(unquote(path))
        assert applied.auth.value != "required", (path, applied)
        for name, read in READINGS.items():
            believed, bound = self.table.match(read(path))
            if name not in CASE_FOLDING:
                assert bound == workspace, (path, name, read(path), bound, workspace)
            assert believed == applied, (
                f"{path!r} was forwarded under {applied.prefix!r} ({applied.auth.value}), but "
                f"an application reading it as {name} sees {read(path)!r}, "
                f"which is {believed.prefix!r} ({believed.auth.value})"
            )


async def test_path_tricks_never_change_the_route_policy(
    start_stack: StartStack, tmp_path: Path, figures: Figures
) -> None:
    """Tricky paths: no 5xx, and every reading of a forwarded path selects the gateway's rule."""
    # 400 generated paths and the known tricks below, sent anonymously: agreement means that
    # nothing reaches /private/ unauthenticated.
    routes_file = tmp_path / "routes.toml"
    routes_file.write_text(ROUTES, encoding="utf-8")
    stack = await start_stack(KEYGATE_ROUTES_FILE=str(routes_file))
    probe = PathProbe(stack, RouteTable.load(str(routes_file)))

    @settings(
        max_examples=400,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(path=paths)
    @example(path="/public/../private/x")
    @example(path="/public/%2e%2e/private/x")
    @example(path="/public/%252e%252e/private/x")
    @example(path="/public%2f..%2fprivate/x")
    @example(path="/public%252f..%252fprivate/x")
    @example(path="/public/..\\private/x")
    @example(path="/public/..;/private/x")
    @example(path="/public//../private/x")
    @example(path="/%70rivate/x")
    @example(path="/%2570rivate/x")
    @example(path="/PRIVATE/x")
    @example(path="/%50rivate/x")
    @example(path="/private;a=b/x")
    @example(path="/private%3ba=b/x")
    @example(path="/private")
    @example(path="/Private")
    @example(path="/ws/ws-b")
    @example(path="/WS/ws-b/x")
    @example(path="/ws/ws-a;x/private")
    def check(path: str) -> None:
        probe.check(path)

    await asyncio.to_thread(check)
    figures.update(probe.outcomes, readings=len(READINGS))
    assert probe.outcomes["forwarded"] > 50 and probe.outcomes["refused"] > 50, probe.outcomes
