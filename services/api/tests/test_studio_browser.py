"""Run Studio in a real headless Chromium (Debian's, driven by Playwright) against the real API
app in-process, with runs created through the API (real Temporal starts) or inserted with SQL.

What the page sends is read from the requests the browser really made; only the API's own answers
are used (a replay failure is a run whose workflow the API really refuses to start)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import nats
import pytest
from stepwise_contract.enums import Role
from stepwise_devkit.child_process import ManagedProcess, free_port, http_ready

try:
    from playwright.async_api import Browser, Page, Request, async_playwright, expect
except ImportError:  # pragma: no cover - depends on the environment
    # A plain `uv sync` drops the api package's dev group; CI must have it (never skip there).
    if os.environ.get("CI"):
        raise
    pytest.skip(
        "playwright is not installed (uv sync --all-packages, or uv pip install playwright)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY_STORAGE = "stepwise.studio.apiKey"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
TIMEOUT_MS = 10_000
# A workflow that stays RUNNING even if some worker executes it: an hour-long timer.
HOLD = {
    "name": "studio-hold",
    "steps": [
        {"id": "hold", "type": "time.wait", "config": {"mode": "duration", "durationMs": 3_600_000}}
    ],
}

expect.set_options(timeout=TIMEOUT_MS)


# ---------------------------------------------------------------------------------------------
# Browser and page fixtures


def require_chromium() -> None:
    # Failing, not skipping: CI installs Debian's chromium, and a skipped suite proves nothing.
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        await launched.close()


class Studio:
    """One browser tab on the Run Studio, signed in with a tenant's admin key, recording every
    request the page makes."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.requests: list[Request] = []
        # uncaught script errors of the page: every test ends with none
        self.errors: list[str] = []
        page.on("request", self._record)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _record(self, request: Request) -> None:
        self.requests.append(request)

    async def open(self, fragment: str) -> None:
        await self.page.goto(self.base + fragment)

    async def open_run(self, run_id: uuid.UUID | str) -> None:
        await self.open(f"#/runs/{run_id}")
        await expect(self.page.get_by_test_id("run-id")).to_have_text(str(run_id))
        await expect(self.page.get_by_test_id("fact-version")).to_be_visible()

    def calls(self, method: str, suffix: str) -> list[Request]:
        return [
            r for r in self.requests if r.method == method and urlparse(r.url).path.endswith(suffix)
        ]

    def tid(self, testid: str) -> Any:
        return self.page.get_by_test_id(testid)


@pytest.fixture
async def studio(browser: Browser, api: Any, tenant: Any) -> AsyncIterator[Studio]:
    context = await browser.new_context(
        accept_downloads=True, viewport={"width": 1440, "height": 900}
    )
    key = json.dumps(tenant.keys[Role.ADMIN])
    await context.add_init_script(f"sessionStorage.setItem({json.dumps(KEY_STORAGE)}, {key});")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    tab = Studio(page, str(api.client.make_url("/studio/")))
    yield tab
    await context.close()
    assert tab.errors == []


# ---------------------------------------------------------------------------------------------
# Data


async def published(api: Any, tenant: Any, definition: dict[str, Any] | None = None) -> str:
    workflow_id: str = await api.create_published(tenant.headers(), definition or HOLD)
    return workflow_id


async def launched(api: Any, tenant: Any, workflow_id: str, payload: dict[str, Any]) -> uuid.UUID:
    answer = await api.launch(tenant.headers(), workflow_id, payload)
    return uuid.UUID(answer["runId"])


async def insert_run(
    pool: asyncpg.Pool,
    tenant: Any,
    workflow_id: str,
    *,
    status: str,
    started_ago_s: float = 5.0,
    ran_for_s: float | None = None,
    input_json: dict[str, Any] | None = None,
    error_json: dict[str, Any] | None = None,
    parent_run_id: uuid.UUID | None = None,
    root_run_id: uuid.UUID | None = None,
    node_path: str | None = None,
) -> uuid.UUID:
    run_id = uuid.uuid4()
    started = datetime.now(UTC) - timedelta(seconds=started_ago_s)
    completed = started + timedelta(seconds=ran_for_s) if ran_for_s is not None else None
    await pool.execute(
        "INSERT INTO workflow_runs (run_id, tenant, workflow_id, workflow_version, status,"
        " node_path, input_json, error_json, started_at, completed_at, updated_at, engine,"
        " temporal_workflow_id, parent_run_id, root_run_id)"
        " VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, now(), 'temporal', $10, $11, $12)",
        run_id,
        tenant.id,
        uuid.UUID(workflow_id),
        status,
        node_path,
        input_json or {},
        error_json,
        started,
        completed,
        f"stepwise-run-{run_id}",
        parent_run_id,
        root_run_id or parent_run_id or run_id,
    )
    return run_id


async def insert_step(
    pool: asyncpg.Pool,
    tenant: Any,
    run_id: uuid.UUID,
    path: str,
    status: str,
    *,
    offset_s: float,
    duration_ms: int | None,
    error_json: dict[str, Any] | None = None,
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=120 - offset_s)
    completed = started + timedelta(milliseconds=duration_ms) if duration_ms is not None else None
    await pool.execute(
        "INSERT INTO workflow_run_steps (step_id, tenant, run_id, step_path, definition_step_id,"
        " step_type, status, attempt, duration_ms, error_json, started_at, completed_at)"
        " VALUES ($1, $2, $3, $4, $5, 'action.call', $6, 1, $7, $8, $9, $10)",
        uuid.uuid4(),
        tenant.id,
        run_id,
        path,
        path.rsplit(".", 1)[-1],
        status,
        duration_ms,
        error_json,
        started,
        completed,
    )


async def run_row(pool: asyncpg.Pool, run_id: uuid.UUID | str) -> asyncpg.Record:
    record = await pool.fetchrow(
        "SELECT * FROM workflow_runs WHERE run_id = $1", uuid.UUID(str(run_id))
    )
    assert record is not None
    return record


async def run_count(pool: asyncpg.Pool, tenant: Any) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM workflow_runs WHERE tenant = $1", tenant.id)
    )


# ---------------------------------------------------------------------------------------------
# Sign in


async def test_sign_in_keeps_the_key_for_the_tab_and_sign_out_forgets_it(
    browser: Browser, api: Any, tenant: Any
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        await page.goto(str(api.client.make_url("/studio/")))
        await expect(page.get_by_label("API key")).to_be_visible()

        await page.get_by_label("API key").fill("sw_not_a_real_key")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_test_id("login-error")).to_contain_text("refused")
        assert await page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") is None

        await page.get_by_label("API key").fill(tenant.keys[Role.READ])
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        stored = await page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')")
        assert stored == tenant.keys[Role.READ]
        await page.reload()  # kept for the tab: no second sign in
        await expect(page.get_by_role("heading", name="Runs")).to_be_visible()

        await page.get_by_test_id("sign-out").click()
        await expect(page.get_by_label("API key")).to_be_visible()
        assert await page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") is None
        await page.reload()
        await expect(page.get_by_label("API key")).to_be_visible()
    finally:
        await context.close()


async def test_a_revoked_key_sends_the_operator_back_to_sign_in(
    studio: Studio, tenant: Any, pool: asyncpg.Pool
) -> None:
    await studio.open("#/runs")
    await expect(studio.page.get_by_role("heading", name="Runs")).to_be_visible()
    await pool.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE tenant = $1 AND role = 'admin'", tenant.id
    )
    await studio.tid("apply-filters").click()
    await expect(studio.tid("login-error")).to_contain_text("The API key was refused")
    await expect(studio.page.get_by_label("API key")).to_be_visible()
    assert await studio.page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") is None


