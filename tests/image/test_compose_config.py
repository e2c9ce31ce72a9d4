"""docker-compose.yml as a real Compose implementation reads it: podman-compose's ``config``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy.compose import (
    COMPOSE_FILE,
    EXAMPLE_SECRETS,
    filled_in_env,
    load_compose,
    services,
)
from tests.image.podman import HERE

pytestmark = pytest.mark.image

PODMAN_COMPOSE = str(Path(sys.executable).with_name("podman-compose"))


def _config(variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KEYGATE_", "POSTGRES_", "REDIS_"))
    }
    env.update(variables, CONTAINERS_CONF=str(HERE / "containers.conf"))
    return subprocess.run(
        [PODMAN_COMPOSE, "--file", str(COMPOSE_FILE), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_podman_compose_reads_the_file_as_the_suite_does() -> None:
    """podman-compose resolves every service's command and environment as the suite does."""
    # With .env.example filled in, podman-compose accepts the file and resolves each service
    # exactly as the suite's own reader does.
    variables = filled_in_env(**EXAMPLE_SECRETS)
    result = _config(variables)
    assert result.returncode == 0, result.stderr
    theirs = services(yaml.safe_load(result.stdout))
    ours = services(load_compose(variables))
    assert theirs.keys() == ours.keys()
    for name, service in ours.items():
        assert theirs[name].command == service.command, name
        assert theirs[name].environment == service.environment, name
        assert theirs[name].depends_on == service.depends_on, name


@pytest.mark.parametrize("blank", sorted(EXAMPLE_SECRETS))
def test_podman_compose_refuses_a_blank_secret(blank: str) -> None:
    """An unedited secret stops Compose before anything starts, with a message naming it."""
    result = _config({**filled_in_env(**EXAMPLE_SECRETS), blank: ""})
    assert result.returncode != 0
    assert f"set {blank} in .env" in result.stderr
