"""Run Studio in a real headless Chromium (Debian's, driven by Playwright) against the real API
app in-process, with runs created through the API (real Temporal starts) or inserted with SQL.

What the page sends is read from the requests the browser really made; only the API's own answers
are used (a replay failure is a run whose workflow the API really refuses to start)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import pytest
from stepwise_contract.enums import Role

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
        accept_downloads=True, viewport={"width": 1400, "height": 1100}
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


async def test_sign_in_keeps_the_key_for_the_tab_and_sign_out_forgets_it(browser, api, tenant):
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


async def test_a_revoked_key_sends_the_operator_back_to_sign_in(studio, tenant, pool):
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


async def test_runs_list_filters_pages_and_refreshes_live(studio, api, tenant, pool):
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


async def test_run_details_show_steps_waits_invocations_logs_and_links(studio, api, tenant, pool):
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


async def test_queued_banner_only_for_a_stale_run_without_steps(studio, api, tenant, pool):
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
    studio, api, tenant, pool, failing_tasks, sweeper
):
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
    studio, api, tenant, pool
):
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


async def test_no_legacy_controls_on_failed_waiting_or_running_runs(studio, api, tenant, pool):
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


async def test_quota_resume_resumes_a_paused_run(studio, api, tenant, pool):
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


async def test_unedited_replay_sends_no_payload_and_lands_on_the_new_run(studio, api, tenant, pool):
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


async def test_edited_replay_sends_exactly_the_edit(studio, api, tenant, pool):
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


async def test_invalid_replay_input_is_refused_without_a_request(studio, api, tenant, pool):
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


async def test_refused_replay_keeps_the_operator_on_the_old_run(studio, api, tenant, pool):
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


async def test_cancel_asks_for_a_reason_and_cancels(studio, api, tenant, pool):
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


async def test_export_downloads_the_run_as_json(studio, api, tenant, pool):
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
