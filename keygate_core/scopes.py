"""Token scopes and their order: what a token may act on, narrowest first."""

from __future__ import annotations

import enum


class Scope(enum.Enum):
    """What a token may act on."""

    PERSONAL = "PERSONAL"
    WORKSPACE = "WORKSPACE"
    ORGANIZATION = "ORGANIZATION"

    @property
    def rank(self) -> int:
        """0 for the narrowest scope; a wider scope has a higher rank."""
        return _RANK[self]

    def covers(self, required: Scope) -> bool:
        """Whether a token of this scope may do what ``required`` allows."""
        return self.rank >= required.rank


_RANK = {scope: rank for rank, scope in enumerate(Scope)}
