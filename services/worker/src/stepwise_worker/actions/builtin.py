"""Built-in actions: `core.*` here; http, event, store and transform handlers in their modules."""

from __future__ import annotations

from stepwise_contract.actions import BUILTIN_ACTIONS

from stepwise_worker.actions import store, transform
from stepwise_worker.actions.base import Action, ActionContext, ActionFailure, Handler, JSONObject
from stepwise_worker.actions.events import event_publish
from stepwise_worker.actions.http import http_request


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
    ("http.request", 1): http_request,
    ("event.publish", 1): event_publish,
    ("store.set", 1): store.store_set,
    ("store.get", 1): store.store_get,
    ("store.delete", 1): store.store_delete,
    ("store.increment", 1): store.store_increment,
    ("store.list", 1): store.store_list,
    ("transform.pick", 1): transform.transform_pick,
    ("transform.rename", 1): transform.transform_rename,
    ("transform.text", 1): transform.transform_text,
    ("transform.regex", 1): transform.transform_regex,
    ("transform.jsonParse", 1): transform.transform_json_parse,
    ("transform.jsonStringify", 1): transform.transform_json_stringify,
    ("transform.buildObject", 1): transform.transform_build_object,
    ("transform.buildArray", 1): transform.transform_build_array,
}


def builtin_actions() -> list[Action]:
    """Every built-in declaration that has a handler."""
    return [
        Action(declaration=decl, handler=HANDLERS[(decl.id, decl.version)])
        for decl in BUILTIN_ACTIONS
        if (decl.id, decl.version) in HANDLERS
    ]
