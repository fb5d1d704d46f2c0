"""Adopting a database of the reference runtime, end to end.

One reference database for the module (`reference_db.build_reference_database`: the reference's
final schema with realistic rows and the host application's `tenants` table) is reported on with
`stepwise admin adopt --dry-run`, migrated twice with the real `migrate` entry point, then served by
the four services (`Stack`): historical rows read through the API and the CLI, a stranded run
finalized, a reference definition run to completion, an event resuming a new run, keys created
for tenants known only from the adopted data. A second reference database shows that a failing
adoption leaves the database exactly as it was. Only the tests on the running services are `e2e`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from stepwise_contract.platform import migrate as migrate_module
from stepwise_contract.platform.adoption import AdoptionError
from stepwise_contract.platform.db import create_pool
from stepwise_contract.platform.migrate import Migration, load_migrations, migrate
from stepwise_devkit.reference_db import (
    TRIGGER_EVENT,
    WAIT_EVENT,
    ReferenceRows,
    build_reference_database,
)
from stepwise_devkit.scratch_database import scratch_database
from stepwise_devkit.stack import Stack
from stepwise_devkit.stack_client import EventPublisher, StackApi, eventually

ADMIN_URL = os.environ.get(
    "STEPWISE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BIN = Path(sys.executable).parent
STRANDED_MESSAGE = "the DB execution engine was removed"
# every test reads or writes a scratch database on the test Postgres
pytestmark = pytest.mark.postgres

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_INSTALLED = Path(CHROMIUM).exists()


async def fingerprint(url: str) -> dict[str, Any]:
    """Every table's columns (with type, default, nullability) and a hash of its rows, every
    index and constraint, per schema: equal fingerprints = nothing changed."""
    conn = await asyncpg.connect(url)
    try:
        out: dict[str, Any] = {}
        for r in await conn.fetch(
            "SELECT table_schema, table_name, column_name, data_type, column_default, is_nullable"
            " FROM information_schema.columns"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            " ORDER BY 1, 2, ordinal_position"
        ):
            out.setdefault(f"{r[0]}.{r[1]}", []).append(tuple(r[2:]))
        for table in [t for t in out if not t.startswith("index:")]:
            schema, name = table.split(".")
            out[f"rows:{table}"] = await conn.fetchval(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                f' FROM "{schema}"."{name}" t'
            )
        out["indexes"] = sorted(
            tuple(r)
            for r in await conn.fetch(
                "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes"
                " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            )
        )
        out["constraints"] = sorted(
            tuple(r)
            for r in await conn.fetch(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
                " FROM pg_constraint WHERE connamespace NOT IN"
                " ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)"
            )
        )
        return out
    finally:
        await conn.close()


def _fingerprint(url: str) -> dict[str, Any]:
    return asyncio.run(fingerprint(url))


def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """A `stepwise` command as a process (sync: module fixtures run outside the event loop)."""

    async def go() -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "stepwise"), *args, env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    return asyncio.run(go())


def _migrate_process(url: str) -> tuple[int, str, str]:
    async def go() -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "python"), "-m", "stepwise_contract.platform.migrate", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    return asyncio.run(go())


@dataclass
class Adopted:
    url: str
    rows: ReferenceRows
    dry_run: dict[str, Any]
    dry_run_text: str
    dry_run_changed_nothing: bool
    first: tuple[int, str, str]
    second: tuple[int, str, str]
    second_changed_nothing: bool
    host_tables_before: dict[str, Any]
    host_tables_after: dict[str, Any]
    # run rows right after migrate, before any service ran
    runs: dict[str, dict[str, Any]]
    waits: dict[str, list[str]]


async def _one(conn: asyncpg.Connection, sql: str, *args: Any) -> asyncpg.Record:
    row = await conn.fetchrow(sql, *args)
    assert row is not None, (sql, args)
    return row


async def _state(url: str, rows: ReferenceRows) -> tuple[dict[str, Any], dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        runs = {
            name: dict(await _one(conn, "SELECT * FROM workflow_runs WHERE run_id = $1", rid))
            for name, rid in rows.runs.items()
        }
        waits = {
            name: [
                r["status"]
                for r in await conn.fetch(
                    "SELECT status FROM workflow_run_waits WHERE run_id = $1", rid
                )
            ]
            for name, rid in rows.runs.items()
        }
        return runs, waits
    finally:
        await conn.close()


HOST_TABLES = ("tenants", "api_keys", "workflow_tasks")


def _host_tables(fp: dict[str, Any]) -> dict[str, Any]:
    """The host's tables (columns, rows) and their indexes and constraints."""
    names = {f"public.{t}" for t in HOST_TABLES}
    return {
        "tables": {k: v for k, v in fp.items() if k.removeprefix("rows:") in names},
        "indexes": [i for i in fp["indexes"] if i[0] == "public" and i[1] in HOST_TABLES],
        "constraints": [c for c in fp["constraints"] if c[0] in HOST_TABLES],
    }


