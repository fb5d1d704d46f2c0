"""The checks behind `stepwise doctor`: every dependency, the schema, the task-queue pollers, runs
whose workflow task keeps failing, task-queue fairness.

Each check answers a `Check`: `ok`, `warn` (works, but look), `fail` (something is broken; the
command exits 1) or `skip` (could not be checked because something it needs failed, or no URL was
given); `fix` says what to do. Checks of independent dependencies run concurrently, each bounded
by a timeout, so a dead dependency costs seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Awaitable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import aiohttp
import asyncpg
import msgspec
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError
from stepwise_contract.names import (
    DLQ_REASON_HEADER,
    DLQ_STREAM,
    EVENTS_CONSUMER,
    EVENTS_STREAM,
    TASK_QUEUE,
)
from stepwise_contract.platform.migrate import load_migrations
from stepwise_contract.platform.nats_connection import NatsSettings, connect_nats, parse_nats_urls
from stepwise_contract.platform.temporal import connect_temporal
from stepwise_contract.platform.temporal_access import TemporalAccess
from stepwise_contract.task_failures import FAILING_RUNS_QUERY
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from stepwise_cli.fairness_probe import probe_fairness

Status = Literal["ok", "warn", "fail", "skip"]

# A poller that has not polled for this long belongs to a worker that is gone (a live worker
# renews its long poll about every minute); Temporal still lists it for a few minutes.
POLLER_STALE_S: Final = 90.0
# The fairness probe starts a few dozen workflows and polls them back: about 1-2 s on a dev server.
FAIRNESS_PROBE_TIMEOUT_S: Final = 30.0
# Tasks waiting longer than this while workers poll: the workers are saturated.
BACKLOG_AGE_WARN_S: Final = 30.0
SERVICE_MODULES: Final = {
    "api": "stepwise_api",
    "worker": "stepwise_worker",
    "event-router": "stepwise_router",
    "sweeper": "stepwise_sweeper",
}


class Check(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    status: Status
    detail: str
    fix: str | None = None


class Targets(msgspec.Struct, frozen=True, kw_only=True):
    """What to check. `services` maps a service name to its base URL (checked: `/readyz`)."""

    database_url: str
    temporal_address: str
    temporal_namespace: str
    nats_url: str
    services: dict[str, str] = {}
    # credentials and TLS with NATS_URL's servers; None: `nats_url`'s servers, plain
    nats: NatsSettings | None = None
    temporal_access: TemporalAccess = msgspec.field(default_factory=TemporalAccess)
    # the contract's one task queue; tests point it at a fresh queue
    task_queue: str = TASK_QUEUE
    timeout_s: float = 5.0


def mask_url(url: str) -> str:
    """A URL without its password, for printing."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _mask_urls(urls: str) -> str:
    """`mask_url` of each URL of a comma-separated list."""
    return ",".join(mask_url(url.strip()) for url in urls.split(","))


