"""podman, driven the way an operator would drive Docker: build deploy/Dockerfile, run containers.

Every command runs with ``CONTAINERS_CONF`` pointing at ``tests/image/containers.conf`` and every
container uses the host's network (no bridge networks), so the containers reach the suite's own
Postgres and Redis on 127.0.0.1 and are reached there. No registry is asked for anything: the
Python base image is the official one when it is already on the machine, else a stand-in built
here from Debian's packages (see :func:`base_image`).
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.harness.project import ROOT

HERE = Path(__file__).resolve().parent
#: The base deploy/Dockerfile names by default, when someone has pulled it onto this machine.
OFFICIAL_BASE = "docker.io/library/python:3.11-slim-bookworm"
#: What the test builds instead: Debian bookworm (Python 3.11) with venv, pip, CA roots, and a C
#: compiler with Python's headers (the official image has the headers; the Dockerfile installs
#: the compiler there). The tag names what it holds, so an older stand-in is not reused.
STAND_IN_BASE = "localhost/keygate-test-python:3.11-bookworm-cc"
STAND_IN_PACKAGES = "python3,python3-venv,python3-pip,python3-dev,gcc,libc6-dev,ca-certificates"


class PodmanError(Exception):
    """A podman command failed; the message holds its output."""


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``podman args…`` with the repository's containers.conf."""
    env = {**os.environ, "CONTAINERS_CONF": str(HERE / "containers.conf")}
    result = subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise PodmanError(
            f"podman {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def image_exists(name: str) -> bool:
    """Whether ``name`` is in local storage (never asks a registry)."""
    return podman("image", "exists", name, check=False).returncode == 0


def _ca_bundle() -> Path:
    """The machine's CA bundle: what lets the build reach PyPI from where this machine can."""
    configured = os.environ.get("SSL_CERT_FILE") or ssl.get_default_verify_paths().cafile
    return Path(configured or "/etc/ssl/certs/ca-certificates.crt")


def _build_stand_in() -> None:
    """Debian bookworm from its packages (``debootstrap --variant=minbase``), imported as an
    image. It has what deploy/Dockerfile uses of the official image: ``python3`` 3.11 with
    venv, pip and its headers, a C compiler (which the Dockerfile installs where there is
    none), and CA certificates (the machine's bundle, which also trusts any TLS proxy in
    front of PyPI)."""
    work = Path(tempfile.mkdtemp(prefix="keygate-image-base-"))
    rootfs = work / "rootfs"
    try:
        debootstrap = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={STAND_IN_PACKAGES}",
                "bookworm",
                str(rootfs),
                os.environ.get("KEYGATE_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if debootstrap.returncode != 0:
            raise PodmanError(f"debootstrap failed:\n{debootstrap.stdout[-3000:]}")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        shutil.copyfile(_ca_bundle(), rootfs / "etc/ssl/certs/ca-certificates.crt")
        tarball = work / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        podman(
            "import",
            "--change",
            "ENV LANG=C.UTF-8",
            "--change",
            'CMD ["python3"]',
            str(tarball),
            STAND_IN_BASE,
            timeout=300,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def base_image() -> str:
    """The Python base to build on: ``KEYGATE_TEST_PYTHON_IMAGE`` if set, the official image if
    it is on this machine, else the stand-in (built once per machine, then reused)."""
    explicit = os.environ.get("KEYGATE_TEST_PYTHON_IMAGE")
    if explicit:
        return explicit
    for name in (OFFICIAL_BASE, STAND_IN_BASE):
        if image_exists(name):
            return name
    _build_stand_in()
    return STAND_IN_BASE


def build_image(base: str, tag: str) -> None:
    """``docker build -f deploy/Dockerfile .`` with podman, on ``base``; no layer cache, so
    nothing from an earlier build is reused and nothing is left behind but the image."""
    podman(
        "build",
        "--file",
        str(ROOT / "deploy" / "Dockerfile"),
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "--network",
        "host",
        "--pull=never",
        "--layers=false",
        "--tag",
        tag,
        str(ROOT),
        timeout=600,
    )


@dataclass
class Container:
    """One detached container of the image under test."""

    name: str

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return (result.stdout + result.stderr)[-4000:]

    def exec(self, *command: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside the running container (as the image's user unless ``user``
        is given); the finished process."""
        as_user = ["--user", user] if user else []
        return podman("exec", *as_user, self.name, *command, check=False)

    def inspect(self, template: str) -> str:
        return podman("inspect", "--format", template, self.name).stdout.strip()

    def signal(self, name: str) -> None:
        podman("kill", "--signal", name, self.name)

    def wait(self, timeout: float) -> int:
        """Block until the container exits; its exit code."""
        return int(podman("wait", self.name, timeout=timeout).stdout.strip())

    def remove(self) -> None:
        podman("rm", "--force", "--time", "0", self.name, check=False)


def run_detached(image: str, command: list[str], env: dict[str, str]) -> Container:
    """Start ``image command…`` as the hardened compose services run: read-only root
    filesystem, no capabilities, no privilege escalation; host network."""
    name = f"keygate-image-test-{uuid.uuid4().hex[:8]}-{command[0]}"
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        *[f"--env={key}={value}" for key, value in env.items()],
        image,
        *command,
    )
    return Container(name)


def run_once(
    image: str, command: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``docker run --rm image command…`` (read-only, host network); the finished process."""
    variables = [f"--env={key}={value}" for key, value in env.items()]
    return podman(
        "run", "--rm", "--network", "host", "--read-only", *variables, image, *command, check=False
    )
