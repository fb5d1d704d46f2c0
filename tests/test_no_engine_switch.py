"""SPEC §1/§12: no environment variable selects an engine or a task queue; one task-queue constant."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [
    p
    for p in ROOT.rglob("*")
    if p.is_file()
    and p.suffix in {".py", ".yaml", ".yml", ".env", ".toml", ".json", ".tpl", ".example"}
    and not any(
        part in {".venv", "node_modules", ".git", ".stepwise", "__pycache__"} for part in p.parts
    )
    and p.name != "test_no_engine_switch.py"
]


def read(path: Path) -> str:
    """The file's text; a file that vanished since the scan (a test's temporary file) is empty."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


ENV_READ = re.compile(
    r"""(?:environ(?:\.get)?\s*[\[(]|getenv\(|env_\w+\(\s*\w+\s*,)\s*["']([A-Z0-9_]+)["']"""
)
FORBIDDEN = re.compile(r"ENGINE|TASK_QUEUE|TASKQUEUE|QUEUE", re.IGNORECASE)


def test_no_env_var_selects_engine_or_task_queue() -> None:
    offenders = []
    for path in SOURCES:
        text = read(path)
        for name in ENV_READ.findall(text):
            if FORBIDDEN.search(name):
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
        # deployment files: no variable whose name mentions an engine or a task queue
        if path.suffix in {".yaml", ".yml", ".env", ".example", ".tpl"}:
            for match in re.finditer(r"^\s*-?\s*(?:name:\s*)?([A-Z][A-Z0-9_]+)\s*[:=]", text, re.M):
                if FORBIDDEN.search(match.group(1)):
                    offenders.append(f"{path.relative_to(ROOT)}: {match.group(1)}")
    assert offenders == []


def test_one_task_queue_literal() -> None:
    literal = '"workflow-runtime-v2"'
    holders = [
        p.relative_to(ROOT)
        for p in SOURCES
        if p.suffix == ".py" and literal in read(p) and "tests" not in p.parts
    ]
    assert [str(h) for h in holders] == ["libs/contract/src/stepwise_contract/names.py"]
