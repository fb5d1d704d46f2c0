"""deploy/helm/stepwise: rendered by Helm's own engine and validated against Kubernetes schemas.

`helm_python` binds Helm's Go SDK (no helm binary, no cluster); `kubernetes_validate` carries the
Kubernetes JSON schemas offline. Both are dev dependencies: a missing one fails, never skips.
"""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]  # ships no type information
import pytest
import yaml

from .conftest import DEPLOY, FORBIDDEN, Component

CHART = DEPLOY / "helm" / "stepwise"
RELEASE = "prod"
# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest with schemas.
KUBE_VERSIONS = ["1.25.0", kubernetes_validate.latest_version()]
DATABASE_URL = "postgresql://stepwise:pw@db:5432/stepwise"
REQUIRED: dict[str, Any] = {"database": {"url": DATABASE_URL}, "secretKey": "k"}

Manifest = dict[str, Any]


def render(values: dict[str, Any]) -> list[Manifest]:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=RELEASE, namespace="stepwise")
    return [
        doc
        for path, text in sorted(rendered.items())
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    return render(REQUIRED)


@pytest.fixture(scope="module")
def chart_values() -> dict[str, Any]:
    loaded = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}"
    return found[0]


def deployment_of(manifests: list[Manifest], component: str) -> Manifest:
    found = [
        m
        for m in of_kind(manifests, "Deployment")
        if m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == component
    ]
    assert len(found) == 1, f"expected one Deployment for {component}"
    return found[0]


def visible_env(manifests: list[Manifest], container: Manifest) -> set[str]:
    """Every variable the container gets: env entries and the keys of envFrom sources. A key
    taken from a chart-made ConfigMap or Secret must exist there."""
    names = set()
    for entry in container.get("env", []):
        names.add(entry["name"])
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        made = [
            s for s in of_kind(manifests, "Secret") if ref and s["metadata"]["name"] == ref["name"]
        ]
        for secret in made:
            assert ref["key"] in secret["data"], f"{ref} is not in the chart's Secret"
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= named(manifests, "ConfigMap", source["configMapRef"]["name"])["data"].keys()
        if "secretRef" in source:
            names |= named(manifests, "Secret", source["secretRef"]["name"])["data"].keys()
    return names


def secret_refs(container: Manifest) -> dict[str, str]:
    """Variable → the Secret it is read from."""
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_chart_lints_clean() -> None:
    report = helm.lint(CHART, REQUIRED, strict=True, kube_version="v1.25.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize(
    "values",
    [
        REQUIRED,
        {"existingSecret": "stepwise-secrets"},
        {**REQUIRED, "api": {"autoscaling": {"enabled": True}}},
    ],
    ids=["chart-secret", "existing-secret", "api-hpa"],
)
def test_every_manifest_validates_against_the_kubernetes_schema(
    values: dict[str, Any], kube_version: str
) -> None:
    manifests = render(values)
    assert len(manifests) > 10
    for manifest in manifests:
        # strict: unknown fields (typos) are errors, as the API server's strict decoding would be
        kubernetes_validate.validate(manifest, kube_version, strict=True)


