"""deploy/Dockerfile and .dockerignore, checked without a Docker engine (none is available where
the suite runs, so the image itself is not built here)."""

from __future__ import annotations

import re
import subprocess

from tests.deploy.dockerfile import DOCKERFILE, sent_to_builder, stages
from tests.deploy.keygate_services import registry, secret_variables
from tests.harness.project import ROOT

#: What a container's services must listen on to be reachable through its published ports.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - the image's setting under test, not a bind here


def _context_files(source: str) -> list[str]:
    """The repository's files under ``source``: what git tracks or would (not what a build
    in the checkout leaves, such as the compiled module beside ``_plain.c``)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", source],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(name for name in listed.stdout.splitlines() if (ROOT / name).is_file())


def test_multi_stage_build_from_slim_python() -> None:
    """A build stage fills a venv from the locks; the slim runtime stage takes only that venv."""
    build, runtime = stages()
    assert build.name == "build" and runtime.name == "runtime"
    assert build.base == runtime.base
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", runtime.base), runtime.base
    installs = [run.arguments for run in build.all("RUN") if "uv sync" in run.arguments]
    assert len(installs) == 1
    # From the lock as committed (never re-resolved), without the test or bench extras.
    assert "--frozen" in installs[0] and "--extra" not in installs[0]
    assert "--no-editable" in installs[0]
    assert build.env()["UV_PROJECT_ENVIRONMENT"] == "/opt/keygate"
    uv_installs = [run.arguments for run in build.all("RUN") if "pip install" in run.arguments]
    assert len(uv_installs) == 1 and "--require-hashes -r requirements-uv.txt" in uv_installs[0]
    assert not runtime.copies(), "the runtime stage takes nothing from the build context"
    from_build = [i.arguments.split() for i in runtime.all("COPY") if i.flags.get("from")]
    assert from_build == [["/opt/keygate", "/opt/keygate"]]
    assert "/opt/keygate/bin" in runtime.env()["PATH"].split(":")
    assert not [run for run in runtime.all("RUN") if "pip" in run.arguments]


def test_every_copied_source_exists_and_reaches_the_builder() -> None:
    """Each COPY source is in the repository and not filtered out by .dockerignore."""
    (build, _) = stages()
    copied = [source for sources, _ in build.copies() for source in sources]
    assert copied
    for source in copied:
        files = _context_files(source)
        assert files, f"COPY {source}: no such file or directory"
        filtered = [f for f in files if not sent_to_builder(f)]
        assert not filtered, f"COPY {source}: .dockerignore drops {filtered[:5]}"


def test_build_stage_copies_what_the_wheel_needs() -> None:
    """The build stage copies pyproject, the locks, readme, licence and every included package."""
    import tomllib

    (build, _) = stages()
    copied = {source.rstrip("/") for sources, _ in build.copies() for source in sources}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", "uv.lock", "requirements-uv.txt", "LICENSE"}
    needed.add(project["project"]["readme"])
    needed |= {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert needed <= copied, f"missing from the build stage: {sorted(needed - copied)}"


def test_context_leaves_out_secrets_and_local_state() -> None:
    """A local .env, the virtualenv, git metadata, tests and bytecode never reach the builder."""
    for path in (
        ".env",
        ".env.example",
        ".git/config",
        ".venv/bin/python",
        "tests/conftest.py",
        "docs/configuration.md",
        "gateway/__pycache__/app.cpython-311.pyc",
        "deploy/k8s/gateway.yaml",
    ):
        assert not sent_to_builder(path), path
    assert sent_to_builder("gateway/app.py")
    assert sent_to_builder("introspector/migrations/0001_initial.sql")


def test_runs_as_an_unprivileged_numeric_user() -> None:
    """USER is a non-zero numeric uid:gid, so Kubernetes can enforce runAsNonRoot."""
    (_, runtime) = stages()
    user = runtime.user()
    assert user is not None and re.fullmatch(r"\d+:\d+", user), user
    uid, gid = (int(part) for part in user.split(":"))
    assert uid != 0 and gid != 0
    created = " ".join(run.arguments for run in runtime.all("RUN"))
    assert f"--uid {uid}" in created and f"--gid {gid}" in created


def test_entrypoint_is_the_keygate_command() -> None:
    """The first argument chooses the service: `docker run keygate gateway`."""
    (_, runtime) = stages()
    (entrypoint,) = runtime.all("ENTRYPOINT")
    assert entrypoint.exec_form() == ["keygate"]
    (cmd,) = runtime.all("CMD")
    assert cmd.exec_form() == ["--help"]


def test_no_secret_is_baked_into_the_image() -> None:
    """ENV/ARG set only known, non-secret KEYGATE_* settings; nothing secret-looking at all."""
    text = DOCKERFILE.read_text()
    known, secrets = registry(), secret_variables()
    for stage in stages():
        env = stage.env()
        for name in env:
            assert not re.search(r"SECRET|PASSWORD|TOKEN|KEY$|_URL$", name), name
            if name.startswith("KEYGATE_"):
                assert name in known, f"ENV {name} is not a keygate setting"
                assert name not in secrets, name
    for name in secrets:
        assert name not in text, f"{name} appears in the Dockerfile"
    assert not re.search(r"^\s*(ADD|COPY)\s+.*\.env\b", text, re.MULTILINE)


def test_services_listen_on_every_interface_inside_the_container() -> None:
    """The image sets each service's host to 0.0.0.0; ports stay at their defaults."""
    (_, runtime) = stages()
    env = runtime.env()
    hosts = {name: value for name, value in env.items() if name.endswith("_HOST")}
    assert hosts == dict.fromkeys(
        ("KEYGATE_GATEWAY_HOST", "KEYGATE_INTROSPECTOR_HOST", "KEYGATE_ADMIN_UI_HOST"),
        ALL_INTERFACES,
    )
    exposed = {int(p) for i in runtime.all("EXPOSE") for p in i.arguments.split()}
    defaults = {
        int(registry()[f"KEYGATE_{s}_PORT"].default_text)
        for s in ("GATEWAY", "INTROSPECTOR", "ADMIN_UI")
    }
    assert exposed == defaults
