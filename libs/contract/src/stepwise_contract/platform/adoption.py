"""Adopting a database of the reference runtime (its final, non-Citus schema).

`migrate` calls `detect` before the numbered migrations. On a reference database (its tables are
there, Stepwise's first migration is not recorded) the adoption and every numbered migration run
in ONE transaction: a failure anywhere leaves the database as it was.

The host application's own tables whose names Stepwise also uses (`tenants` always; in practice
often `api_keys` or `workflow_tasks` too: `STEPWISE_TABLES`) are left as they are. Stepwise's
tables of those names live in the schema `stepwise`, which every Stepwise connection puts first on
its `search_path` (`SEARCH_PATH`), so an unqualified name means Stepwise's table to Stepwise and the
host's table to the host. While the numbered migrations run, the host's tables are parked in a
scratch schema and put back at the end (same tables, names and schema: only their location moved
for the duration of the transaction), so the migrations create Stepwise's tables exactly as on a
fresh database.

`plan` runs the same adoption in a transaction that is rolled back, and reports the difference.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources

import asyncpg
import msgspec

from stepwise_contract.hashing import definition_hash

# Every Stepwise connection's search path; the `stepwise` schema exists only on adopted databases
# (elsewhere Postgres skips it).
STEPWISE_SCHEMA = "stepwise"
SEARCH_PATH = f'{STEPWISE_SCHEMA}, "$user", public'
# Transaction-local setting that is 'on' while the numbered migrations run inside an adoption.
ADOPTING_SETTING = "stepwise.adopting"
# Holds the host's `tenants` table during the adoption transaction only.
_PARKING = "stepwise_adopting"

REFERENCE_TABLES = (
    "workflow_definitions",
    "workflow_definition_versions",
    "workflow_runs",
    "workflow_run_steps",
    "workflow_run_waits",
    "workflow_action_invocations",
    "workflow_run_snapshots",
    "workflow_runtime_events",
    "workflow_run_logs",
    "workflow_data_store",
    "workflow_step_usage_periods",
)
# Tables Stepwise creates that are not the reference runtime's; a host table of one of these names
# is kept apart (a test checks the list against a fresh Stepwise schema).
STEPWISE_TABLES = (
    "tenants",
    "api_keys",
    "tenant_secrets",
    "workflow_payload_schemas",
    "workflow_tasks",
    "workflow_recent_events",
    "workflow_launch_rate",
    "workflow_payload_blobs",
    "workflow_payload_claims",
)
# Tables whose rows name a tenant; each such tenant gets a Stepwise tenant row.
_TENANT_SOURCES = (
    "workflow_definitions",
    "workflow_runs",
    "workflow_runtime_events",
    "workflow_data_store",
    "workflow_step_usage_periods",
)
_STRANDED = "(r.engine IS NULL OR r.engine <> 'temporal') AND r.status IN ('RUNNING', 'WAITING')"


# The adoption as `migrate` runs it: prepare, the pending migrations, finish.
Run = Callable[[asyncpg.Connection, "Target"], Awaitable[None]]


def _ident(name: str) -> str:
    """A quoted SQL identifier (schema and constraint names come from the catalog)."""
    return '"' + name.replace('"', '""') + '"'


class AdoptionError(Exception):
    """The database cannot be adopted as it is; the message names the rows or objects at fault."""


@dataclass(frozen=True, slots=True)
class Target:
    """A reference database found by `detect`."""

    schema: str  # where the reference tables live
    host_tables: tuple[str, ...]  # the host's tables named like Stepwise's (`STEPWISE_TABLES`)

    @property
    def host_tenants(self) -> bool:
        return "tenants" in self.host_tables


@dataclass(slots=True)
class Report:
    """What adopting the database changes (`stepwise admin adopt --dry-run`)."""

    adoptable: bool
    reason: str = ""
    reference_tables: list[str] = field(default_factory=list)
    host_tables_kept: list[str] = field(default_factory=list)
    migrations: list[str] = field(default_factory=list)
    tables_created: list[str] = field(default_factory=list)
    columns_added: dict[str, list[str]] = field(default_factory=dict)
    # reference columns whose type or nullability changes, as "column: before -> after"
    columns_changed: dict[str, list[str]] = field(default_factory=dict)
    indexes_created: list[str] = field(default_factory=list)
    constraints_dropped: list[str] = field(default_factory=list)
    stranded_runs: dict[str, int] = field(default_factory=dict)
    stranded_waits: int = 0
    versions_hashed: int = 0
    tenants_registered: int = 0
    rows_without_tenant: dict[str, int] = field(default_factory=dict)


async def detect(conn: asyncpg.Connection, applied: set[str]) -> Target | None:
    """The reference database to adopt, or None (fresh or already Stepwise's)."""
    if applied:
        return None
    schema = await conn.fetchval(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = to_regclass('workflow_runs')"
    )
    if schema is None:
        return None
    host = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"
        " AND table_name = ANY($2::text[])",
        schema,
        list(STEPWISE_TABLES),
    )
    found = {r["table_name"] for r in host}
    return Target(schema=schema, host_tables=tuple(t for t in STEPWISE_TABLES if t in found))


