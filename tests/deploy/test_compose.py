"""deploy/compose.yaml and deploy/.env.example, checked statically (issue 10, SPEC §13)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import DEPLOY, FORBIDDEN, ROOT, Component, Documented

COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
INFRASTRUCTURE = {"postgres", "temporal-db", "temporal", "temporal-ui", "nats"}
# the `nats-cluster` profile: three JetStream nodes in one cluster
NATS_CLUSTER = {"nats-1", "nats-2", "nats-3"}
LONG_RUNNING_RESTART = {"always", "unless-stopped", "on-failure"}
# `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}`, `${NAME}`
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    pairs: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"bad .env.example line {line!r}"
        assert name not in pairs, f"{name} twice in .env.example"
        pairs[name] = value
    return pairs


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "use the mapping form of `environment`"
    return {str(k): str(v) for k, v in env.items()}


def _strings(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, v in node.items() for s in _strings(key) + _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return []


def test_compose_has_the_infrastructure_the_migrate_job_and_every_service(
    services: dict[str, dict[str, Any]], components: list[Component]
) -> None:
    expected = INFRASTRUCTURE | NATS_CLUSTER | {"migrate"} | {c.name for c in components}
    assert set(services) == expected


def test_every_service_has_an_image_a_healthcheck_and_a_restart_policy(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name}: no image or build"
        if name == "migrate":
            # One-shot: it must end, and end once; its success gates the services.
            assert service["restart"] == "no"
            assert service["healthcheck"] == {"disable": True}
            continue
        assert service.get("restart") in LONG_RUNNING_RESTART, f"{name}: restart policy"
        test = service.get("healthcheck", {}).get("test")
        assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"}, f"{name}: healthcheck"


def test_stepwise_images_build_from_their_dockerfiles_at_the_repository_root(
    services: dict[str, dict[str, Any]], components: list[Component]
) -> None:
    for name in [c.name for c in components] + ["migrate"]:
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"]).resolve() == ROOT
        assert build["dockerfile"] == f"deploy/docker/{name}.Dockerfile"
        assert (ROOT / build["dockerfile"]).is_file()
        assert services[name]["image"].startswith(f"stepwise/{name}:")


def test_services_start_after_a_successful_migration_and_healthy_dependencies(
    services: dict[str, dict[str, Any]], components: list[Component]
) -> None:
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: use depends_on with conditions"
        for target, rule in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "test" in services[target].get("healthcheck", {}), f"{target} has no check"
            else:
                assert condition == "service_completed_successfully" and target == "migrate"
    for component in components:
        depends = services[component.name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
        assert depends["postgres"] == {"condition": "service_healthy"}
        assert depends["temporal"] == {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_every_variable_a_service_reads_is_set_in_its_environment(
    services: dict[str, dict[str, Any]],
    components: list[Component],
    test_only_vars: frozenset[str],
    migrate_env: frozenset[str],
) -> None:
    for component in components:
        missing = sorted(
            component.env - test_only_vars - _environment(services[component.name]).keys()
        )
        assert missing == [], (
            f"{component.name} reads {missing}: add them to deploy/compose.yaml, "
            "deploy/.env.example, the chart values and deploy/README.md (Configuration)"
        )
    assert migrate_env, "the migrate job reads DATABASE_URL at least"
    assert sorted(migrate_env - _environment(services["migrate"]).keys()) == []


def test_stepwise_containers_get_only_documented_variables(
    services: dict[str, dict[str, Any]],
    components: list[Component],
    documented_service_vars: frozenset[str],
    test_only_vars: frozenset[str],
) -> None:
    for name in [c.name for c in components] + ["migrate"]:
        env = _environment(services[name]).keys()
        assert sorted(env - documented_service_vars) == [], f"{name}: undocumented variables"
        assert sorted(env & test_only_vars) == [], f"{name}: a test-only fault hook is set"


def test_secrets_reach_only_the_services_that_read_them(
    services: dict[str, dict[str, Any]], components: list[Component], secret_vars: frozenset[str]
) -> None:
    assert {"DATABASE_URL", "STEPWISE_SECRET_KEY"} <= secret_vars
    for component in components:
        given = secret_vars & _environment(services[component.name]).keys()
        assert given == secret_vars & component.env, component.name


def test_no_variable_anywhere_selects_an_engine_or_a_task_queue(
    compose: dict[str, Any], env_example: dict[str, str]
) -> None:
    names = set(env_example)
    for service in compose["services"].values():
        names |= set(_environment(service))
    names |= {m.group(1) for s in _strings(compose) for m in INTERPOLATION.finditer(s)}
    assert sorted(n for n in names if FORBIDDEN.search(n)) == []


def test_settings_come_from_env_example_under_their_own_name(
    services: dict[str, dict[str, Any]],
    components: list[Component],
    env_example: dict[str, str],
) -> None:
    """Each Stepwise variable is `${NAME:-default}` of itself, and NAME is in .env.example."""
    for name in [c.name for c in components] + ["migrate"]:
        for key, value in _environment(services[name]).items():
            match = INTERPOLATION.fullmatch(value)
            assert match and match.group(1) == key, f"{name}: {key}={value!r}"
            assert key in env_example, f"{key} missing from deploy/.env.example"


def test_env_example_is_exactly_what_compose_interpolates(
    compose: dict[str, Any], env_example: dict[str, str], documented: dict[str, Documented]
) -> None:
    used = {m.group(1) for s in _strings(compose) for m in INTERPOLATION.finditer(s)}
    assert sorted(used - env_example.keys()) == [], "knobs missing from .env.example"
    assert sorted(env_example.keys() - used) == [], ".env.example lines compose never reads"
    assert sorted(env_example.keys() - documented.keys()) == [], "undocumented .env.example keys"
    # A required value has no default in the example: the operator must choose it.
    required = {
        m.group(1)
        for s in _strings(compose)
        for m in INTERPOLATION.finditer(s)
        if m.group(2) == ":?"
    }
    assert required == {"STEPWISE_SECRET_KEY"}
    assert env_example["STEPWISE_SECRET_KEY"] == ""


def test_stepwise_containers_are_read_only_and_stop_within_their_grace(
    services: dict[str, dict[str, Any]], components: list[Component]
) -> None:
    for name in [c.name for c in components] + ["migrate"]:
        assert services[name]["read_only"] is True
        assert services[name]["tmpfs"] == ["/tmp"]
    for component in components:
        grace = services[component.name]["stop_grace_period"]
        assert re.fullmatch(r"\d+s", grace), grace
        assert int(grace[:-1]) > component.shutdown_budget_s, component.name


def test_defaults_agree_with_the_code(
    services: dict[str, dict[str, Any]], components: list[Component], env_example: dict[str, str]
) -> None:
    """Ports: compose default == settings default == healthcheck port == .env.example."""
    for component in components:
        service = services[component.name]
        value = _environment(service)[component.port_env]
        assert value == f"${{{component.port_env}:-{component.port}}}"
        assert env_example[component.port_env] == str(component.port)
        probe = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{value}/healthz" in probe
        assert service["stop_signal"] == "SIGTERM"


def test_temporal_runs_on_postgres_with_its_ui(services: dict[str, dict[str, Any]]) -> None:
    temporal = services["temporal"]
    assert temporal["image"].startswith("temporalio/auto-setup:")
    env = _environment(temporal)
    assert env["DB"] == "postgres12"
    seed = services[env["POSTGRES_SEEDS"]]
    assert seed["image"].startswith("postgres:")
    assert temporal["depends_on"] == {env["POSTGRES_SEEDS"]: {"condition": "service_healthy"}}
    # auto-setup registers the namespace the services use.
    assert env["DEFAULT_NAMESPACE"] == "${TEMPORAL_NAMESPACE:-default}"
    ui = services["temporal-ui"]
    assert ui["image"].startswith("temporalio/ui:")
    assert _environment(ui)["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_nats_runs_jetstream_with_file_storage_on_a_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    nats = services["nats"]
    command = nats["command"]
    assert "-js" in command
    store = Path(command[command.index("-sd") + 1])
    mounts = [str(v).split(":") for v in nats["volumes"]]
    assert any(
        source in compose["volumes"] and store.is_relative_to(target) for source, target in mounts
    ), "the JetStream store directory must be on a named volume"


def test_databases_keep_their_data_on_named_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    for name in ("postgres", "temporal-db"):
        sources = [str(v).split(":")[0] for v in services[name]["volumes"]]
        assert any(s in compose["volumes"] for s in sources), name


def test_published_ports_bind_to_loopback(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all interfaces"


def test_temporal_runs_with_task_queue_fairness(services: dict[str, dict[str, Any]]) -> None:
    """The same dynamic config the dev stack passes (`matching.enableFairness`), from a file."""
    temporal = services["temporal"]
    path = _environment(temporal)["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = {
        target: source for source, target, *_ in (str(v).split(":") for v in temporal["volumes"])
    }
    source = mounts["/etc/temporal/" + path]
    config = yaml.safe_load((DEPLOY / source).read_text(encoding="utf-8"))
    assert config["matching.enableFairness"] == [{"value": True}]
    # fairness keys need Temporal 1.29 or newer
    version = temporal["image"].split(":")[1]
    assert tuple(int(p) for p in version.split(".")[:2]) >= (1, 29)


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_the_nats_cluster_profile_is_three_routed_jetstream_nodes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]], env_example: dict[str, str]
) -> None:
    nodes = {name: services[name] for name in sorted(NATS_CLUSTER)}
    route_port = {
        name: _flag(n["command"], "--cluster").rsplit(":", 1)[1] for name, n in nodes.items()
    }
    expected_routes = {f"nats://{name}:{port}" for name, port in route_port.items()}
    stores = set()
    for name, node in nodes.items():
        command = node["command"]
        assert node["profiles"] == ["nats-cluster"], name
        assert "-js" in command and _flag(command, "--name") == name
        assert _flag(command, "--cluster_name") == "stepwise"
        assert set(_flag(command, "--routes").split(",")) == expected_routes
        (volume,) = node["volumes"]
        source, target = str(volume).split(":")
        assert source in compose["volumes"] and Path(_flag(command, "-sd")).is_relative_to(target)
        stores.add(source)
        assert "healthz" in " ".join(node["healthcheck"]["test"])
    assert len(stores) == 3, "each node keeps its own JetStream store"
    # the services are pointed at it from .env (documented there), not by default
    assert env_example["NATS_URL"] == "nats://nats:4222"
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert "NATS_URL=nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222" in text
    assert "STEPWISE_NATS_STREAM_REPLICAS=3" in text
