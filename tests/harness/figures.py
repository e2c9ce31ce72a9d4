"""What a reliability test measured, for the run's "reliability figures" summary.

The ``figures`` fixture and the summary hook are in ``tests/reliability/conftest.py``; tests
annotate the fixture with this type and put their numbers in it.
"""

from __future__ import annotations


class Figures(dict[str, object]):
    """What one test measured, by name (shown in the run's summary)."""
