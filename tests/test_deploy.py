"""deploy/ validated without a container engine: the compose file against the
compose-spec JSON schema (vendored by check-jsonschema), the Kubernetes
manifests structurally, every environment variable they set against the real
Settings, and the Dockerfile against the project's own rules."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import AliasChoices

from peerlearn.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PEERLEARN_SERVICES = ("api", "worker")
# variables the image or the libraries read that are not peerlearn Settings
NON_SETTINGS_ENV = {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PYTHONUNBUFFERED", "PATH"}


def settings_env_names() -> set[str]:
    names = set()
    for name, f in Settings.model_fields.items():
        if isinstance(f.validation_alias, AliasChoices):
            names |= {str(c) for c in f.validation_alias.choices}
        else:
            names.add(f"PEERLEARN_{name.upper()}")
    return names


def assert_known_env(names: set[str], where: str) -> None:
    unknown = names - settings_env_names() - NON_SETTINGS_ENV
    assert not unknown, f"{where} sets variables no Settings field reads: {sorted(unknown)}"


# --------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def test_compose_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema_text = (
        resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text()
    )
    schema = json.loads(schema_text)
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_compose_services_are_complete(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgresql", "temporal", "temporal-ui", "api", "worker"} <= set(services)
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, f"{name} has neither image nor build"
        deps = svc.get("depends_on", {})
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, f"{name} depends on unknown service {dep}"
        image = svc.get("image", "")
        assert not image.endswith(":latest") and ":" in image, f"{name}: pin the image tag"
    assert services["postgresql"]["image"].startswith("pgvector/pgvector:pg17")
    assert services["temporal"]["environment"]["DB"].startswith("postgres")
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["worker"]["command"] == ["worker"]
    assert services["api"]["command"] == ["api"]
    assert services["api"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY.parent / services["api"]["build"]["dockerfile"]).exists()


def test_compose_peerlearn_env_points_at_the_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in PEERLEARN_SERVICES:
        env = services[name]["environment"]
        assert_known_env(set(env), f"compose service {name}")
        settings = Settings.model_validate({k: str(v) for k, v in env.items()})  # real config
        assert settings.database_url and "@postgresql:5432/" in settings.database_url
        host = (settings.temporal_address or "").split(":")[0]
        assert host in services, f"{name}: TEMPORAL_ADDRESS host {host} is not a service"


# --------------------------------------------------------------------------- kubernetes


def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc["__file"] = path.name
                docs.append(doc)
    return docs


def test_k8s_manifests_are_well_formed() -> None:
    docs = k8s_docs()
    kinds = {(d["kind"], d.get("metadata", {}).get("name")) for d in docs}
    for expected in [
        ("Deployment", "peerlearn-api"),
        ("Deployment", "peerlearn-worker"),
        ("Service", "peerlearn-api"),
        ("ConfigMap", "peerlearn-config"),
        ("Secret", "peerlearn-secrets"),
        ("HorizontalPodAutoscaler", "peerlearn-worker"),
    ]:
        assert expected in kinds, f"missing {expected}"
    for d in docs:
        assert "apiVersion" in d and "kind" in d, d["__file"]
        if d["kind"] == "Kustomization":
            for res in d["resources"]:
                assert (DEPLOY / "k8s" / res).exists(), res
            continue
        assert d["metadata"].get("name"), d["__file"]


def deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_docs() if d["kind"] == "Deployment"}


def test_k8s_deployments_select_their_pods_and_run_the_image() -> None:
    for name, dep in deployments().items():
        spec = dep["spec"]
        labels = spec["template"]["metadata"]["labels"]
        for k, v in spec["selector"]["matchLabels"].items():
            assert labels.get(k) == v, f"{name}: selector does not match the pod labels"
        (container,) = spec["template"]["spec"]["containers"]
        assert container["image"] == "peerlearn"
        assert container["args"] in (["api"], ["worker"])
        assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        assert "requests" in container["resources"] and "limits" in container["resources"]
    api = deployments()["peerlearn-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/health"
    port_names = {p["name"] for p in api["ports"]}
    assert api["readinessProbe"]["httpGet"]["port"] in port_names
    service = next(d for d in k8s_docs() if d["kind"] == "Service")
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    hpa = next(d for d in k8s_docs() if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] in deployments()
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_k8s_env_names_are_real_settings_and_cover_temporal_cloud() -> None:
    docs = k8s_docs()
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    secret = next(d for d in docs if d["kind"] == "Secret")
    assert_known_env(set(config["data"]), "the ConfigMap")
    assert_known_env(set(secret["stringData"]), "the Secret")
    for name, dep in deployments().items():
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert_known_env({e["name"] for e in container.get("env", [])}, name)
        refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
        assert refs == {config["metadata"]["name"], secret["metadata"]["name"]}
    everything = set(config["data"]) | set(secret["stringData"])
    for needed in (
        "TEMPORAL_ADDRESS",
        "PEERLEARN_TEMPORAL_NAMESPACE",
        "PEERLEARN_TEMPORAL_TLS",
        "PEERLEARN_TEMPORAL_API_KEY",
        "DATABASE_URL",
    ):
        assert needed in everything
    assert "DATABASE_URL" in secret["stringData"]  # credentials never in the ConfigMap
    Settings.model_validate(dict(config["data"]))  # the values parse


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_follows_the_rules() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    froms = [ln for ln in lines if ln.upper().startswith("FROM ")]
    assert froms and all(re.match(r"FROM python:3\.11-slim\b", f) for f in froms), froms
    assert "torch==2.13.0" in text and "download.pytorch.org/whl/cpu" in text
    assert not re.search(r"torch(?!==2\.13\.0)[<>=~]", text), "torch must stay pinned exactly"
    assert "peerlearn model prepare" in text  # the model is in the image, not fetched at start
    user_lines = [ln for ln in lines if ln.startswith("USER ")]
    assert user_lines and user_lines[-1] not in ("USER root", "USER 0")
    assert lines[-2].startswith("ENTRYPOINT") and "peerlearn" in lines[-2]
    assert lines[-1] == 'CMD ["api"]'
    env_names = set(re.findall(r"\b((?:PEERLEARN_|HF_|TRANSFORMERS_)[A-Z_]+)=", text))
    assert_known_env(env_names, "the Dockerfile")
    copied = re.findall(r"^COPY (?!--from)(\S+)", text, flags=re.M)
    for path in copied:
        assert (DEPLOY.parent / path).exists(), f"COPY {path}: no such path in the repository"
    # every top-level package pyproject.toml installs must be in the image, or the
    # console script (service.cli) fails with ModuleNotFoundError inside the container
    pyproject = (DEPLOY.parent / "pyproject.toml").read_text()
    include = re.search(r"include = \[([^\]]*)\]", pyproject)
    assert include, "pyproject.toml: no setuptools packages include list"
    packages = {p.strip('" *') for p in include.group(1).split(",")}
    missing = packages - set(copied)
    assert not missing, f"the Dockerfile does not COPY {sorted(missing)}"


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (DEPLOY.parent / "README.md").read_text()
    for name, f in Settings.model_fields.items():
        env = (
            str(f.validation_alias.choices[0])
            if isinstance(f.validation_alias, AliasChoices)
            else f"PEERLEARN_{name.upper()}"
        )
        assert f"`{env}`" in readme, f"README's configuration table misses {env}"