def _failed_with_dependents(failed: Check, dependents: Iterable[str], why: str) -> list[Check]:
    """`failed`, then a `skip` for every check that needs what failed (`why`: what is missing)."""
    return [failed, *(Check(name=n, status="skip", detail=why) for n in dependents)]


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Doctor:
    def __init__(self, targets: Targets) -> None:
        self.targets = targets

    async def run(self) -> list[Check]:
        groups = await asyncio.gather(
            self.postgres(), self.temporal(), self.nats(), self.services()
        )
        return [check for group in groups for check in group]

    async def _bounded(self, work: Awaitable[Any]) -> Any:
        return await asyncio.wait_for(work, self.targets.timeout_s)

    # --- Postgres -------------------------------------------------------------------------

    async def postgres(self) -> list[Check]:
        url = self.targets.database_url
        try:
            conn = await self._bounded(asyncpg.connect(url))
        except Exception as exc:
            fix = "start PostgreSQL or point DATABASE_URL at it (`make run` starts an embedded one)"
            if isinstance(exc, asyncpg.InvalidCatalogNameError):
                fix = "create the database and migrate it"
                fix += " (python -m stepwise_contract.platform.migrate),"
                fix += " or point DATABASE_URL at the right one"
            return _failed_with_dependents(
                Check(
                    name="postgres",
                    status="fail",
                    detail=f"cannot connect to {_mask_urls(url)}: {_error(exc)}",
                    fix=fix,
                ),
                ["migrations"],
                "Postgres is unreachable",
            )
        try:
            version = await conn.fetchval("SHOW server_version")
            first = Check(
                name="postgres",
                status="ok",
                detail=f"reachable: {mask_url(url)} (PostgreSQL {version})",
            )
            return [first, await self._migrations(conn)]
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _migrations(self, conn: asyncpg.Connection) -> Check:
        known = [m.version for m in load_migrations()]
        fix = "apply them: DATABASE_URL=… python -m stepwise_contract.platform.migrate"
        try:
            rows = await conn.fetch("SELECT version FROM schema_migrations")
        except asyncpg.UndefinedTableError:
            return Check(
                name="migrations",
                status="fail",
                detail=f"the database was never migrated (0 of {len(known)} applied)",
                fix=fix,
            )
        applied = {r["version"] for r in rows}
        missing = [v for v in known if v not in applied]
        unknown = sorted(applied - set(known))
        if missing:
            return Check(
                name="migrations",
                status="fail",
                detail=f"{len(missing)} of {len(known)} not applied: {', '.join(missing)}",
                fix=fix,
            )
        if unknown:
            return Check(
                name="migrations",
                status="warn",
                detail=f"the database has migrations this CLI does not know: {', '.join(unknown)}",
                fix="upgrade this CLI (or check that DATABASE_URL is the right database)",
            )
        return Check(
            name="migrations",
            status="ok",
            detail=f"current: {len(known)} of {len(known)} applied (latest {known[-1]})",
        )

    # --- Temporal -------------------------------------------------------------------------

    async def temporal(self) -> list[Check]:
        t = self.targets
        names = ("temporal", "workflow pollers", "activity pollers", "workflow tasks", "fairness")
        try:
            client = await self._bounded(
                connect_temporal(
                    t.temporal_address, t.temporal_namespace, claims=None, access=t.temporal_access
                )
            )
            await self._bounded(client.service_client.check_health())
        except Exception as exc:
            return _failed_with_dependents(
                Check(
                    name="temporal",
                    status="fail",
                    detail=f"cannot reach Temporal at {t.temporal_address}: {_error(exc)}",
                    fix="start Temporal (`make run` starts a dev server) or set TEMPORAL_ADDRESS",
                ),
                names[1:],
                "Temporal is unreachable",
            )
        try:
            await self._bounded(
                client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=t.temporal_namespace)
                )
            )
        except Exception as exc:
            if not (isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND):
                return _failed_with_dependents(
                    Check(
                        name="temporal",
                        status="fail",
                        detail=f"cannot describe namespace {t.temporal_namespace!r}: {_error(exc)}",
                        fix="check Temporal's health (its log, the Temporal UI)",
                    ),
                    names[1:],
                    "namespace unknown",
                )
            return _failed_with_dependents(
                Check(
                    name="temporal",
                    status="fail",
                    detail=f"reachable at {t.temporal_address}, but namespace"
                    f" {t.temporal_namespace!r} does not exist",
                    fix=f"create it: temporal operator namespace create {t.temporal_namespace}"
                    " (or set TEMPORAL_NAMESPACE to an existing one)",
                ),
                names[1:],
                "no such namespace",
            )
        first = Check(
            name="temporal",
            status="ok",
            detail=f"reachable: {t.temporal_address}, namespace {t.temporal_namespace!r}",
        )
        rest = await asyncio.gather(
            self._pollers(client, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, "workflow"),
            self._pollers(client, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, "activity"),
            self._failing_tasks(client),
            self._fairness(client),
        )
        return [first, *rest]

    async def _failing_tasks(self, client: Client) -> Check:
        """Runs whose workflow task keeps failing, asked of Temporal itself (the sweeper records
        the same on the runs, but may be down)."""
        name = "workflow tasks"

        async def sample() -> list[str]:
            return [
                execution.id.rsplit(":", 1)[-1]
                async for execution in client.list_workflows(FAILING_RUNS_QUERY, limit=5)
            ]

        try:
            count = (await self._bounded(client.count_workflows(FAILING_RUNS_QUERY))).count
            runs = await self._bounded(sample()) if count else []
        except Exception as exc:
            return Check(
                name=name,
                status="warn",
                detail=f"cannot ask Temporal for failing workflow tasks: {_error(exc)}",
                fix="Temporal 1.30+ reports them in the search attribute TemporalReportedProblems"
                " (dynamic config system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute"
                "; see docs/observability.md)",
            )
        if not count:
            return Check(name=name, status="ok", detail="no run's workflow task is failing")
        more = f" (first {len(runs)})" if count > len(runs) else ""
        return Check(
            name=name,
            status="warn",
            detail=f"{count} run(s) whose workflow task keeps failing (RUN_WORKFLOW_TASK_FAILING)"
            f"{more}: {', '.join(runs)}",
            fix="`stepwise runs show <run id>` shows the error; fix the worker code and deploy it"
            " (the runs continue), or cancel the runs",
        )

    async def _fairness(self, client: Client) -> Check:
        """Task-queue fairness, by a probe on a scratch task queue (fairness_probe.py)."""
        fix = (
            "start Temporal with the dynamic config matching.enableFairness=true"
            " (temporal server start-dev --dynamic-config-value matching.enableFairness=true);"
            " see docs/fairness.md"
        )
        try:
            probe = await asyncio.wait_for(probe_fairness(client), FAIRNESS_PROBE_TIMEOUT_S)
        except Exception as exc:
            return Check(
                name="fairness",
                status="warn",
                detail=f"could not probe task-queue fairness: {_error(exc)}",
                fix="check Temporal's health and the namespace",
            )
        seen = (
            f"{probe.late_in_sample} of the first {probe.sampled} probe tasks were the late key's"
        )
        if probe.verdict == "on":
            return Check(name="fairness", status="ok", detail=f"on: tenants share the task queue"
                         f" by weight ({seen})")  # fmt: skip
        if probe.verdict == "off":
            return Check(
                name="fairness",
                status="warn",
                detail=f"off: a tenant's backlog delays every other tenant's runs ({seen})",
                fix=fix,
            )
        return Check(name="fairness", status="warn", detail=f"unclear ({seen}); run again",
                     fix=fix)  # fmt: skip

    async def _pollers(self, client: Client, kind: TaskQueueType.ValueType, label: str) -> Check:
        queue = self.targets.task_queue
        name = f"{label} pollers"
        try:
            response = await self._bounded(
                client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=client.namespace,
                        task_queue=TaskQueue(name=queue),
                        task_queue_type=kind,
                        report_stats=True,
                    )
                )
            )
        except Exception as exc:
            return Check(
                name=name,
                status="fail",
                detail=f"cannot describe task queue {queue}: {_error(exc)}",
                fix="check Temporal's health and the namespace",
            )
        now = datetime.now(UTC)
        live: list[str] = []
        stale: list[str] = []
        newest: float | None = None
        for poller in response.pollers:
            age = (now - poller.last_access_time.ToDatetime(tzinfo=UTC)).total_seconds()
            (stale if age > POLLER_STALE_S else live).append(poller.identity or "?")
            newest = age if newest is None else min(newest, age)
        backlog, backlog_age = _backlog(response)
        if not live:
            gone = f" ({len(stale)} stopped recently: {', '.join(stale)})" if stale else ""
            return Check(
                name=name,
                status="fail",
                detail=f"no worker is polling task queue {queue} for {label} tasks{gone}"
                + (f"; {backlog} task(s) waiting" if backlog else ""),
                fix="start one: python -m stepwise_worker",
            )
        detail = f"{len(live)} worker(s) polling {queue}: {', '.join(sorted(live))}"
        # a worker that stopped a moment ago still shows until its last poll ages out
        detail += f" (last poll {max(0.0, newest or 0.0):.0f} s ago)"
        if backlog:
            detail += f"; backlog {backlog}"
        if backlog_age is not None and backlog_age > BACKLOG_AGE_WARN_S:
            return Check(
                name=name,
                status="warn",
                detail=f"{detail}, oldest waiting {backlog_age:.0f} s: the workers are saturated",
                fix="add workers, or raise the worker's STEPWISE_WORKER_MAX_CONCURRENT_* limits",
            )
        return Check(name=name, status="ok", detail=detail)

    # --- NATS -----------------------------------------------------------------------------

    async def nats(self) -> list[Check]:
        url = self.targets.nats_url
        names = ("jetstream", f"stream {EVENTS_STREAM}", f"stream {DLQ_STREAM}", "event consumer")
        try:
            nc: NATS = await self._bounded(
                connect_nats(
                    self.targets.nats or NatsSettings(servers=parse_nats_urls(url)),
                    connect_timeout=self.targets.timeout_s,
                    # each server of a cluster list once more, then give up (nats-py reads 0 as
                    # "forever", and allow_reconnect=False gives up before trying the next one)
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0.1,
                    name="stepwise-doctor",
                )
            )
        except Exception as exc:
            return _failed_with_dependents(
                Check(
                    name="nats",
                    status="fail",
                    detail=f"cannot connect to {mask_url(url)}: {_error(exc)}",
                    fix="start nats-server with JetStream (-js) or set NATS_URL",
                ),
                names,
                "NATS is unreachable",
            )
        try:
            return [
                Check(name="nats", status="ok", detail=f"reachable: {_mask_urls(url)}"),
                *await self._jetstream(nc),
            ]
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    async def _jetstream(self, nc: NATS) -> list[Check]:
        js = nc.jetstream(timeout=self.targets.timeout_s)
        try:
            account = await js.account_info()
        except Exception as exc:
            return _failed_with_dependents(
                Check(
                    name="jetstream",
                    status="fail",
                    detail=f"JetStream is not available: {_error(exc)}",
                    fix="start nats-server with JetStream enabled (-js)",
                ),
                [f"stream {EVENTS_STREAM}", f"stream {DLQ_STREAM}", "event consumer"],
                "no JetStream",
            )
        router_fix = "the event router creates it when it starts: python -m stepwise_router"
        checks = [
            Check(
                name="jetstream",
                status="ok",
                detail=f"enabled: {account.streams} stream(s), {account.consumers} consumer(s)",
            )
        ]
        for stream in (EVENTS_STREAM, DLQ_STREAM):
            try:
                info = await js.stream_info(stream)
            except NotFoundError:
                checks.append(
                    Check(
                        name=f"stream {stream}",
                        status="fail",
                        detail=f"stream {stream} does not exist",
                        fix=router_fix,
                    )
                )
                continue
            messages = info.state.messages
            subjects = ", ".join(info.config.subjects or [])
            if stream == DLQ_STREAM and messages:
                checks.append(
                    Check(
                        name=f"stream {stream}",
                        status="warn",
                        detail=f"{messages} dead letter(s) on {subjects}",
                        fix=f"inspect them (`nats stream view {DLQ_STREAM}`); the reason is in"
                        f" the {DLQ_REASON_HEADER} header",
                    )
                )
            else:
                checks.append(
                    Check(
                        name=f"stream {stream}",
                        status="ok",
                        detail=f"present: {messages} message(s) on {subjects}",
                    )
                )
        checks.append(await self._consumer(js, router_fix))
        return checks

    async def _consumer(self, js: Any, router_fix: str) -> Check:
        try:
            info = await js.consumer_info(EVENTS_STREAM, EVENTS_CONSUMER)
        except NotFoundError:
            return Check(
                name="event consumer",
                status="fail",
                detail=f"durable consumer {EVENTS_CONSUMER} does not exist: no router ever ran",
                fix=router_fix,
            )
        pending = info.num_pending or 0
        unacked = info.num_ack_pending or 0
        detail = f"{EVENTS_CONSUMER}: {pending} undelivered, {unacked} awaiting ack"
        return Check(name="event consumer", status="ok", detail=detail)

    # --- services -------------------------------------------------------------------------

    async def services(self) -> list[Check]:
        names = list(SERVICE_MODULES)
        names += [n for n in self.targets.services if n not in SERVICE_MODULES]
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.targets.timeout_s)
        ) as http:
            return list(await asyncio.gather(*(self._service(http, n) for n in names)))

    async def _service(self, http: aiohttp.ClientSession, name: str) -> Check:
        url = self.targets.services.get(name)
        module = SERVICE_MODULES.get(name, name)
        if not url:
            flag = "api-url" if name == "api" else f"{name.removeprefix('event-')}-url"
            return Check(
                name=name,
                status="skip",
                detail=f"no URL given: pass --{flag} to check its /readyz",
            )
        ready = f"{url.rstrip('/')}/readyz"
        try:
            async with http.get(ready) as resp:
                body = await resp.json(content_type=None)
                status = resp.status
        except Exception as exc:
            return Check(
                name=name,
                status="fail",
                detail=f"not reachable at {url}: {_error(exc)}",
                fix=f"start it: python -m {module}",
            )
        if status == 200:
            return Check(name=name, status="ok", detail=f"ready: {ready}")
        failing = {}
        if isinstance(body, dict) and isinstance(body.get("checks"), dict):
            failing = {k: v for k, v in body["checks"].items() if v != "ok"}
        reasons = "; ".join(f"{k}: {v}" for k, v in failing.items()) or f"HTTP {status}"
        return Check(
            name=name,
            status="fail",
            detail=f"not ready ({ready}): {reasons}",
            fix="see its log; it becomes ready by itself once what it names is reachable",
        )


def _backlog(response: Any) -> tuple[int, float | None]:
    if not response.HasField("stats"):
        return 0, None
    stats = response.stats
    age: timedelta | None = (
        stats.approximate_backlog_age.ToTimedelta()
        if stats.HasField("approximate_backlog_age")
        else None
    )
    return int(stats.approximate_backlog_count), (age.total_seconds() if age else None)