def test_a_deployment_service_and_budget_per_service(
    manifests: list[Manifest], components: list[Component]
) -> None:
    kinds = Counter(m["kind"] for m in manifests)
    assert kinds["Deployment"] == len(components)
    for component in components:
        deployment = deployment_of(manifests, component.name)
        name = deployment["metadata"]["name"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        service = named(manifests, "Service", name)
        assert service["spec"]["selector"] == selector
        assert service["spec"]["ports"][0]["targetPort"] == "http"
        budget = named(manifests, "PodDisruptionBudget", name)
        assert budget["spec"]["selector"]["matchLabels"] == selector
        assert budget["spec"]["maxUnavailable"] == 1, "a drain never blocks on one replica"


def test_containers_probe_health_and_readiness_on_the_services_port(
    manifests: list[Manifest], components: list[Component]
) -> None:
    for component in components:
        pod = deployment_of(manifests, component.name)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"].endswith(f"/{component.name}:0.1.0")
        assert container["ports"] == [
            {"name": "http", "containerPort": component.port, "protocol": "TCP"}
        ]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env[component.port_env] == str(component.port)
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert "memory" in container["resources"]["limits"]
        assert pod["terminationGracePeriodSeconds"] >= 30
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_grace_periods_outlast_the_services_own_shutdown_budget(
    manifests: list[Manifest], chart_values: dict[str, Any], components: list[Component]
) -> None:
    """SIGTERM → preStop pause → the service's own drain budget → exit 0, within the grace."""
    for component in components:
        pod = deployment_of(manifests, component.name)["spec"]["template"]["spec"]
        pause = chart_values[component.values_key].get("preStopSleepSeconds", 0)
        budget = component.shutdown_budget_s
        assert pod["terminationGracePeriodSeconds"] > budget + pause, component.name


def test_every_variable_a_service_reads_reaches_its_container(
    manifests: list[Manifest], components: list[Component], test_only_vars: frozenset[str]
) -> None:
    for component in components:
        (container,) = deployment_of(manifests, component.name)["spec"]["template"]["spec"][
            "containers"
        ]
        missing = sorted(component.env - test_only_vars - visible_env(manifests, container))
        assert missing == [], (
            f"{component.name} reads {missing}: add them to deploy/helm/stepwise/values.yaml "
            f"(config, or {component.values_key}.env), compose and deploy/README.md"
        )


def test_containers_get_only_documented_variables_and_no_engine_switch(
    manifests: list[Manifest],
    components: list[Component],
    documented_service_vars: frozenset[str],
    test_only_vars: frozenset[str],
) -> None:
    containers = [
        c
        for m in of_kind(manifests, "Deployment") + of_kind(manifests, "Job")
        for c in m["spec"]["template"]["spec"]["containers"]
    ]
    assert len(containers) == len(components) + 1
    for container in containers:
        names = visible_env(manifests, container)
        assert sorted(names - documented_service_vars) == [], container["name"]
        assert sorted(names & test_only_vars) == [], f"{container['name']}: fault hook set"
        assert sorted(n for n in names if FORBIDDEN.search(n)) == []


def test_settings_from_values_land_in_the_configmap_and_secret(manifests: list[Manifest]) -> None:
    values = {
        **REQUIRED,
        "temporal": {"address": "t.example:7233", "namespace": "staging"},
        "nats": {"url": "nats://n.example:4222"},
        "worker": {"env": {"STEPWISE_WORKER_MAX_CONCURRENT_ACTIVITIES": 300}},
    }
    rendered = render(values)
    config = of_kind(rendered, "ConfigMap")[0]["data"]
    assert config["TEMPORAL_ADDRESS"] == "t.example:7233"
    assert config["TEMPORAL_NAMESPACE"] == "staging"
    assert config["NATS_URL"] == "nats://n.example:4222"
    (secret,) = [
        s
        for s in of_kind(rendered, "Secret")
        if "helm.sh/hook" not in s["metadata"].get("annotations", {})
    ]
    assert base64.b64decode(secret["data"]["DATABASE_URL"]).decode() == DATABASE_URL
    assert base64.b64decode(secret["data"]["STEPWISE_SECRET_KEY"]).decode() == "k"
    (worker,) = deployment_of(rendered, "worker")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["STEPWISE_WORKER_MAX_CONCURRENT_ACTIVITIES"] == "300"


def test_migrations_run_as_a_pre_install_and_pre_upgrade_hook(manifests: list[Manifest]) -> None:
    (job,) = of_kind(manifests, "Job")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith("/migrate:0.1.0")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    (database_url,) = container["env"]
    ref = database_url["valueFrom"]["secretKeyRef"]
    assert (database_url["name"], ref["key"]) == ("DATABASE_URL", "DATABASE_URL")
    # Hooks run before the release's own objects exist: the Job's Secret must be a hook too,
    # created before it (lower weight).
    secret = named(manifests, "Secret", ref["name"])
    secret_hooks = secret["metadata"]["annotations"]
    assert set(secret_hooks["helm.sh/hook"].split(",")) >= {"pre-install", "pre-upgrade"}
    assert int(secret_hooks["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    assert "DATABASE_URL" in secret["data"]


def test_an_existing_secret_replaces_the_charts_secret_everywhere() -> None:
    rendered = render({"existingSecret": "stepwise-secrets"})
    assert of_kind(rendered, "Secret") == []
    containers = [
        c
        for m in of_kind(rendered, "Deployment") + of_kind(rendered, "Job")
        for c in m["spec"]["template"]["spec"]["containers"]
    ]
    for container in containers:
        assert "DATABASE_URL" in secret_refs(container)
        assert set(secret_refs(container).values()) == {"stepwise-secrets"}


def test_secrets_reach_only_the_services_that_read_them(
    manifests: list[Manifest], components: list[Component], secret_vars: frozenset[str]
) -> None:
    for component in components:
        (container,) = deployment_of(manifests, component.name)["spec"]["template"]["spec"][
            "containers"
        ]
        assert secret_vars & visible_env(manifests, container) == secret_vars & component.env
        assert secret_vars & visible_env(manifests, container) == set(secret_refs(container))


def test_secrets_are_required_unless_an_existing_secret_is_named() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"database\.url is required"):
        render({"secretKey": "k"})
    with pytest.raises(helm.HelmRenderError, match=r"secretKey is required"):
        render({"database": {"url": "postgresql://x@db/stepwise"}})


def test_worker_and_router_autoscale_and_leave_replicas_to_the_hpa(
    manifests: list[Manifest], components: list[Component]
) -> None:
    scaled = {
        h["spec"]["scaleTargetRef"]["name"]: h
        for h in of_kind(manifests, "HorizontalPodAutoscaler")
    }
    for component in components:
        deployment = deployment_of(manifests, component.name)
        name = deployment["metadata"]["name"]
        if component.name in {"worker", "event-router"}:
            hpa = scaled[name]
            assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"
            assert hpa["spec"]["minReplicas"] >= 2
            assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
        else:
            assert name not in scaled
            assert deployment["spec"]["replicas"] >= 1


def test_values_ports_agree_with_the_code(
    chart_values: dict[str, Any], components: list[Component]
) -> None:
    for component in components:
        assert chart_values[component.values_key]["port"] == component.port
        assert chart_values[component.values_key]["image"]["repository"] == component.name


def test_the_temporal_dynamic_config_is_rendered_for_the_cluster(manifests: list[Manifest]) -> None:
    config = named(manifests, "ConfigMap", f"{RELEASE}-stepwise-temporal-dynamic-config")
    assert yaml.safe_load(config["data"]["stepwise.yaml"]) == {
        "matching.enableFairness": [{"value": True}]
    }
    # `temporal.dynamicConfig: null` leaves it out (a cluster configured another way)
    values = {**REQUIRED, "temporal": {"dynamicConfig": None}}
    assert not [
        m for m in of_kind(render(values), "ConfigMap") if "dynamic" in m["metadata"]["name"]
    ]


def _container(manifests: list[Manifest], component: str) -> Manifest:
    (container,) = deployment_of(manifests, component)["spec"]["template"]["spec"]["containers"]
    found: Manifest = container
    return found


EXTERNAL_CLUSTERS: dict[str, Any] = {
    **REQUIRED,
    "temporal": {
        "address": "prod.abc12.tmprl.cloud:7233",
        "namespace": "prod.abc12",
        "tls": {
            "existingSecret": "temporal-client-tls",
            "caKey": "ca.crt",
            "certKey": "tls.crt",
            "keyKey": "tls.key",
            "serverName": "frontend.internal",
        },
        "apiKey": "temporal-api-key",
    },
    "nats": {
        "urls": ["tls://nats-0.nats:4222", "tls://nats-1.nats:4222", "tls://nats-2.nats:4222"],
        "streamReplicas": 3,
        "credentials": {"existingSecret": "nats-user", "key": "stepwise.creds"},
        "tls": {"existingSecret": "nats-client-tls", "caKey": "ca.crt"},
    },
    "database": {"url": DATABASE_URL, "tls": {"existingSecret": "pg-ca"}},
    "api": {"env": {"STEPWISE_API_DB_POOL_SIZE": 8}},
}


def test_external_temporal_nats_and_postgres_reach_every_service() -> None:
    rendered = render(EXTERNAL_CLUSTERS)
    for version in KUBE_VERSIONS:
        for manifest in rendered:
            kubernetes_validate.validate(manifest, version, strict=True)
    config = named(rendered, "ConfigMap", f"{RELEASE}-stepwise")["data"]
    assert config["NATS_URL"] == (
        "tls://nats-0.nats:4222,tls://nats-1.nats:4222,tls://nats-2.nats:4222"
    )
    assert config["STEPWISE_NATS_STREAM_REPLICAS"] == "3"
    assert config["NATS_CREDS"] == "/etc/stepwise/nats-creds/stepwise.creds"
    assert config["NATS_CA"] == "/etc/stepwise/nats-tls/ca.crt"
    assert config["NATS_CERT"] == config["NATS_KEY"] == ""
    assert config["TEMPORAL_TLS_CA"] == "/etc/stepwise/temporal-tls/ca.crt"
    assert config["TEMPORAL_TLS_CERT"] == "/etc/stepwise/temporal-tls/tls.crt"
    assert config["TEMPORAL_TLS_KEY"] == "/etc/stepwise/temporal-tls/tls.key"
    assert config["TEMPORAL_TLS_SERVER_NAME"] == "frontend.internal"
    (secret,) = [
        s for s in of_kind(rendered, "Secret") if s["metadata"]["name"].endswith("stepwise")
    ]
    assert base64.b64decode(secret["data"]["TEMPORAL_API_KEY"]) == b"temporal-api-key"
    for component in ("api", "worker", "event-router", "sweeper"):
        pod = deployment_of(rendered, component)["spec"]["template"]["spec"]
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        volumes = {v["name"]: v.get("secret", {}).get("secretName") for v in pod["volumes"]}
        for directory, secret_name in {
            "temporal-tls": "temporal-client-tls",
            "nats-creds": "nats-user",
            "nats-tls": "nats-client-tls",
            "postgres-tls": "pg-ca",
        }.items():
            assert mounts[f"/etc/stepwise/{directory}"] == directory, component
            assert volumes[directory] == secret_name, component
        api_key = {e["name"]: e for e in pod["containers"][0]["env"]}["TEMPORAL_API_KEY"]
        assert api_key["valueFrom"]["secretKeyRef"]["optional"] is True
    env = {e["name"]: e.get("value") for e in _container(rendered, "api")["env"]}
    assert env["STEPWISE_API_DB_POOL_SIZE"] == "8"
    # the migrate Job reaches Postgres over TLS too, and gets nothing else
    (job,) = of_kind(rendered, "Job")
    job_pod = job["spec"]["template"]["spec"]
    assert [v["name"] for v in job_pod["volumes"]] == ["postgres-tls"]
    assert job_pod["containers"][0]["volumeMounts"][0]["mountPath"] == "/etc/stepwise/postgres-tls"


def test_by_default_nothing_is_mounted_and_the_cluster_settings_are_empty(
    manifests: list[Manifest],
) -> None:
    config = named(manifests, "ConfigMap", f"{RELEASE}-stepwise")["data"]
    for name in ("NATS_CREDS", "NATS_CA", "TEMPORAL_TLS", "TEMPORAL_TLS_CA", "TEMPORAL_API_KEY"):
        assert config.get(name, "") == ""
    for component in ("api", "worker"):
        pod = deployment_of(manifests, component)["spec"]["template"]["spec"]
        assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    (job,) = of_kind(manifests, "Job")
    assert "volumes" not in job["spec"]["template"]["spec"]


def test_worker_hpa_scales_on_the_task_queue_backlog_when_asked(
    manifests: list[Manifest],
) -> None:
    from stepwise_contract.names import TASK_QUEUE

    def worker_hpa(rendered: list[Manifest]) -> Manifest:
        (hpa,) = [
            h
            for h in of_kind(rendered, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"]["name"].endswith("-worker")
        ]
        return hpa

    assert [m["type"] for m in worker_hpa(manifests)["spec"]["metrics"]] == ["Resource"]
    values = {
        **REQUIRED,
        "worker": {
            "autoscaling": {
                "backlog": {
                    "enabled": True,
                    "selector": {"namespace": "prod"},
                    "averageValue": "50",
                }
            }
        },
    }
    rendered = render(values)
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(worker_hpa(rendered), version, strict=True)
    cpu, backlog = worker_hpa(rendered)["spec"]["metrics"]
    assert cpu["type"] == "Resource" and backlog["type"] == "External"
    metric = backlog["external"]["metric"]
    assert metric["name"] == "temporal_approximate_backlog_count"
    assert metric["selector"]["matchLabels"] == {"task_queue": TASK_QUEUE, "namespace": "prod"}
    assert backlog["external"]["target"] == {"type": "AverageValue", "averageValue": "50"}
    # PodDisruptionBudgets stay with the HPA
    pdbs = {p["metadata"]["name"] for p in of_kind(rendered, "PodDisruptionBudget")}
    assert f"{RELEASE}-stepwise-worker" in pdbs and len(pdbs) == 4
