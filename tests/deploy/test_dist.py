"""The release artefacts: an sdist and a wheel that install into a clean venv and run.

Built with ``uv build``, the same PEP 517 build ``python -m build`` runs (setuptools, pinned in
pyproject.toml): the sdist from the checkout, then the wheel from the unpacked sdist, so a file
the sdist forgets breaks the wheel too. Each is installed into a new venv with its
dependencies held to the lock's versions, and its ``keygate`` command is run.
"""

from __future__ import annotations

import email
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.harness.project import ROOT, project_version, uv_binary

#: Files outside the Python modules that keygate needs at run time.
DATA_FILES = (
    "introspector/migrations/0001_initial.sql",
    "admin_ui/templates/base.html",
    "admin_ui/static/app.css",
)


def _uv(*args: str) -> str:
    result = subprocess.run(
        [uv_binary(), *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"uv {' '.join(args)}:\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``uv build``'s sdist and wheel, by kind."""
    out = tmp_path_factory.mktemp("dist")
    _uv("build", "--quiet", "--out-dir", str(out))
    version = project_version()
    built = {"sdist": out / f"keygate-{version}.tar.gz"}
    # A wheel for this Python and platform: it holds the relay's compiled readings.
    wheels = list(out.glob(f"keygate-{version}-cp3*-cp3*-*.whl"))
    assert len(wheels) == 1, sorted(out.iterdir())
    built["wheel"] = wheels[0]
    # (uv also leaves a .gitignore in the folder it builds into.)
    assert sorted(out.glob("keygate-*")) == sorted(built.values())
    return built


def test_wheel_carries_the_metadata_licence_and_data_files(dist: dict[str, Path]) -> None:
    """The wheel names its version and licence, ships LICENSE and the data files, has `keygate`."""
    # Data files: the migrations, templates and static files.
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        info = f"keygate-{project_version()}.dist-info"
        metadata = email.message_from_bytes(wheel.read(f"{info}/METADATA"))
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert metadata["Version"] == project_version()
    assert metadata["License-Expression"] == "Apache-2.0"
    assert f"{info}/licenses/LICENSE" in names
    assert set(DATA_FILES) <= names
    assert [n for n in names if n.startswith("gateway/relay/_plain.") and n.endswith(".so")]
    assert "keygate = " in entry_points
    assert not [name for name in names if name.startswith("tests/")]


def test_sdist_carries_what_a_build_needs(dist: dict[str, Path]) -> None:
    """The sdist has pyproject.toml, the README, LICENSE, the data files and the C source of
    the relay's compiled readings (and no module built from it)."""
    top = f"keygate-{project_version()}"
    with tarfile.open(dist["sdist"]) as sdist:
        names = set(sdist.getnames())
    assert not [name for name in names if name.endswith(".so")]
    needed = {"pyproject.toml", "README.md", "LICENSE", "gateway/relay/_plain.c", *DATA_FILES}
    assert {f"{top}/{name}" for name in needed} <= names


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_installs_into_a_clean_venv_and_runs(
    kind: str, dist: dict[str, Path], tmp_path: Path
) -> None:
    """`pip install keygate-….whl` (or the sdist, compiling the relay's readings) in a new venv
    gives a working `keygate`."""
    constraints = tmp_path / "constraints.txt"
    _uv(
        "export",
        "--frozen",
        "--no-emit-project",
        "--no-hashes",
        "--no-header",
        "--output-file",
        str(constraints),
    )
    venv = tmp_path / "venv"
    _uv("venv", "--quiet", "--python", sys.executable, str(venv))
    python = venv / "bin" / "python"
    _uv(
        "pip",
        "install",
        "--quiet",
        "--python",
        str(python),
        "-c",
        str(constraints),
        str(dist[kind]),
    )
    keygate = str(venv / "bin" / "keygate")
    # Run away from the checkout, so its source folders cannot stand in for the install.
    shown = subprocess.run(
        [keygate, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and "usage: keygate" in shown.stdout, shown.stderr
    version = subprocess.run(
        [keygate, "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert version.stdout == f"keygate {project_version()}\n"
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import introspector, gateway.relay._plain as p;"
            "print(introspector.__file__, p.__file__)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = where.stdout.split()
    assert len(modules) == 2 and all(Path(m).is_relative_to(venv) for m in modules), where.stdout
    assert modules[1].endswith(".so"), modules


def test_release_files_agree_with_the_version_and_licence() -> None:
    """CHANGELOG, LICENSE and SECURITY.md agree with pyproject's version and licence."""
    # CHANGELOG's newest entry is pyproject's version, LICENSE is the Apache-2.0 text pyproject
    # declares, and SECURITY.md says how to report a vulnerability.
    headings = [
        line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")
    ]
    assert headings and headings[0].split()[1] == project_version(), headings[:1]
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence
    assert "## Reporting a vulnerability" in (ROOT / "SECURITY.md").read_text()
