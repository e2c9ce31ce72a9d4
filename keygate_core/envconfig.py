"""Typed, frozen settings loaded once from ``KEYGATE_*`` environment variables.

Each service declares a frozen dataclass whose fields are made with :func:`setting`; the field's
metadata names its variable, its documentation and how its text is parsed. :func:`load_settings`
reads the environment once, rejects unknown ``KEYGATE_*`` names and malformed values with a
:class:`SettingsError` that names the variable, and returns the frozen object.

This module is pure (no I/O beyond reading the mapping it is given), so every service may import
it. It is written here rather than taken from pydantic-settings because keygate needs two things
that library does not do: refusing *unknown* variables across all services at once (the caller
passes every settings class it knows: the ``keygate`` command passes all of them), and one list of
declared variables the documentation test compares against ``docs/configuration.md``.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

PREFIX = "KEYGATE_"
#: ``KEYGATE_*`` names that are not settings and that no service reads: the API client variables
#: the documentation's samples use, and the test suite's own knobs. They are never "unknown".
NOT_SETTINGS = frozenset({"KEYGATE_TOKEN", "KEYGATE_BASE_URL"})
NOT_SETTINGS_PREFIX = "KEYGATE_TEST_"

S = TypeVar("S")


class SettingsError(ValueError):
    """A ``KEYGATE_*`` variable is unknown or its value cannot be used."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


@dataclasses.dataclass(frozen=True)
class SettingSpec:
    """How one environment variable becomes one settings field."""

    env: str
    doc: str
    parse: Callable[[str], Any]
    default_text: str
    secret: bool


def setting(
    env: str,
    default: Any,
    doc: str,
    *,
    parse: Callable[[str], Any] | None = None,
    default_text: str | None = None,
    secret: bool = False,
) -> Any:
    """Declare a settings field bound to the variable ``env``.

    ``default`` is the typed value used when the variable is absent; ``default_text`` is how the
    documentation spells it (derived from ``default`` when omitted). ``parse`` turns the raw text
    into the typed value and raises ``ValueError`` with a human message when it cannot.
    """
    if not env.startswith(PREFIX):
        raise ValueError(f"setting {env!r} must start with {PREFIX}")
    text = default_text if default_text is not None else _default_text(default)
    spec = SettingSpec(env=env, doc=doc, parse=parse or str, default_text=text, secret=secret)
    return dataclasses.field(default=default, metadata={"spec": spec})


def _default_text(default: Any) -> str:
    if default is None:
        return "(unset)"
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, enum.Enum):
        return str(default.value)
    return str(default)


def specs(settings_cls: type[Any]) -> list[SettingSpec]:
    """The variable specifications of one settings class, in declaration order."""
    return [f.metadata["spec"] for f in dataclasses.fields(settings_cls) if "spec" in f.metadata]


def known_variables(settings_classes: Iterable[type[Any]]) -> dict[str, SettingSpec]:
    """Every variable the classes declare, by name (a variable shared by services appears once)."""
    known: dict[str, SettingSpec] = {}
    for cls in settings_classes:
        for spec in specs(cls):
            known.setdefault(spec.env, spec)
    return known


def load_settings(
    settings_cls: type[S],
    environ: Mapping[str, str] | None = None,
    *,
    known: Iterable[type[Any]],
) -> S:
    """Build ``settings_cls`` from ``environ`` (default: the process environment).

    ``known`` lists the settings classes whose variables are expected in the same environment
    (one shared ``.env`` feeds every service). Raises :class:`SettingsError` naming the first
    offending variable: a ``KEYGATE_*`` name none of them declares (with a suggestion when it
    looks like a typo), or a value the field's parser refuses.
    """
    env = os.environ if environ is None else environ
    known_names = set(known_variables([settings_cls, *known]))
    for name in sorted(env):
        if name in NOT_SETTINGS or name.startswith(NOT_SETTINGS_PREFIX):
            continue
        if name.startswith(PREFIX) and name not in known_names:
            close = difflib.get_close_matches(name, known_names, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SettingsError(name, f"unknown keygate setting{hint}")
    values: dict[str, Any] = {}
    for field in dataclasses.fields(settings_cls):  # type: ignore[arg-type]
        spec: SettingSpec | None = field.metadata.get("spec")
        if spec is None or spec.env not in env:
            continue
        raw = env[spec.env]
        try:
            values[field.name] = spec.parse(raw.strip())
        except ValueError as exc:
            shown = "(hidden)" if spec.secret else repr(raw)
            raise SettingsError(spec.env, f"invalid value {shown}: {exc}") from None
    return settings_cls(**values)


# --- parsers ---------------------------------------------------------------------------------


def int_between(low: int, high: int) -> Callable[[str], int]:
    """Parser for an integer in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def float_between(low: float, high: float) -> Callable[[str], float]:
    """Parser for a decimal number in ``[low, high]``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("expected a number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def boolean(text: str) -> bool:
    """Parser for true/false, yes/no, on/off, 1/0 (any case)."""
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


E = TypeVar("E", bound=enum.Enum)


def choice(enum_cls: type[E]) -> Callable[[str], E]:
    """Parser for one of an enum's values (case-insensitive)."""

    def parse(text: str) -> E:
        for member in enum_cls:
            if str(member.value).lower() == text.lower():
                return member
        allowed = " | ".join(str(m.value) for m in enum_cls)
        raise ValueError(f"expected one of {allowed}")

    return parse


def url(*schemes: str) -> Callable[[str], str]:
    """Parser for a URL with one of ``schemes`` and a host (or a unix socket path)."""

    def parse(text: str) -> str:
        parts = urlsplit(text)
        if parts.scheme not in schemes:
            raise ValueError(
                f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
        if not parts.netloc and not parts.path:
            raise ValueError("the URL names no host")
        return text

    return parse


def non_empty(text: str) -> str:
    """Parser for a string that must not be blank."""
    if not text:
        raise ValueError("must not be empty")
    return text