async def _check(conn: asyncpg.Connection, target: Target) -> None:
    missing = [
        t
        for t in REFERENCE_TABLES
        if not await conn.fetchval(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
            target.schema,
            t,
        )
    ]
    if missing:
        raise AdoptionError(
            f"not the reference runtime's final schema: missing table(s) {', '.join(missing)};"
            " bring the reference database to its last migration first"
        )
    for schema in (STEPWISE_SCHEMA, _PARKING):
        if await conn.fetchval("SELECT to_regnamespace($1) IS NOT NULL", schema):
            raise AdoptionError(f"a schema named {schema!r} already exists")
    if target.host_tenants and not await conn.fetchval(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = $1"
        " AND table_name = 'tenants' AND column_name = 'tenant'",
        target.schema,
    ):
        raise AdoptionError("the host's tenants table has no column named tenant")
    clashes = await conn.fetch(
        "SELECT tenant, period_start, count(*) AS n FROM workflow_step_usage_periods"
        " GROUP BY tenant, period_start HAVING count(*) > 1 ORDER BY tenant, period_start LIMIT 20"
    )
    if clashes:
        listed = "; ".join(f"tenant {r['tenant']} from {r['period_start']}" for r in clashes)
        raise AdoptionError(
            "workflow_step_usage_periods has several periods starting at the same time for one"
            f" tenant (Stepwise counts one per start): {listed}. Merge or delete them first."
        )


async def prepare(conn: asyncpg.Connection, target: Target) -> None:
    """Before the numbered migrations: add what they and the services need, drop the reference's
    foreign keys onto the host's tables (Stepwise tenants need not exist in the host's), park the
    host's tables named like Stepwise's."""
    await _check(conn, target)
    # read by the numbered migrations that would retype a reference column on a fresh database
    await conn.execute(f"SELECT set_config('{ADOPTING_SETTING}', 'on', true)")
    sql = resources.files("stepwise_contract.platform") / "adopt_reference.sql"
    await conn.execute(sql.read_text(encoding="utf-8"))
    if not target.host_tables:
        return
    home = _ident(target.schema)
    hosts = [f"{home}.{_ident(t)}" for t in target.host_tables]
    for row in await conn.fetch(
        "SELECT c.conname, c.conrelid::regclass::text AS tbl FROM pg_constraint c"
        " WHERE c.contype = 'f' AND c.confrelid = ANY($1::regclass[])"
        " AND c.conrelid::regclass::text = ANY($2::text[])",
        hosts,
        list(REFERENCE_TABLES),
    ):
        await conn.execute(f"ALTER TABLE {row['tbl']} DROP CONSTRAINT {_ident(row['conname'])}")
    await conn.execute(f'CREATE SCHEMA "{_PARKING}"')
    for host in hosts:
        await conn.execute(f'ALTER TABLE {host} SET SCHEMA "{_PARKING}"')


