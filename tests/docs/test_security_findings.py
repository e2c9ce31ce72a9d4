"""The security model's findings table names every review finding and only tests that exist.

``docs/security-model.md`` lists the findings of the application-security review with their
status and the tests that guard them. A renamed or deleted test, or a finding dropped from the
table, fails here, so the page cannot claim a guard that is gone.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

from tests.docs.markdown_blocks import DOCS, section_text, table_rows

PAGE = DOCS / "security-model.md"
ROOT = DOCS.parent
FINDINGS = 21
STATUSES = {"Fixed", "Partly fixed", "Accepted"}
#: ``tests/x.py`` (the whole file) or ``tests/x.py::name`` (one test or class).
_TEST_ID = re.compile(r"`(tests/[\w/]+\.py)(?:::([\w:]+))?(?:\[[^\]]*\])?`")


def _findings() -> list[list[str]]:
    rows = table_rows(section_text(PAGE, "Review findings"))
    return [row for row in rows if row and row[0].isdigit()]


@cache
def _names_in(path: Path) -> frozenset[str]:
    """``name`` and ``Class::name`` for every function and class in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}::{item.name}")
    return frozenset(names)


def test_every_finding_is_listed_once_with_a_status() -> None:
    rows = _findings()
    assert [int(row[0]) for row in rows] == list(range(1, FINDINGS + 1))
    unknown = {row[0]: row[3] for row in rows if row[3] not in STATUSES}
    assert not unknown, f"statuses must be one of {sorted(STATUSES)}: {unknown}"


def test_fixed_findings_name_their_guards_and_the_guards_exist() -> None:
    missing: list[str] = []
    for row in _findings():
        guards = _TEST_ID.findall(row[4])
        if row[3] != "Accepted" and not guards:
            missing.append(f"finding {row[0]} names no test")
        for file, name in guards:
            path = ROOT / file
            names = _names_in(path) if path.is_file() else frozenset()
            if not any(n.startswith("test") for n in names) or (name and name not in names):
                missing.append(f"finding {row[0]}: {file}::{name} does not exist")
    assert not missing, "\n".join(missing)
