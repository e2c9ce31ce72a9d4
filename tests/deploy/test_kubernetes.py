"""deploy/k8s, validated offline: Kubernetes' own schemas, then keygate's rules for them.

`kubectl apply --dry-run=client` needs an API server to map kinds even with `--validate=false`,
so the manifests are checked against the OpenAPI-derived JSON schemas that the
`kubernetes-validate` package ships, in strict mode (an unknown field is an error), for the
oldest Kubernetes the docs support and for the newest the package knows.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp
import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from keygate_cli.settings import load_settings
from tests.deploy.dockerfile import stages
from tests.deploy.keygate_services import (
    HEALTH_PATHS,
    SETTINGS_BY_COMMAND,
    declared,
    registry,
    secret_variables,
)
from tests.deploy.manifests import (
    SECRET_NAME,
    container_env,
    kustomization,
    manifest_files,
    of_kind,
    pod_labels,
    pod_spec,
    resources,
    selects,
    workloads,
)
from tests.harness.live_services import LiveServices
from tests.harness.project import project_version

#: The oldest Kubernetes docs/operations/kubernetes.md promises to support.
OLDEST_KUBERNETES = "1.29.0"

#: Stand-ins for the Secret's values, to load each container's settings as it would start.
SECRET_VALUES = {
    "internal-secret": "x" * 64,
    "database-url": "postgresql://keygate@postgres.internal.example:5432/keygate",
    "redis-url": "rediss://redis.internal.example:6380/0",
}


def _containers() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, container)
        for name, workload in workloads().items()
        for container in pod_spec(workload)["containers"]
    ]


def _command(container: dict[str, Any]) -> str:
    args = container["args"]
    assert "command" not in container, "keep the image's `keygate` entrypoint"
    command: str = args[0]
    return command


def _settings(container: dict[str, Any]) -> Any:
    env = container_env(container)
    # The Secret as the setup step creates it: optional keys (a rotation's old secret) absent.
    refs = {n: key for n, (_, key) in env.secret_refs.items() if n not in env.optional}
    values = {**env.values, **{n: SECRET_VALUES[key] for n, key in refs.items()}}
    return load_settings(SETTINGS_BY_COMMAND[_command(container)], values)


def test_kustomization_lists_every_manifest_and_the_image() -> None:
    """`kubectl apply -k deploy/k8s` applies every file, with the image at the project version."""
    data = kustomization()
    assert sorted(data["resources"]) == manifest_files()
    (image,) = data["images"]
    assert image["name"] == "keygate" and image["newTag"] == project_version()


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, kubernetes_validate.latest_version()])
def test_manifests_match_the_kubernetes_schemas(version: str) -> None:
    """Every object validates strictly against that Kubernetes version's schema."""
    found = resources()
    assert len(found) >= 10
    for resource in found:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path)
            name = f"{resource['kind']}/{resource['metadata']['name']}"
            pytest.fail(f"{name}: {where}: {error.message}")


def test_postgres_and_redis_are_external_and_secrets_are_not_committed() -> None:
    """Only keygate's own workloads are deployed, and no Secret object is shipped."""
    kinds = {r["kind"] for r in resources()}
    assert kinds <= {
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Job",
    }
    assert {_command(c) for _, c in _containers()} == set(SETTINGS_BY_COMMAND)


def test_gateway_runs_two_or_more_replicas_with_autoscaling_and_a_disruption_budget() -> None:
    """≥ 2 replicas, an HPA that never goes below 2, a PDB that keeps one up, no surge loss."""
    gateway = of_kind("Deployment")["keygate-gateway"]
    assert gateway["spec"]["replicas"] >= 2
    assert gateway["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (hpa,) = of_kind("HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "keygate-gateway")
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    budgets = [
        pdb
        for pdb in of_kind("PodDisruptionBudget").values()
        if selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(gateway))
    ]
    assert len(budgets) == 1
    assert budgets[0]["spec"].get("maxUnavailable") == 1


