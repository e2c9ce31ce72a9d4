"""One set of metrics for all of a service's worker processes (see ``keygate_core.workers``).

Each worker of a multi-process gateway counts what it serves; a scrape reaches only one of them.
So that the scrape reports the whole gateway, the workers use prometheus_client's multiprocess
mode (https://prometheus.github.io/client_python/multiprocess/): the supervising parent makes a
fresh private directory and names it in ``PROMETHEUS_MULTIPROC_DIR`` before prometheus_client is
first imported — the library picks where values live once, at import. Every process then keeps
its values in memory-mapped files of its own in that directory, and a scrape of any worker reads
all of them: counters and histograms are summed, gauges as each declares (``multiprocess_mode``).

The price is on the request path: an increment also writes the mmap'd file (about half a
microsecond more per counter increment, one more per histogram observation; see
docs/performance.md). A single-process service keeps plain in-memory values and its own
registry, and :func:`scrape_registry` returns that registry unchanged.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

# Nothing of prometheus_client is imported at the top: the parent imports this module before it
# sets PROMETHEUS_MULTIPROC_DIR.
if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: The variable prometheus_client reads (once, when imported) to keep values in files.
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def shared_metrics_dir() -> Iterator[str]:
    """A new private directory (mode 0700, under ``TMPDIR``) named in ``PROMETHEUS_MULTIPROC_DIR``
    while the block runs, and removed with every worker's files afterwards.

    It must be entered before prometheus_client's values are imported in this process: a
    process that already counts in memory would fork workers that never share. An inherited
    ``PROMETHEUS_MULTIPROC_DIR`` is replaced, so no run reads another run's files.
    """
    if "prometheus_client.values" in sys.modules:
        raise RuntimeError(
            "prometheus_client was imported before the workers' metrics directory was set; "
            "import the service's application only in its app factory"
        )
    previous = os.environ.get(MULTIPROC_DIR)
    path = tempfile.mkdtemp(prefix="keygate-metrics-")
    os.environ[MULTIPROC_DIR] = path
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if previous is None:
            os.environ.pop(MULTIPROC_DIR, None)
        else:
            os.environ[MULTIPROC_DIR] = previous


def worker_exited(pid: int) -> None:
    """Forget the live gauges of worker ``pid``; its counts stay in the totals."""
    if not shares_metrics():
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def scrape_registry(own: CollectorRegistry) -> CollectorRegistry:
    """What a scrape of this process renders: ``own`` when it counts alone; when it shares a
    metrics directory with other workers, a registry that reads and merges all their files."""
    if not shares_metrics():
        return own
    from prometheus_client import CollectorRegistry, multiprocess

    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return merged


def shares_metrics() -> bool:
    """Whether this process's metrics are merged with other workers' at scrape time."""
    return bool(os.environ.get(MULTIPROC_DIR))
