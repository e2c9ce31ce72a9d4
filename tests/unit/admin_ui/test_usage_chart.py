"""The usage chart: an inline SVG drawn server-side from per-minute counts."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from admin_ui.usage_chart import (
    WINDOW_MINUTES,
    nice_ceiling,
    render_usage_svg,
    summarise,
    window,
)

NOW = datetime(2026, 11, 23, 14, 47, 37, tzinfo=UTC)
LAST = int(NOW.timestamp() // 60)
SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # noqa: S314 - our own output, not untrusted XML


def test_empty_usage_draws_axes_and_says_so() -> None:
    """No traffic: a well-formed svg#usage-chart with a message and no bars."""
    root = parse(render_usage_svg([], NOW))
    assert root.tag == f"{SVG}svg"
    assert root.get("id") == "usage-chart"
    assert root.get("role") == "img"
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "No requests in the last 24 hours" in texts
    assert root.find(f"{SVG}path") is None
    assert "none" in (root.findtext(f"{SVG}title") or "")


def test_each_minute_with_traffic_is_one_bar() -> None:
    """One path segment per minute, the tallest reaching the top of a 1-2-5 axis."""
    minutes = [(LAST - 5, 3), (LAST - 100, 12), (LAST - 1000, 1)]
    root = parse(render_usage_svg(minutes, NOW))
    path = root.find(f"{SVG}path")
    assert path is not None and path.get("class") == "chart-bars"
    segments = re.findall(r"M[\d.]+ [\d.]+V[\d.]+", path.get("d", ""))
    assert len(segments) == 3
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "20" in labels and "0" in labels
    title = root.findtext(f"{SVG}title") or ""
    assert "16 in total" in title and "at most 12" in title


def test_bars_are_placed_in_time_order_within_the_plot() -> None:
    """Older minutes are further left; every bar lies between the axes."""
    root = parse(render_usage_svg([(LAST, 1), (LAST - WINDOW_MINUTES + 1, 1)], NOW))
    path = root.find(f"{SVG}path")
    assert path is not None
    xs = [float(x) for x in re.findall(r"M([\d.]+) ", path.get("d", ""))]
    assert xs == sorted(xs) and len(xs) == 2
    assert 48 <= xs[0] < xs[1] <= 960 - 12


def test_minutes_outside_the_window_are_ignored() -> None:
    """Counts older than 24 h, from the future, or zero never reach the chart."""
    counts = window([(LAST - WINDOW_MINUTES, 9), (LAST + 1, 9), (LAST - 1, 0), (LAST, 2)], NOW)
    assert counts == {LAST: 2}


def test_summary_totals_and_busiest_minute() -> None:
    """Total, peak count, when the peak happened and how many minutes had traffic."""
    summary = summarise({LAST - 2: 4, LAST - 1: 7, LAST: 1})
    assert (summary.total, summary.peak, summary.active_minutes) == (12, 7, 3)
    assert summary.peak_at == datetime.fromtimestamp((LAST - 1) * 60, UTC)
    assert summarise({}).peak_at is None


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 1), (1, 1), (2, 2), (3, 5), (6, 10), (12, 20), (99, 100), (101, 200), (4500, 5000)],
)
def test_axis_top_is_a_round_number(value: int, top: int) -> None:
    """The axis ends at the next 1, 2 or 5 × 10ⁿ at or above the busiest minute."""
    assert nice_ceiling(value) == top


def test_large_axis_labels_are_compact() -> None:
    """Thousands and millions are written 2.5k / 1M so they fit the margin."""
    root = parse(render_usage_svg([(LAST, 1_000_000)], NOW))
    labels = {t.text for t in root.iter(f"{SVG}text")}
    assert {"1M", "500k", "0"} <= labels
