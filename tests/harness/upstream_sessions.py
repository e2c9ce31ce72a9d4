"""A gateway whose ``upstream`` session authenticator asks a recording app who a cookie is.

The ``start_sessions`` / ``sessions`` fixtures (``tests/integration/conftest.py``) start it; the
app's ``GET /session`` answers for cookies ``sid=valid-<id>`` (e-mail from the ``email`` cookie).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gateway.appkeys import PIPELINE
from gateway.pipeline.authn import UpstreamSessionAuthenticator
from tests.harness.stack import Stack
from tests.harness.upstream import Upstream

#: The route file: only ``/private/`` needs a credential.
ROUTES = """
[[route]]
prefix = "/private/"
auth = "required"
"""


@dataclass
class Sessions:
    """A gateway resolving cookies with a separate recording app's GET /session."""

    stack: Stack
    checks: Upstream

    @property
    def check_count(self) -> int:
        """How many session checks the gateway has made."""
        return sum(1 for r in self.checks.requests if r.raw_path == "/session")

    async def get(self, path: str, **headers: str) -> Any:
        return await self.stack.gateway.get(path, headers=headers)

    def authenticator(self) -> UpstreamSessionAuthenticator:
        """The gateway's configured session authenticator."""
        chain = self.stack.gateway.app[PIPELINE].chain
        (found,) = [a for a in chain if isinstance(a, UpstreamSessionAuthenticator)]
        return found


StartSessions = Callable[..., Awaitable[Sessions]]
