"""The Kubernetes manifests in deploy/k8s, and what each container would see at run time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from tests.harness.project import ROOT

K8S_DIR = ROOT / "deploy" / "k8s"
KUSTOMIZATION = K8S_DIR / "kustomization.yaml"
SECRET_NAME = "keygate-secrets"


def kustomization() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(KUSTOMIZATION.read_text())
    return data


def manifest_files() -> list[str]:
    """Every manifest file's name (the kustomization itself excluded)."""
    return sorted(p.name for p in K8S_DIR.glob("*.yaml") if p != KUSTOMIZATION)


def resources() -> list[dict[str, Any]]:
    """Every Kubernetes object in deploy/k8s, in file order."""
    found = []
    for name in manifest_files():
        for document in yaml.safe_load_all((K8S_DIR / name).read_text()):
            if document is not None:
                found.append(document)
    return found


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    """Objects of ``kind`` by name."""
    return {r["metadata"]["name"]: r for r in resources() if r["kind"] == kind}


def workloads() -> dict[str, dict[str, Any]]:
    """Deployments and Jobs by name."""
    return {**of_kind("Deployment"), **of_kind("Job")}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@dataclass(frozen=True)
class ContainerEnv:
    """A container's environment: literal values (ConfigMaps, ``value``) and Secret refs."""

    values: dict[str, str]
    secret_refs: dict[str, tuple[str, str]]
    #: Secret refs marked ``optional``: unset when the Secret lacks the key.
    optional: frozenset[str] = frozenset()

    @property
    def names(self) -> set[str]:
        return set(self.values) | set(self.secret_refs)


def container_env(container: dict[str, Any]) -> ContainerEnv:
    """Resolve ``envFrom`` ConfigMaps and ``env`` the way the kubelet does (``env`` wins)."""
    configmaps = of_kind("ConfigMap")
    values: dict[str, str] = {}
    secret_refs: dict[str, tuple[str, str]] = {}
    optional: set[str] = set()
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, f"only ConfigMaps are loaded whole: {source}"
        values.update(configmaps[source["configMapRef"]["name"]]["data"])
    for entry in container.get("env", []):
        if "value" in entry:
            values[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        secret_refs[entry["name"]] = (ref["name"], ref["key"])
        if ref.get("optional"):
            optional.add(entry["name"])
        values.pop(entry["name"], None)
    return ContainerEnv(values, secret_refs, frozenset(optional))
