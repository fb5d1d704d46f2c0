"""Publish validation of a definition: coded errors and warnings with step paths.

Structural and expression checks need nothing but the definition and the action catalog; checks
that need the database (payload schema, child workflow, secret existence) are passed in as sets of
known names by the caller (the API).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any, Literal

import msgspec

from stepwise_contract import dsl
from stepwise_contract.actions import ActionCatalog
from stepwise_contract.expressions import (
    ExpressionError,
    compile_expression,
    is_expr,
    is_secret_ref,
)
from stepwise_contract.names import EVENT_NAME_RULE, is_valid_event_name

Severity = Literal["error", "warning"]


class ValidationItem(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """One issue. `stepPath` is always present: a step's path, `root.trigger`, or null for a
    defect of the definition as a whole (its payload schema, an unknown secret)."""

    severity: Severity
    code: str
    message: str
    step_path: str | None
    step_id: str | None = None


class ValidationResult(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["valid", "warning", "error"]
    errors: list[ValidationItem]
    warnings: list[ValidationItem]

    @property
    def ok(self) -> bool:
        return self.status != "error"


_UNSAFE_SEGMENTS = {"__proto__", "prototype", "constructor"}
_ROOTS = {"payload", "vars", "local", "meta"}
_SEGMENT = re.compile(r"^[A-Za-z_$][\w$-]*$")


def parse_assign_path(path: str) -> tuple[str, list[str]]:
    """`payload.x.y`, `vars.x`, `local.x`, `meta.x`, `/payload/x` or bare `x` (= vars.x).

    Returns (scope, segments); raises ValueError for an unsafe or malformed path.
    """
    if not isinstance(path, str) or not path.strip():
        raise ValueError("assignment path must be a non-empty string")
    if path.startswith("/"):
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
    else:
        parts = path.split(".")
    if any(not p for p in parts):
        raise ValueError(f"empty segment in assignment path {path!r}")
    for part in parts:
        if part in _UNSAFE_SEGMENTS:
            raise ValueError(f"unsafe segment {part!r} in assignment path {path!r}")
    if parts[0] in _ROOTS:
        if len(parts) == 1:
            raise ValueError(f"assignment path {path!r} must name a field inside {parts[0]}")
        return parts[0], parts[1:]
    if path.startswith("/"):
        raise ValueError(
            f"assignment pointer {path!r} must start with /payload, /vars, /local or /meta"
        )
    return "vars", parts


_MSGSPEC_PATH = re.compile(r"at `\$(?P<path>[^`]*)`")


def _step_path_from_msgspec(message: str) -> str | None:
    """`$.steps[2].then[0].config` → `root.steps[2].then.steps[0]` (best effort)."""
    match = _MSGSPEC_PATH.search(message)
    if not match:
        return None
    out = "root"
    for seg in re.finditer(r"\.(\w+)\[(\d+)\]", match.group("path")):
        name, index = seg.group(1), seg.group(2)
        out += f".steps[{index}]" if name == "steps" else f".{name}.steps[{index}]"
    if out == "root" and match.group("path").startswith(".trigger"):
        return "root.trigger"
    return out if out != "root" else None


class _Collector:
    def __init__(self, *, keeps_key_order: bool = True) -> None:
        self.errors: list[ValidationItem] = []
        self.warnings: list[ValidationItem] = []
        # False where definitions are stored as jsonb (an adopted reference database)
        self.keeps_key_order = keeps_key_order

    def error(
        self, code: str, message: str, path: str | None = None, step_id: str | None = None
    ) -> None:
        self.errors.append(
            ValidationItem(
                severity="error", code=code, message=message, step_path=path, step_id=step_id
            )
        )

    def warning(
        self, code: str, message: str, path: str | None = None, step_id: str | None = None
    ) -> None:
        self.warnings.append(
            ValidationItem(
                severity="warning", code=code, message=message, step_path=path, step_id=step_id
            )
        )

    def result(self) -> ValidationResult:
        status: Literal["valid", "warning", "error"] = (
            "error" if self.errors else "warning" if self.warnings else "valid"
        )
        return ValidationResult(status=status, errors=self.errors, warnings=self.warnings)


def _raw_walk(steps: Any, prefix: str, out: _Collector) -> None:
    """Pre-pass on raw JSON: unknown node types get their own code and a precise path."""
    if not isinstance(steps, list):
        return
    for index, raw in enumerate(steps):
        path = f"{prefix}.steps[{index}]"
        if not isinstance(raw, dict):
            out.error("INVALID_WORKFLOW_DEFINITION", "a step must be an object", path)
            continue
        kind = raw.get("type")
        if kind not in dsl.STEP_TYPES:
            out.error("UNKNOWN_NODE_TYPE", f"unknown step type {kind!r}", path, raw.get("id"))
        for segment in ("then", "else", "body", "try", "catch"):
            _raw_walk(raw.get(segment), f"{path}.{segment}", out)


def _check_event_name(name: str, path: str, step_id: str | None, out: _Collector) -> None:
    """The rule the API applies to published events: a wait or trigger on another name could
    never be matched."""
    if not is_valid_event_name(name):
        out.error(
            "INVALID_EVENT_NAME", f"eventName {name!r} must be {EVENT_NAME_RULE}", path, step_id
        )


def _check_exprs(
    value: Any,
    path: str,
    step_id: str | None,
    out: _Collector,
    secrets: set[str],
    *,
    resolves_secrets: bool = False,
) -> None:
    """Compile every `$expr`; collect `$secret` names. Only an action's `inputMapping`
    resolves secrets: a ref anywhere else stays a plain object, which the author is warned of."""
    if is_expr(value):
        try:
            compile_expression(value["$expr"])
        except ExpressionError as exc:
            out.error("INVALID_EXPR", str(exc.with_step(path)), path, step_id)
        return
    if is_secret_ref(value):
        secrets.add(str(value["$secret"]))
        if not resolves_secrets:
            out.warning(
                "SECRET_NOT_RESOLVED_HERE",
                f"$secret {value['$secret']!r} is only resolved in an action's inputMapping;"
                " here it stays the plain object",
                path,
                step_id or None,
            )
        return
    if isinstance(value, dict):
        for item in value.values():
            _check_exprs(item, path, step_id, out, secrets, resolves_secrets=resolves_secrets)
    elif isinstance(value, list):
        for item in value:
            _check_exprs(item, path, step_id, out, secrets, resolves_secrets=resolves_secrets)


def jsonb_key_order(keys: Iterable[str]) -> list[str]:
    """The order in which a Postgres jsonb object keeps its keys: shorter (in UTF-8 bytes) first,
    then bytewise."""
    return sorted(keys, key=lambda key: (len(key.encode()), key.encode()))


def _check_paths(paths: Iterable[str], path: str, step_id: str, out: _Collector) -> None:
    targets = list(paths)
    for target in targets:
        try:
            parse_assign_path(target)
        except ValueError as exc:
            out.error("INVALID_ASSIGN_PATH", str(exc), path, step_id)
    stored = jsonb_key_order(targets)
    if not out.keeps_key_order and stored != targets:
        out.warning(
            "ASSIGN_ORDER_NOT_KEPT",
            "this database stores definitions as jsonb (adopted from the reference runtime), which"
            f" reorders keys: these entries will run in the order {', '.join(stored)}, not as"
            " written; write them in that order, or split them into steps, if one reads another",
            path,
            step_id,
        )


def _check_action_input(
    step: dsl.ActionCall, decl_schema: dict[str, Any], path: str, out: _Collector
) -> None:
    mapping = step.config.input_mapping or {}
    props = decl_schema.get("properties", {})
    if decl_schema.get("additionalProperties") is False:
        for key in mapping:
            if key not in props:
                out.error(
                    "INVALID_ACTION_INPUT",
                    f"{step.config.action_id}@{step.config.version} has no input {key!r}",
                    path,
                    step.id,
                )
    for key in decl_schema.get("required", []):
        if key not in mapping:
            out.error(
                "INVALID_ACTION_INPUT",
                f"{step.config.action_id}@{step.config.version} requires input {key!r}",
                path,
                step.id,
            )


def validate_definition(
    raw: Any,
    *,
    catalog: ActionCatalog,
    known_schemas: Collection[str] | None = None,
    known_workflows: Collection[str] | None = None,
    known_secrets: Collection[str] | None = None,
    keeps_key_order: bool = True,
) -> tuple[ValidationResult, dsl.Definition | None]:
    """Validate a raw definition; returns the result and the decoded definition when decodable.
    `keeps_key_order=False` (definitions stored as jsonb) warns about assignments that would run
    in another order than written."""
    out = _Collector(keeps_key_order=keeps_key_order)
    if not isinstance(raw, dict):
        out.error("INVALID_WORKFLOW_DEFINITION", "a definition must be a JSON object")
        return out.result(), None
    _raw_walk(raw.get("steps"), "root", out)
    if out.errors:
        return out.result(), None
    try:
        definition = dsl.decode_definition(raw)
    except msgspec.ValidationError as exc:
        message = str(exc)
        code = (
            "INVALID_CONFIG"
            if ".config" in message or "steps[" in message
            else "INVALID_WORKFLOW_DEFINITION"
        )
        out.error(code, message, _step_path_from_msgspec(message))
        return out.result(), None

    secrets: set[str] = set()
    seen: dict[str, str] = {}
    if (
        definition.payload_schema_ref
        and known_schemas is not None
        and (definition.payload_schema_ref not in known_schemas)
    ):
        out.error(
            "UNKNOWN_PAYLOAD_SCHEMA", f"unknown payload schema {definition.payload_schema_ref!r}"
        )
    if definition.trigger:
        _check_event_name(definition.trigger.event_name, "root.trigger", None, out)
        if definition.trigger.payload_mapping:
            _check_exprs(definition.trigger.payload_mapping, "root.trigger", None, out, secrets)
    if not definition.steps:
        out.warning("EMPTY_WORKFLOW", "the definition has no steps")

    for path, step in dsl.walk_steps(definition.steps):
        if step.id in seen:
            out.error(
                "DUPLICATE_STEP_ID",
                f"step id {step.id!r} is also used at {seen[step.id]}",
                path,
                step.id,
            )
        else:
            seen[step.id] = path
        match step:
            case dsl.ActionCall(config=config):
                decl = catalog.get((config.action_id, config.version))
                if decl is None:
                    out.error(
                        "UNKNOWN_ACTION",
                        f"unknown action {config.action_id}@{config.version}",
                        path,
                        step.id,
                    )
                else:
                    _check_action_input(step, decl.input_schema, path, out)
                _check_exprs(
                    config.input_mapping, path, step.id, out, secrets, resolves_secrets=True
                )
                _check_exprs(config.idempotency_key, path, step.id, out, secrets)
                if config.save_as:
                    _check_paths([config.save_as], path, step.id, out)
            case dsl.TransformAssign(config=config):
                _check_exprs(config.assign, path, step.id, out, secrets)
                _check_paths(config.assign, path, step.id, out)
            case dsl.ControlIf(condition=condition):
                if not is_expr(condition) and not isinstance(condition, bool):
                    out.error(
                        "INVALID_CONFIG",
                        "condition must be an expression or a boolean",
                        path,
                        step.id,
                    )
                _check_exprs(condition, path, step.id, out, secrets)
            case dsl.ControlForEach(items=items, concurrency=concurrency):
                _check_exprs(items, path, step.id, out, secrets)
                if concurrency < 1:
                    out.error("INVALID_CONFIG", "concurrency must be >= 1", path, step.id)
            case dsl.ControlCallWorkflow():
                if known_workflows is not None and step.workflow_id not in known_workflows:
                    out.error(
                        "UNKNOWN_CHILD_WORKFLOW",
                        f"unknown workflow {step.workflow_id!r}",
                        path,
                        step.id,
                    )
                _check_exprs(step.input_mapping, path, step.id, out, secrets)
                _check_exprs(step.output_mapping, path, step.id, out, secrets)
                _check_paths(step.output_mapping or {}, path, step.id, out)
            case dsl.EventWait(config=config):
                _check_event_name(config.event_name, path, step.id, out)
                _check_exprs(config.correlation_key, path, step.id, out, secrets)
                _check_exprs(config.assign, path, step.id, out, secrets)
                _check_paths(config.assign or {}, path, step.id, out)
            case dsl.TimeWait(config=config):
                if config.mode == "duration" and config.duration_ms is None:
                    out.error("INVALID_CONFIG", "mode duration needs durationMs", path, step.id)
                if config.mode == "until" and config.until is None:
                    out.error("INVALID_CONFIG", "mode until needs until", path, step.id)
                _check_exprs(config.until, path, step.id, out, secrets)
                _check_exprs(config.assign, path, step.id, out, secrets)
                _check_paths(config.assign or {}, path, step.id, out)
            case dsl.HumanTask(config=config):
                for value in (config.title, config.description, config.context_data, config.assign):
                    _check_exprs(value, path, step.id, out, secrets)
                _check_paths(config.assign or {}, path, step.id, out)
            case _:
                pass
        for policy in (getattr(step, "retry", None),):
            if policy is not None and policy.max_attempts < 1:
                out.error("INVALID_CONFIG", "retry.maxAttempts must be >= 1", path, step.id)
    if known_secrets is not None:
        for name in sorted(secrets - set(known_secrets)):
            out.error("SECRET_NOT_FOUND", f"secret {name!r} is not set for this tenant")
    return out.result(), definition
