"""`connect_nats` against a real nats-server: a URL list whose first server is down still
connects (the client tries the others), and the settings' replica count reaches the streams."""

from __future__ import annotations

import uuid

import pytest
from nats.js.api import StreamConfig
from stepwise_contract.platform.nats_connection import NatsSettings, connect_nats
from stepwise_contract.platform.settings import CommonSettings
from stepwise_devkit.child_process import free_port


async def test_a_list_with_a_dead_first_server_connects_to_the_live_one(nats_url: str) -> None:
    dead = f"nats://127.0.0.1:{free_port()}"
    common = CommonSettings.from_env({"NATS_URL": f"{dead},{nats_url}"})
    nc = await connect_nats(
        common.nats, name="list-test", max_reconnect_attempts=2, reconnect_time_wait=0.1
    )
    try:
        assert nc.connected_url is not None
        assert nc.connected_url.port == int(nats_url.rsplit(":", 1)[1])
        info = await nc.jetstream().account_info()
        assert info.streams >= 0
    finally:
        await nc.close()


async def test_no_live_server_in_the_list_fails_to_connect() -> None:
    dead = NatsSettings(
        servers=(f"nats://127.0.0.1:{free_port()}", f"nats://127.0.0.1:{free_port()}")
    )
    with pytest.raises(Exception, match="no servers available"):
        await connect_nats(
            dead, name="dead", max_reconnect_attempts=1, reconnect_time_wait=0.1, connect_timeout=1
        )


async def test_a_single_server_cannot_hold_three_replicas(nats_url: str) -> None:
    """What `STEPWISE_NATS_STREAM_REPLICAS=3` does against one non-clustered server: the stream
    is refused, loudly (the router then fails to start instead of running unreplicated)."""
    from stepwise_router.stream import events_stream_config

    nc = await connect_nats(NatsSettings(servers=(nats_url,)), name="replicas")
    try:
        js = nc.jetstream()
        config = events_stream_config(3)
        assert config.num_replicas == 3
        name = f"REPLICAS_{uuid.uuid4().hex[:8].upper()}"
        probe = StreamConfig(name=name, subjects=[f"replicas.{name}.>"], num_replicas=3)
        with pytest.raises(Exception, match=r"(?i)replicas|cluster"):
            await js.add_stream(probe)
    finally:
        await nc.close()
