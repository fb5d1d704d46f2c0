"""The repository documents itself: docs/dsl.md is checked against the definition types, its JSON
blocks and every example definition validate, and no document cites a file the repository lacks."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from stepwise_contract import dsl, validation
from stepwise_contract.actions import builtin_catalog
from stepwise_contract.enums import ErrorCategory
from stepwise_contract.validation import validate_definition

ROOT = Path(__file__).resolve().parent.parent
DSL_DOC = ROOT / "docs" / "dsl.md"
EXAMPLES = ROOT / "examples"
CATALOG = builtin_catalog()


def _section(text: str, heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(heading + "\n")
    nxt = re.compile(rf"^#{{1,{level}}} ", re.M).search(text, start + len(heading) + 1)
    return text[start : nxt.start() if nxt else len(text)]


def _fields(cls: type) -> list[mi.Field]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return list(info.fields)


def _struct(t: mi.Type) -> type | None:
    if isinstance(t, mi.StructType):
        return t.cls
    if isinstance(t, mi.UnionType):
        found = [c for c in map(_struct, t.types) if c is not None]
        return found[0] if found else None
    return None


def _literals(t: mi.Type) -> list[str]:
    if isinstance(t, mi.LiteralType):
        return [str(v) for v in t.values]
    if isinstance(t, mi.UnionType):
        return [v for sub in t.types for v in _literals(sub)]
    return []


DOC = DSL_DOC.read_text(encoding="utf-8")
STEP_CLASSES = typing.get_args(dsl.AnyStep)
SHARED = {dsl.RetryPolicy, dsl.OnError, dsl.Filter}


@pytest.mark.parametrize("cls", STEP_CLASSES, ids=lambda c: c.__struct_config__.tag)
def test_every_step_type_and_field_is_documented(cls: type[msgspec.Struct]) -> None:
    tag = cls.__struct_config__.tag
    section = _section(DOC, f"### `{tag}`")
    for field in _fields(cls):
        if field.encode_name == "id":
            continue
        nested = _struct(field.type)
        if field.encode_name == "config" and nested is not None:
            for sub in _fields(nested):
                assert f"`config.{sub.encode_name}`" in section, (tag, sub.encode_name)
                for value in _literals(sub.type):
                    assert f"`{value}`" in section, (tag, sub.encode_name, value)
            continue
        assert f"`{field.encode_name}`" in section, (tag, field.encode_name)
        for value in _literals(field.type):
            assert f"`{value}`" in section, (tag, field.encode_name, value)


def test_no_step_type_is_documented_that_does_not_exist() -> None:
    documented = set(re.findall(r"^### `([\w.]+)`$", DOC, re.M))
    assert documented == set(dsl.STEP_TYPES)


def test_definition_trigger_retry_filter_and_categories_are_documented() -> None:
    for cls, heading in (
        (dsl.Definition, "## The definition object"),
        (dsl.Trigger, "### Triggers"),
        (dsl.RetryPolicy, "## Retry policy"),
        (dsl.Filter, "#### Filters"),
        (dsl.OnError, "### `action.call`"),
    ):
        section = _section(DOC, heading)
        for field in _fields(cls):
            assert f"`{field.encode_name}`" in section, (heading, field.encode_name)
            for value in _literals(field.type):
                assert f"`{value}`" in section, (heading, field.encode_name, value)
    categories = _section(DOC, "### Error categories")
    for category in ErrorCategory:
        assert f"`{category.value}`" in categories, category


def test_every_validation_code_is_documented() -> None:
    source = Path(validation.__file__).read_text(encoding="utf-8")
    codes = set(re.findall(r'\.(?:error|warning)\(\s*"([A-Z_]+)"', source))
    assert len(codes) >= 12, codes
    table = _section(DOC, "## Publish validation")
    for code in codes:
        assert f"`{code}`" in table, code


def _json_blocks(text: str) -> list[str]:
    return re.findall(r"```json\n(.*?)```", text, re.S)


def _as_definition(block: Any) -> Any:
    if isinstance(block, dict) and "steps" not in block and "type" in block:
        return {"name": "a single step", "steps": [block]}  # a step shown on its own
    return block


@pytest.mark.parametrize("index", range(len(_json_blocks(DOC))))
def test_every_json_block_of_the_dsl_reference_validates(index: int) -> None:
    block = json.loads(_json_blocks(DOC)[index])
    result, _ = validate_definition(_as_definition(block), catalog=CATALOG)
    assert result.status != "error", msgspec.to_builtins(result.errors)


def _examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


def test_examples_cover_what_a_newcomer_starts_from() -> None:
    assert len(_examples()) >= 6
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for path in _examples():
        assert f"({path.name})" in readme, f"examples/README.md does not link {path.name}"
    types = set()
    for path in _examples():
        for _, step in dsl.walk_steps(dsl.decode_definition(_load(path)[1]).steps):
            types.add(step.__struct_config__.tag)
    assert {"action.call", "event.wait", "human.task", "control.callWorkflow"} <= types
    assert {"control.forEach", "control.if", "control.tryCatch"} <= types


def _load(path: Path) -> tuple[str, dict[str, Any]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    assert set(document) == {"key", "definition"}, path
    return document["key"], document["definition"]


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.name)
def test_every_example_validates_with_its_schemas_and_children(path: Path) -> None:
    schemas = {p.stem for p in (EXAMPLES / "schemas").glob("*.json")}
    keys = {_load(p)[0] for p in _examples()}
    result, _ = validate_definition(
        _load(path)[1], catalog=CATALOG, known_schemas=schemas, known_workflows=keys
    )
    assert result.status == "valid", msgspec.to_builtins(result.errors + result.warnings)


def _documents() -> list[Path]:
    skip = {".venv", "node_modules", ".git", ".stepwise"}
    return [p for p in ROOT.rglob("*.md") if not skip & set(p.relative_to(ROOT).parts)]


@pytest.mark.parametrize("path", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_cite_only_files_the_repository_has(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"\bSPEC\b|SPEC\.md|shared/", text), "cites the team's private spec"
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        file = (path.parent / target.split("#", 1)[0]).resolve()
        assert file.exists(), f"{path.relative_to(ROOT)} links {target}, which does not exist"
