"""The live keygate the documentation tests run the pages against, as one object.

The ``live`` fixture (``tests/docs/conftest.py``) starts it: a gateway, introspector and
recording app on real ports, one person, a workspace they administer and a token of theirs.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from introspector.models import User, Workspace
from tests.harness.stack import Stack

#: The e-mail the reference pages use for "you".
READER_EMAIL = "you@example.com"
BIN = Path(sys.executable).parent


@dataclass
class Live:
    """A running stack with one person, a workspace they administer and a token of theirs."""

    stack: Stack
    user: User
    workspace: Workspace
    token: str
    database_url: str

    @property
    def gateway_url(self) -> str:
        """Scheme, host and port of the gateway, e.g. ``http://127.0.0.1:41234``."""
        return str(self.stack.gateway.make_url("")).rstrip("/")

    @property
    def introspector_url(self) -> str:
        """Scheme, host and port of the introspector."""
        return str(self.stack.introspector.client.make_url("")).rstrip("/")

    def base_environment(self) -> dict[str, str]:
        """This process's environment without any keygate variable, the venv first on PATH."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def operator_environment(self) -> dict[str, str]:
        """What an operator running the ``keygate`` CLI has: the database URL."""
        return {**self.base_environment(), "KEYGATE_DATABASE_URL": self.database_url}
