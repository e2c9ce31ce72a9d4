"""``python -m tests.bench.sizing <bench JSON>``: the sizing tables of docs/operations/scaling.md.

Prints the measured inputs and the sizing table for a benchmark's JSON report (its ``sizing``
section, :mod:`tests.bench.sizing_run`); ``--update-docs`` also copies the JSON to
docs/operations/scaling-bench.json and rewrites the tables in scaling.md (``make sizing-docs``),
which tests/docs/test_scaling.py holds to that JSON. The model is :mod:`tests.bench.sizing_model`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path
from typing import Any

from tests.bench.sizing_model import Assumptions, Costs, size

ROOT = Path(__file__).resolve().parents[2]
DOCS_JSON = ROOT / "docs" / "operations" / "scaling-bench.json"
DOCS_PAGE = ROOT / "docs" / "operations" / "scaling.md"
BEGIN, END = "<!-- sizing-table: begin -->", "<!-- sizing-table: end -->"
RATES = (10_000, 100_000, 1_000_000)


def _n(value: float) -> str:
    """A count for the table: three significant figures, thousands separated."""
    if value == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{round(value, digits):,.{min(digits, 2)}f}"


def inputs_table(report: dict[str, Any], costs: Costs) -> list[str]:
    """The measured figures the model uses, with where each comes from."""
    s = report["sizing"]
    rows = [
        ("gateway CPU per request, L1 hit", f"{costs.gateway_hit * 1e6:.0f} µs", "`l1_hit`"),
        ("gateway CPU per request, L1 miss", f"{costs.gateway_miss * 1e6:.0f} µs", "`l1_miss`"),
        (
            "introspector CPU per introspection, Redis hit",
            f"{costs.introspect_hit * 1e6:.0f} µs",
            "`l1_miss`",
        ),
        (
            "introspector CPU per introspection, Redis miss (Postgres)",
            f"{costs.introspect_miss * 1e6:.0f} µs",
            "`redis_miss`",
        ),
        ("argon2 per core-second", f"{costs.argon2_per_core:.1f}", "`argon2`"),
        ("limiter lease scripts per request", f"{costs.lease_scripts:.3f}", "`l1_hit`"),
        (
            "Redis commands / round trips per request, by the limiter",
            f"{costs.commands_gateway:.3f} / {costs.round_trips_gateway:.3f}",
            "`l1_hit`",
        ),
        (
            "Redis commands / round trips per introspection, Redis hit",
            f"{costs.commands_hit:.3f} / {costs.round_trips_hit:.3f}",
            "`redis_hit`",
        ),
        (
            "Redis commands / round trips per introspection, Redis miss",
            f"{costs.commands_miss:.3f} / {costs.round_trips_miss:.3f}",
            "`redis_miss`",
        ),
        ("Postgres transactions per Redis miss", f"{costs.pg_per_miss:.2f}", "`redis_miss`"),
        (
            "Redis commands per Redis CPU-second (shard capacity)",
            f"{costs.redis_ops_per_core:,.0f}",
            "`l1_hit` + `l1_miss`",
        ),
        (
            "Redis bytes per cached token / bucket / usage counter",
            f"{costs.bytes_token:.0f} / {costs.bytes_bucket:.0f} / {costs.bytes_usage:.0f}",
            "`MEMORY USAGE`",
        ),
    ]
    machine = report.get("machine", {})
    load = report.get("load_average", {}).get("before", "unknown")
    lines = [
        f"Measured by the benchmark ({machine.get('cores', '?')} cores, "
        f"{machine.get('cpu', 'unknown CPU')}; {s['workers']} gateway workers, "
        f"{s['tokens']:,} distinct tokens, {s['connections']} connections, "
        f"{s['table_rows']:,} token rows; load average {load} before the run):",
        "",
        "| Measured | Value | Phase |",
        "|---|---:|---|",
    ]
    return lines + [f"| {a} | {b} | {c} |" for a, b, c in rows]


def sizing_table(costs: Costs, a: Assumptions) -> list[str]:
    """The fleet for each rate in :data:`RATES`."""
    lines = [
        "| req/s | L1 hit | Redis cache hit | introspections/s | Postgres transactions/s "
        "| gateway cores | introspector cores | Redis commands/s | Redis round trips/s "
        "| Redis memory (usage counters) | Redis shards |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in RATES:
        f = size(rate, costs, a)
        lines.append(
            f"| {f.rate:,.0f} | {f.l1_hit:.1%} | {f.cache_hit:.1%} | {_n(f.introspections)} "
            f"| {_n(f.pg_transactions)} | {f.gateway_cores:,} | {f.introspector_cores:,} "
            f"| {_n(f.redis_commands)} | {_n(f.redis_round_trips)} "
            f"| {f.redis_gb:,.1f} GB ({f.usage_gb:,.1f}) "
            f"| {f.redis_shards:,} |"
        )
    return lines


def sizing_markdown(report: dict[str, Any], a: Assumptions | None = None) -> list[str]:
    """Both tables, as the docs page shows them."""
    costs = Costs.from_report(report)
    return [*inputs_table(report, costs), "", *sizing_table(costs, a or Assumptions())]


def update_docs(report_path: Path, page: Path = DOCS_PAGE, copy_to: Path = DOCS_JSON) -> None:
    """Copy the report next to the page and rewrite the page's table from it."""
    if report_path.resolve() != copy_to.resolve():
        shutil.copyfile(report_path, copy_to)
    text = page.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    table = "\n".join(sizing_markdown(json.loads(copy_to.read_text())))
    page.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    """Print the tables for a bench JSON; ``--update-docs`` also rewrites scaling.md."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench.sizing", description=__doc__)
    parser.add_argument("report", type=Path, help="a JSON report of python -m tests.bench")
    parser.add_argument("--update-docs", action="store_true", help="rewrite scaling.md too")
    parser.add_argument("--live-tokens", type=int, default=Assumptions.live_tokens)
    parser.add_argument(
        "--new-tokens-per-second", type=float, default=Assumptions.new_tokens_per_second
    )
    parser.add_argument("--utilisation", type=float, default=Assumptions.utilisation)
    parser.add_argument("--shard-memory-gb", type=float, default=Assumptions.shard_memory_gb)
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text())
    if "sizing" not in report:
        print(f"{args.report} has no sizing section: re-run the benchmark", file=sys.stderr)
        return 2
    assumptions = Assumptions(
        live_tokens=args.live_tokens,
        new_tokens_per_second=args.new_tokens_per_second,
        utilisation=args.utilisation,
        shard_memory_gb=args.shard_memory_gb,
    )
    print("\n".join(sizing_markdown(report, assumptions)))
    if args.update_docs:
        if assumptions != Assumptions():
            print("--update-docs uses the page's assumptions: drop the others", file=sys.stderr)
            return 2
        update_docs(args.report)
        print(f"wrote {DOCS_JSON.relative_to(ROOT)} and {DOCS_PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
