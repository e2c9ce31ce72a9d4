"""The image from deploy/Dockerfile, built and run: keygate's services from containers, against
the suite's own Postgres and Redis, hardened as docker-compose.yml runs them."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.deploy.compose import example_services
from tests.harness.polling import eventually
from tests.harness.project import project_version
from tests.harness.servers import free_port
from tests.harness.upstream import Upstream, create_upstream
from tests.image.podman import Container, run_detached, run_once

# The first test also waits for the image build (and, once per machine, the stand-in base).
pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]

INTERNAL_SECRET = "image-test-internal-secret-0123456789abcdef"
DRAIN_SECONDS = 2.0
OWNER = "ops@example.com"
API = "/api/platform/internal"
#: The image listens on every interface by default; on the host's network, tests keep to loopback.
LOOPBACK = "127.0.0.1"
#: Where each service answers its shallow health check.
HEALTH = {
    "introspector": "/healthz",
    "admin-ui": "/_keygate/static/favicon.svg",
    "gateway": "/_keygate/healthz",
}


@dataclass
class ImageStack:
    """The three services running from the image, and the recording upstream behind them."""

    image: str
    env: dict[str, str]
    urls: dict[str, str]
    containers: dict[str, Container]
    upstream: Upstream

    def cli(self, *args: str) -> str:
        """``docker run --rm keygate args…`` against the stack's database; its stdout."""
        result = run_once(self.image, list(args), self.env)
        assert result.returncode == 0, f"keygate {' '.join(args)}:\n{result.stderr}"
        return result.stdout


