"""The harness itself: four services as separate processes, ready, and the API answering."""

from __future__ import annotations

import os

import aiohttp
import pytest
from stepwise_devkit.stack import SERVICES, Stack

pytestmark = pytest.mark.e2e


async def test_all_four_services_ready_as_separate_processes(stack: Stack) -> None:
    pids = {spec.name: stack.service(spec.name).pid for spec in SERVICES}
    assert len(set(pids.values())) == 4 and os.getpid() not in pids.values()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for spec in SERVICES:
            async with http.get(f"{stack.service_url(spec.name)}/readyz") as resp:
                body = await resp.json()
                assert resp.status == 200, f"{spec.name}: {body}"
                assert body["status"] == "ready"
    assert stack.dead() == []


async def test_api_serves_openapi(api: aiohttp.ClientSession) -> None:
    async with api.get("/api/openapi.json") as resp:
        assert resp.status == 200
        document = await resp.json()
    assert str(document["openapi"]).startswith("3.1")
    assert "/api/workflow-runs" in document["paths"]


async def test_admin_key_of_the_stack_tenant_authenticates(
    stack: Stack, api: aiohttp.ClientSession
) -> None:
    async with api.get("/api/workflow-definitions") as resp:
        assert resp.status == 200, await resp.text()
        assert "definitions" in await resp.json()
    async with (
        aiohttp.ClientSession(base_url=stack.api_url) as anonymous,
        anonymous.get("/api/workflow-definitions") as resp,
    ):
        assert resp.status == 401
