"""The create form's one-time nonces: signed, dated, remembered in a bounded map."""

from __future__ import annotations

import pytest

from admin_ui.nonces import NonceStore, Redemption


class Clock:
    """A settable clock for the store."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def store(clock: Clock, *, ttl_seconds: float = 3600, capacity: int = 10_000) -> NonceStore:
    return NonceStore("s" * 40, clock=clock, ttl_seconds=ttl_seconds, capacity=capacity)


def test_a_nonce_is_fresh_once_then_reused() -> None:
    """The first redemption goes ahead; every later one reports a resubmission."""
    nonces = store(Clock())
    nonce = nonces.issue()
    assert nonces.redeem(nonce) is Redemption.FRESH
    assert nonces.redeem(nonce) is Redemption.REUSED
    assert nonces.redeem(nonce) is Redemption.REUSED


def test_issued_nonces_are_unique() -> None:
    """Every rendering of the form gets its own nonce."""
    nonces = store(Clock())
    assert len({nonces.issue() for _ in range(1000)}) == 1000


@pytest.mark.parametrize(
    "nonce",
    ["", "abc", "1800000000.random.0000", "not-a-time.x.y", "..."],
    ids=["empty", "junk", "bad-mac", "bad-time", "dots"],
)
def test_nonces_not_issued_here_are_invalid(nonce: str) -> None:
    """Missing, malformed and forged nonces are refused, and nothing is remembered."""
    nonces = store(Clock())
    assert nonces.redeem(nonce) is Redemption.INVALID
    assert len(nonces) == 0


def test_a_nonce_from_another_secret_is_invalid() -> None:
    """A nonce signed with another deployment's secret does not verify."""
    clock = Clock()
    foreign = NonceStore("t" * 40, clock=clock).issue()
    assert store(clock).redeem(foreign) is Redemption.INVALID


def test_a_nonce_from_the_previous_secret_redeems_during_a_rotation() -> None:
    """Forms rendered before the secret rotated still submit; a third secret's nonces do not."""
    clock = Clock()
    before = NonceStore("s" * 40, clock=clock).issue()
    rotated = NonceStore("n" * 40, previous="s" * 40, clock=clock)
    assert rotated.redeem(before) is Redemption.FRESH
    assert rotated.redeem(NonceStore("t" * 40, clock=clock).issue()) is Redemption.INVALID
    assert rotated.redeem(rotated.issue()) is Redemption.FRESH


def test_a_tampered_timestamp_is_invalid() -> None:
    """Changing the issue time breaks the signature."""
    clock = Clock()
    nonces = store(clock)
    issued, rest = nonces.issue().split(".", 1)
    assert nonces.redeem(f"{int(issued) + 1}.{rest}") is Redemption.INVALID


def test_an_old_nonce_is_invalid_rather_than_forgotten_and_fresh() -> None:
    """Past the TTL a nonce is refused, so dropping old entries never re-enables a replay."""
    clock = Clock()
    nonces = store(clock, ttl_seconds=3600)
    used, unused = nonces.issue(), nonces.issue()
    assert nonces.redeem(used) is Redemption.FRESH
    clock.now += 3601
    assert nonces.redeem(used) is Redemption.INVALID
    assert nonces.redeem(unused) is Redemption.INVALID
    assert len(nonces) == 0


def test_remembered_nonces_are_bounded() -> None:
    """Past capacity the oldest redemptions are dropped first."""
    clock = Clock()
    nonces = store(clock, capacity=3)
    issued = [nonces.issue() for _ in range(5)]
    for nonce in issued:
        assert nonces.redeem(nonce) is Redemption.FRESH
    assert len(nonces) == 3
    assert [nonces.redeem(n) for n in issued[2:]] == [Redemption.REUSED] * 3
