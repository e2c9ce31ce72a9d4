"""The in-process fallback bucket's own promises: bounded memory, LRU eviction, checked input.

Its rate-limiting behaviour is the shared contract in tests/integration/test_rate_limit.py.
"""

from __future__ import annotations

import pytest

from gateway.pipeline.limit import LocalTokenBucket


async def test_memory_is_bounded() -> None:
    """However many keys are hit, at most max_keys buckets are held."""
    bucket = LocalTokenBucket(max_keys=100)
    for i in range(1_000):
        await bucket.hit(f"tok_{i}", 10)
    assert len(bucket) == 100


async def test_least_recently_used_bucket_is_forgotten_first() -> None:
    """A bucket hit recently survives eviction; the stalest one is dropped and comes back full."""
    bucket = LocalTokenBucket(max_keys=2)
    await bucket.hit("a", 1)
    await bucket.hit("b", 1)
    assert not (await bucket.hit("a", 1)).allowed  # touches "a": now "b" is the stalest
    await bucket.hit("c", 1)  # evicts "b"
    assert not (await bucket.hit("a", 1)).allowed
    assert (await bucket.hit("b", 1)).allowed


async def test_never_degraded() -> None:
    """The local bucket is the fallback itself, so its own answers are never flagged degraded."""
    bucket = LocalTokenBucket()
    decisions = [await bucket.hit("a", 1) for _ in range(2)]
    assert [(d.allowed, d.degraded) for d in decisions] == [(True, False), (False, False)]


@pytest.mark.parametrize("max_keys", [0, -5])
def test_rejects_empty_capacity(max_keys: int) -> None:
    """A bucket store that could hold no key is a configuration error."""
    with pytest.raises(ValueError, match="max_keys"):
        LocalTokenBucket(max_keys=max_keys)
