"""argon2id hashing of secrets: parameters, verification, rehash detection, off-loop execution."""

from __future__ import annotations

import asyncio
import threading

import pytest
from argon2 import extract_parameters

from introspector.hashing import Argon2Params, SecretHasher


def test_hash_is_argon2id_with_at_least_owasp_parameters(hasher: SecretHasher) -> None:
    """The default hash is argon2id with m ≥ 19 MiB, t ≥ 2, p ≥ 1."""
    encoded = hasher.hash("s3cret")
    assert encoded.startswith("$argon2id$")
    params = extract_parameters(encoded)
    assert params.memory_cost >= 19 * 1024
    assert params.time_cost >= 2
    assert params.parallelism >= 1
    assert "s3cret" not in encoded


def test_hashes_are_salted(hasher: SecretHasher) -> None:
    """The same secret hashes differently each time."""
    assert hasher.hash("same") != hasher.hash("same")


async def test_verify_accepts_right_and_refuses_wrong_secret(hasher: SecretHasher) -> None:
    """verify_async is true only for the secret that was hashed."""
    encoded = await hasher.hash_async("right")
    assert await hasher.verify_async(encoded, "right")
    assert not await hasher.verify_async(encoded, "wrong")
    assert not await hasher.verify_async(encoded, "")


@pytest.mark.parametrize("garbage", ["", "plain", "$argon2id$garbage", "$2b$12$bcrypthash"])
def test_malformed_stored_hash_never_verifies(hasher: SecretHasher, garbage: str) -> None:
    """A corrupt stored hash is a refusal, not an exception."""
    assert hasher.verify(garbage, "anything") is False


def test_needs_rehash_when_parameters_change(hasher: SecretHasher) -> None:
    """A hash made with weaker parameters is flagged for rehashing; a current one is not."""
    weak = SecretHasher(Argon2Params(time_cost=1, memory_kib=1024, parallelism=1))
    try:
        old = weak.hash("secret")
    finally:
        weak.close()
    assert hasher.needs_rehash(old)
    assert not hasher.needs_rehash(hasher.hash("secret"))
    assert hasher.verify(old, "secret")


async def test_verification_runs_off_the_event_loop() -> None:
    """argon2 runs on a worker thread, never on the thread that runs the event loop."""
    spied = SecretHasher(Argon2Params(), max_concurrency=2)
    encoded = spied.hash("secret")
    threads: set[int] = set()
    original = spied.verify

    def recording_verify(encoded: str, secret: str) -> bool:
        threads.add(threading.get_ident())
        return original(encoded, secret)

    spied.verify = recording_verify  # type: ignore[method-assign]
    try:
        assert await spied.verify_async(encoded, "secret")
    finally:
        spied.close()
    assert threads
    assert threading.get_ident() not in threads


async def test_concurrency_is_capped() -> None:
    """No more than max_concurrency verifications run at the same moment."""
    capped = SecretHasher(Argon2Params(), max_concurrency=1)
    encoded = capped.hash("secret")
    running = 0
    peak = 0
    original = capped.verify

    def counting_verify(encoded: str, secret: str) -> bool:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            return original(encoded, secret)
        finally:
            running -= 1

    capped.verify = counting_verify  # type: ignore[method-assign]
    try:
        results = await asyncio.gather(*(capped.verify_async(encoded, "secret") for _ in range(4)))
    finally:
        capped.close()
    assert results == [True] * 4
    assert peak == 1


async def test_hashing_never_takes_a_verification_slot() -> None:
    """With every hash slot busy (a flood of creates), a verification still runs straight away."""
    hasher = SecretHasher(Argon2Params(), max_concurrency=1, hash_concurrency=1)
    encoded = hasher.hash("secret")
    release = threading.Event()
    original = hasher.hash

    def stuck_hash(secret: str) -> str:
        release.wait(10)
        return original(secret)

    hasher.hash = stuck_hash  # type: ignore[method-assign]
    hashes = [asyncio.create_task(hasher.hash_async(f"s{i}")) for i in range(3)]
    try:
        await asyncio.sleep(0.05)
        assert await asyncio.wait_for(hasher.verify_async(encoded, "secret"), timeout=5)
    finally:
        release.set()
        await asyncio.gather(*hashes)
        hasher.close()
