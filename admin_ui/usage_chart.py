"""Requests per minute over the last 24 hours, drawn server-side as an inline SVG.

No JavaScript and no external image: the chart is markup in the page, styled by the page's
stylesheet (classes only — the Content-Security-Policy allows no inline styles). Minutes without
traffic are absent from the API's answer and drawn as nothing; each minute with traffic is one
vertical bar, all bars in one ``<path>`` so a busy day stays a small document.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup, escape

WINDOW_MINUTES = 24 * 60
WIDTH, HEIGHT = 960, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 16, 28
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class UsageSummary:
    """Totals shown next to the chart."""

    total: int
    peak: int
    peak_at: datetime | None
    active_minutes: int


def window(minutes: Iterable[tuple[int, int]], now: datetime) -> dict[int, int]:
    """Counts by epoch minute inside the 24 h ending at ``now``'s minute (others dropped)."""
    last = int(now.timestamp() // 60)
    first = last - WINDOW_MINUTES + 1
    counts: dict[int, int] = {}
    for minute, count in minutes:
        if first <= minute <= last and count > 0:
            counts[minute] = counts.get(minute, 0) + count
    return counts


def summarise(counts: dict[int, int]) -> UsageSummary:
    """Total, busiest minute and number of minutes with traffic."""
    if not counts:
        return UsageSummary(total=0, peak=0, peak_at=None, active_minutes=0)
    peak_minute = max(counts, key=lambda m: (counts[m], m))
    return UsageSummary(
        total=sum(counts.values()),
        peak=counts[peak_minute],
        peak_at=datetime.fromtimestamp(peak_minute * 60, UTC),
        active_minutes=len(counts),
    )


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 × 10ⁿ that is ≥ ``value`` (at least 1): a readable axis top."""
    if value <= 1:
        return 1
    magnitude = int("1" + "0" * (len(str(value)) - 1))
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def _fmt(number: float) -> str:
    return f"{number:.2f}".rstrip("0").rstrip(".")


def _compact(value: float) -> str:
    """Axis numbers that fit the margin: 950, 2.5k, 10k, 1.2M."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if value >= size:
            return _fmt(round(value / size, 1)) + suffix
    return _fmt(value)


def render_usage_svg(minutes: Iterable[tuple[int, int]], now: datetime) -> Markup:
    """The ``svg#usage-chart`` for ``minutes`` (``[epochMinute, count]`` pairs) up to ``now``."""
    counts = window(minutes, now)
    summary = summarise(counts)
    last = int(now.timestamp() // 60)
    first = last - WINDOW_MINUTES + 1
    top = nice_ceiling(summary.peak)
    step_x = PLOT_W / WINDOW_MINUTES
    baseline = TOP + PLOT_H

    parts: list[str] = [
        f'<svg id="usage-chart" class="usage-chart" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="usage-chart-title">',
        f'<title id="usage-chart-title">{escape(_title(summary))}</title>',
    ]
    for i in range(5):
        value = top * i / 4
        y = baseline - PLOT_H * i / 4
        parts.append(
            f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
            f'y1="{_fmt(y)}" y2="{_fmt(y)}"/>'
        )
        label = _compact(value) if value == int(value) else ""
        parts.append(
            f'<text class="chart-label" x="{LEFT - 6}" y="{_fmt(y + 4)}" '
            f'text-anchor="end">{label}</text>'
        )
    first_hour = (first // 60 + 1) * 60
    for minute in range(first_hour, last + 1, 180):
        x = LEFT + (minute - first) * step_x
        hour = datetime.fromtimestamp(minute * 60, UTC).strftime("%H:%M")
        parts.append(
            f'<line class="chart-tick" x1="{_fmt(x)}" x2="{_fmt(x)}" '
            f'y1="{baseline}" y2="{baseline + 4}"/>'
        )
        parts.append(
            f'<text class="chart-label" x="{_fmt(x)}" y="{HEIGHT - 8}" '
            f'text-anchor="middle">{hour}</text>'
        )
    if counts:
        segments = [
            f"M{_fmt(LEFT + (minute - first + 0.5) * step_x)} {baseline}"
            f"V{_fmt(baseline - PLOT_H * count / top)}"
            for minute, count in sorted(counts.items())
        ]
        parts.append(
            f'<path class="chart-bars" stroke-width="{_fmt(max(step_x, 1))}" '
            f'd="{"".join(segments)}"/>'
        )
    else:
        parts.append(
            f'<text class="chart-empty" x="{LEFT + PLOT_W / 2:.0f}" y="{TOP + PLOT_H / 2:.0f}" '
            f'text-anchor="middle">No requests in the last 24 hours</text>'
        )
    parts.append(
        f'<line class="chart-axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
        f'y1="{baseline}" y2="{baseline}"/>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - built from numbers and escaped text only


def _title(summary: UsageSummary) -> str:
    if summary.total == 0:
        return "Requests per minute over the last 24 hours: none"
    return (
        f"Requests per minute over the last 24 hours (UTC): {summary.total} in total, "
        f"at most {summary.peak} in one minute"
    )