def test_budgets_and_services_select_exactly_one_workload() -> None:
    """Each PDB and Service matches the pods of one Deployment; Service ports are its ports."""
    deployments = of_kind("Deployment")
    for kind in ("PodDisruptionBudget", "Service"):
        for name, obj in of_kind(kind).items():
            selector = obj["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            matched = [d for d in deployments.values() if selects(selector, pod_labels(d))]
            assert len(matched) == 1, f"{kind}/{name} selects {len(matched)} Deployments"
            if kind == "Service":
                (container,) = pod_spec(matched[0])["containers"]
                ports = {p["name"]: p["containerPort"] for p in container["ports"]}
                for port in obj["spec"]["ports"]:
                    assert ports[port["targetPort"]] == port["port"], name


def test_service_urls_in_config_name_a_service_and_its_port() -> None:
    """A keygate-internal URL in a ConfigMap reaches a Service of this directory on its port."""
    services = {n: {p["port"] for p in s["spec"]["ports"]} for n, s in of_kind("Service").items()}
    checked = 0
    for configmap in of_kind("ConfigMap").values():
        for name, value in configmap["data"].items():
            parts = urlsplit(value)
            if parts.hostname and parts.hostname.startswith("keygate-"):
                assert parts.port in services[parts.hostname], f"{name}={value}"
                checked += 1
    assert checked == 3


def test_each_container_gets_only_its_settings_with_secrets_by_reference() -> None:
    """Containers get only their service's KEYGATE_*, secrets by reference, and these load."""
    known, secret = registry(), secret_variables()
    for workload, container in _containers():
        env = container_env(container)
        command = _command(container)
        settings_cls = SETTINGS_BY_COMMAND[command]
        assert env.names <= set(known), f"{workload}: {sorted(env.names - set(known))}"
        assert env.names <= declared(settings_cls), (
            f"{workload} is given variables it does not read: "
            f"{sorted(env.names - declared(settings_cls))}"
        )
        assert not set(env.values) & secret, f"{workload}: a secret written as a value"
        assert {ref for ref, _ in env.secret_refs.values()} == {SECRET_NAME}, workload
        if command != "migrate":
            assert set(env.secret_refs) == secret & declared(settings_cls), workload
        settings = _settings(container)
        listening = {"http": settings.port, "ops": getattr(settings, "ops_port", None)}
        for port in container.get("ports", []):
            assert listening[port["name"]] == port["containerPort"], workload


def test_containers_are_locked_down_and_sized() -> None:
    """Project-version image, its non-root uid, read-only root, no caps, requests and limits."""
    uid, gid = (int(part) for part in (stages()[-1].user() or "").split(":"))
    for workload_name, workload in workloads().items():
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False, workload_name
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True
        assert (pod_security["runAsUser"], pod_security["runAsGroup"]) == (uid, gid)
        assert pod_security["seccompProfile"]["type"] == "RuntimeDefault"
        for container in spec["containers"]:
            assert container["image"] == f"keygate:{project_version()}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            resources_ = container["resources"]
            assert {"cpu", "memory"} <= set(resources_["requests"]), workload_name
            assert "memory" in resources_["limits"], workload_name


def test_migrate_job_runs_once_to_completion() -> None:
    """The Job runs `keygate migrate` with only the database URL, never restarts in place."""
    (job,) = of_kind("Job").values()
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1
    assert "ttlSecondsAfterFinished" in job["spec"]
    (container,) = spec["containers"]
    assert container["args"] == ["migrate"]
    assert set(container_env(container).secret_refs) == {"KEYGATE_DATABASE_URL"}


def test_gateway_and_introspector_probes_stay_shallow() -> None:
    """Probes use the shallow endpoint, so a dependency outage never empties a Service."""
    for container in (c for _, c in _containers() if _command(c) in HEALTH_PATHS):
        shallow = HEALTH_PATHS[_command(container)]["shallow"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"] == shallow, (container["name"], probe)


def test_scrape_annotations_name_the_metrics_endpoint() -> None:
    """prometheus.io/* pod annotations point at each service's real metrics path and port."""
    for workload in of_kind("Deployment").values():
        (container,) = pod_spec(workload)["containers"]
        command = _command(container)
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if command not in HEALTH_PATHS:
            assert "prometheus.io/scrape" not in annotations
            continue
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        # The gateway serves metrics on its ops port (KEYGATE_GATEWAY_OPS_PORT), not the public one.
        port = ports.get("ops", ports["http"])
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == HEALTH_PATHS[command]["metrics"]
        assert annotations["prometheus.io/port"] == str(port)


async def test_every_probe_answers_200_on_the_running_service(
    live_services: LiveServices,
) -> None:
    """Every probe and scrape path of every Deployment gets 200 from the running service."""
    checked = 0
    async with aiohttp.ClientSession() as http:
        for workload in of_kind("Deployment").values():
            (container,) = pod_spec(workload)["containers"]
            command = _command(container)
            paths = {container[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe")}
            paths.add(container["readinessProbe"]["httpGet"]["path"])
            annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
            if "prometheus.io/path" in annotations:
                paths.add(annotations["prometheus.io/path"])
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["port"] == container["ports"][0]["name"]
            for path in sorted(paths):
                async with http.get(live_services.url(command, path)) as response:
                    assert response.status == 200, f"{command} {path}: {response.status}"
                    checked += 1
    assert checked >= 5


def _gateway_container() -> dict[str, Any]:
    (container,) = pod_spec(of_kind("Deployment")["keygate-gateway"])["containers"]
    return container


def test_gateway_believes_forwarded_for_only_from_the_ingress_controller() -> None:
    """KEYGATE_TRUSTED_PROXIES is set (the ingress is a trusted proxy), and a NetworkPolicy lets
    only the ingress controller's namespace reach the client port, so no other pod can spoof."""
    settings = _settings(_gateway_container())
    assert settings.trusted_proxies, "behind an Ingress every client would share its address"
    gateway = of_kind("Deployment")["keygate-gateway"]
    (policy,) = (
        p
        for p in of_kind("NetworkPolicy").values()
        if selects(p["spec"]["podSelector"]["matchLabels"], pod_labels(gateway))
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    sources_by_port: dict[str, list[Any]] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule["ports"]:
            sources_by_port.setdefault(port["port"], []).append(rule.get("from"))
    (http_sources,) = sources_by_port["http"]
    (source,) = http_sources
    assert set(source) == {"namespaceSelector"}, "the client port is for the ingress only"
    assert source["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
    assert set(sources_by_port) == {"http", "ops"}


def test_metrics_and_readiness_are_on_the_ops_port() -> None:
    """The gateway's ops listener is on, on its own container port, and that is what is scraped."""
    container = _gateway_container()
    settings = _settings(container)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.ops_port == ports["ops"] != settings.port == ports["http"]
    assert settings.ops_host == "0.0.0.0"  # noqa: S104 - the kubelet and Prometheus scrape the pod IP
