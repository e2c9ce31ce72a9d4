"""argon2id hashing of token secrets and passwords, verified off the event loop.

argon2 is deliberately slow (tens of milliseconds at OWASP's m=19 MiB, t=2), so verification runs
in a small thread pool — argon2-cffi releases the GIL while hashing — behind a semaphore that caps
how many run at once. Callers that exceed the cap queue instead of starving the loop.

Token secrets also get a fast keyed verifier (:attr:`SecretHasher.token_verifier`): a token
secret is 256 random bits, so argon2 is not what protects it; argon2 stays the storage hash, and
the verifier is the extra lane that recognises the right secret without argon2's cost or gates.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from introspector.keyed_mac import TOKEN_VERIFIER, KeyedMac
from introspector.settings import IntrospectorSettings


@dataclass(frozen=True)
class Argon2Params:
    """argon2id cost parameters; memory in KiB."""

    time_cost: int = 2
    memory_kib: int = 19456
    parallelism: int = 1


class SecretHasher:
    """Hashes and verifies secrets with argon2id; owns the verification thread pool."""

    def __init__(
        self,
        params: Argon2Params,
        max_concurrency: int = 2,
        token_verifier: KeyedMac | None = None,
        hash_concurrency: int = 1,
        *,
        previous_verifier: KeyedMac | None = None,
    ) -> None:
        self.params = params
        #: MACs token secrets for the fast verifier column; ``None``: tokens get no verifier
        #: (then their first successful argon2 verification in the introspector adds one).
        self.token_verifier = token_verifier
        #: The verifier of ``KEYGATE_INTERNAL_SECRET_PREVIOUS`` during a rotation: rows made
        #: under it still verify without argon2 (and are rewritten under the current key).
        self.previous_verifier = previous_verifier
        self._hasher = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # Separate budgets: a flood of creates (hashing) never takes a verification's slot.
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrency + hash_concurrency, thread_name_prefix="argon2"
        )
        self._slots = asyncio.Semaphore(max_concurrency)
        self._hash_slots = asyncio.Semaphore(hash_concurrency)

    @classmethod
    def from_settings(cls, settings: IntrospectorSettings) -> SecretHasher:
        """The hasher the ``KEYGATE_ARGON2_*`` settings describe."""
        params = Argon2Params(
            settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
        )
        verifier = (
            KeyedMac.derive(settings.internal_secret, TOKEN_VERIFIER)
            if settings.internal_secret
            else None
        )
        previous = settings.internal_secret_previous
        return cls(
            params,
            settings.argon2_max_concurrency,
            verifier,
            settings.argon2_hash_concurrency,
            previous_verifier=KeyedMac.derive(previous, TOKEN_VERIFIER) if previous else None,
        )

    def hash(self, secret: str) -> str:
        """The encoded ``$argon2id$...`` hash of ``secret`` (blocking; use :meth:`hash_async`)."""
        return self._hasher.hash(secret)

    async def hash_async(self, secret: str) -> str:
        """:meth:`hash` in the pool, at most ``hash_concurrency`` at a time."""
        async with self._hash_slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self.hash, secret)

    def verify(self, encoded: str, secret: str) -> bool:
        """Whether ``secret`` matches ``encoded`` (blocking). Malformed hashes never match."""
        try:
            return self._hasher.verify(encoded, secret)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def verify_async(self, encoded: str, secret: str) -> bool:
        """:meth:`verify` in the pool, at most ``max_concurrency`` at a time."""
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self.verify, encoded, secret)

    def needs_rehash(self, encoded: str) -> bool:
        """Whether ``encoded`` was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(encoded)
        except InvalidHashError:
            return True

    def close(self) -> None:
        """Stop the pool (pending verifications finish first)."""
        self._executor.shutdown(wait=True)
