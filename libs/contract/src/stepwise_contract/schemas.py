"""JSON Schema validation (draft 2020-12) with validators built once per schema."""

from __future__ import annotations

import threading
from typing import Any

import msgspec
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from stepwise_contract.json_limits import JsonRefused, check_json


class SchemaIssue(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    message: str


class InvalidSchemaError(ValueError):
    pass


_validators: dict[bytes, Draft202012Validator] = {}
_lock = threading.Lock()


def check_schema(schema: Any) -> None:
    """Raise `InvalidSchemaError` when `schema` is not a valid JSON Schema."""
    if not isinstance(schema, dict | bool):
        raise InvalidSchemaError("a JSON Schema must be an object or a boolean")
    try:
        check_json(schema, what="the schema")
        Draft202012Validator.check_schema(schema)
    except JsonRefused as exc:
        raise InvalidSchemaError(exc.detail) from None
    except SchemaError as exc:
        raise InvalidSchemaError(exc.message) from None
    except RecursionError:  # a recursive `$ref` the meta-schema check walks without end
        raise InvalidSchemaError("the schema nests too deep to check") from None


def _validator(schema: Any) -> Draft202012Validator:
    key = msgspec.json.encode(schema, order="sorted")
    found = _validators.get(key)
    if found is None:
        check_schema(schema)
        found = Draft202012Validator(schema)
        with _lock:
            _validators[key] = found
    return found


def validate_instance(schema: Any, instance: Any, *, limit: int = 50) -> list[SchemaIssue]:
    """Every way `instance` fails `schema` (at most `limit`), as JSON-pointer paths and messages."""
    issues: list[SchemaIssue] = []
    try:
        for error in _validator(schema).iter_errors(instance):
            pointer = "".join(f"/{p}" for p in error.absolute_path) or "/"
            issues.append(SchemaIssue(path=pointer, message=error.message))
            if len(issues) >= limit:
                break
    except RecursionError:  # a recursive schema following a value nested without end
        return [SchemaIssue(path="/", message="the value nests too deep to validate")]
    return issues
