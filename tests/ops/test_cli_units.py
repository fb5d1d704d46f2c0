"""The operator CLI's pieces that need no server: where the API is, argument parsing, definition
files, output formatting, doctor targets."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from stepwise_cli.__main__ import build_parser, main
from stepwise_cli.api_client import ApiConfig, CliError, issue_line, json_argument
from stepwise_cli.definitions_command import load_document
from stepwise_cli.doctor_checks import mask_url
from stepwise_cli.doctor_command import targets_from
from stepwise_cli.runs_command import warning_line
from stepwise_cli.tables import duration, table
from stepwise_devkit.infra_servers import temporal_dev_server, temporal_dev_server_headless


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_api_location_flags_then_environment_then_dev_env(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dev.env").write_text("STEPWISE_API_URL=http://dev:8080\nSTEPWISE_API_KEY='dev key'\n")
    environ = {"STEPWISE_HOME": str(home)}
    assert ApiConfig.resolve(_args("runs", "list"), environ) == ApiConfig(
        url="http://dev:8080", key="dev key"
    )
    environ |= {"STEPWISE_API_URL": "http://env:1/", "STEPWISE_API_KEY": "env-key"}
    assert ApiConfig.resolve(_args("runs", "list"), environ) == ApiConfig(
        url="http://env:1", key="env-key"
    )
    flags = _args("runs", "list", "--api-url", "http://flag:2", "--api-key", "flag-key")
    assert ApiConfig.resolve(flags, environ) == ApiConfig(url="http://flag:2", key="flag-key")
    with pytest.raises(CliError, match="no API key"):
        ApiConfig.resolve(_args("runs", "list"), {"STEPWISE_HOME": str(tmp_path / "none")})


def test_every_operator_command_has_json_and_checks_its_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_id = "0b9f0d3c-6f34-4bb3-8b55-2c1a8d2f9a10"
    for argv in (
        ["runs", "list"],
        ["runs", "show", run_id],
        ["runs", "tail", run_id],
        ["runs", "cancel", run_id, "--reason", "why"],
        ["runs", "replay", run_id, "--reason", "why"],
        ["runs", "export", run_id],
        ["events", "publish", "X"],
        ["definitions", "push", "f.yaml"],
        ["doctor"],
    ):
        assert _args(*argv, "--json").json is True
    for bad in (
        ["runs", "show", "not-a-uuid"],
        ["runs", "cancel", run_id, "--reason", "no"],
        ["runs", "list", "--limit", "501"],
        ["runs", "list", "--status", "DONE"],
        ["events", "publish", "X", "--wait", "31"],
        ["events", "publish", "X", "--payload", "{not json"],
    ):
        with pytest.raises(SystemExit):
            _args(*bad)
    assert "--api-key" in capsys.readouterr().err  # the usage shown on a mistake


def test_payload_inline_or_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "payload.json"
    path.write_text('{"a": [1, 2]}')
    assert json_argument(f"@{path}") == {"a": [1, 2]}
    assert json_argument('{"b": true}') == {"b": True}
    with pytest.raises(argparse.ArgumentTypeError, match="cannot read"):
        json_argument(f"@{tmp_path / 'missing.json'}")


def test_definition_files(tmp_path: Path) -> None:
    definition = {"name": "n", "steps": []}
    as_json = tmp_path / "d.json"
    as_json.write_text(json.dumps(definition))
    assert load_document(as_json) == (definition, None)
    as_yaml = tmp_path / "d.yaml"
    as_yaml.write_text("key: orders\ndefinition:\n  name: n\n  steps: []\n")
    assert load_document(as_yaml) == (definition, "orders")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed")
    with pytest.raises(CliError, match="not valid JSON/YAML"):
        load_document(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n")
    with pytest.raises(CliError, match="must hold a JSON/YAML object"):
        load_document(listed)


def test_readable_output() -> None:
    assert table(["A", "LONGER"], [["x", None], ["yyy", 3]]).splitlines() == [
        "A    LONGER",
        "x    -",
        "yyy  3",
    ]
    assert [duration(v) for v in (12, 1500, 185_000, 8_000_000, None)] == [
        "12 ms",
        "1.5 s",
        "3m05s",
        "2h13m",
        "-",
    ]
    issue = {
        "severity": "error",
        "code": "UNKNOWN_ACTION",
        "message": "no action x@1",
        "stepPath": "root.steps[0]",
        "stepId": "a",
    }
    assert issue_line(issue) == "[UNKNOWN_ACTION] at root.steps[0] (a): no action x@1"
    failing = {
        "code": "RUN_WORKFLOW_TASK_FAILING",
        "message": "the workflow task keeps failing (attempt 7): RuntimeError: bug",
        "attempts": 7,
        "since": "2026-01-02T03:04:05.678+00:00",
    }
    assert warning_line(failing) == (
        "⚠ RUN_WORKFLOW_TASK_FAILING: the workflow task keeps failing (attempt 7): "
        "RuntimeError: bug (since 2026-01-02 03:04:05 UTC)"
    )
    assert warning_line({"code": "X", "message": "m"}) == "⚠ X: m"
    assert mask_url("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_url("nats://h:4222") == "nats://h:4222"


def test_doctor_targets_from_flags_environment_and_home_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dev.env").write_text(
        "DATABASE_URL=postgresql://dev@h/db\nNATS_URL=nats://dev:4222\n"
        "STEPWISE_API_URL=http://api:8080\n"
    )
    (home / "stack.json").write_text(
        json.dumps({"processes": {"worker": {"url": "http://w:1"}, "nats": {"url": "x"}}})
    )
    environ = {"STEPWISE_HOME": str(home), "NATS_URL": "nats://env:4222"}
    targets = targets_from(_args("doctor", "--router-url", "http://r:2"), environ)
    assert targets.database_url == "postgresql://dev@h/db"  # dev.env
    assert targets.nats_url == "nats://env:4222"  # the environment wins over dev.env
    assert targets.services == {
        "api": "http://api:8080",
        "worker": "http://w:1",  # stack.json
        "event-router": "http://r:2",  # the flag
    }


def test_every_command_has_json() -> None:
    def leaves(parser: argparse.ArgumentParser, trail: tuple[str, ...]) -> list[Any]:
        found = []
        for action in parser._actions:
            if getattr(action, "choices", None) and isinstance(action.choices, dict):
                for name, sub in action.choices.items():
                    found += leaves(sub, (*trail, name))
        return found or [(trail, parser)]

    commands = leaves(build_parser(), ())
    assert len(commands) >= 30
    without = [" ".join(t) for t, p in commands if "--json" not in p._option_string_actions]
    # `dev` (make run) runs in the foreground until Ctrl-C; what it provides is in dev.env
    assert without == ["dev"], without


def test_the_dev_server_ui_decodes_through_the_api_codec(tmp_path: Path) -> None:
    process, _address, ui = temporal_dev_server(
        tmp_path, ui_port=None, codec_endpoint="http://127.0.0.1:8080/api/codec"
    )
    argv = process.argv
    assert argv[argv.index("--ui-codec-endpoint") + 1] == "http://127.0.0.1:8080/api/codec"
    assert ui.startswith("http://127.0.0.1:")
    headless, _ = temporal_dev_server_headless(tmp_path)
    assert "--ui-codec-endpoint" not in headless.argv


def test_dev_without_the_devkit_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An operator's install has the CLI without the devkit: `stepwise dev` explains, exit 2."""
    monkeypatch.setitem(sys.modules, "stepwise_devkit", None)
    monkeypatch.setitem(sys.modules, "stepwise_devkit.dev_session", None)
    assert main(["dev"]) == 2
    assert "stepwise-devkit" in capsys.readouterr().err


def test_a_command_loads_only_its_own_module() -> None:
    """`stepwise runs …` starts without asyncpg and the Temporal SDK (what `admin` and `doctor`
    need): each call is a process, and those imports would double its start-up time."""
    probe = (
        "import sys\n"
        "from stepwise_cli.__main__ import build_parser\n"
        "build_parser('runs').parse_args(['runs', 'list'])\n"
        "print(sorted(m for m in ('asyncpg', 'temporalio') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    # an unknown word still gets the whole list of commands to choose from
    with pytest.raises(SystemExit):
        build_parser("nope").parse_args(["nope"])
    listed = build_parser("nope").format_help()
    for name in ("dev", "admin", "runs", "events", "definitions", "schemas", "tasks", "doctor"):
        assert f"\n    {name}" in listed, listed
