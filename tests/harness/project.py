"""Facts about the checkout under test, read from its files, not from the installed package."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def project_version() -> str:
    """The version pyproject.toml declares: what every release artefact must report."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return str(project["version"])


def uv_binary() -> str:
    """The uv that ``make`` installs everything with (in ``.tools``), else one on the PATH."""
    pinned = ROOT / ".tools" / "bin" / "uv"
    found = str(pinned) if pinned.exists() else shutil.which("uv")
    assert found, "uv is missing: run the suite with `make test`, which installs it"
    return found