async def _healthy(url: str, container: Container, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            if container.inspect("{{.State.Running}}") != "true":
                break
            await asyncio.sleep(0.2)
    pytest.fail(f"{container.name} never answered {url}:\n{container.logs()}")


@pytest.fixture
async def image_stack(
    keygate_image: str, empty_database_url: str, redis_url: str, aiohttp_server: Any
) -> AsyncIterator[ImageStack]:
    """An empty database migrated by the image's ``keygate migrate``, one person, and the
    introspector, admin UI and gateway each in a container in front of a real upstream."""
    upstream_app, record = create_upstream()
    upstream = await aiohttp_server(upstream_app)
    ports = {name: free_port() for name in HEALTH}
    env = {
        "KEYGATE_DATABASE_URL": empty_database_url,
        "KEYGATE_REDIS_URL": redis_url,
        "KEYGATE_INTERNAL_SECRET": INTERNAL_SECRET,
        "KEYGATE_INTROSPECTOR_HOST": LOOPBACK,
        "KEYGATE_INTROSPECTOR_PORT": str(ports["introspector"]),
        "KEYGATE_INTROSPECTOR_URL": f"http://{LOOPBACK}:{ports['introspector']}",
        "KEYGATE_ADMIN_UI_HOST": LOOPBACK,
        "KEYGATE_ADMIN_UI_PORT": str(ports["admin-ui"]),
        "KEYGATE_ADMIN_UI_URL": f"http://{LOOPBACK}:{ports['admin-ui']}",
        "KEYGATE_GATEWAY_HOST": LOOPBACK,
        "KEYGATE_GATEWAY_PORT": str(ports["gateway"]),
        "KEYGATE_UPSTREAM_URL": str(upstream.make_url("")).rstrip("/"),
        "KEYGATE_SESSION_AUTHENTICATOR": "local",
        "KEYGATE_SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
    }
    stack = ImageStack(keygate_image, env, {}, {}, record)
    try:
        await asyncio.to_thread(stack.cli, "migrate")
        await asyncio.to_thread(stack.cli, "users", "create", "--email", OWNER)
        for name, port in ports.items():
            stack.containers[name] = await asyncio.to_thread(
                run_detached, keygate_image, [name], env
            )
            stack.urls[name] = f"http://{LOOPBACK}:{port}"
        for name, container in stack.containers.items():
            await _healthy(stack.urls[name] + HEALTH[name], container)
        yield stack
    finally:
        for container in stack.containers.values():
            await asyncio.to_thread(container.remove)


def test_version_is_the_packages(keygate_image: str) -> None:
    """`docker run keygate --version` prints the version pyproject.toml declares."""
    result = run_once(keygate_image, ["--version"], {})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"keygate {project_version()}\n"


async def test_services_run_unprivileged_on_a_read_only_root(image_stack: ImageStack) -> None:
    """Each service is PID 1 as uid/gid 10001, and even root cannot write its root filesystem."""
    for name, container in image_stack.containers.items():
        status = (await asyncio.to_thread(container.exec, "cat", "/proc/1/status")).stdout
        ids = {line.split(":")[0]: line.split()[1:] for line in status.splitlines()}
        assert ids["Uid"] == ["10001"] * 4 and ids["Gid"] == ["10001"] * 4, (name, status)
        write = await asyncio.to_thread(
            container.exec, "python3", "-c", "open('/opt/keygate/probe', 'w')", user="0"
        )
        assert write.returncode != 0 and "Read-only file system" in write.stderr, write.stderr


async def test_the_gateway_has_its_compiled_readings(image_stack: ImageStack) -> None:
    """The relay's compiled readings (gateway/relay/_plain.c) were built into the image and
    load in the gateway's container: a build stage without a C compiler would fail, not ship
    a gateway without them."""
    probe = await asyncio.to_thread(
        image_stack.containers["gateway"].exec,
        "python3",
        "-c",
        "import gateway.relay._plain as p; print(p.__file__)",
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("/opt/keygate/lib/python3.11/site-packages/gateway/relay/")
    assert probe.stdout.rstrip().endswith(".so"), probe.stdout


async def test_compose_healthchecks_pass_inside_the_containers(image_stack: ImageStack) -> None:
    """Each service's compose healthcheck succeeds in its container: its commands are there."""
    # Run with the port this test gave the service.
    checked = []
    for name, service in example_services().items():
        if name not in image_stack.containers:
            continue
        kind, *command = service.healthcheck
        assert kind == "CMD", (name, service.healthcheck)
        port = image_stack.env[f"KEYGATE_{name.upper().replace('-', '_')}_PORT"]
        command = [re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", part) for part in command]
        result = await asyncio.to_thread(image_stack.containers[name].exec, *command)
        assert result.returncode == 0, (name, command, result.stderr)
        checked.append(name)
    assert sorted(checked) == sorted(image_stack.containers)


async def test_token_lifecycle_through_the_containerised_gateway(image_stack: ImageStack) -> None:
    """Through the gateway's container, a token is created, answers whoami, and is revoked."""
    # A token from the image's CLI creates a token over the API; whoami answers for it; after
    # its revocation it gets 401 — every request through the gateway's container.
    gateway = image_stack.urls["gateway"]
    bootstrap = (
        await asyncio.to_thread(
            image_stack.cli, "tokens", "create", "--email", OWNER, "--name", "bootstrap"
        )
    ).strip()
    admin = {"Authorization": f"Bearer {bootstrap}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway}/_keygate/healthz") as r:
            assert await r.json() == {"status": "ok", "version": project_version()}
        async with http.post(f"{gateway}{API}/api-tokens", json={"name": "ci"}, headers=admin) as r:
            assert r.status == 201, await r.text()
            created = await r.json()
        bearer = {"Authorization": f"Bearer {created['token']}"}
        async with http.get(f"{gateway}{API}/whoami", headers=bearer) as r:
            assert r.status == 200, await r.text()
            whoami = await r.json()
        assert (whoami["email"], whoami["tokenId"]) == (OWNER, created["id"])
        async with http.get(f"{gateway}/anything", headers=bearer) as r:
            assert r.status == 200
        assert image_stack.upstream.last.header("X-Keygate-User-Id") == [whoami["userId"]]
        async with http.delete(f"{gateway}{API}/api-tokens/{created['id']}", headers=admin) as r:
            assert r.status == 204, await r.text()

        async def refused() -> bool:
            async with http.get(f"{gateway}{API}/whoami", headers=bearer) as r:
                return r.status == 401

        assert await eventually(refused, within=1)
        # The admin UI's templates and static files made it into the image.
        async with http.get(f"{gateway}/_keygate/login") as r:
            assert r.status == 200 and "<form" in await r.text()


async def test_sigterm_drains_and_exits_zero_within_the_grace_period(
    image_stack: ImageStack,
) -> None:
    """SIGTERM drains the gateway's container: in-flight request answered, then exit 0 in time."""
    # Readiness turns 503, the request in flight still gets its answer, and the process exits 0
    # before compose's stop_grace_period runs out.
    gateway = image_stack.urls["gateway"]
    container = image_stack.containers["gateway"]
    grace = float(example_services()["gateway"].spec["stop_grace_period"].removesuffix("s"))
    token = (
        await asyncio.to_thread(
            image_stack.cli, "tokens", "create", "--email", OWNER, "--name", "drain"
        )
    ).strip()
    async with aiohttp.ClientSession() as http:

        async def slow_request() -> tuple[int, str]:
            headers = {"Authorization": f"Bearer {token}"}
            async with http.get(f"{gateway}/slow?seconds=3", headers=headers) as r:
                return r.status, await r.text()

        in_flight = asyncio.create_task(slow_request())

        async def reached_upstream() -> bool:
            return any(req.raw_path.startswith("/slow") for req in image_stack.upstream.requests)

        assert await eventually(reached_upstream, within=20)
        signalled = time.monotonic()
        await asyncio.to_thread(container.signal, "TERM")

        async def draining() -> bool:
            async with http.get(f"{gateway}/_keygate/readyz") as r:
                return r.status == 503 and (await r.json())["status"] == "draining"

        assert await eventually(draining, within=DRAIN_SECONDS - 0.5)
        assert await in_flight == (200, "late")
        exit_code = await asyncio.to_thread(container.wait, grace + 10)
    took = time.monotonic() - signalled
    assert exit_code == 0, container.logs()
    assert took < grace, f"the gateway took {took:.1f}s to stop; compose allows {grace}s"
