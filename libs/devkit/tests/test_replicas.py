"""`stepwise dev --replicas …` and `Stack(replicas=…, nats_nodes=…)`: what is accepted, and a
clear error for everything else (before anything starts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stepwise_cli.__main__ import build_parser
from stepwise_devkit.replicas import ReplicasError, parse_replicas
from stepwise_devkit.stack import Stack, StackError, replica_names


def test_the_issue_example_and_the_router_alias() -> None:
    assert parse_replicas("api=2,worker=3,event-router=2,sweeper=2") == {
        "api": 2,
        "worker": 3,
        "event-router": 2,
        "sweeper": 2,
    }
    assert parse_replicas(" router = 4 ") == {"event-router": 4}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("api=2,", "empty item"),
        ("api", "not service=count"),
        ("api=", "not service=count"),
        ("=2", "not service=count"),
        ("postgres=2", "not a service"),
        ("api=2,api=3", "given twice"),
        ("api=2,router=1,event-router=2", "given twice"),
        ("api=0", "from 1 to 16"),
        ("api=17", "from 1 to 16"),
        ("api=-1", "from 1 to 16"),
        ("api=two", "from 1 to 16"),
        ("api=1e3", "from 1 to 16"),
    ],
)
def test_hostile_replica_lists(text: str, message: str) -> None:
    with pytest.raises(ReplicasError, match=message):
        parse_replicas(text)


def test_the_dev_command_refuses_a_bad_list(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["dev", "--replicas", "api=2,nope=1"])
    assert exited.value.code == 2
    assert "'nope' is not a service" in capsys.readouterr().err
    args = parser.parse_args(["dev", "--replicas", "worker=3", "--nats-nodes", "3"])
    assert (args.replicas, args.nats_nodes) == ({"worker": 3}, 3)
    assert parser.parse_args(["dev"]).replicas == {}


def test_replica_names_and_stack_validation(tmp_path: Path) -> None:
    assert replica_names("worker", 3) == ["worker", "worker-2", "worker-3"]
    stack = Stack(tmp_path, replicas={"router": 2, "api": 2}, nats_nodes=3)
    assert stack.replica_names("router") == ["event-router", "event-router-2"]
    assert stack.replicas == {"api": 2, "worker": 1, "event-router": 2, "sweeper": 1}
    assert stack.env["STEPWISE_NATS_STREAM_REPLICAS"] == "3"
    with pytest.raises(StackError, match="not a service"):
        Stack(tmp_path, replicas={"temporal": 2})
    with pytest.raises(StackError, match="1 to 16"):
        Stack(tmp_path, replicas={"api": 0})
    with pytest.raises(StackError, match="1 to 5"):
        Stack(tmp_path, nats_nodes=7)
    with pytest.raises(StackError, match="do not pass nats_url"):
        Stack(tmp_path, nats_url="nats://127.0.0.1:4222", nats_nodes=3)
    # an external NATS keeps the caller's stream replicas
    assert "STEPWISE_NATS_STREAM_REPLICAS" not in Stack(tmp_path, nats_url="nats://x:4222").env
