"""Reading docker-compose.yml as Compose would: `.env` files and `${VAR}` interpolation.

There is no Docker engine where the suite runs, so the tests read the file themselves. Only the
parts keygate's compose file uses are implemented, and anything else is refused rather than
guessed: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}` and
`${VAR?message}` (https://docs.docker.com/compose/how-tos/environment-variables/variable-interpolation/).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.harness.project import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


class MissingVariable(ValueError):
    """A `${VAR:?message}` reference to a variable that is unset (or empty)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a Compose `.env` file; comments and blank lines skipped."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{path.name}:{number}: not a KEY=VALUE line: {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with every variable reference replaced, as Compose does."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["bare"] or match["name"]
        op, arg = match["op"], match["arg"] or ""
        value = variables.get(name)
        missing = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if missing else str(value)
        if op in (":?", "?"):
            if missing:
                raise MissingVariable(name, arg or "required")
            return str(value)
        return value or ""

    result = _REFERENCE.sub(replace, text)
    leftover = _REFERENCE.sub("", text)
    if "$" in leftover:
        raise ValueError(f"unsupported interpolation syntax in {text!r}")
    return result


def references(text: str) -> set[str]:
    """The variable names ``text`` refers to."""
    return {m["bare"] or m["name"] for m in _REFERENCE.finditer(text) if not m["escaped"]}


def reference_defaults(text: str) -> dict[str, set[str]]:
    """Each variable's ``${VAR:-default}`` defaults in ``text``."""
    found: dict[str, set[str]] = {}
    for m in _REFERENCE.finditer(text):
        if m["op"] in (":-", "-"):
            found.setdefault(m["name"], set()).add(m["arg"])
    return found


def _interpolate_tree(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolate_tree(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, variables) for key, value in node.items()}
    return node


def raw_compose() -> dict[str, Any]:
    """docker-compose.yml as YAML (anchors and merge keys resolved, nothing interpolated)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def load_compose(variables: Mapping[str, str]) -> dict[str, Any]:
    """docker-compose.yml with every ``${VAR}`` resolved from ``variables``."""
    resolved: dict[str, Any] = _interpolate_tree(raw_compose(), variables)
    return resolved


@dataclass(frozen=True)
class Service:
    """One service of the resolved compose file."""

    name: str
    spec: dict[str, Any]

    @property
    def command(self) -> list[str]:
        command = self.spec.get("command", [])
        assert isinstance(command, list), f"{self.name}: write command as a list"
        return [str(part) for part in command]

    @property
    def environment(self) -> dict[str, str]:
        env = self.spec.get("environment", {})
        if isinstance(env, list):
            return dict(item.split("=", 1) for item in env)
        return {key: "" if value is None else str(value) for key, value in env.items()}

    @property
    def depends_on(self) -> dict[str, str]:
        """Dependency → condition."""
        deps = self.spec.get("depends_on", {})
        if isinstance(deps, list):
            return dict.fromkeys(deps, "service_started")
        return {name: str(spec.get("condition", "service_started")) for name, spec in deps.items()}

    @property
    def healthcheck(self) -> list[str]:
        """The healthcheck's ``test`` command (``CMD``/``CMD-SHELL`` first), or []."""
        test = self.spec.get("healthcheck", {}).get("test", [])
        assert isinstance(test, list), f"{self.name}: write healthcheck.test as a list"
        return [str(part) for part in test]

    @property
    def builds_keygate(self) -> bool:
        return "build" in self.spec


def services(compose: dict[str, Any]) -> dict[str, Service]:
    """The resolved compose file's services by name."""
    return {name: Service(name, spec) for name, spec in compose["services"].items()}


#: What an operator would generate for the blanks .env.example leaves.
EXAMPLE_SECRETS = {
    "KEYGATE_INTERNAL_SECRET": "a" * 64,
    "POSTGRES_PASSWORD": "b" * 48,
    "REDIS_PASSWORD": "c" * 48,
}


def filled_in_env(**secrets: str) -> dict[str, str]:
    """`.env.example` with its blanks filled in, as an operator following it would."""
    values = read_env_file(ENV_EXAMPLE)
    blanks = {name for name, value in values.items() if value == ""}
    assert blanks == set(secrets), f".env.example leaves {sorted(blanks)} for the operator"
    return {**values, **secrets}


def example_services() -> dict[str, Service]:
    """The services as Compose resolves them with .env.example filled in."""
    return services(load_compose(filled_in_env(**EXAMPLE_SECRETS)))