async def finish(conn: asyncpg.Connection, target: Target) -> None:
    """After the numbered migrations: hash the published versions, register every tenant the
    adopted data knows, and move the tables into their final places."""
    rows = await conn.fetch(
        "SELECT version_id, definition_json::text AS body FROM workflow_definition_versions"
        " WHERE definition_hash IS NULL"
    )
    await conn.executemany(
        "UPDATE workflow_definition_versions SET definition_hash = $2 WHERE version_id = $1",
        [(r["version_id"], definition_hash(msgspec.json.decode(r["body"]))) for r in rows],
    )
    sources = " UNION ".join(
        f"SELECT tenant FROM {t} WHERE tenant IS NOT NULL" for t in _TENANT_SOURCES
    )
    await conn.execute(
        f"INSERT INTO tenants (tenant, name) SELECT tenant, tenant::text FROM ({sources}) s"
        " ON CONFLICT (tenant) DO NOTHING"
    )
    if target.host_tenants:
        await _name_tenants(conn)
    if not target.host_tables:
        return
    await conn.execute(f'CREATE SCHEMA "{STEPWISE_SCHEMA}"')
    home = _ident(target.schema)
    for table in map(_ident, target.host_tables):
        await conn.execute(f'ALTER TABLE {home}.{table} SET SCHEMA "{STEPWISE_SCHEMA}"')
        await conn.execute(f'ALTER TABLE "{_PARKING}".{table} SET SCHEMA {home}')
    await conn.execute(f'DROP SCHEMA "{_PARKING}"')


async def _name_tenants(conn: asyncpg.Connection) -> None:
    """Every tenant of the (parked) host table becomes a Stepwise tenant, named as the host
    names it."""
    host_columns = {
        r["column_name"]
        for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = $1"
            " AND table_name = 'tenants'",
            _PARKING,
        )
    }
    label = next((c for c in ("name", "company_name", "client_name") if c in host_columns), None)
    name = f"coalesce(nullif(h.{label}::text, ''), h.tenant::text)" if label else "h.tenant::text"
    await conn.execute(
        f'INSERT INTO tenants (tenant, name) SELECT h.tenant, {name} FROM "{_PARKING}".tenants h'
        " WHERE h.tenant IS NOT NULL ON CONFLICT (tenant) DO UPDATE SET name = EXCLUDED.name"
        " WHERE tenants.name = tenants.tenant::text"
    )


# --- dry run ----------------------------------------------------------------------------------


