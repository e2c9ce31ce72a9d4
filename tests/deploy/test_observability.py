"""deploy/grafana/keygate.json and deploy/prometheus/: every query reads metrics keygate exports.

The exported metrics are scraped from the running services' own metrics endpoints after a
little traffic, so a dashboard or alert that names a metric, a suffix or a label the code does
not export fails here, as do syntax errors and rules without a runbook.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import aiohttp
import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from keygate_core.token_format import generate_token, parse_token
from tests.deploy.compose import EXAMPLE_SECRETS, filled_in_env, load_compose, services
from tests.deploy.keygate_services import HEALTH_PATHS
from tests.deploy.manifests import of_kind
from tests.deploy.queries import (
    ALERTS,
    Query,
    Selector,
    alert_queries,
    alert_rules,
    dashboard,
    dashboard_panels,
    dashboard_queries,
    parse_query,
    regex_alternatives,
    scrape_config,
)
from tests.harness.live_services import LiveServices
from tests.harness.project import ROOT

OBSERVABILITY_DOC = ROOT / "docs" / "operations" / "observability.md"
#: Series Prometheus makes itself for every target; only the alerting rules may use them.
PROMETHEUS_SERIES = {"up"}
#: Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
STATUS_CLASSES = {"1xx", "2xx", "3xx", "4xx", "5xx"}
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}


@dataclass
class Series:
    """One queryable series name and what the scrape showed of it."""

    family: str
    type: str
    labels: set[str] = field(default_factory=set)
    values: dict[str, set[str]] = field(default_factory=dict)
    sampled: bool = False


def _exported(texts: list[str]) -> dict[str, Series]:
    """Queryable series names → what they carry, from metrics exposition texts."""
    found: dict[str, Series] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for suffix in SUFFIXES.get(family.type, ("",)):
                name = family.name + suffix
                assert name not in found, f"{name} is exported twice"
                series = found[name] = Series(family.name, family.type)
                for sample in family.samples:
                    if sample.name != name:
                        continue
                    series.sampled = True
                    for label, value in sample.labels.items():
                        series.labels.add(label)
                        series.values.setdefault(label, set()).add(value)
    return found


async def _scrape_after_traffic(live: LiveServices) -> dict[str, Series]:
    """Send the requests that make every labelled family appear, then scrape both services."""
    target = live.url("gateway", "/orders")
    tokens = [live.token, live.token, "kg_not-a-token"]
    # Two wrong secrets for an uncached token id: the second is throttled (limit 1 per token).
    cold_id = parse_token(live.cold_token).public_id
    tokens += [generate_token(cold_id)[0], generate_token(cold_id)[0]]
    async with aiohttp.ClientSession() as http:

        async def call(token: str) -> int:
            async with http.get(target, headers={"Authorization": f"Bearer {token}"}) as r:
                await r.read()
                return r.status

        async def scrape(command: str) -> str:
            async with http.get(live.url(command, HEALTH_PATHS[command]["metrics"])) as r:
                assert r.status == 200
                return await r.text()

        assert [await call(token) for token in tokens] == [200, 200, 401, 401, 429]
        introspector = await scrape("introspector")
        # An introspector outage: an uncached token can then only get 503.
        await live.stop_introspector()
        assert await call(generate_token()[0]) == 503
        return _exported([introspector, await scrape("gateway")])


def _check_selector(query: Query, selector: Selector, exported: dict[str, Series]) -> None:
    where = f"{query.source}: {selector.name}"
    series = exported.get(selector.name)
    assert series is not None, f"{where} is not exported (query: {query.expr})"
    assert series.sampled, f"{where} has no samples after the test traffic; add traffic for it"
    allowed = (
        series.labels | TARGET_LABELS | ({"le"} if selector.name.endswith("_bucket") else set())
    )
    for label, operator, value in selector.matchers:
        assert label in allowed, f"{where} has no label {label!r}"
        if operator == "=" and label not in TARGET_LABELS:
            known = series.values.get(label, set()) | (
                STATUS_CLASSES if label == "status" else set()
            )
            assert value in known, f"{where}: {label}={value!r} never occurs ({sorted(known)})"


def _check_query(query: Query, exported: dict[str, Series]) -> None:
    assert query.selectors, f"{query.source} reads no metric"
    for selector in query.selectors:
        if selector.name not in PROMETHEUS_SERIES:
            _check_selector(query, selector, exported)
    for labels, selectors in query.groupings:
        available = TARGET_LABELS.copy()
        for selector in selectors:
            if selector.name in exported:
                available |= exported[selector.name].labels
            if selector.name.endswith("_bucket"):
                available.add("le")
        missing = set(labels) - available
        assert not missing, f"{query.source}: grouped by {sorted(missing)}, which nothing has"


async def test_every_dashboard_and_alert_query_reads_exported_metrics(
    live_services: LiveServices,
) -> None:
    """Every queried metric, suffix, label and label value is exported by a running service."""
    exported = await _scrape_after_traffic(live_services)
    queries = dashboard_queries() + alert_queries()
    for query in queries:
        _check_query(query, exported)
    queried = {s.name for q in queries for s in q.selectors}
    assert len(queried) >= 15


def test_dashboard_covers_the_operating_questions() -> None:
    """Auth outcomes by reason, rate limiting, gateway p50/p99, cache hit ratios, degraded mode."""
    queries = dashboard_queries()
    read = {s.name for q in queries for s in q.selectors}
    assert {
        "keygate_gateway_auth_decisions_total",
        "keygate_api_token_auth_success_total",
        "keygate_api_token_auth_failure_total",
        "keygate_ratelimit_decisions_total",
        "keygate_introspection_cache_hit_total",
        "keygate_introspection_cache_miss_total",
        "keygate_gateway_l1_cache_total",
        "keygate_ratelimit_degraded_total",
        "keygate_introspection_cache_error_total",
        "keygate_revocation_delivery_failures_total",
    } <= read
    by_reason = [g for q in queries for g, sel in q.groupings if "reason" in g]
    assert by_reason, "no panel splits authentication failures by reason"
    gateway_quantiles = {
        quantile
        for q in queries
        for quantile, names in q.quantiles
        if names == {"keygate_gateway_request_duration_seconds_bucket"}
    }
    assert {0.5, 0.99} <= gateway_quantiles


def test_dashboard_is_importable() -> None:
    """A uid, a Prometheus data-source variable every target uses, unique ids, a 24-column grid."""
    data = dashboard()
    assert data["uid"] == "keygate" and data["title"]
    (variable,) = data["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    panels = dashboard_panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["description"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


def test_alert_rules_are_complete_and_documented() -> None:
    """Each alert has a unique name, `for`, severity, summary, description and runbook section."""
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)) and len(names) >= 8
    doc = OBSERVABILITY_DOC.read_text()
    headings = {
        re.sub(r"[^\w-]", "", line.lstrip("#").strip().lower().replace(" ", "-"))
        for line in doc.splitlines()
        if line.startswith("#")
    }
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        promql_parser.parse_duration(rule["for"])
        assert rule["labels"]["severity"] in {"warning", "critical"}
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"]
        path, _, anchor = annotations["runbook"].partition("#")
        assert path == "docs/operations/observability.md"
        assert anchor == rule["alert"].lower() and anchor in headings, rule["alert"]


def test_scrape_config_matches_the_rules_the_compose_file_and_kubernetes() -> None:
    """Scrape jobs hit compose's metrics paths, under the rules' job names = the k8s Services."""
    config = scrape_config()
    assert config["rule_files"] == [ALERTS.name]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    compose = services(load_compose(filled_in_env(**EXAMPLE_SECRETS)))
    for job in jobs.values():
        (static,) = job["static_configs"]
        (target,) = static["targets"]
        host, _, port = target.partition(":")
        command = compose[host].command[0]
        assert job["metrics_path"] == HEALTH_PATHS[command]["metrics"], job["job_name"]
        ops_port = compose[host].environment.get("KEYGATE_GATEWAY_OPS_PORT")
        if ops_port:  # metrics on the gateway's ops listener, not its published port
            assert port == ops_port and ops_port in map(str, compose[host].spec["expose"])
        else:
            assert f"'http://127.0.0.1:{port}/" in compose[host].healthcheck[-1]
    assert set(jobs) <= set(of_kind("Service"))
    selected = set()
    for query in alert_queries():
        for selector in query.selectors:
            for label, operator, value in selector.matchers:
                if label == "job":
                    assert operator in {"=", "=~"}
                    selected |= set(regex_alternatives(value)) if operator == "=~" else {value}
    assert selected == set(jobs)


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("rate(keygate_api_token_auth_success_total[5m]", "unclosed"),
        ("rate(keygate_api_token_auth_success_total)", "matrix"),
    ],
)
def test_query_parser_rejects_broken_promql(expr: str, problem: str) -> None:
    """The parser the checks rely on refuses what Prometheus would refuse."""
    with pytest.raises(AssertionError, match=problem):
        parse_query("example", expr)
