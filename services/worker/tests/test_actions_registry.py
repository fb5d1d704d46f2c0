"""The registry: every built-in declared and handled, activity kinds, plugin discovery, invoke checks."""

from __future__ import annotations

import uuid
from importlib.metadata import PackageNotFoundError, distribution
from typing import Any

import pytest
from stepwise_contract.actions import BUILTIN_ACTIONS, full_catalog
from stepwise_worker.actions.base import (
    Action,
    ActionContext,
    ActionFailure,
    JSONObject,
    invoke,
)
from stepwise_worker.actions.builtin import HANDLERS
from stepwise_worker.actions.registry import ActionRegistry


def _ctx() -> ActionContext:
    return ActionContext(
        tenant_id=str(uuid.uuid4()),
        run_id=str(uuid.uuid4()),
        step_path="root.steps[0]",
        attempt=1,
        idempotency_key="k",
    )


def test_every_builtin_declaration_has_a_handler_and_vice_versa() -> None:
    declared = {(d.id, d.version) for d in BUILTIN_ACTIONS}
    assert declared == set(HANDLERS)
    registry = ActionRegistry.default()
    for key in declared:
        assert registry.get(*key) is not None


def test_activity_kind_of_each_builtin() -> None:
    by_id = {d.id: d for d in BUILTIN_ACTIONS}
    remote = {i for i, d in by_id.items() if not d.local}
    assert remote == {"http.request"}
    families = {i.split(".")[0] for i in by_id}
    assert families == {"core", "http", "event", "store", "transform"}
    assert {
        "transform.pick",
        "transform.rename",
        "transform.text",
        "transform.regex",
        "transform.jsonParse",
        "transform.jsonStringify",
        "transform.buildObject",
        "transform.buildArray",
    } <= set(by_id)


def test_the_example_plugin_is_installed() -> None:
    try:
        distribution("stepwise-example-plugin")
    except PackageNotFoundError:
        pytest.fail(
            "stepwise-example-plugin is not installed: it must be a dependency of the workspace "
            "root (or `uv pip install -e libs/example-plugin`)"
        )


async def test_the_example_plugin_is_discovered_and_runs() -> None:
    registry = ActionRegistry.default()
    action = registry.get("example.greet", 1)
    assert action is not None, "ActionRegistry.default() did not load the stepwise.actions plugin"
    assert ("example.greet", 1) in full_catalog()
    assert action.declaration.description
    ctx = _ctx()
    out = await invoke(action, {"name": "Ada", "greeting": "Hi"}, ctx)
    assert out == {"message": "Hi, Ada!", "tenantId": ctx.tenant_id}
    with pytest.raises(ActionFailure) as info:
        await invoke(action, {"name": ""}, ctx)
    assert (info.value.category, info.value.code) == ("ValidationError", "INVALID_ACTION_INPUT")


async def test_invoke_refuses_bad_input_before_the_handler_runs() -> None:
    calls: list[JSONObject] = []

    async def handler(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
        calls.append(payload)
        return {"value": payload.get("value")}

    echo = ActionRegistry.default().get("core.echo", 1)
    assert echo is not None
    spy = Action(declaration=echo.declaration, handler=handler)
    bad: list[Any] = [{"value": 1, "extra": 2}, "not an object", None]
    for payload in bad:
        with pytest.raises(ActionFailure) as info:
            await invoke(spy, payload, _ctx())
        err = info.value
        assert (err.category, err.code, err.retryable) == (
            "ValidationError",
            "INVALID_ACTION_INPUT",
            False,
        )
        assert err.details["errors"]
    assert calls == []
    assert await invoke(spy, {"value": [1]}, _ctx()) == {"value": [1]}
    assert calls == [{"value": [1]}]
