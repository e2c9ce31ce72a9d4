"""Reading documentation pages the way the docs tests need them: sections, code blocks, tables.

Conventions (see docs/reference-contributing.md):

- A fenced block whose ``title`` is a file name (``whoami.sh``, ``whoami.py``, ``whoami.mjs``)
  is a **sample**: the tests run it.
- ``<!-- output: NAME -->`` on the line before a fenced block makes that block the documented
  output of the samples named ``NAME.*``.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
REFERENCE = DOCS / "reference"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<info>[^`]*)$")
_TITLE = re.compile(r'title="(?P<title>[^"]*)"')
_OUTPUT = re.compile(r"^\s*<!--\s*output:\s*(?P<name>[a-z0-9-]+)\s*-->\s*$")
_HEADING = re.compile(r"^(?P<level>#{1,6})\s+(?P<text>.+?)\s*$")

#: What runs a sample, by the extension of its title.
RUNNERS = {".sh": "bash", ".py": "python", ".mjs": "node"}


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block of a page."""

    page: Path
    line: int
    language: str
    title: str | None
    output_of: str | None
    section: str
    text: str

    @property
    def is_sample(self) -> bool:
        """Whether the tests run this block (its title is a file name with a known runner)."""
        return self.title is not None and Path(self.title).suffix in RUNNERS

    @property
    def sample_name(self) -> str:
        """``whoami`` for ``whoami.py``: the name its documented output is marked with."""
        assert self.title is not None
        return Path(self.title).stem

    @property
    def where(self) -> str:
        """``reference/authentication.md:42``, for messages."""
        return f"{self.page.relative_to(DOCS)}:{self.line}"


def code_blocks(page: Path) -> list[CodeBlock]:
    """Every fenced block of ``page`` in order, with its language, title, marker and section."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[CodeBlock] = []
    section = ""
    i = 0
    while i < len(lines):
        heading = _HEADING.match(lines[i])
        if heading and len(heading["level"]) == 2:
            section = heading["text"]
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, info = opening["indent"], opening["fence"], opening["info"].strip()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j])
            j += 1
        assert j < len(lines), f"{page}:{i + 1}: unclosed code block"
        language = info.split(maxsplit=1)[0] if info else ""
        title = _TITLE.search(info)
        previous = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        marker = _OUTPUT.match(previous)
        text = textwrap.dedent("\n".join(body)) if indent else "\n".join(body)
        blocks.append(
            CodeBlock(
                page=page,
                line=i + 1,
                language=language,
                title=title["title"] if title else None,
                output_of=marker["name"] if marker else None,
                section=section,
                text=text + "\n",
            )
        )
        i = j + 1
    return blocks


def headings(page: Path, level: int) -> list[str]:
    """The texts of the headings of ``level`` (outside code blocks), in order."""
    found: list[str] = []
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            in_code = not in_code
            continue
        heading = _HEADING.match(line)
        if heading and not in_code and len(heading["level"]) == level:
            found.append(heading["text"])
    return found


def section_text(page: Path, title: str) -> str:
    """The Markdown between the H2 ``title`` and the next H2 (or the end)."""
    text = page.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(?P<body>.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"{page.name} has no section '## {title}'"
    return match["body"]


def table_rows(markdown: str) -> list[list[str]]:
    """The rows of the first pipe table in ``markdown``, header first, separator dropped."""
    rows: list[list[str]] = []
    for line in markdown.splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            if rows:
                break
            continue
        cells = [cell.strip() for cell in stripped.strip("|").split("|")]
        if all(re.fullmatch(r":?-{3,}:?", cell) for cell in cells):
            continue
        rows.append(cells)
    return rows
