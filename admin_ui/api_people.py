"""The people calls of the management API, for the organisation admins' People pages.

Everything an admin does to a person here — list, add, set a password, deactivate, reactivate —
is one call to the introspector's ``/users`` endpoints (docs/introspector-api.md), the same calls
a script with an ORGANIZATION key makes. The UI decides nothing: who may do what is the API's
answer, and a refusal reaches the page as an :class:`~admin_ui.api_client.ApiError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from admin_ui.api_client import API, ApiError, Caller, IntrospectorClient, parsed
from admin_ui.api_models import (
    MalformedAnswer,
    list_of,
    object_of,
    optional_int,
    optional_str,
    optional_time,
    required_str,
    required_time,
)

#: How many people one page of the People list shows (and one API call fetches).
PAGE_SIZE = 50


@dataclass(frozen=True)
class Person:
    """A person as the API describes them; never their password or its hash."""

    id: str
    email: str
    is_admin: bool
    created_at: datetime
    deactivated_at: datetime | None
    has_password: bool
    external_id: str | None
    live_tokens: int

    @property
    def active(self) -> bool:
        """Whether they may sign in and use keys."""
        return self.deactivated_at is None

    @classmethod
    def parse(cls, data: Any) -> Person:
        body = object_of(data)
        flags = {key: body.get(key) for key in ("isAdmin", "hasPassword")}
        if not all(isinstance(value, bool) for value in flags.values()):
            raise MalformedAnswer("isAdmin and hasPassword must be booleans")
        return cls(
            id=required_str(body, "id"),
            email=required_str(body, "email"),
            is_admin=bool(flags["isAdmin"]),
            created_at=required_time(body, "createdAt"),
            deactivated_at=optional_time(body, "deactivatedAt"),
            has_password=bool(flags["hasPassword"]),
            external_id=optional_str(body, "externalId"),
            live_tokens=optional_int(body, "liveTokens") or 0,
        )


@dataclass(frozen=True)
class PeoplePage:
    """One page of the people list, ordered by e-mail."""

    items: tuple[Person, ...]
    next_offset: int | None

    @classmethod
    def parse(cls, data: Any) -> PeoplePage:
        body = object_of(data)
        items = tuple(Person.parse(item) for item in list_of(body, "items"))
        return cls(items, optional_int(body, "nextOffset"))


@dataclass(frozen=True)
class Deactivation:
    """A person just deactivated, and how many of their keys that revoked."""

    person: Person
    revoked_tokens: int

    @classmethod
    def parse(cls, data: Any) -> Deactivation:
        body = object_of(data)
        return cls(Person.parse(body.get("user")), optional_int(body, "revokedTokens") or 0)


def _person_of(data: Any) -> Person:
    return Person.parse(object_of(data).get("user"))


class PeopleClient:
    """Typed people calls, made for ``caller`` through the UI's introspector client."""

    def __init__(self, client: IntrospectorClient) -> None:
        self._client = client

    async def list(
        self,
        caller: Caller,
        *,
        query: str = "",
        status: str = "",
        limit: int = PAGE_SIZE,
        offset: int = 0,
    ) -> PeoplePage:
        """One page of people whose e-mail contains ``query`` (``status``: active/deactivated)."""
        params = {"limit": str(limit), "offset": str(offset)}
        if query:
            params["q"] = query
        if status:
            params["status"] = status
        body = await self._client.call("GET", f"{API}/users", caller=caller, params=params)
        return parsed(PeoplePage.parse, body)

    async def find(self, caller: Caller, person_id: str) -> Person | None:
        """The person with ``person_id``, or ``None`` when there is nobody with that id."""
        try:
            body = await self._client.call("GET", f"{API}/users/{person_id}", caller=caller)
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return parsed(Person.parse, body)

    async def add(self, caller: Caller, *, email: str, password: str | None) -> Person:
        """Add a person (a password is optional: people who sign in through the app have none)."""
        payload: dict[str, Any] = {"email": email}
        if password:
            payload["password"] = password
        body = await self._client.call("POST", f"{API}/users", caller=caller, json=payload)
        return parsed(Person.parse, body)

    async def set_password(self, caller: Caller, person_id: str, password: str) -> None:
        """Set or reset their password; the API ends every session they have."""
        await self._client.call(
            "PUT", f"{API}/users/{person_id}/password", caller=caller, json={"password": password}
        )

    async def deactivate(self, caller: Caller, person_id: str) -> Deactivation:
        """Deactivate them: their keys are revoked and their sessions ended, in one go."""
        body = await self._client.call("POST", f"{API}/users/{person_id}/deactivate", caller=caller)
        return parsed(Deactivation.parse, body)

    async def reactivate(self, caller: Caller, person_id: str) -> Person:
        """Let them sign in again (their old keys stay revoked)."""
        body = await self._client.call("POST", f"{API}/users/{person_id}/reactivate", caller=caller)
        return parsed(_person_of, body)
