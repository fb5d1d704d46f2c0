"""The wire contract loads no I/O library; the platform modules load only what their extra installs.

Each case imports in a fresh interpreter (this test process has every library loaded already) and
lists which of the watched top-level packages ended up in `sys.modules`.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import stepwise_contract

# the I/O libraries the platform extras install
IO_LIBRARIES = (
    "asyncpg",
    "aiohttp",
    "nats",
    "opentelemetry.sdk",
    "cryptography",
    "structlog",
    "prometheus_client",
)


def loaded_after(*modules: str) -> list[str]:
    """The watched libraries present in `sys.modules` after importing `modules` afresh."""
    script = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(w for w in {list(IO_LIBRARIES)!r} if w in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    found: list[str] = json.loads(done.stdout)
    return found


def wire_modules() -> list[str]:
    names = [
        f"stepwise_contract.{info.name}"
        for info in pkgutil.iter_modules(stepwise_contract.__path__)
        if info.name != "platform"
    ]
    return sorted(names)


def test_the_wire_modules_are_found() -> None:
    # guards the test below against an empty list (a renamed package would make it vacuous)
    found = set(wire_modules())
    assert {
        "stepwise_contract.names",
        "stepwise_contract.payloads",
        "stepwise_contract.envelope",
        "stepwise_contract.dsl",
        "stepwise_contract.expressions",
        "stepwise_contract.validation",
        "stepwise_contract.converter",
        "stepwise_contract.enums",
        "stepwise_contract.http",
    } <= found


def test_importing_the_wire_contract_loads_no_io_library() -> None:
    assert loaded_after("stepwise_contract", *wire_modules()) == []


def test_the_check_sees_an_io_library_when_one_is_imported() -> None:
    assert loaded_after("stepwise_contract.platform.db") == ["asyncpg"]


def test_a_service_without_nats_never_imports_it() -> None:
    # what the sweeper uses: its extras are ops, postgres and otel
    sweeper_plumbing = [
        "stepwise_contract.platform.claim_store",
        "stepwise_contract.platform.db",
        "stepwise_contract.platform.launch",
        "stepwise_contract.platform.logs",
        "stepwise_contract.platform.ops",
        "stepwise_contract.platform.readiness",
        "stepwise_contract.platform.run_logs",
        "stepwise_contract.platform.settings",
        "stepwise_contract.platform.temporal",
        "stepwise_contract.platform.tracing",
    ]
    loaded = loaded_after(*sweeper_plumbing)
    assert "nats" not in loaded
    assert "cryptography" not in loaded
