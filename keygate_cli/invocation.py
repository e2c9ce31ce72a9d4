"""What every operator command gets, and the error for a wrong command line."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TextIO

import asyncpg

from introspector.hashing import SecretHasher
from introspector.models import Actor
from introspector.settings import IntrospectorSettings


class UsageError(Exception):
    """The command line itself is wrong (exit 2)."""


@dataclass(frozen=True)
class Invocation:
    """What every operator command gets besides its connection."""

    args: argparse.Namespace
    settings: IntrospectorSettings
    hasher: SecretHasher
    stdin: TextIO
    actor: Actor = field(default_factory=Actor.operator)


Command = Callable[[asyncpg.Connection, Invocation], Awaitable[int]]
