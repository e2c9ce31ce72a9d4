"""The gateway's L1 cache: exact-token hits, expiry, revocation races and a deaf channel."""

from __future__ import annotations

from gateway.token_cache import L1Cache
from keygate_core.introspection_result import IntrospectionResult
from keygate_core.token_format import generate_token


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def active(expires_at: int | None = None) -> IntrospectionResult:
    return IntrospectionResult(active=True, token_id="t", user_id="u", expires_at=expires_at)


def listening_cache(clock: Clock, ttl: float = 10) -> L1Cache:
    cache = L1Cache(100, ttl, clock=clock)
    cache.listening = True
    return cache


def test_hit_only_for_the_exact_secret() -> None:
    """A cached id answers only for the secret it was verified with."""
    clock = Clock()
    cache = listening_cache(clock)
    _, parts = generate_token()
    cache.put(parts, active(), cache.epoch)
    assert cache.lookup(parts)[1] is not None
    _, impostor = generate_token(parts.public_id)
    assert cache.lookup(impostor)[1] is None


def test_another_secret_for_a_trusted_entry_is_a_wrong_secret() -> None:
    """A trusted entry refuses other secrets for its id; one no longer trusted decides nothing."""
    # wrong_secret is refused without asking the introspector; an unknown id is a miss.
    clock = Clock()
    cache = listening_cache(clock)
    _, parts = generate_token()
    cache.put(parts, active(), cache.epoch)
    _, impostor = generate_token(parts.public_id)
    assert cache.lookup(parts)[0] == "hit"
    assert cache.lookup(impostor) == ("wrong_secret", None)
    assert cache.lookup(generate_token()[1]) == ("miss", None)

    cache.listening = False  # revocations unheard: the entry is trusted for one second only
    clock.now += 1.5
    assert cache.lookup(impostor) == ("miss", None)
    cache.listening = True
    clock.now += 9  # past the TTL
    assert cache.lookup(impostor) == ("miss", None)
    cache.put(parts, active(), cache.epoch)
    cache.evict(parts.public_id)  # revoked
    assert cache.lookup(impostor) == ("miss", None)


def test_entries_expire_at_ttl_and_never_outlive_the_token() -> None:
    """TTL bounds an entry, and so does the token's own expiry."""
    clock = Clock()
    cache = listening_cache(clock, ttl=10)
    _, parts = generate_token()
    cache.put(parts, active(expires_at=int(clock.now) + 3), cache.epoch)
    clock.now += 3
    assert cache.lookup(parts)[1] is None


def test_answer_fetched_before_a_revocation_is_not_cached() -> None:
    """An introspection in flight while a revocation arrives cannot re-cache the token."""
    clock = Clock()
    cache = listening_cache(clock)
    _, parts = generate_token()
    epoch = cache.epoch  # the request starts introspecting ...
    cache.evict(parts.public_id)  # ... the revocation message arrives ...
    cache.put(parts, active(), epoch)  # ... and the (stale) active answer comes back
    assert cache.lookup(parts)[1] is None


def test_without_the_revocation_channel_entries_last_one_second() -> None:
    """While revocations cannot be heard, a cached verdict is trusted for one second only."""
    clock = Clock()
    cache = L1Cache(100, 10, clock=clock)
    cache.listening = False
    _, parts = generate_token()
    cache.put(parts, active(), cache.epoch)
    clock.now += 0.5
    assert cache.lookup(parts)[1] is not None
    clock.now += 0.6
    assert cache.lookup(parts)[1] is None


def test_size_is_bounded() -> None:
    """The cache never holds more than its size."""
    clock = Clock()
    cache = L1Cache(5, 10, clock=clock)
    cache.listening = True
    for _ in range(20):
        cache.put(generate_token()[1], active(), cache.epoch)
    assert len(cache) == 5


def test_exact_answers_only_the_verified_token_s_own_text() -> None:
    """``exact`` knows a warm token by its whole text: not its id and secret under another
    checksum, not another secret, and nothing once the entry is no longer trusted."""
    clock = Clock()
    cache = listening_cache(clock)
    text, parts = generate_token()
    result = active()
    cache.put(parts, result, cache.epoch)
    assert cache.exact(text) is result
    other_checksum = text[:-1] + ("A" if text[-1] != "A" else "B")
    assert cache.exact(other_checksum) is None
    assert cache.exact(generate_token(parts.public_id)[0]) is None
    assert cache.exact(text[:-1]) is None and cache.exact("") is None
    cache.listening = False
    clock.now += 1.5  # revocations unheard for longer than an entry is trusted then
    assert cache.exact(text) is None
