"""The workflow definition DSL (docs/dsl.md) as msgspec types.

A definition decodes into `Definition`; steps are a tagged union on `type`. Values that may hold
`{"$expr": ...}` or `{"$secret": ...}` are typed `Any` and resolved at run time. Unknown keys are
rejected (`forbid_unknown_fields`). Semantic checks live in `validation.py`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Value = Any  # a literal, {"$expr": src} or {"$secret": name}, walked recursively


# 1 = most urgent … 5; a backlogged task queue dispatches lower numbers first (priority.py)
RunPriority = Annotated[int, msgspec.Meta(ge=1, le=5)]


class Node(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    pass


class RetryPolicy(Node, frozen=True, kw_only=True):
    max_attempts: int = 1
    backoff_ms: int = 1000
    backoff_multiplier: float = 2.0
    max_delay_ms: int | None = None
    jitter: bool = True
    retry_on: list[str] | None = None


class OnError(Node, frozen=True, kw_only=True):
    policy: Literal["fail", "continue"] = "fail"


class Filter(Node, frozen=True, kw_only=True):
    path: str
    op: Literal[
        "=",
        "!=",
        "in",
        "not_in",
        "exists",
        "not_exists",
        ">",
        ">=",
        "<",
        "<=",
        "contains",
        "starts_with",
        "ends_with",
    ]
    value: Any = None


class Step(Node, frozen=True, kw_only=True, tag_field="type"):
    id: str


class ActionCallConfig(Node, frozen=True, kw_only=True):
    action_id: str
    version: int = 1
    input_mapping: dict[str, Value] | None = None
    save_as: str | None = None
    idempotency_key: Value = None


class ActionCall(Step, frozen=True, kw_only=True, tag="action.call"):
    config: ActionCallConfig
    retry: RetryPolicy | None = None
    on_error: OnError | None = None


class AssignConfig(Node, frozen=True, kw_only=True):
    assign: dict[str, Value]


class TransformAssign(Step, frozen=True, kw_only=True, tag="transform.assign"):
    config: AssignConfig


class StateConfig(Node, frozen=True, kw_only=True):
    state: str


class StateSet(Step, frozen=True, kw_only=True, tag="state.set"):
    config: StateConfig


class ControlIf(Step, frozen=True, kw_only=True, tag="control.if"):
    condition: Value
    then: list[AnyStep]
    else_: list[AnyStep] | None = msgspec.field(default=None, name="else")


class ControlForEach(Step, frozen=True, kw_only=True, tag="control.forEach"):
    items: Value
    item_var: str = "item"
    body: list[AnyStep]
    concurrency: int = 1
    on_item_error: Literal["fail", "continue"] = "fail"


class ControlTryCatch(Step, frozen=True, kw_only=True, tag="control.tryCatch"):
    try_: list[AnyStep] = msgspec.field(name="try")
    catch: list[AnyStep] = []
    capture_error_as: str | None = None


class ControlCallWorkflow(Step, frozen=True, kw_only=True, tag="control.callWorkflow"):
    workflow_id: str
    workflow_version: int | None = None
    input_mapping: dict[str, Value] | None = None
    output_mapping: dict[str, Value] | None = None
    retry: RetryPolicy | None = None
    on_error: OnError | None = None


class ControlReturn(Step, frozen=True, kw_only=True, tag="control.return"):
    pass


class EventWaitConfig(Node, frozen=True, kw_only=True):
    event_name: str
    correlation_key: Value = None
    filters: list[Filter] = []
    timeout_ms: int | None = None
    assign: dict[str, Value] | None = None


class EventWait(Step, frozen=True, kw_only=True, tag="event.wait"):
    config: EventWaitConfig


class TimeWaitConfig(Node, frozen=True, kw_only=True):
    mode: Literal["duration", "until"]
    duration_ms: int | None = None
    until: Value = None
    assign: dict[str, Value] | None = None


class TimeWait(Step, frozen=True, kw_only=True, tag="time.wait"):
    config: TimeWaitConfig


class HumanTaskConfig(Node, frozen=True, kw_only=True):
    task_type: str
    title: Value
    description: Value = None
    context_data: dict[str, Value] | None = None
    form_schema: dict[str, Any] | None = None
    assign: dict[str, Value] | None = None


class HumanTask(Step, frozen=True, kw_only=True, tag="human.task"):
    config: HumanTaskConfig


AnyStep = (
    ActionCall
    | TransformAssign
    | StateSet
    | ControlIf
    | ControlForEach
    | ControlTryCatch
    | ControlCallWorkflow
    | ControlReturn
    | EventWait
    | TimeWait
    | HumanTask
)

STEP_TYPES: frozenset[str] = frozenset(
    {
        "action.call",
        "transform.assign",
        "state.set",
        "control.if",
        "control.forEach",
        "control.tryCatch",
        "control.callWorkflow",
        "control.return",
        "event.wait",
        "time.wait",
        "human.task",
    }
)


class Trigger(Node, frozen=True, kw_only=True):
    type: Literal["event"] = "event"
    event_name: str
    payload_mapping: dict[str, Value] | None = None


class Definition(Node, frozen=True, kw_only=True):
    id: str | None = None
    version: int | None = None
    name: str
    description: str | None = None
    payload_schema_ref: str | None = None
    trigger: Trigger | None = None
    priority: RunPriority = 3
    steps: list[AnyStep]


def decode_definition(raw: Any) -> Definition:
    """Convert a JSON value to a `Definition`; raises `msgspec.ValidationError` when malformed."""
    return msgspec.convert(raw, Definition)


def encode_definition(definition: Definition) -> Any:
    return msgspec.to_builtins(definition)


def children(step: AnyStep) -> list[tuple[str, list[AnyStep]]]:
    """The nested step lists of a container step, with their path segment."""
    match step:
        case ControlIf(then=then, else_=else_):
            return [("then", then), ("else", else_ or [])]
        case ControlForEach(body=body):
            return [("body", body)]
        case ControlTryCatch(try_=try_, catch=catch):
            return [("try", try_), ("catch", catch)]
        case _:
            return []


def walk_steps(steps: list[AnyStep], prefix: str = "root") -> Any:
    """Yield `(step_path, step)` for every step, depth first, in definition order."""
    for index, step in enumerate(steps):
        path = f"{prefix}.steps[{index}]"
        yield path, step
        for segment, nested in children(step):
            yield from walk_steps(nested, f"{path}.{segment}")
