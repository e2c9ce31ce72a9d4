"""The People pages read the API's person objects strictly: never a guess about someone's state."""

from __future__ import annotations

from typing import Any

import pytest

from admin_ui.api_models import MalformedAnswer
from admin_ui.api_people import Deactivation, PeoplePage, Person

PERSON: dict[str, Any] = {
    "id": "7b0c1c1e-52a4-4e0e-9a55-5a1d3c1b2f10",
    "email": "ada@example.com",
    "isAdmin": False,
    "createdAt": "2026-12-01T10:00:00+00:00",
    "deactivatedAt": None,
    "hasPassword": True,
    "externalId": None,
    "liveTokens": 2,
}


def test_a_person_and_a_page_of_people_parse() -> None:
    page = PeoplePage.parse({"items": [PERSON], "nextOffset": 50})
    assert page.next_offset == 50
    (person,) = page.items
    assert (person.email, person.active, person.live_tokens) == ("ada@example.com", True, 2)
    gone = Person.parse(PERSON | {"deactivatedAt": "2026-12-02T10:00:00+00:00"})
    assert not gone.active


def test_a_deactivation_says_how_many_keys_it_revoked() -> None:
    done = Deactivation.parse({"user": PERSON, "revokedTokens": 3})
    assert (done.person.id, done.revoked_tokens) == (PERSON["id"], 3)


@pytest.mark.parametrize(
    "broken",
    [
        PERSON | {"isAdmin": "no"},
        PERSON | {"hasPassword": None},
        PERSON | {"deactivatedAt": "yesterday"},
        {k: v for k, v in PERSON.items() if k != "email"},
    ],
    ids=["admin flag", "password flag", "deactivation time", "no e-mail"],
)
def test_a_malformed_person_is_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(MalformedAnswer):
        Person.parse(broken)
