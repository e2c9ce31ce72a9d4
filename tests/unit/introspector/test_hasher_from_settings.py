"""SecretHasher.from_settings: the hasher every keygate entry point builds from KEYGATE_ARGON2_*."""

from __future__ import annotations

from argon2 import extract_parameters

from introspector.hashing import Argon2Params, SecretHasher
from introspector.settings import IntrospectorSettings


def test_from_settings_hashes_with_the_configured_parameters() -> None:
    """Time cost, memory and lanes come from the settings and end up in every hash it makes."""
    settings = IntrospectorSettings(
        argon2_time_cost=3, argon2_memory_kib=4096, argon2_parallelism=2, allow_weak_argon2=True
    )
    hasher = SecretHasher.from_settings(settings)
    try:
        assert hasher.params == Argon2Params(time_cost=3, memory_kib=4096, parallelism=2)
        encoded = extract_parameters(hasher.hash("s3cret"))
        assert (encoded.time_cost, encoded.memory_cost, encoded.parallelism) == (3, 4096, 2)
    finally:
        hasher.close()


def test_from_settings_defaults_are_the_owasp_parameters() -> None:
    """With the settings' defaults the hasher uses Argon2Params' defaults (m=19 MiB, t=2, p=1)."""
    hasher = SecretHasher.from_settings(IntrospectorSettings())
    try:
        assert hasher.params == Argon2Params()
    finally:
        hasher.close()
