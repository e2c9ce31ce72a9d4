"""The image under test: deploy/Dockerfile built once per run with podman (``make image-test``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.image.podman import base_image, build_image, podman


@pytest.fixture(scope="session")
def keygate_image() -> Iterator[str]:
    """A freshly built keygate image, removed after the run."""
    tag = f"localhost/keygate:image-test-{uuid.uuid4().hex[:8]}"
    build_image(base_image(), tag)
    yield tag
    podman("rmi", "--force", tag, check=False)