# ---------------------------------------------------------------------------------------------
# Runs list


async def test_runs_list_filters_pages_and_refreshes_live(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    workflow_id = await published(api, tenant)
    first = await launched(api, tenant, workflow_id, {"n": 1})
    second = await launched(api, tenant, workflow_id, {"n": 2})
    failed = await insert_run(
        pool, tenant, workflow_id, status="FAILED", started_ago_s=3600, ran_for_s=2.5,
        error_json={"message": "boom"},
    )  # fmt: skip
    rows = studio.tid("run-row")

    await studio.open("#/runs?limit=2")
    await expect(rows).to_have_count(2)
    # newest first: the two launched runs
    await expect(rows.nth(0)).to_have_attribute("data-run-id", str(second))
    await expect(rows.nth(1)).to_have_attribute("data-run-id", str(first))
    await expect(rows.nth(0)).to_contain_text("studio-hold · v1")
    await expect(rows.nth(0)).to_contain_text("RUNNING")
    await expect(studio.tid("page-next")).to_be_enabled()
    await studio.tid("page-next").click()
    await expect(rows).to_have_count(1)
    await expect(rows.nth(0)).to_have_attribute("data-run-id", str(failed))
    await expect(rows.nth(0)).to_contain_text("2.5 s")  # duration of a finished run
    await expect(studio.tid("page-next")).to_be_disabled()
    listed = [urlparse(r.url).query for r in studio.calls("GET", "/api/workflow-runs")]
    assert any("cursor=" in q and "limit=2" in q for q in listed)
    await studio.tid("page-prev").click()
    await expect(rows).to_have_count(2)

    await studio.tid("filter-status").select_option("FAILED")
    await studio.tid("apply-filters").click()
    await expect(rows).to_have_count(1)
    await expect(rows.nth(0)).to_have_attribute("data-status", "FAILED")
    assert "status=FAILED" in studio.page.url

    await studio.tid("filter-status").select_option("")
    await studio.tid("filter-search").fill(str(first)[:13])
    await studio.tid("apply-filters").click()
    await expect(rows).to_have_count(1)
    await expect(rows.nth(0)).to_have_attribute("data-run-id", str(first))

    await studio.tid("filter-search").fill("")
    await studio.tid("filter-workflow").fill(workflow_id)
    await studio.tid("filter-limit").select_option("50")
    await studio.tid("apply-filters").click()
    await expect(rows).to_have_count(3)
    # live refresh: a run launched now shows up without a reload
    third = await launched(api, tenant, workflow_id, {"n": 3})
    await expect(rows).to_have_count(4, timeout=12_000)
    await expect(rows.nth(0)).to_have_attribute("data-run-id", str(third))

    await rows.nth(0).get_by_test_id("run-link").click()
    await expect(studio.tid("run-id")).to_have_text(str(third))
    assert studio.page.url.endswith(f"#/runs/{third}")


# ---------------------------------------------------------------------------------------------
# Run details


async def assert_no_legacy_controls(studio: Studio) -> None:
    """No Retry, Resume or Requeue control anywhere in the page (visible or not); the quota
    resume is the only resume and is labelled as such."""
    texts = [
        " ".join((await node.text_content() or "").split())
        for node in await studio.page.locator("button, a, [role=button]").all()
    ]
    for text in texts:
        assert not re.search(r"\b(retry|requeue)\b", text, re.IGNORECASE), text
        assert text == "Resume (quota)" or not re.search(r"\bresume\b", text, re.IGNORECASE), text


async def test_run_details_show_steps_waits_invocations_logs_and_links(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    workflow_id = await published(api, tenant)
    parent = await insert_run(
        pool, tenant, workflow_id, status="SUCCEEDED", started_ago_s=400, ran_for_s=30
    )
    run_id = await insert_run(
        pool, tenant, workflow_id, status="FAILED", started_ago_s=120, ran_for_s=1.5,
        input_json={"customer": "c-42", "password": "hunter2", "items": [1, 2]},
        error_json={"category": "ActionError", "message": "crm answered 500",
                    "nodePath": "root.steps[1]", "authToken": "tok-123"},
        parent_run_id=parent,
    )  # fmt: skip
    await insert_step(
        pool, tenant, run_id, "root.steps[0]", "SUCCEEDED", offset_s=0, duration_ms=120
    )
    await insert_step(
        pool, tenant, run_id, "root.steps[1]", "FAILED", offset_s=1, duration_ms=40,
        error_json={"message": "crm answered 500"},
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO workflow_run_waits (wait_id, tenant, run_id, step_path, wait_type, key,"
        " event_name, status, payload, created_at, resolved_at)"
        " VALUES ($1, $2, $3, 'root.steps[0]', 'event', 'order-7', 'order.paid', 'RESOLVED',"
        " $4, now() - interval '119 seconds', now() - interval '118 seconds')",
        uuid.uuid4(), tenant.id, run_id, {"amount": 12, "apiKey": "k-secret"},
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO workflow_action_invocations (invocation_id, tenant, run_id, step_path,"
        " action_id, action_version, idempotency_key, status, input_json, output_json, error_json)"
        " VALUES ($1, $2, $3, 'root.steps[1]', 'http.request', 1, $4, 'FAILED', $5, $6, $7)",
        uuid.uuid4(), tenant.id, run_id, f"{run_id}:root.steps[1]",
        {"url": "https://crm.example/orders", "headers": {"Authorization": "Bearer xyz"}},
        {"status": 500}, {"category": "ActionError", "message": "HTTP 500"},
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO workflow_run_logs (log_id, tenant, run_id, step_path, level, message,"
        " context_json, source, created_at) VALUES"
        " ($1, $3, $4, NULL, 'INFO', 'Run started', $5, 'runtime', now() - interval '120 s'),"
        " ($2, $3, $4, 'root.steps[1]', 'ERROR', 'Action failed', $6, 'worker', now() - interval '119 s')",
        uuid.uuid4(), uuid.uuid4(), tenant.id, run_id,
        {"workflowVersion": 1}, {"secretValue": "s-1", "status": 500},
    )  # fmt: skip

    await studio.open_run(run_id)
    page = studio.page
    await expect(studio.tid("run-status")).to_have_text("FAILED")
    await expect(studio.tid("fact-workflow")).to_contain_text("studio-hold")
    await expect(studio.tid("fact-duration")).to_have_text("1.5 s")
    await expect(studio.tid("fact-priority")).to_have_text("3 of 5 (1 = most urgent)")

    # redacted by the API, shown as returned
    run_input = json.loads(await studio.tid("run-input").text_content())
    assert run_input == {"customer": "c-42", "password": "[REDACTED]", "items": [1, 2]}
    error = json.loads(await studio.tid("run-error-json").text_content())
    assert error["message"] == "crm answered 500" and error["authToken"] == "[REDACTED]"
    page_text = await page.locator("body").text_content() or ""
    for secret in ("hunter2", "tok-123", "k-secret", "Bearer xyz", 's-1"'):
        assert secret not in page_text

    timeline = studio.tid("timeline-row")
    await expect(timeline).to_have_count(3)
    step_rows = page.locator('[data-testid="timeline-row"][data-kind="step"]')
    await expect(step_rows.nth(0)).to_have_attribute("data-path", "root.steps[0]")
    await expect(step_rows.nth(0)).to_contain_text("steps[0]")  # the step's id as its label
    await expect(step_rows.nth(0).get_by_test_id("timeline-duration")).to_have_text("120 ms")
    await expect(step_rows.nth(1).get_by_test_id("timeline-duration")).to_have_text("40 ms")
    await expect(step_rows.nth(1)).to_contain_text("FAILED")
    wait_row = page.locator('[data-testid="timeline-row"][data-kind="wait"]')
    await expect(wait_row).to_contain_text("wait · event")
    await expect(wait_row).to_contain_text("order.paid")

    await expect(studio.tid("wait-row")).to_have_count(1)
    await expect(studio.tid("wait-row")).to_contain_text("order-7")
    await expect(studio.tid("wait-row")).to_contain_text('"apiKey": "[REDACTED]"')

    invocation = studio.tid("invocation")
    await expect(invocation).to_have_count(1)
    await invocation.locator("summary").click()
    shown_input = json.loads(await invocation.get_by_test_id("invocation-input").text_content())
    assert shown_input == {
        "url": "https://crm.example/orders",
        "headers": {"Authorization": "[REDACTED]"},
    }
    assert json.loads(await invocation.get_by_test_id("invocation-output").text_content()) == {
        "status": 500
    }
    await expect(invocation.get_by_test_id("invocation-error")).to_contain_text("HTTP 500")

    logs = studio.tid("log-row")
    await expect(logs).to_have_count(2)
    await expect(logs.nth(1)).to_contain_text("Action failed")
    await expect(logs.nth(1)).to_contain_text('"secretValue": "[REDACTED]"')

    # controls of a FAILED run: Replay and Export, no Cancel, nothing legacy
    await expect(studio.tid("replay-button")).to_be_visible()
    await expect(studio.tid("export-button")).to_be_visible()
    await expect(studio.tid("cancel-button")).to_be_hidden()
    await expect(studio.tid("queued-warning")).to_have_count(0)
    await assert_no_legacy_controls(studio)

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "studio-run-details.png"), full_page=True)

    await studio.tid("fact-parent").get_by_role("link").click()
    await expect(studio.tid("run-id")).to_have_text(str(parent))
    await expect(studio.tid("run-status")).to_have_text("SUCCEEDED")


async def test_queued_banner_only_for_a_stale_run_without_steps(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    workflow_id = await published(api, tenant)
    stuck = await insert_run(pool, tenant, workflow_id, status="RUNNING", started_ago_s=600)
    busy = await insert_run(pool, tenant, workflow_id, status="RUNNING", started_ago_s=600)
    await insert_step(pool, tenant, busy, "root.steps[0]", "STARTED", offset_s=0, duration_ms=None)
    fresh = await launched(api, tenant, workflow_id, {})

    await studio.open_run(stuck)
    banner = studio.tid("queued-warning")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("Queued — no worker has picked this run up")
    answer = await (await api.get(f"/api/workflow-runs/{stuck}", headers=tenant.headers())).json()
    [warning] = answer["warnings"]
    assert warning["code"] == "RUN_QUEUED_NO_PROGRESS"
    # the API's message, as it said it (its age in seconds moves on between two reads)
    pattern = re.sub(r"\\ \d+\\ s\\ ago", r" \\d+ s ago", re.escape(warning["message"]))
    assert r" \d+ s ago" in pattern
    shown = re.compile(f"^{pattern}$")
    await expect(studio.tid("queued-warning-message")).to_have_text(shown)

    for run_id in (busy, fresh):
        await studio.open_run(run_id)
        await expect(studio.tid("run-status")).to_have_text("RUNNING")
        await expect(studio.tid("queued-warning")).to_have_count(0)
        await expect(studio.tid("run-warning")).to_have_count(0)


async def test_failing_workflow_task_shows_on_the_run_and_in_the_list(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool, failing_tasks: Any, sweeper: Any
) -> None:
    """A run whose workflow task raises (a real failing workflow, the sweeper's job): the banner
    within 10 s of the failure, with the failure as text (a hostile message stays text)."""
    workflow_id = await published(api, tenant)
    run_id = await insert_run(pool, tenant, workflow_id, status="RUNNING", started_ago_s=1)
    hostile = '<img src=x onerror="window.__pwned=1"> bad code'
    started = time.monotonic()
    temporal_run_id = await failing_tasks.start(run_id, hostile)
    await pool.execute(
        "UPDATE workflow_runs SET temporal_run_id = $2 WHERE run_id = $1", run_id, temporal_run_id
    )

    await studio.open_run(run_id)
    banner = studio.tid("task-failing-warning")
    remaining_ms = max(1000.0, 10_000 - (time.monotonic() - started) * 1000)
    await expect(banner).to_be_visible(timeout=remaining_ms)
    await expect(banner).to_contain_text("Workflow task failing — the run cannot progress")
    await expect(studio.tid("task-failing-error")).to_have_text(f"RuntimeError: {hostile}")
    await expect(studio.tid("task-failing-attempts")).to_have_text(
        re.compile(r"^attempt \d+ · failing since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
                   r" · cause WorkflowWorkerUnhandledFailure$")
    )  # fmt: skip
    await expect(banner.locator("img")).to_have_count(0)
    assert await studio.page.evaluate("window.__pwned === undefined")
    await expect(studio.tid("queued-warning")).to_have_count(0)

    await studio.open("#/runs")
    row = studio.page.locator(f'[data-testid="run-row"][data-run-id="{run_id}"]')
    await expect(row.get_by_test_id("row-task-failing")).to_be_visible()
    await expect(row.get_by_test_id("row-task-failing")).to_have_attribute(
        "title", re.compile("keeps failing")
    )


async def test_a_running_run_refreshes_live_and_keeps_expanded_invocations_open(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    workflow_id = await published(api, tenant)
    run_id = await insert_run(pool, tenant, workflow_id, status="RUNNING", started_ago_s=30)
    await insert_step(
        pool, tenant, run_id, "root.steps[0]", "STARTED", offset_s=0, duration_ms=None
    )
    await pool.execute(
        "INSERT INTO workflow_action_invocations (invocation_id, tenant, run_id, step_path,"
        " action_id, action_version, idempotency_key, status, input_json)"
        " VALUES ($1, $2, $3, 'root.steps[0]', 'core.echo', 1, $4, 'STARTED', $5)",
        uuid.uuid4(), tenant.id, run_id, f"{run_id}:0", {"value": 1},
    )  # fmt: skip
    await studio.open_run(run_id)
    invocation = studio.tid("invocation")
    await invocation.locator("summary").click()
    await expect(invocation).to_have_attribute("open", "")
    await expect(studio.tid("log-row")).to_have_count(0)
    await pool.execute(
        "INSERT INTO workflow_run_logs (log_id, tenant, run_id, level, message, source)"
        " VALUES ($1, $2, $3, 'INFO', 'late line', 'worker')",
        uuid.uuid4(), tenant.id, run_id,
    )  # fmt: skip
    # the next refresh (every 5 s) shows the new line and re-renders the invocations
    await expect(studio.tid("log-row")).to_have_count(1, timeout=12_000)
    await expect(studio.tid("log-row")).to_contain_text("late line")
    assert len(studio.calls("GET", f"/api/workflow-runs/{run_id}/steps")) >= 2
    await expect(invocation).to_have_attribute("open", "")


async def test_no_legacy_controls_on_failed_waiting_or_running_runs(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    workflow_id = await published(api, tenant)
    failed = await insert_run(
        pool, tenant, workflow_id, status="FAILED", ran_for_s=1, error_json={"message": "x"}
    )
    running = await insert_run(pool, tenant, workflow_id, status="RUNNING")
    waiting = await insert_run(
        pool, tenant, workflow_id, status="WAITING", node_path="root.steps[0]",
        error_json={"category": "QuotaExceeded", "message": "Workflow step quota exceeded"},
    )  # fmt: skip
    now = datetime.now(UTC)
    period_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    period_end = (period_start + timedelta(days=32)).replace(day=1)
    await pool.execute(
        "INSERT INTO workflow_run_waits (wait_id, tenant, run_id, step_path, wait_type,"
        " timeout_at, status, payload) VALUES ($1, $2, $3, 'root.steps[0]', 'quota', $4,"
        " 'WAITING', $5)",
        uuid.uuid4(), tenant.id, waiting, period_end,
        {"reason": "workflow_step_quota_exceeded", "usedCount": 5, "effectiveLimit": 5,
         "periodStart": period_start.isoformat(), "periodEnd": period_end.isoformat()},
    )  # fmt: skip
    await pool.execute("UPDATE tenants SET step_quota_limit = 5 WHERE tenant = $1", tenant.id)
    await pool.execute(
        "INSERT INTO workflow_step_usage_periods (tenant, period_start, period_end,"
        " effective_limit, used_count) VALUES ($1, $2, $3, 5, 5)",
        tenant.id, period_start, period_end,
    )  # fmt: skip

    for run_id, status, cancel in ((failed, "FAILED", False), (running, "RUNNING", True)):
        await studio.open_run(run_id)
        await expect(studio.tid("run-status")).to_have_text(status)
        await expect(studio.tid("cancel-button")).to_be_visible(visible=cancel)
        await expect(studio.tid("quota-panel")).to_be_hidden()
        await assert_no_legacy_controls(studio)

    await studio.open_run(waiting)
    await expect(studio.tid("run-status")).to_have_text("WAITING")
    await expect(studio.tid("cancel-button")).to_be_visible()
    await expect(studio.tid("quota-panel")).to_be_visible()
    await expect(studio.tid("quota-used")).to_have_text("5")
    await expect(studio.tid("quota-limit")).to_have_text("5")
    await expect(studio.tid("quota-step")).to_have_text("root.steps[0]")
    await assert_no_legacy_controls(studio)
    # the quota is still exhausted: the API refuses and the page shows why, with the figures
    await studio.tid("quota-resume-button").click()
    await expect(studio.tid("quota-error")).to_contain_text("QUOTA_EXHAUSTED")
    await expect(studio.tid("quota-error")).to_contain_text("used 5 of 5")
    [call] = studio.calls("POST", f"/api/workflow-runs/{waiting}/quota-resume")
    assert (await call.response()).status == 409  # type: ignore[union-attr]
    assert (await run_row(pool, waiting))["status"] == "WAITING"


async def test_quota_resume_resumes_a_paused_run(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    workflow_id = await published(api, tenant)
    run_id = await launched(api, tenant, workflow_id, {})  # a real Temporal workflow to signal
    await pool.execute(
        "UPDATE workflow_runs SET status = 'WAITING', node_path = 'root.steps[0]' WHERE run_id = $1",
        run_id,
    )
    await pool.execute(
        "INSERT INTO workflow_run_waits (wait_id, tenant, run_id, step_path, wait_type, status,"
        " payload) VALUES ($1, $2, $3, 'root.steps[0]', 'quota', 'WAITING', $4)",
        uuid.uuid4(), tenant.id, run_id, {"usedCount": 3, "effectiveLimit": 3},
    )  # fmt: skip
    await studio.open_run(run_id)
    await expect(studio.tid("quota-panel")).to_be_visible()
    await studio.tid("quota-resume-button").click()
    await expect(studio.tid("run-status")).to_have_text("RUNNING")
    await expect(studio.tid("quota-panel")).to_be_hidden()
    await expect(studio.tid("control-message")).to_have_text("Quota pause resumed.")
    assert len(studio.calls("POST", f"/api/workflow-runs/{run_id}/quota-resume")) == 1
    assert (await run_row(pool, run_id))["status"] == "RUNNING"


# ---------------------------------------------------------------------------------------------
# Replay


async def open_replay(studio: Studio, run_id: uuid.UUID) -> str:
    await studio.open_run(run_id)
    await studio.tid("replay-button").click()
    await expect(studio.tid("replay-dialog")).to_be_visible()
    text: str = await studio.tid("replay-payload").input_value()
    return text


async def test_unedited_replay_sends_no_payload_and_lands_on_the_new_run(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    workflow_id = await published(api, tenant)
    original = {"customer": "c-1", "apiToken": "s3cr3t-token", "lines": [{"sku": "A", "qty": 2}]}
    old = await launched(api, tenant, workflow_id, original)

    prefilled = await open_replay(studio, old)
    assert json.loads(prefilled) == {**original, "apiToken": "[REDACTED]"}
    assert prefilled == json.dumps(json.loads(prefilled), indent=2)  # pretty JSON
    await expect(studio.tid("replay-edited")).to_contain_text("Unchanged")
    await studio.tid("replay-reason").fill("re-run after the CRM fix")
    async with studio.page.expect_response(lambda r: r.url.endswith("/replay")) as answer:
        await studio.tid("replay-submit").click()
    response = await answer.value
    assert response.status == 201
    assert response.request.post_data_json == {"reason": "re-run after the CRM fix"}
    new = (await response.json())["runId"]

    await expect(studio.page).to_have_url(re.compile(rf"#/runs/{new}$"))
    await expect(studio.tid("run-id")).to_have_text(new)
    await expect(studio.tid("replay-dialog")).to_be_hidden()
    await expect(studio.tid("fact-replay-of")).to_have_text(str(old))
    row = await run_row(pool, new)
    assert row["input_json"] == original  # the unredacted original, not the placeholders
    assert row["trigger_metadata_json"]["replayOfRunId"] == str(old)
    assert len(studio.calls("POST", "/replay")) == 1


async def test_edited_replay_sends_exactly_the_edit(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    workflow_id = await published(api, tenant)
    old = await launched(api, tenant, workflow_id, {"customer": "c-1", "password": "pw"})

    await open_replay(studio, old)
    edit = '{"customer": "c-2", "password": "new-pw", "note": "edited"}'
    await studio.tid("replay-payload").fill(edit)
    await expect(studio.tid("replay-edited")).to_contain_text("Edited")
    await studio.tid("replay-reason").fill("customer moved")
    async with studio.page.expect_response(lambda r: r.url.endswith("/replay")) as answer:
        await studio.tid("replay-submit").click()
    response = await answer.value
    assert response.status == 201
    assert response.request.post_data_json == {
        "reason": "customer moved",
        "payload": {"customer": "c-2", "password": "new-pw", "note": "edited"},
    }
    new = (await response.json())["runId"]
    await expect(studio.tid("run-id")).to_have_text(new)
    assert (await run_row(pool, new))["input_json"] == json.loads(edit)


async def test_invalid_replay_input_is_refused_without_a_request(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    workflow_id = await published(api, tenant)
    old = await launched(api, tenant, workflow_id, {"customer": "c-1"})
    before = await run_count(pool, tenant)

    await open_replay(studio, old)
    await studio.tid("replay-reason").fill("try again")
    error = studio.tid("replay-error")
    await studio.tid("replay-payload").fill('{"customer": "c-1",')
    await studio.tid("replay-submit").click()
    await expect(error).to_be_visible()
    await expect(error).to_contain_text("Invalid JSON — nothing was sent")

    await studio.tid("replay-payload").fill("[1, 2]")
    await studio.tid("replay-submit").click()
    await expect(error).to_contain_text("must be a JSON object")

    # unedited text but no usable reason
    await studio.tid("replay-close").click()
    await studio.tid("replay-button").click()
    await studio.tid("replay-reason").fill("  x ")
    await studio.tid("replay-submit").click()
    await expect(error).to_contain_text("at least 3 characters")

    await expect(studio.tid("replay-dialog")).to_be_visible()
    assert studio.calls("POST", "/replay") == []
    assert studio.page.url.endswith(f"#/runs/{old}")
    assert await run_count(pool, tenant) == before


async def test_refused_replay_keeps_the_operator_on_the_old_run(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    workflow_id = await published(api, tenant)
    old = await launched(api, tenant, workflow_id, {"customer": "c-1"})
    # a paused workflow starts no run: the API really refuses the replay (409 WORKFLOW_PAUSED)
    resp = await api.patch(
        f"/api/workflow-definitions/{workflow_id}", json={"isPaused": True},
        headers=tenant.headers(),
    )  # fmt: skip
    assert resp.status == 200, await resp.text()
    before = await run_count(pool, tenant)

    await open_replay(studio, old)
    await studio.tid("replay-reason").fill("should not start")
    async with studio.page.expect_response(lambda r: r.url.endswith("/replay")) as answer:
        await studio.tid("replay-submit").click()
    response = await answer.value
    assert response.status == 409
    problem = await response.json()
    error = studio.tid("replay-error")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text(problem["code"])
    await expect(error).to_contain_text(problem["detail"])
    assert problem["code"] == "WORKFLOW_PAUSED"
    assert studio.page.url.endswith(f"#/runs/{old}")
    await expect(studio.tid("run-id")).to_have_text(str(old))
    assert await run_count(pool, tenant) == before


# ---------------------------------------------------------------------------------------------
# Cancel and export


async def test_cancel_asks_for_a_reason_and_cancels(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    workflow_id = await published(api, tenant)
    run_id = await launched(api, tenant, workflow_id, {})

    await studio.open_run(run_id)
    await expect(studio.tid("run-status")).to_have_text("RUNNING")
    await studio.tid("cancel-button").click()
    await expect(studio.tid("cancel-dialog")).to_be_visible()
    await studio.tid("cancel-reason").fill("no")
    await studio.tid("cancel-submit").click()
    await expect(studio.tid("cancel-error")).to_contain_text("at least 3 characters")
    assert studio.calls("POST", "/cancel") == []

    await studio.tid("cancel-reason").fill("customer withdrew")
    async with studio.page.expect_response(lambda r: r.url.endswith("/cancel")) as answer:
        await studio.tid("cancel-submit").click()
    response = await answer.value
    assert response.status == 200
    assert response.request.post_data_json == {"reason": "customer withdrew"}
    await expect(studio.tid("run-status")).to_have_text("CANCELED")
    await expect(studio.tid("cancel-button")).to_be_hidden()
    await expect(studio.tid("control-message")).to_have_text("Run canceled.")
    await expect(studio.tid("log-row").filter(has_text="Run canceled by operator")).to_have_count(1)
    row = await run_row(pool, run_id)
    assert row["status"] == "CANCELED"
    assert row["error_json"]["reason"] == "customer withdrew"


async def test_export_downloads_the_run_as_json(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    workflow_id = await published(api, tenant)
    run_id = await launched(api, tenant, workflow_id, {"customer": "c-9", "secretCode": "xyz"})

    await studio.open_run(run_id)
    async with studio.page.expect_download() as download_info:
        await studio.tid("export-button").click()
    download = await download_info.value
    assert download.suggested_filename == f"workflow-run-{run_id}.json"
    path = await download.path()
    document = json.loads(await asyncio.to_thread(Path(path).read_text))
    assert set(document) == {
        "run", "steps", "invocations", "waits", "snapshots", "logs", "quotaPause",
    }  # fmt: skip
    assert document["run"]["run_id"] == str(run_id)
    assert document["run"]["input_json"] == {"customer": "c-9", "secretCode": "[REDACTED]"}
    [call] = studio.calls("GET", f"/api/workflow-runs/{run_id}/export")
    assert call.headers["authorization"] == f"Bearer {tenant.keys[Role.ADMIN]}"
    await expect(studio.tid("control-message")).to_contain_text(f"workflow-run-{run_id}.json")


# ---------------------------------------------------------------------------------------------
# The console: waiting made visible, the waterfall, tasks, workflows, events (real worker and
# router processes where a run must really resume or a message must really be dead-lettered)


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder: Path = tmp_path_factory.mktemp("studio-screens")
    print(f"\nStudio screenshots: {folder}")
    return folder


UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((n) => n.offsetParent !== null)
  .filter((n) => !(n.labels && n.labels.length) && !n.getAttribute("aria-label")
                 && !(n.tagName === "BUTTON" && n.textContent.trim()))
  .map((n) => n.outerHTML)"""


async def screenshot(studio: Studio, screens: Path, name: str) -> None:
    """Saves the page, after checking that every visible control has a label (a `<label>`, an
    aria-label, or a button's text)."""
    assert await studio.page.evaluate(UNLABELLED) == [], name
    path = screens / f"{name}.png"
    await studio.page.screenshot(path=str(path), full_page=True)
    print(f"screenshot {path}")


async def _service(
    module: str, port_env: str, service_env: dict[str, str], folder: Path
) -> ManagedProcess:
    port = free_port()
    proc = ManagedProcess(
        name=module,
        argv=[sys.executable, "-m", module],
        log_path=folder / f"{module}.log",
        env={**service_env, port_env: str(port)},
        ready=http_ready(f"http://127.0.0.1:{port}/readyz"),
    )
    proc.start()
    await asyncio.to_thread(proc.wait_ready, 60)
    return proc


@pytest.fixture(scope="module")
async def worker(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ManagedProcess]:
    proc = await _service(
        "stepwise_worker", "STEPWISE_WORKER_PORT", service_env, tmp_path_factory.mktemp("w")
    )
    yield proc
    await asyncio.to_thread(proc.stop)


@pytest.fixture(scope="module")
async def router(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ManagedProcess]:
    proc = await _service(
        "stepwise_router", "STEPWISE_ROUTER_PORT", service_env, tmp_path_factory.mktemp("r")
    )
    yield proc
    await asyncio.to_thread(proc.stop)


async def poll(probe: Any, what: str, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def read_json(api: Any, tenant: Any, path: str) -> Any:
    resp = await api.get(path, headers=tenant.headers())
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_run_parked_on_an_event_shows_what_it_waits_for(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool, screens: Path
) -> None:
    resp = await api.post(
        "/api/workflow-definitions",
        json={"definition": {**HOLD, "name": "order-flow"}, "key": "orders"},
        headers=tenant.headers(),
    )
    workflow_id = (await resp.json())["workflowId"]
    await api.post(
        f"/api/workflow-definitions/{workflow_id}/publish", json={}, headers=tenant.headers()
    )
    other = await published(api, tenant)
    parked = await insert_run(pool, tenant, workflow_id, status="RUNNING", started_ago_s=90)
    await insert_step(
        pool, tenant, parked, "root.steps[0]", "SUCCEEDED", offset_s=30, duration_ms=200
    )
    await insert_step(
        pool, tenant, parked, "root.steps[1]", "STARTED", offset_s=31, duration_ms=None
    )
    await pool.execute(
        "INSERT INTO workflow_run_waits (wait_id, tenant, run_id, step_path, wait_type, key,"
        " event_name, status, timeout_at, created_at) VALUES ($1, $2, $3, 'root.steps[1]',"
        " 'event', 'order-7', 'order.paid', 'WAITING', now() + interval '1 hour',"
        " now() - interval '89 seconds')",
        uuid.uuid4(), tenant.id, parked,
    )  # fmt: skip
    busy = await insert_run(pool, tenant, other, status="RUNNING", started_ago_s=10)
    failed = await insert_run(
        pool, tenant, other, status="FAILED", started_ago_s=20, ran_for_s=1,
        error_json={"category": "ActionError", "code": "HTTP_500", "message": "crm answered 500"},
    )  # fmt: skip

    await studio.open("#/runs")
    row = studio.page.locator(f'[data-testid="run-row"][data-run-id="{parked}"]')
    await expect(row.get_by_test_id("row-waiting")).to_have_text("event order.paid · key order-7")
    await expect(row.get_by_test_id("run-link")).to_have_text(str(parked)[:8])
    await expect(row.get_by_test_id("run-link")).to_have_attribute("title", str(parked))
    failed_row = studio.page.locator(f'[data-testid="run-row"][data-run-id="{failed}"]')
    await expect(failed_row.get_by_test_id("row-error")).to_have_text(
        "ActionError · HTTP_500 · crm answered 500"
    )
    await expect(studio.tid("time-zone")).to_contain_text("Times in ")
    await expect(studio.tid("workflow-suggestions").locator("option[value=orders]")).to_have_count(
        1
    )
    await screenshot(studio, screens, "runs-list")

    # filters by what runs wait on and by the workflow's key, kept in the address
    await studio.tid("filter-waiting").select_option("event")
    await studio.tid("apply-filters").click()
    await expect(studio.tid("run-row")).to_have_count(1)
    assert "waitingOn=event" in studio.page.url
    await studio.tid("filter-waiting").select_option("")
    await studio.tid("filter-workflow").fill("orders")
    await studio.tid("apply-filters").click()
    await expect(studio.tid("run-row")).to_have_count(1)
    await expect(studio.tid("run-row")).to_have_attribute("data-run-id", str(parked))
    assert "workflow=orders" in studio.page.url
    await studio.page.reload()  # saved in the URL: the same view after a reload
    await expect(studio.tid("run-row")).to_have_count(1)
    await expect(studio.tid("filter-workflow")).to_have_value("orders")
    assert str(busy) not in (await studio.page.content())

    await studio.open_run(parked)
    await expect(studio.tid("run-headline")).to_have_text(
        re.compile(r"^Waiting for event order\.paid with correlation key order-7, at most until ")
    )
    await expect(studio.tid("fact-waiting")).to_have_text("event order.paid · key order-7")
    await expect(studio.tid("run-error-line")).to_be_hidden()
    await screenshot(studio, screens, "run-waiting-on-event")


async def test_a_failed_run_shows_its_error_once_and_a_nested_waterfall(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool, screens: Path
) -> None:
    workflow_id = await published(api, tenant)
    error = {"category": "ActionError", "code": "HTTP_500", "message": "crm answered 500",
             "details": {"status": 500, "password": "pw-1"}}  # fmt: skip
    run_id = await insert_run(
        pool, tenant, workflow_id, status="FAILED", started_ago_s=130, ran_for_s=12,
        error_json=error,
    )  # fmt: skip
    await insert_step(
        pool, tenant, run_id, "root.steps[0]", "SUCCEEDED", offset_s=10, duration_ms=500
    )
    await insert_step(pool, tenant, run_id, "root.steps[1]", "FAILED", offset_s=11, duration_ms=9000,
                      error_json=error)  # fmt: skip
    nested = "root.steps[1].then.steps[0]"
    for attempt, offset in ((1, 12), (2, 15)):
        await pool.execute(
            "INSERT INTO workflow_run_steps (step_id, tenant, run_id, step_path,"
            " definition_step_id, step_type, status, attempt, duration_ms, error_json,"
            " started_at, completed_at) VALUES ($1, $2, $3, $4, 'call-crm', 'action.call',"
            " 'FAILED', $5, 2000, $6, now() - make_interval(secs => 120 - $7),"
            " now() - make_interval(secs => 118 - $7))",
            uuid.uuid4(), tenant.id, run_id, nested, attempt, error, float(offset),
        )  # fmt: skip
    await pool.execute(
        "INSERT INTO workflow_action_invocations (invocation_id, tenant, run_id, step_path,"
        " action_id, action_version, idempotency_key, status, input_json, error_json)"
        " VALUES ($1, $2, $3, $4, 'http.request', 1, 'k', 'FAILED', $5, $6)",
        uuid.uuid4(), tenant.id, run_id, nested,
        {"url": "https://crm.example", "token": "t-9"}, error,
    )  # fmt: skip

    await studio.open_run(run_id)
    await expect(studio.tid("run-error-line")).to_have_text(
        "ActionError · HTTP_500 · crm answered 500 · at step call-crm"
    )
    await expect(studio.tid("run-headline")).to_have_text(
        "Failed at step call-crm — the error is below."
    )
    await expect(studio.tid("run-error-json")).to_be_hidden()  # details folded
    visible = await studio.page.locator("main").inner_text()
    assert visible.count("crm answered 500") == 1, visible
    await expect(studio.tid("fact-trigger")).to_have_text("API launch")

    rows = studio.tid("timeline-row")
    await expect(rows).to_have_count(3)  # two attempts of the nested step share one row
    nested_row = studio.page.locator(f'[data-testid="timeline-row"][data-path="{nested}"]')
    await expect(nested_row).to_have_attribute("data-depth", "1")
    await expect(nested_row).to_contain_text("call-crm")
    await expect(nested_row).to_contain_text("×2 attempts")  # noqa: RUF001
    assert len(await nested_row.locator(".bar").all()) == 2
    # to scale: a later step's bar starts further right
    lefts = [
        float((await bar.get_attribute("style") or "").split("left:")[1].split("%")[0])
        for bar in await studio.page.locator("[data-testid=timeline-row] .bar").all()
    ]
    assert lefts == sorted(lefts) and lefts[-1] > lefts[0] + 10
    await nested_row.get_by_test_id("timeline-open").focus()
    await studio.page.keyboard.press("Enter")
    panel = studio.tid("step-panel")
    await expect(panel).to_be_visible()
    await expect(studio.tid("step-panel-title")).to_have_text("Step call-crm (action.call)")
    shown = json.loads(await panel.get_by_test_id("panel-input").text_content())
    assert shown == {"url": "https://crm.example", "token": "[REDACTED]"}
    await screenshot(studio, screens, "run-failed-waterfall")
    await studio.page.locator("#run-error-details > summary").click()
    details = json.loads(await studio.tid("run-error-json").text_content())
    assert details["details"] == {"status": 500, "password": "[REDACTED]"}

    # a run that does not exist: only the not-found state
    await studio.open(f"#/runs/{uuid.uuid4()}")
    await expect(studio.tid("run-load-error")).to_contain_text("Run not found")
    await expect(studio.tid("replay-button")).to_be_hidden()
    await expect(studio.tid("export-button")).to_be_hidden()
    await expect(studio.tid("timeline")).to_be_hidden()
    await screenshot(studio, screens, "run-not-found")


async def test_replay_lists_the_field_errors_the_api_returns(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    ref = "payload.StudioOrder.v1"
    schema = {"type": "object", "required": ["orderId"],
              "properties": {"orderId": {"type": "string"}, "total": {"type": "number"}}}  # fmt: skip
    resp = await api.put(f"/api/workflow/schemas/{ref}", json=schema, headers=tenant.headers())
    assert resp.status in (200, 201), await resp.text()
    workflow_id = await published(api, tenant, {**HOLD, "payloadSchemaRef": ref})
    old = await launched(api, tenant, workflow_id, {"orderId": "o-1", "total": 3})

    await open_replay(studio, old)
    await studio.tid("replay-payload").fill('{"total": "three"}')
    await studio.tid("replay-reason").fill("wrong edit")
    await studio.tid("replay-submit").click()
    await expect(studio.tid("replay-error")).to_contain_text("HTTP 400")
    items = studio.tid("replay-field-errors").get_by_test_id("field-error")
    await expect(items).to_have_count(2)
    await expect(items.filter(has_text="/total")).to_have_count(1)


TASK_FORM = {
    "type": "object",
    "required": ["approved", "amount"],
    "properties": {
        "approved": {"type": "boolean", "title": "Approved"},
        "amount": {"type": "number", "minimum": 1, "title": "Amount"},
        "reason": {"enum": ["damaged", "late", "other"], "title": "Reason"},
        # a hostile title stays text
        "note": {"type": "string", "title": 'Note <img src=x onerror="window.__pwned=1">'},
        "contact": {
            "type": "object",
            "title": "Contact",
            "properties": {"email": {"type": "string"}, "callBack": {"type": "boolean"}},
        },
        "tags": {"type": "array", "items": {"type": "string"}, "title": "Tags"},
    },
}
APPROVAL = {
    "name": "studio-approval",
    "steps": [
        {
            "id": "ask",
            "type": "human.task",
            "config": {
                "taskType": "refund",
                "title": "Approve the refund",
                "description": "A customer asks for their money back.",
                "contextData": {"order": {"$expr": "payload.order"}, "apiToken": "tok-ctx"},
                "formSchema": TASK_FORM,
            },
        },
        {"id": "done", "type": "state.set", "config": {"state": "approved"}},
    ],
}


async def test_a_human_task_completed_in_the_studio_resumes_its_run(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool, worker: Any, screens: Path
) -> None:
    workflow_id = await published(api, tenant, APPROVAL)
    run_id = await launched(api, tenant, workflow_id, {"order": "o-42"})

    async def open_task() -> Any:
        answer = await read_json(api, tenant, f"/api/workflow/tasks?runId={run_id}")
        return answer["tasks"][0] if answer["tasks"] else None

    task = await poll(open_task, "the human task")
    await studio.open_run(run_id)
    await expect(studio.tid("run-headline")).to_contain_text(
        "Waiting for a person to complete the task “Approve the refund”"
    )
    await studio.tid("nav-tasks").click()
    row = studio.page.locator(f'[data-testid="task-row"][data-task-id="{task["task_id"]}"]')
    await expect(row).to_contain_text("Approve the refund")
    await expect(row).to_contain_text("refund")
    await screenshot(studio, screens, "tasks-inbox")
    await studio.tid("tasks-text").fill("nothing like it")
    await studio.tid("tasks-apply").click()
    await expect(studio.tid("tasks-empty")).to_be_visible()

    await studio.open_run(run_id)
    await studio.tid("open-task").click()
    await expect(studio.tid("task-title")).to_have_text("Approve the refund")
    context = json.loads(await studio.tid("task-context").text_content())
    assert context == {"order": "o-42", "apiToken": "[REDACTED]"}
    page = studio.page
    form = studio.tid("task-form")
    await form.get_by_label("Approved").check()
    await form.get_by_label("Amount").fill("0")  # below the minimum: the API says which field
    await form.get_by_label("Reason").select_option("late")
    await form.get_by_label("Note").fill("parcel lost")
    await form.get_by_label("email").fill("a@example.org")
    await form.get_by_label("callBack").check()
    await form.get_by_label("Tags").fill("vip\n\nrepeat")
    async with page.expect_response(lambda r: r.url.endswith("/complete")) as answer:
        await studio.tid("task-submit").click()
    assert (await answer.value).status == 400
    await expect(page.locator('.field-error[data-path="/amount"]')).not_to_be_empty()
    await expect(studio.tid("task-form-error")).to_contain_text("PAYLOAD_INVALID")
    await expect(form.locator("img")).to_have_count(0)
    assert await page.evaluate("window.__pwned === undefined")
    await screenshot(studio, screens, "task-form-errors")

    await form.get_by_label("Amount").fill("25.5")
    async with page.expect_response(lambda r: r.url.endswith("/complete")) as answer:
        await studio.tid("task-submit").click()
    response = await answer.value
    assert response.status == 200
    sent = {"approved": True, "amount": 25.5, "reason": "late", "note": "parcel lost",
            "contact": {"email": "a@example.org", "callBack": True}, "tags": ["vip", "repeat"]}  # fmt: skip
    assert response.request.post_data_json == {"payload": sent}
    await expect(studio.tid("task-message")).to_contain_text("Task completed")
    await expect(studio.tid("task-response")).to_be_visible()

    async def succeeded() -> bool:
        run = await read_json(api, tenant, f"/api/workflow-runs/{run_id}")
        return bool(run["status"] == "SUCCEEDED")

    await poll(succeeded, "the run to resume and succeed")
    await studio.tid("task-done-run").click()
    await expect(studio.tid("run-status")).to_have_text("SUCCEEDED")
    await screenshot(studio, screens, "run-after-task")


async def test_a_workflow_paused_in_the_studio_refuses_a_launch(
    studio: Studio, api: Any, tenant: Any, pool: asyncpg.Pool, screens: Path
) -> None:
    ref = "payload.StudioLaunch.v1"
    schema = {"type": "object", "required": ["orderId", "total"],
              "properties": {"orderId": {"type": "string"}, "total": {"type": "number"},
                             "express": {"type": "boolean"}}}  # fmt: skip
    await api.put(f"/api/workflow/schemas/{ref}", json=schema, headers=tenant.headers())
    definition = {
        "name": "studio-launch",
        "payloadSchemaRef": ref,
        "steps": [
            {"id": "check", "type": "control.if", "condition": True,
             "then": [{"id": "hold", "type": "time.wait",
                       "config": {"mode": "duration", "durationMs": 3_600_000}}],
             "else": [{"id": "skip", "type": "state.set", "config": {"state": "skipped"}}]},
        ],
    }  # fmt: skip
    resp = await api.post(
        "/api/workflow-definitions", json={"definition": definition, "key": "launcher"},
        headers=tenant.headers(),
    )  # fmt: skip
    workflow_id = (await resp.json())["workflowId"]
    await api.post(
        f"/api/workflow-definitions/{workflow_id}/publish", json={}, headers=tenant.headers()
    )
    await insert_run(pool, tenant, workflow_id, status="FAILED", ran_for_s=1)
    await insert_run(pool, tenant, workflow_id, status="SUCCEEDED", ran_for_s=1)

    await studio.open("#/runs")
    await studio.tid("nav-workflows").click()
    row = studio.page.locator(f'[data-testid="workflow-row"][data-workflow-id="{workflow_id}"]')
    await expect(row).to_contain_text("launcher")
    await expect(row.get_by_test_id("workflow-row-failure-rate")).to_have_text("50 %")
    await screenshot(studio, screens, "workflows-list")
    await row.get_by_test_id("workflow-link").click()
    await expect(studio.tid("workflow-title")).to_have_text("studio-launch")
    outline = studio.tid("outline-step")
    await expect(outline).to_have_count(3)
    await expect(outline.nth(0)).to_contain_text("check control.if")
    await expect(studio.tid("outline")).to_contain_text("hold time.wait")

    await studio.tid("workflow-pause").click()
    await expect(studio.tid("workflow-paused")).to_be_visible()
    await expect(studio.tid("workflow-message")).to_have_text("Paused: new launches are refused.")
    assert await pool.fetchval(
        "SELECT is_paused FROM workflow_definitions WHERE workflow_id = $1", uuid.UUID(workflow_id)
    )
    await assert_no_legacy_controls(studio)
    before = await run_count(pool, tenant)
    page = studio.page
    form = studio.tid("launch-form")
    await form.get_by_label("orderId").fill("o-9")
    await form.get_by_label("total").fill("12")
    await form.get_by_label("express").check()
    async with page.expect_response(lambda r: r.url.endswith("/api/workflow-runs")) as answer:
        await studio.tid("launch-submit").click()
    assert (await answer.value).status == 409
    await expect(studio.tid("launch-error")).to_contain_text("WORKFLOW_PAUSED")
    assert await run_count(pool, tenant) == before
    await screenshot(studio, screens, "workflow-paused")

    await studio.tid("workflow-unpause").click()
    await expect(studio.tid("workflow-paused")).to_be_hidden()
    await form.get_by_label("total").fill("")
    await studio.tid("launch-submit").click()  # a required field left empty: nothing is sent
    await expect(page.locator('.field-error[data-path="/total"]')).to_have_text("required")
    await form.get_by_label("total").fill("12")
    await studio.tid("launch-submit").click()
    await expect(studio.tid("run-status")).to_have_text("RUNNING")
    run_id = studio.page.url.rsplit("/", 1)[1]
    assert (await run_row(pool, run_id))["input_json"] == {
        "orderId": "o-9", "total": 12, "express": True,
    }  # fmt: skip
    key_name = await pool.fetchval(
        "SELECT name FROM api_keys WHERE tenant = $1 AND role = 'admin'", tenant.id
    )
    await expect(studio.tid("fact-trigger")).to_have_text(
        f"API launch with the key “{key_name}” (admin)"
    )


async def test_events_show_their_outcome_and_dead_letters_appear(
    studio: Studio,
    api: Any,
    tenant: Any,
    pool: asyncpg.Pool,
    router: Any,
    nats_url: str,
    screens: Path,
) -> None:
    triggered = await published(
        api, tenant, {**HOLD, "name": "studio-on-order",
                      "trigger": {"type": "event", "eventName": "studio.order"}},
    )  # fmt: skip
    resp = await api.post(
        "/api/workflow/events?wait=10",
        json={"eventName": "studio.order", "correlationKey": "o-1",
              "payload": {"n": 1, "password": "pw-9"}},
        headers=tenant.headers(),
    )  # fmt: skip
    started = await resp.json()
    assert resp.status == 200 and len(started["startedRuns"]) == 1, started
    resp = await api.post(
        "/api/workflow/events?wait=10", json={"eventName": "studio.nobody"},
        headers=tenant.headers(),
    )  # fmt: skip
    assert (await resp.json())["status"] == "no_wait"
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().publish(f"workflow.events.{tenant.id}.studio.bad", b"{not json")
    finally:
        await nc.close()

    await studio.open("#/events")
    rows = studio.tid("event-row")
    await expect(rows).to_have_count(2)
    await expect(rows.filter(has_text="studio.order")).to_contain_text("started 1 run")
    await expect(rows.filter(has_text="studio.nobody")).to_contain_text("matched nothing")

    async def dead_lettered() -> bool:
        answer = await read_json(api, tenant, "/api/workflow/events/dead-letters")
        return bool(answer["deadLetters"])

    await studio.tid("events-status").select_option("unmatched")
    await studio.tid("events-apply").click()
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("studio.nobody")
    assert "status=unmatched" in studio.page.url
    await studio.tid("events-status").select_option("")
    await studio.tid("events-apply").click()
    await expect(rows).to_have_count(2)

    await poll(dead_lettered, "the router to dead-letter the message")
    await studio.page.reload()
    dlq = studio.tid("dlq-row")
    await expect(dlq).to_have_count(1)
    await expect(dlq).to_have_attribute("data-reason", "INVALID_JSON")
    await expect(dlq).to_contain_text(f"workflow.events.{tenant.id}.studio.bad")
    await expect(dlq).to_contain_text("not JSON (not shown)")
    await screenshot(studio, screens, "events")

    await rows.filter(has_text="studio.order").get_by_test_id("event-link").click()
    await expect(studio.tid("event-outcome")).to_have_text("studio.order: started 1 run.")
    payload = json.loads(await studio.tid("event-payload").text_content())
    assert payload == {"n": 1, "password": "[REDACTED]"}
    await screenshot(studio, screens, "event")
    [run_id] = started["startedRuns"]
    await studio.open_run(run_id)
    await expect(studio.tid("fact-trigger")).to_contain_text("event studio.order · event ")
    await expect(studio.tid("trigger-event")).to_have_text(f"event {started['eventId']}")
    assert triggered


async def test_a_draft_workflow_shows_its_validation_issues_and_no_launch_form(
    studio: Studio, api: Any, tenant: Any, screens: Path
) -> None:
    draft = {
        "name": "studio-draft",
        "steps": [
            {"id": "a", "type": "state.set", "config": {"state": "one"}},
            {"id": "a", "type": "state.set", "config": {"state": "two"}},
        ],
    }
    resp = await api.post(
        "/api/workflow-definitions", json={"definition": draft}, headers=tenant.headers()
    )
    created = await resp.json()
    assert resp.status == 201 and created["validation"]["status"] == "error", created
    await studio.open(f"#/workflows/{created['workflowId']}")
    await expect(studio.tid("workflow-title")).to_have_text("studio-draft")
    await expect(studio.tid("outline-source")).to_have_text(
        "The steps of the draft (not published)."
    )
    await expect(studio.tid("outline-step")).to_have_count(2)
    issues = studio.tid("validation-issue")
    await expect(issues).to_have_count(
        len(created["validation"]["errors"]) + len(created["validation"]["warnings"])
    )
    await expect(issues.first).to_contain_text(created["validation"]["errors"][0]["code"])
    await expect(studio.tid("launch-form")).to_be_hidden()
    await screenshot(studio, screens, "workflow-draft")

    await studio.open(f"#/workflows/{uuid.uuid4()}")
    await expect(studio.tid("workflow-load-error")).to_contain_text("Workflow not found")
    await expect(studio.tid("workflow-pause")).to_be_hidden()
