"""Built-in actions: `core.*` here; http, event, store and transform handlers in their modules."""

from __future__ import annotations

from stepwise_contract.actions import BUILTIN_ACTIONS

from stepwise_worker.actions.base import Action, ActionContext, ActionFailure, Handler, JSONObject


async def core_echo(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
    return {"value": payload.get("value")}


async def core_fail(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
    raise ActionFailure(
        str(payload["message"]),
        category=str(payload.get("category") or "ActionError"),
        code=payload.get("code"),
    )


HANDLERS: dict[tuple[str, int], Handler] = {
    ("core.echo", 1): core_echo,
    ("core.fail", 1): core_fail,
}


def builtin_actions() -> list[Action]:
    """Every built-in declaration that has a handler."""
    return [
        Action(declaration=decl, handler=HANDLERS[(decl.id, decl.version)])
        for decl in BUILTIN_ACTIONS
        if (decl.id, decl.version) in HANDLERS
    ]