@pytest.fixture(scope="module")
def adopted() -> Iterator[Adopted]:
    with scratch_database(ADMIN_URL, "stepwise_adopt") as url:
        rows = asyncio.run(build_reference_database(url))
        env = {"DATABASE_URL": url}
        before = _fingerprint(url)
        code, out, err = _cli("admin", "adopt", "--dry-run", "--json", env=env)
        assert code == 0, err
        _, text, _ = _cli("admin", "adopt", "--dry-run", env=env)
        after_dry = _fingerprint(url)
        first = _migrate_process(url)
        adopted_fp = _fingerprint(url)
        second = _migrate_process(url)
        runs, waits = asyncio.run(_state(url, rows))
        yield Adopted(
            url=url,
            rows=rows,
            dry_run=json.loads(out),
            dry_run_text=text,
            dry_run_changed_nothing=after_dry == before,
            first=first,
            second=second,
            second_changed_nothing=_fingerprint(url) == adopted_fp,
            host_tables_before=_host_tables(before),
            host_tables_after=_host_tables(adopted_fp),
            runs=runs,
            waits=waits,
        )


# --- the migration --------------------------------------------------------------------------


def test_dry_run_reports_the_changes_and_changes_nothing(adopted: Adopted) -> None:
    assert adopted.dry_run_changed_nothing
    report = adopted.dry_run
    assert report["adoptable"] and report["host_tables_kept"] == list(HOST_TABLES)
    assert report["migrations"] == [m.version for m in load_migrations()]
    created = report["tables_created"]
    assert {"stepwise.tenants", "stepwise.api_keys", "stepwise.workflow_tasks"} <= set(created)
    assert {"public.tenant_secrets", "public.workflow_recent_events"} <= set(created)
    assert not {"public.tenants", "public.api_keys", "public.workflow_tasks"} & set(created)
    added = report["columns_added"]
    assert "latest_published_version" in added["public.workflow_definitions"]
    assert "idempotency_hash" in added["public.workflow_runs"]
    assert "signaled_run_ids" in added["public.workflow_runtime_events"]
    assert "definition_hash" in added["public.workflow_definition_versions"]
    assert report["stranded_runs"] == {"NULL/RUNNING": 1, "db/RUNNING": 2, "db/WAITING": 1}
    assert report["stranded_waits"] == 3
    assert report["rows_without_tenant"] == {"workflow_runs": 1}
    assert report["tenants_registered"] == 3
    assert report["constraints_dropped"] == [
        "public.workflow_action_invocations.workflow_action_invocations_idempotency_unique",
        "public.workflow_data_store.workflow_data_store_tenant_fkey",
        "public.workflow_step_usage_periods.workflow_step_usage_periods_tenant_fkey",
    ]
    # nullability relaxed; no reference column changes type (the definitions stay jsonb)
    assert report["columns_changed"]["public.workflow_definitions"] == [
        "payload_schema_ref: text NOT NULL -> text",
    ]
    assert "public.workflow_definition_versions" not in report["columns_changed"]
    assert all(
        re.fullmatch(r"\w+: (\w+( \w+)*?)( NOT NULL)? -> \1", change)
        for changes in report["columns_changed"].values()
        for change in changes
    ), report["columns_changed"]
    text = adopted.dry_run_text
    assert "stranded runs to cancel (engine/status): NULL/RUNNING=1, db/RUNNING=2" in text
    assert re.search(r"public\.workflow_runs: [^\n]*idempotency_hash", text)


