"""Large values through the API with a real worker process: reads, export and replay show real
values; Temporal's codec-server protocol decodes a tenant's own references only."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from google.protobuf import json_format
from stepwise_contract.claim_check import CLAIM_ENCODING, is_claim
from stepwise_contract.enums import Role
from stepwise_contract.names import workflow_id_for
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

UI = "http://ui.example:8233"
CHUNK = 250_000


def echo(step_id: str, value: Any, save_as: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "action.call",
        "config": {"actionId": "core.echo", "version": 1, "inputMapping": {"value": value},
                   "saveAs": save_as},
    }  # fmt: skip


BIG = {
    "name": "big-values",
    "steps": [
        echo("len", {"$expr": "len(payload.big)"}, "vars.n"),
        echo("list", [{"$expr": "payload.s"}] * 3, "vars.big"),
    ],
}


@pytest.fixture(scope="module")
async def big_api(api_with: Callable[..., Awaitable[Any]]) -> Any:
    return await api_with(
        STEPWISE_MAX_PAYLOAD_BYTES=str(2 * 1024 * 1024), STEPWISE_CODEC_CORS_ORIGINS=UI
    )


async def finished(api: Any, tenant: Any, run_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        resp = await api.get(f"/api/workflow-runs/{run_id}", headers=tenant.headers(Role.READ))
        run: dict[str, Any] = await resp.json()
        if run["status"] == status:
            return run
        assert time.monotonic() < deadline, f"run {run_id} is {run['status']}, not {status}"
        await asyncio.sleep(0.2)


def _claims(history: Any) -> list[Payload]:
    found = []
    for event in history.events:
        attrs = event.workflow_execution_completed_event_attributes
        found += [p for p in attrs.result.payloads if is_claim(p)]
    return found


async def _decode(api: Any, headers: dict[str, str], payloads: list[Payload]) -> Any:
    body = {"payloads": [json_format.MessageToDict(p) for p in payloads]}
    return await api.post("/api/codec/decode", json=body, headers=headers)


async def test_large_values_through_the_api_and_the_codec_route(
    big_api: Any, tenant: Any, other_tenant: Any, worker: Any, temporal_client: Client
) -> None:
    api = big_api
    workflow_id = await api.create_published(tenant.headers(), BIG)
    payload = {"big": "x" * 300_000, "s": "s" * CHUNK}
    run_id = (await api.launch(tenant.headers(), workflow_id, payload))["runId"]
    run = await finished(api, tenant, run_id, "SUCCEEDED")
    assert run["result_json"]["vars"]["n"] == {"value": 300_000}
    # a read of a document over 1 MiB cuts its long strings; the export below keeps them whole
    assert "[TRUNCATED: 250000 characters]" in run["result_json"]["vars"]["big"]["value"][0]

    resp = await api.get(f"/api/workflow-runs/{run_id}/export", headers=tenant.headers())
    exported = json.loads(await resp.read())
    assert exported["run"]["input_json"]["big"] == "x" * 300_000
    assert exported["invocations"][1]["output_json"] == {"value": ["s" * CHUNK] * 3}

    resp = await api.post(
        f"/api/workflow-runs/{run_id}/replay", json={"reason": "again"}, headers=tenant.headers()
    )
    replayed = (await resp.json())["runId"]
    again = await finished(api, tenant, replayed, "SUCCEEDED")
    assert again["result_json"]["vars"]["n"] == {"value": 300_000}

    # the workflow's result is in the history as a reference only
    history = await temporal_client.get_workflow_handle(workflow_id_for(run_id)).fetch_history()
    [claim] = _claims(history)
    assert claim.ByteSize() < 1024

    resp = await _decode(api, tenant.headers(), [claim])
    assert resp.status == 200, await resp.text()
    [decoded] = json_format.ParseDict(await resp.json(), Payloads()).payloads
    assert decoded.metadata["encoding"] == b"json/plain"
    assert json.loads(decoded.data)["vars"]["big"]["value"][2] == "s" * CHUNK

    # another tenant's admin key gets the reference back, never the value
    resp = await _decode(api, other_tenant.headers(), [claim])
    assert resp.status == 200
    [kept] = json_format.ParseDict(await resp.json(), Payloads()).payloads
    assert kept.metadata["encoding"] == CLAIM_ENCODING and kept.data == claim.data
    # the same with the tenant swapped inside the reference (a forged reference)
    forged = json.loads(claim.data)
    forged["tenant"] = str(other_tenant.id)
    fake = Payload(metadata={"encoding": CLAIM_ENCODING}, data=json.dumps(forged).encode())
    resp = await _decode(api, other_tenant.headers(), [fake])
    [kept] = json_format.ParseDict(await resp.json(), Payloads()).payloads
    assert kept.data == fake.data

    # admin only; a plain payload passes through; encode answers its payloads unchanged
    assert (await _decode(api, tenant.headers(Role.READ), [claim])).status == 403
    assert (await api.post("/api/codec/decode", json={"payloads": []})).status == 401
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"a":1}')
    resp = await _decode(api, tenant.headers(), [plain])
    assert json_format.ParseDict(await resp.json(), Payloads()).payloads[0] == plain
    resp = await api.post(
        "/api/codec/encode",
        json={"payloads": [json_format.MessageToDict(plain)]},
        headers=tenant.headers(),
    )
    assert json_format.ParseDict(await resp.json(), Payloads()).payloads[0] == plain


async def test_codec_route_hostile_bodies_and_cors(big_api: Any, tenant: Any) -> None:
    api = big_api
    for body in (b"[1]", b'{"payloads": 3}', b"\xff", b'{"payloads":[{"nope":1}]}'):
        resp = await api.post("/api/codec/decode", data=body, headers=tenant.headers())
        assert resp.status == 400, (body, await resp.text())
    broken = Payload(metadata={"encoding": CLAIM_ENCODING}, data=b"not a reference")
    assert (await _decode(api, tenant.headers(), [broken])).status == 400

    preflight = await api.request(
        "OPTIONS",
        "/api/codec/decode",
        headers={"Origin": UI, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type,x-namespace"},
    )  # fmt: skip
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == UI
    assert "X-Namespace" in preflight.headers["Access-Control-Allow-Headers"]
    resp = await api.post(
        "/api/codec/decode", json={"payloads": []}, headers={**tenant.headers(), "Origin": UI}
    )
    assert resp.status == 200 and resp.headers["Access-Control-Allow-Origin"] == UI
    denied = await api.post("/api/codec/decode", json={"payloads": []}, headers={"Origin": UI})
    assert denied.status == 401 and denied.headers["Access-Control-Allow-Origin"] == UI
    stranger = await api.post(
        "/api/codec/decode",
        json={"payloads": []},
        headers={**tenant.headers(), "Origin": "http://evil.example"},
    )
    assert "Access-Control-Allow-Origin" not in stranger.headers
