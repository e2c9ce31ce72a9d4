"""`make bench`: keygate measured against nginx on this machine (see docs/performance.md).

Not part of the test suite: nothing here is named ``test_*``, so pytest never collects it.
Run it with ``make bench`` or ``python -m tests.bench --help``.
"""
