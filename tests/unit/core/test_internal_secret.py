"""The internal secret and, during a rotation, the previous one: which are accepted, and which
keys are derived from them."""

from __future__ import annotations

import pytest

from keygate_core.envconfig import SettingsError
from keygate_core.internal_secret import InternalSecrets, presented_matches
from keygate_core.session_record import open_session, seal_session, session_record_keys
from keygate_core.shared_settings import check_internal_secret

NEW = "n" * 40
OLD = "o" * 40


def test_both_secrets_are_accepted_during_a_rotation_and_only_they() -> None:
    """Current and previous pass; anything else (a prefix, empty) fails."""
    accepted = InternalSecrets(NEW, OLD).accepted()
    assert presented_matches(NEW, accepted) and presented_matches(OLD, accepted)
    for wrong in ("", NEW[:-1], "x" * 40):
        assert not presented_matches(wrong, accepted)
    assert (
        InternalSecrets(NEW).accepted() == InternalSecrets(NEW, NEW).accepted() == (NEW.encode(),)
    )


def test_a_short_previous_secret_is_refused_naming_the_variable() -> None:
    """KEYGATE_INTERNAL_SECRET_PREVIOUS, when set, needs 32 characters like the current one."""
    with pytest.raises(SettingsError, match=r"^KEYGATE_INTERNAL_SECRET_PREVIOUS"):
        check_internal_secret(NEW, "short")
    assert check_internal_secret(NEW, OLD) == InternalSecrets(NEW, OLD)


def test_session_records_sealed_with_the_previous_secret_open_during_the_rotation() -> None:
    """A record sealed before the rotation opens with both keys, not with the new key alone."""
    sealed = seal_session(session_record_keys(InternalSecrets(OLD))[0], "k", {"userId": "u"})
    assert open_session(session_record_keys(InternalSecrets(NEW, OLD)), "k", sealed) == {
        "userId": "u"
    }
    assert open_session(session_record_keys(InternalSecrets(NEW)), "k", sealed) is None
    assert open_session(session_record_keys(InternalSecrets(OLD)), "other key", sealed) is None
