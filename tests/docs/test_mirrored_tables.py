"""Doc tables that mirror the code fail the build when they drift: endpoints, label values,
audit actions and Redis keys are read from the code and compared with the pages, both ways."""

from __future__ import annotations

import inspect
import re
from typing import get_args

from aiohttp import web
from prometheus_client.metrics import MetricWrapperBase

from gateway.app import _RESERVED_ROUTES
from gateway.app import create_app as create_gateway
from gateway.errors import SessionRefusal, TokenRefusal
from gateway.identity import AuthMethod
from gateway.metrics import GatewayMetrics
from gateway.pipeline.authz import BUILT_IN_RULES, DEFAULT_RULE
from gateway.settings import GatewaySettings
from gateway.token_cache import Lookup
from introspector.app import create_app as create_introspector
from introspector.audit import AuditAction
from introspector.metrics import IntrospectorMetrics
from introspector.settings import IntrospectorSettings
from keygate_cli.settings import load_settings
from keygate_core import redis_keys
from keygate_core.scopes import Scope
from tests.docs.markdown_blocks import DOCS, section_text, table_rows
from tests.harness.stack import gateway_env, introspector_env

METRICS_PAGE = DOCS / "metrics.md"
#: ``create_app`` connects to nothing, so these addresses are never dialled.
UNUSED = "http://127.0.0.1:9"
UNUSED_DATABASE = "postgresql://keygate@127.0.0.1:9/keygate"
UNUSED_REDIS = "redis://127.0.0.1:9/0"


def _introspector() -> web.Application:
    env = introspector_env(UNUSED_DATABASE, UNUSED_REDIS)
    return create_introspector(load_settings(IntrospectorSettings, env))


def _values(cell: str) -> set[str]:
    """The backticked values of a table cell, leaving out what is in parentheses (examples and
    explanations) and links."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", cell)
    while True:
        shorter = re.sub(r"\([^()]*\)", "", text)
        if shorter == text:
            break
        text = shorter
    return set(re.findall(r"`([^`]+)`", text))


def _label_table(page_section: str, after: str | None = None) -> dict[str, set[str]]:
    """``{label cell: documented values}`` of the first table in the section (after ``after``)."""
    text = section_text(METRICS_PAGE, page_section)
    rows = table_rows(text.split(after, 1)[1] if after else text)[1:]
    return {row[0]: _values(row[1]) for row in rows}


def _precreated(metric: MetricWrapperBase) -> set[str]:
    """The label values a metric has before any event (one label only)."""
    children = metric._metrics  # no public accessor
    return {values[0] for values in children}


def _placeholders(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def _routes(app: web.Application) -> set[tuple[str, str]]:
    """``(method, path)`` of every route, ``{…}`` placeholders unnamed, HEAD left out."""
    return {
        (route.method, _placeholders(route.resource.canonical))
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def test_introspector_endpoint_table_lists_every_route() -> None:
    """introspector-api.md's "Endpoints at a glance" is the introspector's router, both ways."""
    served = _routes(_introspector())
    rows = table_rows(section_text(DOCS / "introspector-api.md", "Endpoints at a glance"))[1:]
    documented = {(row[0].strip("`"), _placeholders(next(iter(_values(row[1]))))) for row in rows}
    assert documented == served, (
        f"not documented: {sorted(served - documented)}; not served: {sorted(documented - served)}"
    )


def test_gateway_reserved_paths_table_lists_every_route() -> None:
    """gateway.md's table of paths under ``/_keygate/`` names every route the gateway has there."""
    app = create_gateway(load_settings(GatewaySettings, gateway_env(UNUSED, UNUSED, UNUSED_REDIS)))
    served = {
        route.resource.canonical.replace("{tail}", "…")
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/_keygate/")
        and route.resource.canonical != "/_keygate/{tail}"  # the 404 for any other path
    }
    rows = table_rows(section_text(DOCS / "gateway.md", "Who answers which path"))[1:]
    documented = {
        v
        for row in rows
        if "any other" not in row[0]
        for v in _values(row[0])
        if v.startswith("/_keygate/")
    }
    assert documented == served, (
        f"not documented: {sorted(served - documented)}; not served: {sorted(documented - served)}"
    )


