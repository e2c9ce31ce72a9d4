"""The operator guides say what the code does: metric names and labels, PromQL, rate-limit maths."""

from __future__ import annotations

import re
from typing import Any

import promql_parser
import pytest

from gateway.metrics import GatewayMetrics
from introspector.metrics import IntrospectorMetrics
from tests.docs.live import Live
from tests.docs.markdown_blocks import DOCS, code_blocks, section_text, table_rows

METRICS_PAGE = DOCS / "metrics.md"
RATE_LIMITS_PAGE = DOCS / "operations" / "rate-limits.md"
#: Pages whose PromQL this suite checks (the observability page has its own tests).
PROMQL_PAGES = [
    METRICS_PAGE,
    RATE_LIMITS_PAGE,
    DOCS / "operations" / "failure-semantics.md",
    DOCS / "gateway.md",
    DOCS / "introspector-api.md",
]


def exported_series() -> dict[str, tuple[str, ...]]:
    """Every series name the two services can export, with the labels it carries."""
    series: dict[str, tuple[str, ...]] = {}
    for registry in (IntrospectorMetrics().registry, GatewayMetrics().registry):
        # prometheus_client keeps no public map from a collector to its series names.
        for collector, names in registry._collector_to_names.items():
            labels: tuple[str, ...] = getattr(collector, "_labelnames", ())
            for name in names:
                series[name] = labels
    return series


def metric_names() -> set[str]:
    """The metric names as documented: counters with ``_total``, histograms without suffix."""
    names: set[str] = set()
    for registry in (IntrospectorMetrics().registry, GatewayMetrics().registry):
        for collector, series in registry._collector_to_names.items():
            kind = type(collector).__name__
            names.update(n for n in series if n.endswith("_total") or kind != "Counter")
    return {n for n in names if not n.endswith(("_bucket", "_sum", "_count", "_created"))}


def test_metrics_reference_lists_exactly_the_exported_metrics() -> None:
    """The summary tables of the metrics page name every exported metric, and only those."""
    text = METRICS_PAGE.read_text(encoding="utf-8")
    documented = {
        row[0].strip("`")
        for heading in ("Summary", "Gateway metrics")
        for row in table_rows(section_text(METRICS_PAGE, heading))[1:]
    }
    documented |= set(re.findall(r"^#{3,4} `(keygate_[a-z0-9_]+)", text, re.M))
    assert documented == metric_names()


def _selectors(expr: str) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"select metrics by name: {expr}"
            found.append((node.name, [m.name for m in node.matchers.matchers]))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


PROMQL = [b for page in PROMQL_PAGES for b in code_blocks(page) if b.language == "promql"]


@pytest.mark.parametrize("block", PROMQL, ids=lambda b: b.where)
def test_promql_examples_parse_and_select_exported_series(block: Any) -> None:
    """Each example query parses and selects only series and labels the services export."""
    series = exported_series()
    for name, labels in _selectors(block.text):
        assert name in series, f"{block.where}: {name} is not exported"
        allowed = {*series[name], "le"} if name.endswith("_bucket") else set(series[name])
        assert set(labels) <= allowed, f"{block.where}: {name} has no label {set(labels) - allowed}"


def test_promql_examples_exist() -> None:
    """The metrics and rate-limit pages carry example queries."""
    assert {b.page for b in PROMQL} >= {METRICS_PAGE, RATE_LIMITS_PAGE}


async def test_rate_limit_worked_example_is_what_a_gateway_answers(
    live: Live, start_gateway: Any
) -> None:
    """The worked example (limit 3, four requests) matches a live gateway's headers."""
    rows = table_rows(section_text(RATE_LIMITS_PAGE, "The headers").split("A worked example")[1])
    assert rows[0][:3] == ["Request", "`X-RateLimit-Remaining`", "`X-RateLimit-Reset`"]
    limit = re.search(
        r"with a limit of (\d+) per minute", section_text(RATE_LIMITS_PAGE, "The headers")
    )
    assert limit
    gateway = await start_gateway(
        live.introspector_url, live.stack.upstream_url, KEYGATE_RATE_LIMIT_PER_MINUTE=limit[1]
    )
    for row in rows[1:]:
        response = await gateway.get("/app", headers={"Authorization": f"Bearer {live.token}"})
        remaining, reset = row[1].strip("`"), row[2].strip("`")
        assert response.headers["X-RateLimit-Limit"] == limit[1]
        assert (
            response.headers["X-RateLimit-Remaining"],
            response.headers["X-RateLimit-Reset"],
        ) == (
            remaining,
            reset,
        ), row
        retry_after = re.search(r"`Retry-After: (\d+)`", row[3])
        if retry_after:
            assert response.status == 429
            assert response.headers["Retry-After"] == retry_after[1]
        else:
            assert response.status == 200
