"""docker-compose.yml and .env.example, read as Compose reads them (no Docker engine needed)."""

from __future__ import annotations

from graphlib import TopologicalSorter
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from keygate_cli.settings import load_settings
from tests.deploy.compose import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    EXAMPLE_SECRETS,
    MissingVariable,
    Service,
    example_services,
    filled_in_env,
    load_compose,
    raw_compose,
    read_env_file,
    reference_defaults,
    references,
    services,
)
from tests.deploy.dockerfile import stages
from tests.deploy.keygate_services import (
    HEALTH_PATHS,
    SETTINGS_BY_COMMAND,
    declared,
    registry,
    secret_variables,
)
from tests.harness.project import ROOT

#: Ports of the servers that run from their own images.
IMAGE_PORTS = {"postgres": 5432, "redis": 6379}


def _container_env(service: Service) -> dict[str, str]:
    """What the process sees: the image's ENV, then the service's environment."""
    image_env = stages()[-1].env() if service.builds_keygate else {}
    return {**image_env, **service.environment}


def _listen_port(service: Service) -> int:
    if service.builds_keygate and service.command[0] in SETTINGS_BY_COMMAND:
        settings = load_settings(SETTINGS_BY_COMMAND[service.command[0]], _container_env(service))
        port: int = settings.port
        return port
    if "--port" in service.command:
        return int(service.command[service.command.index("--port") + 1])
    return IMAGE_PORTS[service.name]


def test_the_stack_is_all_there() -> None:
    """Postgres, Redis, a one-shot migrate, the three keygate services and the demo app."""
    found = example_services()
    assert set(found) == {
        "postgres",
        "redis",
        "migrate",
        "introspector",
        "admin-ui",
        "gateway",
        "demo-upstream",
    }
    commands = {name: s.command[0] for name, s in found.items() if s.builds_keygate}
    assert commands == {
        "migrate": "migrate",
        "introspector": "introspector",
        "admin-ui": "admin-ui",
        "gateway": "gateway",
        "demo-upstream": "demo-upstream",
    }
    assert found["migrate"].spec["restart"] == "no"


def test_keygate_images_build_from_files_that_exist() -> None:
    """Every keygate service builds deploy/Dockerfile from the repository root, as one image."""
    found = example_services()
    keygate = [s for s in found.values() if s.builds_keygate]
    assert {s.spec["image"] for s in keygate} == {"keygate:local"}
    for service in keygate:
        build = service.spec["build"]
        context = (COMPOSE_FILE.parent / build["context"]).resolve()
        assert context == ROOT, service.name
        assert (context / build["dockerfile"]).is_file(), service.name
        assert service.spec["read_only"] is True and service.spec["cap_drop"] == ["ALL"]


def test_third_party_images_are_pinned() -> None:
    """Postgres and Redis come from official images with a version tag, never `latest`."""
    for service in example_services().values():
        if service.builds_keygate:
            continue
        image = service.spec["image"]
        name, _, tag = image.partition(":")
        assert name in {"postgres", "redis"} and tag and tag != "latest", image
        assert tag[0].isdigit(), image


def test_every_long_running_service_has_a_healthcheck() -> None:
    """Everything but the one-shot migrate has one; keygate's probe their own health endpoint."""
    for service in example_services().values():
        if service.name == "migrate":
            assert not service.healthcheck
            continue
        test = service.healthcheck
        assert test and test[0] in {"CMD", "CMD-SHELL"}, service.name
        if service.command and service.command[0] in HEALTH_PATHS:
            url = f"http://127.0.0.1:{_listen_port(service)}"
            # The gateway's is shallow, as its Kubernetes probes: it keeps serving cookie traffic
            # and cached tokens while a dependency is down (and its readyz is on the ops port).
            depth = "shallow" if service.command[0] == "gateway" else "deep"
            path = HEALTH_PATHS[service.command[0]][depth]
            assert test[:3] == ["CMD", "python", "-c"], service.name
            assert f"'{url}{path}'" in test[3], (service.name, test)
        elif service.builds_keygate:
            assert f"'http://127.0.0.1:{_listen_port(service)}/" in test[3], service.name


