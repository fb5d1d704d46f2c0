"""A port picked free for the Temporal dev server can be taken before the server binds it (another
process's outgoing connection may land on it). The stack then starts the server again on new
ports instead of failing `make run` or a test's stack."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from stepwise_devkit import stack as stack_module
from stepwise_devkit.child_process import ManagedProcess
from stepwise_devkit.infra_servers import _temporal_process, temporal_dev_server_headless
from stepwise_devkit.stack import Stack

pytestmark = pytest.mark.temporal


def test_a_taken_temporal_port_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # bound, not listening: as a connection's local port holds it (nothing answers a probe)
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    held = int(taken.getsockname()[1])
    real = temporal_dev_server_headless
    asked: list[int | None] = []

    def first_on_a_taken_port(home: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
        asked.append(port)
        if len(asked) == 1:  # past the free-port check, as a race would be
            return _temporal_process(home, held, None), f"127.0.0.1:{held}"
        return real(home, port)

    monkeypatch.setattr(stack_module, "temporal_dev_server_headless", first_on_a_taken_port)
    # external Postgres and NATS URLs: only the Temporal dev server is started here
    system = Stack(
        tmp_path,
        database_url="postgresql://postgres@127.0.0.1:5432/unused",
        nats_url="nats://127.0.0.1:4222",
    )
    try:
        system._start_infra()
        assert len(asked) == 2
        assert system.temporal_address != f"127.0.0.1:{held}"
        assert system.service("temporal").alive()
    finally:
        system.stop()
        taken.close()
