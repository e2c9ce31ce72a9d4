"""GatewayMetrics alone, and shared by worker processes (prometheus_client multiprocess mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import GatewayMetrics
from keygate_core.worker_metrics import MULTIPROC_DIR, scrape_registry, shared_metrics_dir

# Run in a fresh interpreter: prometheus_client must not be imported before the directory is set.
# Two forked "workers" count and set the L1 gauge, then exit; the parent reads the merged totals
# while they run and after they are gone.
_WORKERS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from keygate_core.worker_metrics import scrape_registry, shared_metrics_dir, worker_exited

    def totals(metrics):
        from prometheus_client import generate_latest
        from prometheus_client.parser import text_string_to_metric_families
        text = generate_latest(scrape_registry(metrics.registry)).decode()
        return {
            s.name + json.dumps(s.labels, sort_keys=True): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
        }

    with shared_metrics_dir() as path:
        from gateway.metrics import GatewayMetrics
        GatewayMetrics()  # the parent checks the configuration before forking
        pids = []
        for n in (1, 2):
            (ready, counted), (go, stop) = os.pipe(), os.pipe()
            pid = os.fork()
            if pid == 0:
                metrics = GatewayMetrics()
                metrics.labels(metrics.upstream_errors, "unreachable").inc(n)
                metrics.labels(metrics.request_duration, "/", "5xx").observe(0.003 * n)
                metrics.l1_entries.set(10 * n)
                os.write(counted, b"x")
                os.read(go, 1)  # until the parent has scraped
                os._exit(0)
            os.read(ready, 1)
            pids.append((pid, stop))
        running = totals(GatewayMetrics())
        for pid, stop in pids:
            os.write(stop, b"x")
            os.waitpid(pid, 0)
            worker_exited(pid)
        stopped = totals(GatewayMetrics())
    print(json.dumps({"running": running, "stopped": stopped, "removed": not os.path.exists(path)}))
    """
)


def _sample(totals: dict[str, float], name: str, **labels: str) -> float:
    return totals[name + json.dumps(labels, sort_keys=True)]


@pytest.fixture(scope="module")
def shared() -> dict[str, dict[str, float]]:
    """What the parent of two workers read from the shared directory (see _WORKERS_SCRIPT)."""
    env = {k: v for k, v in os.environ.items() if k != MULTIPROC_DIR}
    done = subprocess.run(
        [sys.executable, "-c", _WORKERS_SCRIPT], env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, dict[str, float]] = json.loads(done.stdout)
    return result


def test_counters_and_histograms_sum_over_workers_running_or_not(
    shared: dict[str, dict[str, float]],
) -> None:
    """Each worker's counts are in the totals, also after the worker has exited."""
    for when in ("running", "stopped"):
        totals = shared[when]
        assert _sample(totals, "keygate_gateway_upstream_errors_total", kind="unreachable") == 3
        count = "keygate_gateway_request_duration_seconds_count"
        assert _sample(totals, count, route="/", status="5xx") == 2
        bucket = "keygate_gateway_request_duration_seconds_bucket"
        assert _sample(totals, bucket, route="/", status="5xx", le="0.005") == 1


def test_pre_created_series_show_at_zero_when_shared(shared: dict[str, dict[str, float]]) -> None:
    """Series created at start-up are exported at zero by the merged scrape too."""
    totals = shared["running"]
    assert _sample(totals, "keygate_gateway_upstream_errors_total", kind="timeout") == 0
    assert _sample(totals, "keygate_ratelimit_decisions_total", result="limited") == 0
    assert _sample(totals, "keygate_ratelimit_degraded_total") == 0


def test_l1_entries_sum_over_running_workers_only(shared: dict[str, dict[str, float]]) -> None:
    """The L1 gauge adds up the running workers' caches and forgets exited workers."""
    assert _sample(shared["running"], "keygate_gateway_l1_cache_entries") == 30
    assert _sample(shared["stopped"], "keygate_gateway_l1_cache_entries") == 0


def test_the_shared_directory_is_removed(shared: dict[str, dict[str, float]]) -> None:
    """Leaving shared_metrics_dir removes the directory and every worker's files."""
    assert shared["removed"]


def test_a_single_process_renders_its_own_registry() -> None:
    """Without workers each app scrapes its own registry, pre-created series at zero."""
    metrics = GatewayMetrics()
    metrics.labels(metrics.upstream_errors, "unreachable").inc()
    assert scrape_registry(metrics.registry) is metrics.registry
    text = generate_latest(metrics.registry).decode()
    samples = {
        (s.name, s.labels.get("kind")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("keygate_gateway_upstream_errors_total", "unreachable")] == 1
    assert samples[("keygate_gateway_upstream_errors_total", "timeout")] == 0


def test_sharing_refuses_a_process_that_already_counts_in_memory() -> None:
    """Metrics cannot be shared once prometheus_client has been imported: that is an error."""
    before = os.environ.get(MULTIPROC_DIR)
    with pytest.raises(RuntimeError, match="imported before"), shared_metrics_dir():
        pass
    assert os.environ.get(MULTIPROC_DIR) == before
