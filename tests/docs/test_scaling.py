"""docs/operations/scaling.md shows exactly what its committed benchmark report gives.

The page's tables are recomputed from docs/operations/scaling-bench.json with the page's
assumptions; a figure edited by hand, or a model changed without ``make sizing-docs``, fails
here. The assumptions themselves must be keygate's defaults, and the page must state them.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from typing import Any

from gateway.settings import GatewaySettings
from gateway.usage import RETENTION_SECONDS, UsageRecorder
from introspector.settings import IntrospectorSettings
from tests.bench import sizing
from tests.bench.sizing_model import Assumptions


def _default(settings_cls: type[Any], variable: str) -> Any:
    for field in dataclasses.fields(settings_cls):
        spec = field.metadata.get("spec")
        if spec is not None and spec.env == variable:
            return field.default
    raise AssertionError(f"{variable} is not a setting of {settings_cls.__name__}")


def test_the_tables_are_those_of_the_committed_report() -> None:
    page = sizing.DOCS_PAGE.read_text()
    shown = page.split(sizing.BEGIN, 1)[1].split(sizing.END, 1)[0].strip("\n")
    report = json.loads(sizing.DOCS_JSON.read_text())
    assert shown == "\n".join(sizing.sizing_markdown(report)), (
        "scaling.md's tables differ from docs/operations/scaling-bench.json: "
        "run `make sizing-docs SIZING_JSON=<the bench report>`"
    )


def test_the_assumptions_are_keygates_defaults_and_on_the_page() -> None:
    a = Assumptions()
    assert a.l1_ttl == _default(GatewaySettings, "KEYGATE_L1_CACHE_TTL_SECONDS")
    assert a.cache_ttl == _default(IntrospectorSettings, "KEYGATE_CACHE_TTL_SECONDS")
    limit = _default(GatewaySettings, "KEYGATE_RATE_LIMIT_PER_MINUTE")
    # A bucket's PEXPIRE after one take: the time to refill that token, plus a second.
    assert a.bucket_seconds == 60 / limit + 1
    assert a.usage_minutes * 60 == RETENTION_SECONDS
    assert inspect.signature(UsageRecorder.run).parameters["interval"].default == a.usage_flush
    page = sizing.DOCS_PAGE.read_text()
    for row in (
        f"| Live tokens | {a.live_tokens:,} |",
        f"| New tokens a second | {a.new_tokens_per_second:g} |",
        f"| L1 TTL | {a.l1_ttl:g} s |",
        f"| Redis cache TTL | {a.cache_ttl:g} s |",
        f"| Rate limit | {limit}/min per token |",
        f"| Planned utilisation | {a.utilisation:.0%} |".replace("%", " %"),
        f"| Memory per Redis shard | {a.shard_memory_gb:g} GB |",
    ):
        assert row in page, row