def test_migrate_adopts_once_and_twice_changes_nothing(adopted: Adopted) -> None:
    code, out, err = adopted.first
    assert code == 0, err
    assert "0001_schema" in out and "0002_stranded_runs" in out
    code, out, err = adopted.second
    assert code == 0, err
    assert "none (up to date)" in out
    assert adopted.second_changed_nothing


def test_host_tables_left_as_they_are(adopted: Adopted) -> None:
    before, after = adopted.host_tables_before, adopted.host_tables_after
    assert after == before
    assert len(after["tables"]) == 2 * len(HOST_TABLES)  # still there: same columns and rows
    assert len(after["indexes"]) >= len(HOST_TABLES)
    assert any("api_keys_tenant_fkey" in c[1] for c in after["constraints"])


async def test_reference_columns_kept_and_stepwise_tenants_registered(adopted: Adopted) -> None:
    conn = await asyncpg.connect(adopted.url)
    try:
        # reference columns the services never use are still there, with their values
        assert (
            await conn.fetchval(
                "SELECT runtime_semantics_version FROM workflow_runs WHERE run_id = $1",
                adopted.rows.runs["temporal_succeeded"],
            )
            == "2026-04-08.temporal-native.v1"
        )
        tenants = {
            r["tenant"]: r["name"] for r in await conn.fetch("SELECT * FROM stepwise.tenants")
        }
        assert tenants == {
            adopted.rows.tenant: "Acme Field Services",
            adopted.rows.host_only_tenant: "Globex",
            adopted.rows.orphan_tenant: str(adopted.rows.orphan_tenant),
        }
        # the published versions got the hash the API computes at publish
        hashes = await conn.fetch("SELECT definition_hash FROM workflow_definition_versions")
        assert len(hashes) == 5 and all(len(h["definition_hash"]) == 64 for h in hashes)
        assert await conn.fetchval("SELECT to_regnamespace('stepwise_adopting')") is None
    finally:
        await conn.close()


async def test_definition_columns_keep_their_reference_type(adopted: Adopted) -> None:
    conn = await asyncpg.connect(adopted.url)
    try:
        types = {
            (r["table_name"], r["column_name"]): r["data_type"]
            for r in await conn.fetch(
                "SELECT table_name, column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = 'public' AND column_name = ANY($1::text[])",
                ["draft_definition", "definition_json"],
            )
        }
    finally:
        await conn.close()
    assert types == {
        ("workflow_definitions", "draft_definition"): "jsonb",
        ("workflow_definition_versions", "definition_json"): "jsonb",
    }


def test_stranded_runs_canceled_with_the_migration_error(adopted: Adopted) -> None:
    for name in (*adopted.rows.stranded, "stranded_no_tenant"):
        run = adopted.runs[name]
        assert run["status"] == "CANCELED", name
        assert run["completed_at"] is not None
        error = run["error_json"]
        assert error["migration"] == "0002_stranded_runs" and error["stage"] == "migration"
        assert STRANDED_MESSAGE in error["message"]
        assert "WAITING" not in adopted.waits[name]
    assert adopted.waits["stranded_db_running"] == ["CANCELED"]
    # terminal rows and temporal-engine rows untouched
    assert adopted.runs["temporal_running"]["status"] == "RUNNING"
    assert adopted.waits["temporal_running"] == ["WAITING"]
    assert adopted.runs["db_failed"]["status"] == "FAILED"
    assert adopted.runs["null_canceled"]["error_json"] is None