def test_introspector_label_values_are_the_codes() -> None:
    """The introspector's label table: scopes, failure reasons and route templates."""
    table = _label_table("Labels and their values")
    metrics = IntrospectorMetrics()
    assert table["`scope`"] == {s.value for s in Scope} == _precreated(metrics.token_create)
    assert table["`reason`"] == _precreated(metrics.auth_failure)
    templates = {r.resource.canonical for r in _introspector().router.routes() if r.resource}
    assert table["`route`"] == templates | {"unmatched"}, (
        f"not documented: {sorted(templates - table['`route`'])}"
    )


def test_gateway_label_values_are_the_codes() -> None:
    """The gateway's label table: methods, results, kinds and its own route values."""
    table = _label_table("Gateway metrics", "### Gateway labels and their values")
    metrics = GatewayMetrics()
    assert table["`method`"] == {m.value for m in AuthMethod}
    refusals = {*get_args(TokenRefusal), *get_args(SessionRefusal)}
    assert table["`result` (auth decisions)"] == {"ok"} | refusals
    assert table["`result` (rate limit)"] == _precreated(metrics.ratelimit_decisions)
    assert table["`kind`"] == _precreated(metrics.upstream_errors)
    assert table["`result` (L1 cache)"] == set(get_args(Lookup)) == _precreated(metrics.l1_lookups)
    routes = {DEFAULT_RULE.prefix, *(r.prefix for r in BUILT_IN_RULES), *_RESERVED_ROUTES}
    assert table["`route` (request duration)"] == routes | {"unmatched"}


def test_dashboard_reasons_are_the_token_refusals() -> None:
    """The observability guide's token panel names every ``method="token"`` refusal reason."""
    page = DOCS / "operations" / "observability.md"
    rows = table_rows(section_text(page, "The dashboard"))
    row = next(r for r in rows if r[1].startswith("Token authentication at the gateway"))
    reasons = set(re.findall(r"`([^`]+)`", row[2].split("reason", 1)[1]))
    assert reasons == set(get_args(TokenRefusal))


def test_audit_actions_table_lists_every_action() -> None:
    """security-model.md's audit actions are exactly the actions the code can record."""
    rows = table_rows(section_text(DOCS / "security-model.md", "Audit log"))
    documented = {row[0].strip("`") for row in rows[1:]}
    declared = {action.value for action in AuditAction}
    assert documented == declared, (
        f"not documented: {sorted(declared - documented)}; "
        f"not recorded: {sorted(documented - declared)}"
    )


def _key_shape(key: str) -> str:
    """A key with its parts replaced: ``kg:use:{<token id>}:<minute>`` is ``kg:use:{}:*``."""
    return re.sub(r"<[^>]*>", "*", re.sub(r"\{[^}]*\}", "{}", key))


def _built_keys() -> set[str]:
    """The shape of every key ``keygate_core.redis_keys`` builds, optional parts both ways."""
    shapes: set[str] = set()
    for name, build in inspect.getmembers(redis_keys, inspect.isfunction):
        if build.__module__ != redis_keys.__name__ or name.startswith("_"):
            continue
        params = inspect.signature(build).parameters.values()
        required = [f"<{p.name}>" for p in params if p.default is inspect.Parameter.empty]
        shapes.add(_key_shape(build(*required)))
        if len(required) < len(params):
            shapes.add(_key_shape(build(*[f"<{p.name}>" for p in params])))
    return shapes


def test_redis_keys_table_lists_every_key() -> None:
    """security-model.md's Redis table names every key keygate builds, and no other."""
    section = section_text(DOCS / "security-model.md", "What is cached (Redis)")
    documented = {
        _key_shape(v) for row in table_rows(section)[1:] for v in _values(row[0]) if "kg:" in v
    }
    built = _built_keys()
    assert documented == built, (
        f"not documented: {sorted(built - documented)}; not built: {sorted(documented - built)}"
    )
    assert f"`{redis_keys.REVOCATION_CHANNEL}`" in section
