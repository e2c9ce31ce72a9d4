"""Reading deploy/Dockerfile and .dockerignore the way the builder does, without an engine.

Covers the instructions keygate's Dockerfile uses: line continuations, comments, parser
directives, `FROM … AS stage`, `ENV` in `key=value` form, `COPY [--from=…] src… dest`,
`RUN [--mount=…]`, `USER`, `ENTRYPOINT`/`CMD` in exec form. The .dockerignore matcher follows
https://docs.docker.com/build/concepts/context/#dockerignore-files: patterns in order, `!`
re-includes, the last match wins, and a pattern that matches a directory matches its contents.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

from tests.harness.project import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    """One instruction: its keyword, its ``--flags`` and the rest of the line."""

    keyword: str
    flags: dict[str, str]
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form ``ENTRYPOINT``/``CMD``."""
        value = json.loads(self.arguments)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
        return value


@dataclass
class Stage:
    """One ``FROM`` and the instructions after it."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """Every variable the stage's ``ENV`` instructions set."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.arguments):
                name, sep, value = pair.partition("=")
                assert sep, f"write ENV as key=value: {instruction.arguments!r}"
                values[name] = value
        return values

    def copies(self) -> list[tuple[list[str], str]]:
        """(sources, destination) of every ``COPY`` from the build context."""
        found = []
        for instruction in self.all("COPY"):
            if "from" in instruction.flags:
                continue
            *sources, destination = shlex.split(instruction.arguments)
            found.append((sources, destination))
        return found

    def user(self) -> str | None:
        users = self.all("USER")
        return users[-1].arguments.strip() if users else None


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"
    return lines


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ``ARG`` defaults and the stages, in order."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        flags: dict[str, str] = {}
        words = rest.split(" ")
        while words and words[0].startswith("--"):
            flag, _, value = words.pop(0)[2:].partition("=")
            flags[flag] = value
        arguments = " ".join(words).strip()
        if keyword == "FROM":
            parts = arguments.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], parts[0])
            stage_name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=stage_name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM: {line!r}"
            arg, _, default = arguments.partition("=")
            args[arg] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, flags, arguments))
    return args, stages


def stages() -> list[Stage]:
    """deploy/Dockerfile's stages."""
    return parse_dockerfile(DOCKERFILE.read_text())[1]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regular expression."""
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
        i += 1
    return re.compile(out)


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(excludes, pattern) for each line of .dockerignore."""
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((not negated, _pattern_regex(pattern)))
    return rules


def sent_to_builder(path: str) -> bool:
    """Whether the context file ``path`` (relative, with ``/``) reaches the builder."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for excludes, regex in ignore_rules():
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = excludes
    return not excluded