# --- a failing adoption ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_reference() -> Iterator[tuple[str, ReferenceRows]]:
    with scratch_database(ADMIN_URL, "stepwise_adopt_fail") as url:
        yield url, asyncio.run(build_reference_database(url))


async def test_failed_adoption_leaves_the_database_as_it_was(
    second_reference: tuple[str, ReferenceRows], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = second_reference
    before = await fingerprint(url)
    failing = [*load_migrations(), Migration(version="9999_fails", sql="SELECT 1 / 0")]
    monkeypatch.setattr(migrate_module, "load_migrations", lambda: failing)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(url)
    assert await fingerprint(url) == before


async def test_rows_violating_a_new_key_are_named_and_nothing_changes(
    second_reference: tuple[str, ReferenceRows],
) -> None:
    url, rows = second_reference
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "INSERT INTO workflow_step_usage_periods (tenant, period_start, period_end,"
            " period_source, used_count, limit_source, tier)"
            " SELECT tenant, period_start, period_end + interval '1 day', period_source, 1,"
            " limit_source, tier FROM workflow_step_usage_periods WHERE tenant = $1",
            rows.tenant,
        )
    finally:
        await conn.close()
    before = await fingerprint(url)
    with pytest.raises(AdoptionError, match=f"tenant {rows.tenant} from"):
        await migrate(url)
    code, _, err = await asyncio.to_thread(_migrate_process, url)
    assert code == 1 and "nothing changed" in err and str(rows.tenant) in err
    code, _, err = await asyncio.to_thread(
        _cli, "admin", "adopt", "--dry-run", env={"DATABASE_URL": url}
    )
    assert code == 1 and "workflow_step_usage_periods" in err
    assert await fingerprint(url) == before


async def test_adopt_command_refuses_a_taken_schema_then_adopts(
    second_reference: tuple[str, ReferenceRows],
) -> None:
    url, rows = second_reference
    env = {"DATABASE_URL": url}
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "DELETE FROM workflow_step_usage_periods WHERE tenant = $1 AND used_count = 1",
            rows.tenant,
        )
        await conn.execute("CREATE SCHEMA stepwise")
        before = await fingerprint(url)
        code, _, err = await asyncio.to_thread(_cli, "admin", "adopt", env=env)
        assert code == 1 and "a schema named 'stepwise' already exists" in err
        assert await fingerprint(url) == before
        await conn.execute("DROP SCHEMA stepwise")
    finally:
        await conn.close()
    code, out, err = await asyncio.to_thread(_cli, "admin", "adopt", "--json", env=env)
    assert code == 0, err
    assert json.loads(out) == {
        "adopted": True,
        "applied": [m.version for m in load_migrations()],
    }
    code, out, err = await asyncio.to_thread(_cli, "admin", "adopt", "--dry-run", env=env)
    assert code == 0 and out.strip() == "nothing to adopt: already a Stepwise database"


def test_reference_database_without_host_tables() -> None:
    """No host `tenants` (a reference database on its own): Stepwise's tables go to `public`,
    no `stepwise` schema is made, and the tenants known from the rows are registered."""
    with scratch_database(ADMIN_URL, "stepwise_adopt_bare") as url:
        rows = asyncio.run(build_reference_database(url))

        async def go() -> None:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("DROP TABLE tenants, api_keys, workflow_tasks CASCADE")
                assert await migrate(url)
                assert await conn.fetchval("SELECT to_regnamespace('stepwise')") is None
                tenants = {r["tenant"] for r in await conn.fetch("SELECT * FROM public.tenants")}
                assert tenants == {rows.tenant, rows.orphan_tenant}
                assert await migrate(url) == []
            finally:
                await conn.close()

        asyncio.run(go())


# --- the services on the adopted database ----------------------------------------------------