def test_start_order_waits_for_health() -> None:
    """depends_on waits for healthy services (and a finished migrate); no cycles, no dangling."""
    found = example_services()
    graph = {name: set(s.depends_on) for name, s in found.items()}
    list(TopologicalSorter(graph).static_order())
    for service in found.values():
        for dependency, condition in service.depends_on.items():
            assert dependency in found, (service.name, dependency)
            if dependency == "migrate":
                assert condition == "service_completed_successfully", service.name
            else:
                assert condition == "service_healthy", (service.name, dependency)
                assert found[dependency].healthcheck, dependency
    assert found["introspector"].depends_on["migrate"] == "service_completed_successfully"
    assert set(found["gateway"].depends_on) >= {"introspector", "admin-ui", "redis"}


def test_service_urls_name_a_dependency_on_its_port() -> None:
    """Each URL a service is given points at a compose service it depends on, on its port."""
    found = example_services()
    checked = 0
    for service in found.values():
        for name, value in service.environment.items():
            parts = urlsplit(value)
            if not parts.scheme or parts.hostname is None:
                continue
            target = found.get(parts.hostname)
            assert target is not None, f"{service.name}: {name} points outside the stack"
            assert parts.hostname in service.depends_on, f"{service.name} must wait for {name}"
            assert parts.port == _listen_port(target), f"{service.name}: {name}"
            checked += 1
    assert checked >= 8


def test_every_keygate_variable_is_a_setting_of_that_service() -> None:
    """Each service gets only variables its settings class declares, and they load as given."""
    known = registry()
    for service in example_services().values():
        env = service.environment
        keygate_vars = {name for name in env if name.startswith("KEYGATE_")}
        assert keygate_vars <= set(known), f"{service.name}: {sorted(keygate_vars - set(known))}"
        if not service.builds_keygate or service.command[0] not in SETTINGS_BY_COMMAND:
            assert not keygate_vars, f"{service.name} reads no KEYGATE_* settings"
            continue
        settings_cls = SETTINGS_BY_COMMAND[service.command[0]]
        assert keygate_vars <= declared(settings_cls), (
            f"{service.name} is given variables it does not read: "
            f"{sorted(keygate_vars - declared(settings_cls))}"
        )
        load_settings(settings_cls, _container_env(service))


@pytest.mark.parametrize("blank", sorted(EXAMPLE_SECRETS))
def test_compose_refuses_to_start_without_each_secret(blank: str) -> None:
    """Left empty in .env, a secret stops `docker compose` with a message naming it."""
    variables = {**filled_in_env(**EXAMPLE_SECRETS), blank: ""}
    with pytest.raises(MissingVariable) as raised:
        load_compose(variables)
    assert raised.value.name == blank
    assert ".env" in raised.value.message


def test_env_example_leaves_only_the_secrets_blank() -> None:
    """An unedited copy of .env.example cannot run: exactly the secrets are blank."""
    values = read_env_file(ENV_EXAMPLE)
    assert {name for name, value in values.items() if not value} == set(EXAMPLE_SECRETS)
    assert set(EXAMPLE_SECRETS) >= secret_variables() & set(values)


def test_env_example_and_compose_agree() -> None:
    """.env.example lists exactly the compose file's variables, each at its compose default."""
    text = Path(COMPOSE_FILE).read_text()
    used = references(text)
    values = read_env_file(ENV_EXAMPLE)
    assert set(values) == used, f"unused: {set(values) - used}, undocumented: {used - set(values)}"
    known = registry()
    defaults = reference_defaults(text)
    for name, value in values.items():
        assert not name.startswith("KEYGATE_") or name in known, name
        if value:
            assert defaults.get(name) == {value}, f"{name}: compose defaults {defaults.get(name)}"


