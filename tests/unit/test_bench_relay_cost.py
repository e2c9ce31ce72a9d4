"""``python -m tests.bench.relay_cost``: the relay's Python per request, without sockets."""

from __future__ import annotations

from tests.bench import relay_cost


def test_both_requests_go_through_the_relay_and_are_measured() -> None:
    """The tool drives real relay callbacks: it fails unless each request reaches the
    upstream as it should (anonymous through the passthrough route, as the token's owner
    with the token; with the access log on, a line per request), and reports a CPU cost for
    each, hot and cold."""
    costs = relay_cost.measure(200, cold=20)
    assert sorted(costs) == ["bearer", "bearer, access log on", "passthrough"]
    assert all(0 < cost < 100_000 for pair in costs.values() for cost in pair), costs
