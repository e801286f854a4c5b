"""The Kubernetes and KServe manifests under deploy/, validated offline.

Core resources go through kubernetes-validate's strict schemas (unknown fields fail) for
the oldest and newest supported Kubernetes. The InferenceService CRD is not among them: its
envelope is checked by a JSON schema written from KServe's v1beta1 types, and its predictor
(an inline PodSpec) by the Pod schema. `kubectl kustomize` renders every folder.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml

from tests.test_packaging import ROOT, image_config, tool

K8S_VERSIONS = ("1.30.0", "1.37.0")  # oldest supported (preStop sleep is beta there), newest
KSERVE_EXTENSION = {
    "minReplicas",
    "maxReplicas",
    "scaleTarget",
    "scaleMetric",
    "timeout",
    "containerConcurrency",
    "canaryTrafficPercent",
    "logger",
    "batcher",
    "labels",
    "annotations",
    "deploymentStrategy",
    "autoScaling",
}
# The InferenceService fields used here, as KServe's v1beta1 CRD defines them.
ISVC_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1beta1"},
        "kind": {"const": "InferenceService"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$"},
                "annotations": {
                    "type": "object",
                    "properties": {
                        "serving.kserve.io/deploymentMode": {
                            "enum": ["RawDeployment", "Standard", "Serverless", "Knative"]
                        }
                    },
                },
            },
        },
        "spec": {
            "type": "object",
            "required": ["predictor"],
            "additionalProperties": False,
            "properties": {
                "predictor": {
                    "type": "object",
                    "required": ["containers"],
                    "properties": {
                        "minReplicas": {"type": "integer", "minimum": 0},
                        "maxReplicas": {"type": "integer", "minimum": 1},
                    },
                }
            },
        },
    },
}


def manifests() -> list[dict[str, Any]]:
    """Every resource under deploy/ (kustomization files aside)."""
    return [
        doc
        for path in sorted((ROOT / "deploy").rglob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def validate_resource(doc: dict[str, Any]) -> None:
    """Strict schema validation; the InferenceService's pod spec goes through the Pod schema."""
    import kubernetes_validate

    if doc["kind"] == "InferenceService":
        jsonschema.validate(doc, ISVC_SCHEMA)
        predictor = {k: v for k, v in doc["spec"]["predictor"].items() if k not in KSERVE_EXTENSION}
        doc = {"apiVersion": "v1", "kind": "Pod", "metadata": doc["metadata"], "spec": predictor}
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def test_manifests_validate_offline() -> None:
    docs = manifests()
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == [
        "Deployment",
        "HorizontalPodAutoscaler",
        "InferenceService",
        "Job",
        "PersistentVolumeClaim",
        "Service",
    ]
    for doc in docs:
        validate_resource(doc)
    broken = json.loads(json.dumps(next(d for d in docs if d["kind"] == "Deployment")))
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(jsonschema.ValidationError):
        validate_resource(broken)


@pytest.mark.parametrize("folder", ["base", "kserve", "train", "storage"])
def test_kustomize_renders(folder: str) -> None:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(ROOT / "deploy" / folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert rendered
    for doc in rendered:
        validate_resource(doc)
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "alexnet-serving"


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def check_pod(pod: dict[str, Any], container: dict[str, Any], probes: dict[str, str]) -> None:
    """GPU, non-root, read-only root with /tmp, and probes on the service's port."""
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(image_config()["user"].split(":")[0])
    assert pod["enableServiceLinks"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "cpu" in container["resources"]["requests"]
    tmp = next(m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp)
    port = container["ports"][0]
    assert env_of(container)["ALEXNET_PORT"] == str(port["containerPort"])
    for probe, path in probes.items():
        assert container[probe]["httpGet"]["path"] == path
        assert container[probe]["httpGet"]["port"] in (port["name"], port["containerPort"])


def test_deployment_service_hpa_fit_together() -> None:
    docs = {doc["kind"]: doc for doc in manifests()}
    deployment, service, hpa = docs["Deployment"], docs["Service"], docs["HorizontalPodAutoscaler"]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    check_pod(
        pod,
        container,
        {
            "startupProbe": "/health/live",
            "livenessProbe": "/health/live",
            "readinessProbe": "/health/ready",
        },
    )
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    claim = next(v for v in pod["volumes"] if "persistentVolumeClaim" in v)
    assert (
        claim["persistentVolumeClaim"]["claimName"]
        == docs["PersistentVolumeClaim"]["metadata"]["name"]
    )
    mount = next(m for m in container["volumeMounts"] if m["name"] == claim["name"])
    assert (
        mount["readOnly"] is True and mount["mountPath"] == env_of(container)["ALEXNET_ARTIFACTS"]
    )


def test_inferenceservice_is_a_v2_custom_predictor() -> None:
    docs = {doc["kind"]: doc for doc in manifests()}
    predictor = docs["InferenceService"]["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"  # where KServe reads PROTOCOL/STORAGE_URI
    env = env_of(container)
    assert env["PROTOCOL"] == "v2"
    assert env["STORAGE_URI"] == f"pvc://{docs['PersistentVolumeClaim']['metadata']['name']}/"
    assert env["ALEXNET_ARTIFACTS"] == "/mnt/models"
    assert env["ALEXNET_MODEL_NAME"] == docs["InferenceService"]["metadata"]["name"]
    check_pod(
        predictor,
        container,
        {
            "startupProbe": "/v2/health/live",
            "livenessProbe": "/v2/health/live",
            "readinessProbe": "/v2/health/ready",
        },
    )
