"""docker-compose.yml's topology run natively: the same commands, the same environment.

No Docker engine is available where the suite runs, so this starts every keygate service of the
compose file as a `keygate` process, with the environment the container would get (the image's
ENV, then the service's `environment`, resolved from .env.example with its blanks filled in).
Only where things are changes: the compose file's `postgres` and `redis` become the suite's own
servers, the other services' host names become 127.0.0.1 on free ports. Services start in
depends_on order, each waiting for what it depends on: a one-shot must exit 0, a healthy
dependency must pass its own compose healthcheck, run as written.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest

from keygate_cli.settings import load_settings
from tests.deploy.compose import Service, filled_in_env, load_compose, services
from tests.deploy.dockerfile import stages
from tests.deploy.keygate_services import SETTINGS_BY_COMMAND, listen_variables
from tests.harness.servers import free_port

KEYGATE = str(Path(sys.executable).parent / "keygate")
HEALTHY_WITHIN = 30.0


@dataclass
class Topology:
    """The compose services, running as processes on this machine."""

    services: dict[str, Service]
    native_ports: dict[str, int]
    environments: dict[str, dict[str, str]]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.native_ports[service]}{path}"

    def log(self, service: str) -> str:
        path = self.logs / f"{service}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def exec(self, service: str, *args: str) -> str:
        """`docker compose exec SERVICE keygate ARGS…`: the CLI with that service's environment."""
        result = subprocess.run(
            [KEYGATE, *args],
            env=self.environments[service],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()


def _container_port(service: Service, container_env: dict[str, str]) -> int:
    command = service.command
    if command[0] in SETTINGS_BY_COMMAND:
        port: int = load_settings(SETTINGS_BY_COMMAND[command[0]], container_env).port
        return port
    return int(command[command.index("--port") + 1])


def _native_command(service: Service, port: int) -> list[str]:
    """The service's command, listening on 127.0.0.1:``port`` instead of the container's."""
    command = list(service.command)
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        if flag in command:
            command[command.index(flag) + 1] = value
    return command


def _healthcheck(service: Service, container_port: int, native_port: int) -> list[str]:
    """The compose healthcheck, run here: `python` is this interpreter, the port is native."""
    kind, program, *args = service.healthcheck
    assert kind == "CMD" and program == "python", service.healthcheck
    address = f"127.0.0.1:{container_port}"
    assert address in args[-1], f"{service.name}'s healthcheck must probe its own port"
    return [sys.executable, *args[:-1], args[-1].replace(address, f"127.0.0.1:{native_port}")]


async def _wait_healthy(topology: Topology, name: str, check: list[str]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HEALTHY_WITHIN
    while True:
        result = await asyncio.to_thread(subprocess.run, check, capture_output=True, timeout=10)
        if result.returncode == 0:
            return
        process = topology.processes[name]
        assert process.poll() is None, f"{name} exited {process.returncode}:\n{topology.log(name)}"
        assert loop.time() < deadline, f"{name} not healthy:\n{result.stderr.decode()[-1500:]}"
        await asyncio.sleep(0.2)


def _native_environments(
    found: dict[str, Service], external: dict[str, dict[str, str]], native_ports: dict[str, int]
) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """Each locally run service's environment as its container would get it, with every other
    service's address moved to this machine; and the port each listens on in its container."""
    image_env = stages()[-1].env()
    base = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}

    def native_value(value: str) -> str:
        parts = urlsplit(value)
        if not parts.scheme or parts.hostname not in found:
            return value
        if parts.hostname in external:
            return external[parts.hostname][parts.scheme]
        netloc = f"127.0.0.1:{native_ports[parts.hostname]}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    environments: dict[str, dict[str, str]] = {}
    container_ports: dict[str, int] = {}
    for name in native_ports:
        service = found[name]
        container_env = {**image_env, **service.environment}
        container_ports[name] = _container_port(service, container_env)
        env = {key: native_value(value) for key, value in container_env.items()}
        if service.command[0] in SETTINGS_BY_COMMAND:
            host_var, port_var = listen_variables(SETTINGS_BY_COMMAND[service.command[0]])
            env[host_var], env[port_var] = "127.0.0.1", str(native_ports[name])
            if "KEYGATE_GATEWAY_OPS_PORT" in env:  # never 0.0.0.0 and a fixed port on this machine
                env["KEYGATE_GATEWAY_OPS_HOST"] = "127.0.0.1"
                env["KEYGATE_GATEWAY_OPS_PORT"] = str(free_port())
        environments[name] = {**base, **env}
    return environments, container_ports


async def _start(topology: Topology, name: str, container_port: int) -> None:
    """Start one service as compose would, and wait: a one-shot must exit 0, any other must
    pass its own healthcheck."""
    service = topology.services[name]
    command = [KEYGATE, *_native_command(service, topology.native_ports[name])]
    with (topology.logs / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(  # noqa: ASYNC220 - long-lived, stopped by the fixture
            command, env=topology.environments[name], stdout=log, stderr=subprocess.STDOUT
        )
    topology.processes[name] = process
    if service.spec.get("restart") == "no":
        code = await asyncio.to_thread(process.wait, 60)
        assert code == 0, f"{name} exited {code}:\n{topology.log(name)}"
        return
    check = _healthcheck(service, container_port, topology.native_ports[name])
    await _wait_healthy(topology, name, check)


@pytest.fixture
async def topology(
    empty_database_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[Topology]:
    """Every keygate service of docker-compose.yml, started as compose would start them."""
    found = services(
        load_compose(
            filled_in_env(
                KEYGATE_INTERNAL_SECRET=secrets.token_hex(32),
                POSTGRES_PASSWORD=secrets.token_hex(24),
                REDIS_PASSWORD=secrets.token_hex(24),
            )
        )
    )
    # The servers that run from their own images are the suite's; every other service runs here.
    external = {
        name: {"postgresql": empty_database_url, "redis": redis_url}
        for name, s in found.items()
        if not s.builds_keygate
    }
    native_ports = {name: free_port() for name, s in found.items() if s.builds_keygate}
    environments, container_ports = _native_environments(found, external, native_ports)
    topology = Topology(found, native_ports, environments, tmp_path)
    order = TopologicalSorter({n: set(s.depends_on) for n, s in found.items()}).static_order()
    try:
        for name in order:
            if name not in external:
                await _start(topology, name, container_ports[name])
        yield topology
    finally:
        running = [p for p in topology.processes.values() if p.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            await asyncio.to_thread(process.wait, 30)


async def test_compose_topology_serves_a_bearer_request_end_to_end(topology: Topology) -> None:
    """Compose's services, natively: token, app login and admin UI work; SIGTERM exits 0."""
    user_id = topology.exec("introspector", "users", "create", "--email", "ops@example.com")
    token = topology.exec(
        "introspector", "tokens", "create", "--email", "ops@example.com", "--name", "compose"
    )
    bearer = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(topology.url("gateway", "/api/echo"), headers=bearer) as response:
            assert response.status == 200, await response.text()
            seen: dict[str, Any] = await response.json()
        identity = {k.lower(): v for k, v in seen["identity"].items()}
        assert identity["x-keygate-user-id"] == user_id
        assert identity["x-keygate-user-email"] == "ops@example.com"
        assert identity["x-keygate-auth-method"] == "token"

        whoami = topology.url("gateway", "/api/platform/internal/whoami")
        async with http.get(whoami, headers=bearer) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["email"] == "ops@example.com"

        bad = {"Authorization": f"Bearer {token[:-4]}AAAA"}
        async with http.get(topology.url("gateway", "/api/echo"), headers=bad) as response:
            assert response.status == 401

        login = topology.url("gateway", "/login")
        async with http.post(login, data={"name": "Ada"}, allow_redirects=False) as response:
            assert response.status == 303
            cookie = response.cookies["demo_app_session"].value
        echo = topology.url("gateway", "/api/echo")
        async with http.get(echo, headers={"Cookie": f"demo_app_session={cookie}"}) as response:
            seen = await response.json()
        assert seen["appSession"] == "Ada"
        assert "x-keygate-user-id" not in {k.lower() for k in seen["identity"]}

        async with http.get(topology.url("gateway", "/_keygate/login")) as response:
            assert response.status == 200
            assert "text/html" in response.headers["Content-Type"]

    for name in reversed(list(topology.processes)):
        process = topology.processes[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 30)
            assert code == 0, f"{name} exited {code} on SIGTERM:\n{topology.log(name)}"
