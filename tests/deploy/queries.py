"""Every PromQL expression the Grafana dashboard and the alerting rules run, parsed.

Expressions are parsed with `promql-parser` (a port of Prometheus' own parser), so a syntax
error fails like `promtool check rules` would; the selectors and grouping labels are read from
the syntax tree, not guessed with regular expressions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import promql_parser
import yaml

from tests.harness.project import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "keygate.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
SCRAPE_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"

#: Grafana's built-in interval variables, given a value Prometheus accepts.
GRAFANA_INTERVALS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


@dataclass(frozen=True)
class Selector:
    """One series selector: a metric name and the labels it matches on."""

    name: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)


@dataclass
class Query:
    """One expression, where it comes from, and what it reads."""

    source: str
    expr: str
    tree: Any
    selectors: list[Selector] = field(default_factory=list)
    #: (grouping labels, the selectors under that aggregation)
    groupings: list[tuple[list[str], list[Selector]]] = field(default_factory=list)
    #: (quantile, selector names) of every histogram_quantile call
    quantiles: list[tuple[float, set[str]]] = field(default_factory=list)


_OPERATORS = (
    (promql_parser.MatchOp.Equal, "="),
    (promql_parser.MatchOp.NotEqual, "!="),
    (promql_parser.MatchOp.Re, "=~"),
    (promql_parser.MatchOp.NotRe, "!~"),
)


def _operator(op: Any) -> str:
    # MatchOp values compare equal but are not hashable.
    return next(text for member, text in _OPERATORS if member == op)


def _selectors_under(node: Any) -> list[Selector]:
    found: list[Selector] = []

    def visit(n: Any) -> bool:
        if isinstance(n, promql_parser.VectorSelector):
            assert n.name, f"select metrics by name, not by matchers only: {n}"
            matchers = [
                *n.matchers.matchers,
                *(m for group in n.matchers.or_matchers for m in group),
            ]
            found.append(
                Selector(
                    n.name,
                    tuple((m.name, _operator(m.op), m.value) for m in matchers),
                )
            )
        return True

    promql_parser.walk(node, visit)
    return found


def parse_query(source: str, expr: str) -> Query:
    """``expr`` parsed, with Grafana's interval variables filled in first."""
    text = expr
    for variable, value in GRAFANA_INTERVALS.items():
        text = text.replace(variable, value)
    assert "$" not in text, f"{source}: unknown template variable in {expr!r}"
    try:
        tree = promql_parser.parse(text)
    except ValueError as error:
        raise AssertionError(f"{source}: {error}: {expr}") from None
    query = Query(source, expr, tree, selectors=_selectors_under(tree))

    def visit(n: Any) -> bool:
        if (
            isinstance(n, promql_parser.AggregateExpr)
            and n.modifier is not None
            and n.modifier.type == promql_parser.AggModifierType.By
        ):
            query.groupings.append((list(n.modifier.labels), _selectors_under(n.expr)))
        if isinstance(n, promql_parser.Call) and n.func.name == "histogram_quantile":
            quantile, inner = n.args
            names = {s.name for s in _selectors_under(inner)}
            query.quantiles.append((quantile.val, names))
        return True

    promql_parser.walk(tree, visit)
    return query


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    panels: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_queries() -> list[Query]:
    return [
        parse_query(f"panel {panel['title']!r} target {target['refId']}", target["expr"])
        for panel in dashboard_panels()
        for target in panel.get("targets", [])
    ]


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def alert_queries() -> list[Query]:
    return [parse_query(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]


def scrape_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SCRAPE_CONFIG.read_text())
    return data


def regex_alternatives(value: str) -> list[str]:
    """The literal alternatives of a simple ``a|b|c`` regular expression."""
    parts = value.split("|")
    assert all(re.fullmatch(r"[\w-]+", p) for p in parts), f"not a plain alternation: {value}"
    return parts