async def _columns(conn: asyncpg.Connection) -> dict[tuple[str, str, str], tuple[str, str]]:
    """(schema, table, column) → (type, nullable)."""
    return {
        (r["table_schema"], r["table_name"], r["column_name"]): (
            r["data_type"],
            r["is_nullable"],
        )
        for r in await conn.fetch(
            "SELECT table_schema, table_name, column_name, data_type, is_nullable"
            " FROM information_schema.columns"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
    }


async def _indexes(conn: asyncpg.Connection) -> set[tuple[str, str, str]]:
    return {
        (r["schemaname"], r["tablename"], r["indexname"])
        for r in await conn.fetch(
            "SELECT schemaname, tablename, indexname FROM pg_indexes"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
    }


def _shape(column: tuple[str, str]) -> str:
    kind, nullable = column
    return kind if nullable == "YES" else f"{kind} NOT NULL"


async def _constraints(conn: asyncpg.Connection) -> set[str]:
    return {
        r["name"]
        for r in await conn.fetch(
            "SELECT n.nspname || '.' || t.relname || '.' || c.conname AS name"
            " FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
            " JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
        )
    }


class _RolledBack(Exception):
    pass


async def plan(
    conn: asyncpg.Connection,
    applied: set[str],
    pending: list[str],
    run: Run,
) -> Report:
    """Adopt inside a transaction that is rolled back; report what changed. `run` is the adoption
    as `migrate` performs it (prepare, the pending migrations, finish)."""
    target = await detect(conn, applied)
    if target is None:
        reason = (
            "already a Stepwise database" if applied else "no reference tables (a fresh database)"
        )
        return Report(adoptable=False, reason=reason, migrations=pending)
    report = Report(adoptable=True, host_tables_kept=list(target.host_tables), migrations=pending)
    tables = await conn.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1"
        " AND table_name = ANY($2::text[]) ORDER BY table_name",
        target.schema,
        list(REFERENCE_TABLES),
    )
    report.reference_tables = [r["table_name"] for r in tables]
    try:
        async with conn.transaction():
            for r in await conn.fetch(
                f"SELECT coalesce(r.engine, 'NULL') AS engine, r.status, count(*) AS n"
                f" FROM workflow_runs r WHERE {_STRANDED} GROUP BY 1, 2 ORDER BY 1, 2"
            ):
                report.stranded_runs[f"{r['engine']}/{r['status']}"] = r["n"]
            report.stranded_waits = await conn.fetchval(
                "SELECT count(*) FROM workflow_run_waits w JOIN workflow_runs r"
                f" ON r.run_id = w.run_id WHERE w.status = 'WAITING' AND {_STRANDED}"
            )
            for table in report.reference_tables:
                n = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE tenant IS NULL")
                if n:
                    report.rows_without_tenant[table] = n
            before_columns, before_indexes = await _columns(conn), await _indexes(conn)
            before_constraints = await _constraints(conn)
            before_tables = {(s, t) for s, t, _ in before_columns}
            await _check(conn, target)
            report.versions_hashed = await conn.fetchval(
                "SELECT count(*) FROM workflow_definition_versions"
            )
            await run(conn, target)
            report.constraints_dropped = sorted(before_constraints - await _constraints(conn))
            after_columns = await _columns(conn)
            home = STEPWISE_SCHEMA if target.host_tenants else target.schema
            report.tenants_registered = await conn.fetchval(
                f"SELECT count(*) FROM {_ident(home)}.tenants"
            )
            created = {(s, t) for s, t, _ in after_columns} - before_tables
            report.tables_created = sorted(f"{s}.{t}" for s, t in created)
            for (s, t, c), now in sorted(after_columns.items()):
                was = before_columns.get((s, t, c))
                if was is None and (s, t) not in created:
                    report.columns_added.setdefault(f"{s}.{t}", []).append(c)
                elif was is not None and was != now:
                    change = f"{c}: {_shape(was)} -> {_shape(now)}"
                    report.columns_changed.setdefault(f"{s}.{t}", []).append(change)
            report.indexes_created = sorted(
                f"{s}.{i}" for s, t, i in await _indexes(conn) - before_indexes
                if (s, t) not in created
            )  # fmt: skip
            raise _RolledBack
    except _RolledBack:
        pass
    return report


def describe(report: Report) -> str:
    """The report as operators read it."""
    if not report.adoptable:
        return f"nothing to adopt: {report.reason}"
    lines = [
        f"reference tables: {', '.join(report.reference_tables)}",
        "host tables named like Stepwise's: "
        + (
            f"{', '.join(report.host_tables_kept)}; left as they are, Stepwise's go to schema"
            f" {STEPWISE_SCHEMA!r}"
            if report.host_tables_kept
            else "none"
        ),
        f"migrations applied in the same transaction: {', '.join(report.migrations)}",
        f"tables created: {', '.join(report.tables_created) or 'none'}",
        "columns added:",
        *(f"  {t}: {', '.join(cols)}" for t, cols in sorted(report.columns_added.items())),
        "reference columns changed (type or nullability; values kept):",
        *(f"  {t}: {', '.join(cols)}" for t, cols in sorted(report.columns_changed.items())),
        f"indexes created on reference tables: {', '.join(report.indexes_created) or 'none'}",
        f"constraints dropped: {', '.join(report.constraints_dropped) or 'none'}",
        "stranded runs to cancel (engine/status): "
        + (", ".join(f"{k}={v}" for k, v in report.stranded_runs.items()) or "none"),
        f"open waits of those runs to close: {report.stranded_waits}",
        f"published versions to hash: {report.versions_hashed}",
        f"Stepwise tenants registered: {report.tenants_registered}",
    ]
    if report.rows_without_tenant:
        lines.append(
            "rows without a tenant (kept, not visible through the API): "
            + ", ".join(f"{t}={n}" for t, n in report.rows_without_tenant.items())
        )
    return "\n".join(lines)
