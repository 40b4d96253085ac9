"""deploy/k8s/kizen-sync.yaml, validated offline (it is not run live here).

Each object is checked against the Kubernetes API models that ship with the ``kubernetes``
client (every field known, of the right type, required fields present), the Dagster instance it
carries against Dagster's instance schema and dagster-k8s's ``K8sRunLauncher`` schema, and the
names the objects use to find each other (ConfigMaps, Secret, ServiceAccount, Service) against
what the file defines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config_schema
from dagster_k8s.launcher import K8sRunLauncher

ROOT = Path(__file__).parents[2]
MANIFEST = ROOT / "deploy" / "k8s" / "kizen-sync.yaml"
MODELS = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
}
_PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text(encoding="utf-8")) if d]


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def schema_problems(value: Any, type_name: str, path: str) -> list[str]:
    """Where ``value`` does not fit the client's model ``type_name`` (unknown keys, types)."""
    if type_name in _PRIMITIVES:
        ok = isinstance(value, _PRIMITIVES[type_name]) and not (
            type_name == "int" and isinstance(value, bool)
        )
        return [] if ok else [f"{path}: expected {type_name}, got {value!r}"]
    if type_name == "object":
        return []
    if match := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [
            p for i, v in enumerate(value) for p in schema_problems(v, match[1], f"{path}[{i}]")
        ]
    if match := re.fullmatch(r"dict\[str, (.+)\]", type_name):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping"]
        return [p for k, v in value.items() for p in schema_problems(v, match[1], f"{path}.{k}")]
    model = getattr(kubernetes.client, type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} mapping"]
    keys = {json_key: attr for attr, json_key in model.attribute_map.items()}
    problems = [f"{path}.{k}: not a field of {type_name}" for k in value if k not in keys]
    for key, item in value.items():
        if key in keys:
            problems += schema_problems(item, model.openapi_types[keys[key]], f"{path}.{key}")
    return problems


class _Response:
    def __init__(self, document: dict[str, Any]) -> None:
        self.data = json.dumps(document)


@pytest.mark.parametrize("index", range(len(documents())))
def test_each_object_fits_the_kubernetes_api(index: int) -> None:
    document = documents()[index]
    model = MODELS[(document["apiVersion"], document["kind"])]
    assert schema_problems(document, model, document["kind"]) == []
    # The client's own deserializer enforces required fields (containers, selector, roleRef...).
    kubernetes.client.ApiClient().deserialize(_Response(document), model)


def test_the_instance_fits_dagster_and_the_k8s_launcher() -> None:
    instance = yaml.safe_load(by_kind("ConfigMap")["kizen-sync-instance"]["data"]["dagster.yaml"])
    result = validate_config(dagster_instance_config_schema(), instance)
    assert result.success, [e.message for e in result.errors or []]
    launcher = instance["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    result = validate_config(K8sRunLauncher.config_type(), launcher["config"])
    assert result.success, [e.message for e in result.errors or []]
    # The same instance policy as deploy/dagster.yaml: pools, monitoring, retries.
    local = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text(encoding="utf-8"))
    for key in ("concurrency", "run_monitoring", "run_retries", "storage"):
        assert instance[key] == local[key], key


def test_the_objects_find_each_other() -> None:
    config_maps, accounts = by_kind("ConfigMap"), by_kind("ServiceAccount")
    services, deployments = by_kind("Service"), by_kind("Deployment")
    launcher = yaml.safe_load(config_maps["kizen-sync-instance"]["data"]["dagster.yaml"])[
        "run_launcher"
    ]["config"]
    assert launcher["instance_config_map"] in config_maps
    assert set(launcher["env_config_maps"]) <= set(config_maps)
    assert launcher["service_account_name"] in accounts
    workspace = yaml.safe_load(config_maps["kizen-sync-workspace"]["data"]["workspace.yaml"])
    (server,) = [entry["grpc_server"] for entry in workspace["load_from"]]
    assert server["host"] in services
    assert services[server["host"]]["spec"]["ports"][0]["port"] == server["port"]
    for name, deployment in deployments.items():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] in accounts, name
        assert deployment["spec"]["selector"]["matchLabels"].items() <= (
            deployment["spec"]["template"]["metadata"]["labels"].items()
        )
        for volume in spec.get("volumes", []):
            assert volume["configMap"]["name"] in config_maps, (name, volume)
        (container,) = spec["containers"]
        refs = [e for e in container["envFrom"] if "configMapRef" in e]
        assert all(e["configMapRef"]["name"] in config_maps for e in refs), name
        # The secret is created by hand (never in this file); every process reads it.
        assert {"secretRef": {"name": "kizen-sync-secrets"}} in container["envFrom"], name
    env = config_maps["kizen-sync-env"]["data"]
    assert {"DAGSTER_HOME", "KIZEN_SYNC_CONFIG"} <= set(env)
    assert "KIZEN_API_KEY" not in env  # a secret, never in a ConfigMap