@pytest.fixture(scope="module")
def stack(adopted: Adopted, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("adopted")
    system = Stack(
        home,
        database_url=adopted.url,
        extra_env={"STEPWISE_LOG_FORMAT": "json"},
        tenant_name="operators",
    )
    system.start()
    try:
        yield system
    finally:
        system.stop()


@dataclass(frozen=True)
class Keys:
    main: str  # admin key of the adopted main tenant
    orphan: str  # read key of the tenant known only from its rows
    host_only: str  # read key of the tenant known only from the host's tenants table


def _key(url: str, tenant: uuid.UUID, role: str) -> str:
    code, out, err = _cli(
        "admin", "key", "create", "--tenant", str(tenant), "--role", role, "--json",
        env={"DATABASE_URL": url},
    )  # fmt: skip
    assert code == 0, err
    key: str = json.loads(out)["apiKey"]
    return key


@pytest.fixture(scope="module")
def keys(adopted: Adopted, stack: Stack) -> Keys:
    rows = adopted.rows
    return Keys(
        main=_key(adopted.url, rows.tenant, "admin"),
        orphan=_key(adopted.url, rows.orphan_tenant, "read"),
        host_only=_key(adopted.url, rows.host_only_tenant, "read"),
    )


@pytest.fixture
async def api(stack: Stack, keys: Keys) -> AsyncIterator[StackApi]:
    async with aiohttp.ClientSession(
        base_url=stack.api_url,
        headers={"Authorization": f"Bearer {keys.main}"},
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:
        yield StackApi(session)


@pytest.mark.e2e
async def test_historical_runs_readable_through_the_api(adopted: Adopted, api: StackApi) -> None:
    rows = adopted.rows
    listed = await api.call("GET", "/api/workflow-runs?limit=100")
    ids = {r["run_id"] for r in listed["runs"]}
    elsewhere = ("orphan_succeeded", "stranded_no_tenant")
    assert {str(rid) for name, rid in rows.runs.items() if name not in elsewhere} <= ids
    assert str(rows.runs["orphan_succeeded"]) not in ids  # another tenant's
    assert str(rows.runs["stranded_no_tenant"]) not in ids  # no tenant: no API reaches it

    db_run = await api.run(str(rows.runs["db_succeeded"]))
    assert db_run["engine"] == "db" and db_run["status"] == "SUCCEEDED"
    projections = await api.steps(str(rows.runs["db_succeeded"]))
    assert [s["status"] for s in projections["steps"]] == ["SUCCEEDED", "RETRY_SCHEDULED"]
    [snapshot] = projections["snapshots"]  # pre-cutover history
    assert snapshot["envelope_json"]["vars"] == {"total": 7}

    ok = await api.steps(str(rows.runs["temporal_succeeded"]))
    [invocation] = ok["invocations"]
    assert invocation["action_id"] == "core.echo" and invocation["output_json"] == {"value": 7}
    assert [w["status"] for w in ok["waits"]] == ["RESOLVED"]
    logs = await api.call("GET", f"/api/workflow-runs/{rows.runs['db_failed']}/logs")
    assert {entry["message"] for entry in logs["logs"]} >= {"Run started", "Viewed in Run Studio"}
    summary = await api.call("GET", f"/api/workflow-runs/{rows.runs['temporal_failed']}/summary")
    assert summary["status"] == "FAILED"
    timeline = await api.call("GET", f"/api/workflow-runs/{rows.runs['db_succeeded']}/timeline")
    assert timeline

    stranded = await api.run(str(rows.runs["stranded_db_waiting"]))
    assert stranded["status"] == "CANCELED"
    assert stranded["error_json"]["migration"] == "0002_stranded_runs"
    waits = (await api.steps(str(rows.runs["stranded_db_running"])))["waits"]
    assert [w["status"] for w in waits] == ["CANCELED"]


@pytest.mark.e2e
async def test_historical_definitions_and_events_readable(adopted: Adopted, api: StackApi) -> None:
    rows = adopted.rows
    definition = await api.call("GET", f"/api/workflow-definitions/{rows.sum_workflow}")
    assert json.dumps(definition)
    listed = await api.call("GET", "/api/workflow-definitions")
    by_id = {d["workflow_id"]: d for d in listed["definitions"]}
    assert by_id[str(rows.sum_workflow)]["latest_published_version"] == 2
    assert by_id[str(rows.draft_workflow)]["status"] == "draft"
    matched = await api.event(str(rows.events["matched"]))
    assert matched is not None and matched["status"] == "matched"
    assert matched["matched_run_id"] == str(rows.runs["temporal_succeeded"])
    errored = await api.event(str(rows.events["error"]))
    assert errored is not None and errored["status"] == "error"
    events = await api.call("GET", f"/api/workflow/events?eventName={WAIT_EVENT}")
    assert {e["event_id"] for e in events["events"]} >= {str(e) for e in rows.events.values()}


@pytest.mark.e2e
async def test_drafts_saved_and_loaded_in_the_reference_jsonb_columns(
    adopted: Adopted, api: StackApi
) -> None:
    base = f"/api/workflow-definitions/{adopted.rows.draft_workflow}"
    reference = await api.call("GET", base)
    assert [s["id"] for s in reference["draft_definition"]["steps"]] == ["sum", "big"]
    # `vars.total` reads `vars.a`; jsonb keeps `vars.a` first whichever way it is written
    assign = {"vars.total": {"$expr": "vars.a + 1"}, "vars.a": {"$expr": "payload.a"}}
    draft = {
        "name": "Reference draft, edited",
        "steps": [
            {"id": "sum", "type": "transform.assign", "config": {"assign": assign}},
            {
                "id": "echo",
                "type": "action.call",
                "config": {
                    "actionId": "core.echo",
                    "version": 1,
                    "inputMapping": {"value": {"$expr": "vars.total"}},
                },
            },
        ],
    }
    replaced = await api.call("PUT", base, {"definition": draft})
    assert replaced["validation"]["status"] == "warning"
    [warning] = replaced["validation"]["warnings"]
    assert warning["code"] == "ASSIGN_ORDER_NOT_KEPT" and warning["stepId"] == "sum"
    assert "vars.a, vars.total" in warning["message"]
    loaded = await api.call("GET", base)
    assert loaded["draft_definition"] == {**draft, "id": str(adopted.rows.draft_workflow)}
    assert loaded["draft_version"] == reference["draft_version"] + 1
    assert loaded["validation_warnings"] == [warning]
    published = await api.call("POST", f"{base}/publish", {})
    version = await api.call("GET", f"{base}/versions/{published['version']}")
    assert version["definition_json"]["steps"] == draft["steps"]
    run_id = await api.launch(str(adopted.rows.draft_workflow), {"a": 4})
    run = await api.wait_run(run_id, timeout_s=60)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    assert run["workflow_version"] == published["version"]
    [invocation] = (await api.steps(run_id))["invocations"]
    assert invocation["output_json"] == {"value": 5}  # ran in the order the warning named


@pytest.mark.e2e
async def test_keys_for_tenants_known_only_from_adopted_data(
    adopted: Adopted, stack: Stack, keys: Keys
) -> None:
    rows = adopted.rows
    async with aiohttp.ClientSession(base_url=stack.api_url) as session:
        orphan = StackApi(session)
        headers = {"Authorization": f"Bearer {keys.orphan}"}
        status, run = await orphan.request(
            "GET", f"/api/workflow-runs/{rows.runs['orphan_succeeded']}", headers=headers
        )
        assert status == 200 and run["status"] == "SUCCEEDED"
        status, _ = await orphan.request(
            "GET", f"/api/workflow-runs/{rows.runs['db_succeeded']}", headers=headers
        )
        assert status == 404  # the main tenant's run stays the main tenant's
        status, page = await orphan.request(
            "GET", "/api/workflow-runs", headers={"Authorization": f"Bearer {keys.host_only}"}
        )
        assert status == 200 and page["runs"] == []


@pytest.mark.e2e
def test_historical_runs_readable_through_the_cli(
    adopted: Adopted, stack: Stack, keys: Keys
) -> None:
    env = {"STEPWISE_API_URL": stack.api_url, "STEPWISE_API_KEY": keys.main}
    run_id = str(adopted.rows.runs["stranded_db_running"])
    code, out, err = _cli("runs", "show", run_id, "--json", env=env)
    assert code == 0, err
    shown = json.loads(out)
    assert json.dumps(shown).count("0002_stranded_runs") >= 1
    code, out, err = _cli("runs", "list", "--status", "CANCELED", env=env)
    assert code == 0, err
    assert run_id[:8] in out


@pytest.mark.e2e
async def test_reference_definition_launched_and_run_to_completion(
    adopted: Adopted, api: StackApi
) -> None:
    run_id = await api.launch(str(adopted.rows.sum_workflow), {"a": 3, "b": 9})
    run = await api.wait_run(run_id, timeout_s=60)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    assert run["workflow_version"] == 2 and run["engine"] == "temporal"
    steps = await api.steps(run_id)
    assert [s["definition_step_id"] for s in steps["steps"]] == ["sum", "big", "mark-big"]
    pool = await create_pool(adopted.url, max_size=1)
    try:
        # the adopted usage period of the month keeps counting
        used = await pool.fetchval(
            "SELECT used_count FROM workflow_step_usage_periods WHERE tenant = $1"
            " AND period_end > now()",
            adopted.rows.tenant,
        )
        assert used >= 12 + 3
    finally:
        await pool.close()


async def _routed(api: StackApi, event_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        event = await api.event(event_id)
        return event if event is not None and event["status"] != "pending" else None

    return await eventually(probe, f"event {event_id} routed", 60)


def _store(step_id: str, action: str, save_as: str, **config: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "action.call",
        "config": {
            "actionId": action,
            "version": 1,
            "inputMapping": {"namespace": "orders", **config},
            "saveAs": save_as,
        },
    }


@pytest.mark.e2e
async def test_adopted_data_store_read_and_written_by_a_new_run(
    adopted: Adopted, api: StackApi
) -> None:
    workflow_id = await api.publish_definition(
        {
            "name": "adopted-store",
            "steps": [
                _store("read", "store.get", "vars.old", key="last"),
                _store("write", "store.set", "vars.set", key="last", value={"id": 8}),
                _store("again", "store.get", "vars.new", key="last"),
                _store("fresh", "store.set", "vars.fresh", key="new", value=None),
            ],
        }
    )
    run_id = await api.launch(workflow_id)
    run = await api.wait_run(run_id, timeout_s=60)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    outputs = [i["output_json"] for i in (await api.steps(run_id))["invocations"]]
    assert outputs[0]["found"] and outputs[0]["value"] == {"id": 7}
    assert outputs[0]["revision"] == 3
    assert outputs[1] == {"revision": 4, "created": False}
    assert outputs[2]["value"] == {"id": 8}
    assert outputs[3]["created"] is True


@pytest.mark.e2e
async def test_human_task_uses_stepwise_tasks_not_the_hosts(
    adopted: Adopted, api: StackApi
) -> None:
    workflow_id = await api.publish_definition(
        {
            "name": "adopted-approval",
            "steps": [
                {
                    "id": "approve",
                    "type": "human.task",
                    "config": {"taskType": "approval", "title": "Approve the refund"},
                }
            ],
        }
    )
    run_id = await api.launch(workflow_id)

    async def pending() -> dict[str, Any] | None:
        page = await api.call("GET", f"/api/workflow/tasks?runId={run_id}&status=PENDING")
        return page["tasks"][0] if page["tasks"] else None

    task = await eventually(pending, f"a task of run {run_id}", 60)
    assert task["title"] == "Approve the refund"
    await api.call(
        "POST", f"/api/workflow/tasks/{task['task_id']}/complete", {"payload": {"ok": True}}
    )
    run = await api.wait_run(run_id, timeout_s=60)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    conn = await asyncpg.connect(adopted.url)
    try:
        # the host's table still holds only its own task
        assert await conn.fetchval("SELECT count(*) FROM public.workflow_tasks") == 1
        assert await conn.fetchval("SELECT count(*) FROM stepwise.workflow_tasks") >= 1
    finally:
        await conn.close()


@pytest.mark.e2e
async def test_stranded_run_replayed_on_stepwise(adopted: Adopted, api: StackApi) -> None:
    stranded = adopted.rows.runs["stranded_db_running"]
    replayed = await api.call(
        "POST", f"/api/workflow-runs/{stranded}/replay", {"reason": "after adoption"}
    )
    run = await api.wait_run(str(replayed["runId"]), timeout_s=60)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    assert run["engine"] == "temporal" and run["workflow_version"] == 1
    assert run["input_json"]["a"] == 3
    assert (await api.run(str(stranded)))["status"] == "CANCELED"


@pytest.mark.e2e
async def test_reference_trigger_starts_a_run(
    adopted: Adopted, api: StackApi, stack: Stack
) -> None:
    publisher = await EventPublisher.connect(stack.nats_url, str(adopted.rows.tenant))
    try:
        event_id = await publisher.publish(TRIGGER_EVENT, {"ticket": {"id": "T-7"}})
    finally:
        await publisher.close()
    event = await _routed(api, event_id)
    [run_id] = event["started_run_ids"]
    run = await api.wait_run(run_id, timeout_s=60)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    assert run["workflow_id"] == str(adopted.rows.trigger_workflow)
    assert run["input_json"] == {"ticketId": "T-7"}


@pytest.mark.e2e
async def test_event_resumes_a_new_run(adopted: Adopted, api: StackApi, stack: Stack) -> None:
    order = uuid.uuid4().hex
    run_id = await api.launch(str(adopted.rows.wait_workflow), {"orderId": order})
    wait = await api.wait_waiting(run_id, timeout_s=60)
    assert wait["event_name"] == WAIT_EVENT and wait["key"] == order
    publisher = await EventPublisher.connect(stack.nats_url, str(adopted.rows.tenant))
    try:
        event_id = await publisher.publish(WAIT_EVENT, {"amount": 42}, key=order)
    finally:
        await publisher.close()
    run = await api.wait_run(run_id, timeout_s=60)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    event = await _routed(api, event_id)
    assert event["status"] == "matched" and event["matched_run_id"] == run_id


@pytest.mark.e2e
@pytest.mark.browser
async def test_historical_runs_readable_in_run_studio(
    adopted: Adopted, stack: Stack, keys: Keys
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    if not CHROMIUM_INSTALLED:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    expect = playwright_api.expect
    rows = adopted.rows
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            context = await browser.new_context()
            await context.add_init_script(
                f"sessionStorage.setItem('stepwise.studio.apiKey', {json.dumps(keys.main)});"
            )
            page = await context.new_page()
            page.set_default_timeout(20_000)

            async def open_run(run_id: uuid.UUID) -> None:
                await page.goto(f"{stack.api_url}/studio/#/runs/{run_id}")
                await expect(page.get_by_test_id("run-id")).to_have_text(str(run_id))

            await open_run(rows.runs["db_succeeded"])
            await expect(page.get_by_test_id("run-status")).to_have_text("SUCCEEDED")
            await expect(page.get_by_test_id("fact-engine")).to_contain_text("db")
            await expect(page.get_by_test_id("snapshot")).to_have_count(1)
            await open_run(rows.runs["stranded_db_waiting"])
            await expect(page.get_by_test_id("run-status")).to_have_text("CANCELED")
            await expect(page.locator("#run-error-json")).to_contain_text("0002_stranded_runs")
        finally:
            await browser.close()