def test_secrets_come_only_from_the_env_file() -> None:
    """No secret value is written in the compose file: each is a required ${VAR:?...}."""
    raw = raw_compose()
    for name, spec in raw["services"].items():
        env = spec.get("environment", {})
        for variable in secret_variables() & set(env):
            value = str(env[variable])
            if variable == "KEYGATE_INTERNAL_SECRET":
                assert value.startswith("${KEYGATE_INTERNAL_SECRET:?"), name
            userinfo = urlsplit(value).password if "://" in value else None
            if userinfo is not None:
                assert userinfo.startswith("${") and ":?" in userinfo, (name, variable)
        password = env.get("POSTGRES_PASSWORD")
        if password is not None:
            assert str(password).startswith("${POSTGRES_PASSWORD:?"), name


def test_only_the_gateway_is_published_and_on_loopback_by_default() -> None:
    """Everything enters through the gateway; by default only this machine can reach it."""
    found = example_services()
    published = {name: s.spec["ports"] for name, s in found.items() if "ports" in s.spec}
    assert list(published) == ["gateway"]
    (mapping,) = published["gateway"]
    host, _, container = str(mapping).rpartition(":")
    assert int(container) == _listen_port(found["gateway"])
    assert host == "127.0.0.1:8080"


def test_redis_requires_auth_and_every_client_sends_the_password() -> None:
    """Redis runs with requirepass from .env; every KEYGATE_REDIS_URL and the healthcheck use it."""
    found = example_services()
    password = EXAMPLE_SECRETS["REDIS_PASSWORD"]
    redis = found["redis"]
    assert redis.command[:1] == ["redis-server"]
    assert redis.command[redis.command.index("--requirepass") + 1] == password
    assert redis.environment["REDISCLI_AUTH"] == password
    clients = [s for s in found.values() if "KEYGATE_REDIS_URL" in s.environment]
    assert {s.name for s in clients} == {"introspector", "gateway"}
    for service in clients:
        assert urlsplit(service.environment["KEYGATE_REDIS_URL"]).password == password


def _networks(service: Service) -> set[str]:
    return set(service.spec.get("networks", ["default"]))


def test_the_app_cannot_reach_redis_or_postgres() -> None:
    """The application shares no network with Redis or Postgres, which sit on an internal one."""
    found = example_services()
    compose = load_compose(filled_in_env(**EXAMPLE_SECRETS))
    app_networks = _networks(found["demo-upstream"])
    for server in ("redis", "postgres"):
        assert not app_networks & _networks(found[server]), server
        for network in _networks(found[server]):
            assert compose["networks"][network].get("internal") is True, network
    assert app_networks <= _networks(found["gateway"])


def test_gateway_trusts_exactly_the_app_networks_gateway_address() -> None:
    """X-Forwarded-For is believed from the address a host proxy reaches the published port from:
    the app network's gateway, inside that network's subnet; from nothing else."""
    compose = load_compose(filled_in_env(**EXAMPLE_SECRETS))
    gateway = services(compose)["gateway"]
    settings = load_settings(SETTINGS_BY_COMMAND["gateway"], _container_env(gateway))
    networks = gateway.spec["networks"]
    published_on = [n for n in networks if not compose["networks"][n].get("internal")]
    (network,) = published_on
    (pool,) = compose["networks"][network]["ipam"]["config"]
    (trusted,) = settings.trusted_proxies
    assert trusted == ip_network(pool["gateway"]) and trusted.subnet_of(ip_network(pool["subnet"]))
    assert trusted.num_addresses == 1


def test_metrics_and_readiness_are_on_an_unpublished_ops_port() -> None:
    """The gateway serves metrics and readyz on its ops port, exposed but never published."""
    gateway = example_services()["gateway"]
    settings = load_settings(SETTINGS_BY_COMMAND["gateway"], _container_env(gateway))
    assert settings.ops_port is not None and settings.ops_port != settings.port
    assert str(settings.ops_port) in map(str, gateway.spec["expose"])
    assert all(not str(m).endswith(f":{settings.ops_port}") for m in gateway.spec["ports"])
