"""Builders of DSL definition parts (JSON as the API receives it) for the worker's tests."""

from __future__ import annotations

from typing import Any


def expr(source: str) -> dict[str, str]:
    return {"$expr": source}


def action(
    step_id: str,
    action_id: str,
    inputs: dict[str, Any],
    save_as: str | None = None,
    **config: Any,
) -> dict[str, Any]:
    """`action.call` of `<action_id>@1`; `config` adds config fields (`idempotencyKey`, …)."""
    body: dict[str, Any] = {"actionId": action_id, "version": 1, "inputMapping": inputs, **config}
    if save_as:
        body["saveAs"] = save_as
    return {"id": step_id, "type": "action.call", "config": body}


def echo(step_id: str, value: Any, save_as: str | None = None) -> dict[str, Any]:
    return action(step_id, "core.echo", {"value": value}, save_as)


def fail(
    step_id: str, message: Any = "boom", *, category: str | None = None, **step: Any
) -> dict[str, Any]:
    """`core.fail` (with `category` when given); `step` adds step fields (`retry`, `onError`)."""
    inputs = (
        {"message": message} if category is None else {"message": message, "category": category}
    )
    return {**action(step_id, "core.fail", inputs), **step}


def assign(step_id: str, **targets: Any) -> dict[str, Any]:
    """`transform.assign`; targets are paths, e.g. `**{"vars.x": 1}`."""
    return {"id": step_id, "type": "transform.assign", "config": {"assign": targets}}


def for_each(step_id: str, items: Any, body: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """`control.forEach` over `items`; `fields` adds step fields (`itemVar`, `concurrency`, …)."""
    return {"id": step_id, "type": "control.forEach", "items": items, "body": body, **fields}


def event_wait(step_id: str, event_name: str, **config: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "event.wait", "config": {"eventName": event_name, **config}}


def time_wait(step_id: str, ms: int) -> dict[str, Any]:
    return {"id": step_id, "type": "time.wait", "config": {"mode": "duration", "durationMs": ms}}


def call_workflow(step_id: str, workflow_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "control.callWorkflow", "workflowId": workflow_id, **fields}
