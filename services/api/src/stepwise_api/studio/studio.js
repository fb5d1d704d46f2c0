// Run Studio: the operator's page over the Stepwise JSON API (SPEC §7). Plain ES module, no build.
//
// Routing is by hash: `#/runs?status=…&workflowId=…&search=…&limit=…` is the list and
// `#/runs/<runId>` a run. Every value coming from the API is rendered as text (never as HTML),
// and JSON is shown exactly as the API returns it — the API has already redacted it (SPEC §9).
// The controls are Replay, Cancel, Export and, for quota-paused runs, Resume (quota). The legacy
// controls of the reference system (retry, engine resume, requeue) do not exist in this engine.

const KEY_STORAGE = "stepwise.studio.apiKey";
const REFRESH_MS = 5000;
const LOG_PAGE = 200;
const QUEUED_CODE = "RUN_QUEUED_NO_PROGRESS";
const QUEUED_TITLE = "Queued — no worker has picked this run up";
const TASK_FAILING_CODE = "RUN_WORKFLOW_TASK_FAILING";
const TASK_FAILING_TITLE = "Workflow task failing — the run cannot progress";
const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELED"]);
const STATUSES = ["RUNNING", "WAITING", "SUCCEEDED", "FAILED", "CANCELED"];
const RUN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PAGE_SIZES = ["10", "25", "50", "100"];

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// DOM helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "testid") node.dataset.testid = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function show(node, visible) {
  node.hidden = !visible;
}

function setError(node, message) {
  node.textContent = message || "";
  show(node, Boolean(message));
}

function prettyJson(value) {
  return JSON.stringify(value === undefined ? null : value, null, 2);
}

function jsonBlock(value, testid) {
  return el("pre", { class: "json", testid }, prettyJson(value));
}

function runLink(runId, testid) {
  return el("a", { href: `#/runs/${encodeURIComponent(runId)}`, testid }, String(runId));
}

function statusBadge(status, testid) {
  return el("span", { class: `badge status-${String(status).toLowerCase()}`, testid }, status);
}

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

function timeCell(iso) {
  return el("time", { datetime: iso || undefined, title: iso || undefined }, fmtTime(iso));
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(Math.floor(s % 60))}s`;
  return `${Math.floor(m / 60)}h ${pad(m % 60)}m`;
}

function spanMs(startIso, endIso) {
  if (!startIso) return null;
  const end = endIso ? Date.parse(endIso) : Date.now();
  return end - Date.parse(startIso);
}

function runDuration(run) {
  const ms = spanMs(run.started_at, run.completed_at);
  if (ms === null) return "—";
  return run.completed_at ? fmtDuration(ms) : `${fmtDuration(ms)} (so far)`;
}

// ---------------------------------------------------------------------------------------------
// The API

class ApiProblem extends Error {
  constructor(status, body) {
    const detail = (body && (body.detail || body.title)) || `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.body = body || {};
    this.code = this.body.code || `HTTP_${status}`;
    this.detail = detail;
  }

  describe() {
    return this.status ? `${this.detail} (${this.code}, HTTP ${this.status})` : this.detail;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

async function send(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${apiKey() || ""}`, Accept: "application/json" };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (err) {
    throw new ApiProblem(0, { code: "NETWORK_ERROR", detail: `network error: ${err.message}` });
  }
  if (!resp.ok) {
    let problem = null;
    try {
      problem = await resp.json();
    } catch {
      problem = { detail: resp.statusText };
    }
    const error = new ApiProblem(resp.status, problem);
    if (resp.status === 401 && !session.signingIn) {
      signOut(`The API key was refused: ${error.describe()}. Sign in again.`);
    }
    throw error;
  }
  return resp;
}

async function api(path, options) {
  const resp = await send(path, options);
  return resp.status === 204 ? null : resp.json();
}

const runPath = (runId, suffix = "") =>
  `/api/workflow-runs/${encodeURIComponent(runId)}${suffix}`;

// ---------------------------------------------------------------------------------------------
// Session and routing

const session = { signingIn: false, timer: null, view: null };

function stopTimer() {
  if (session.timer !== null) clearInterval(session.timer);
  session.timer = null;
}

function startTimer(tick) {
  stopTimer();
  session.timer = setInterval(() => {
    if (!document.hidden && !anyDialogOpen()) tick();
  }, REFRESH_MS);
}

function anyDialogOpen() {
  return $("replay-dialog").open || $("cancel-dialog").open;
}

function showView(name) {
  session.view = name;
  for (const view of ["login", "runs", "run"]) show($(`${view}-view`), view === name);
  show($("session-nav"), name !== "login");
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  stopTimer();
  for (const dialog of [$("replay-dialog"), $("cancel-dialog")]) if (dialog.open) dialog.close();
  $("api-key").value = "";
  setError($("login-error"), message || "");
  showView("login");
  $("api-key").focus();
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/runs";
  const [path, query = ""] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query) };
}

function route() {
  stopTimer();
  if (!apiKey()) {
    signOut();
    return;
  }
  const { parts, params } = parseHash();
  if (parts[0] === "runs" && parts.length === 2) {
    openRun(parts[1]);
  } else {
    openRuns(params);
  }
}

async function signIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) {
    setError($("login-error"), "Enter an API key.");
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  session.signingIn = true;
  try {
    await api("/api/workflow-runs?limit=1");
  } catch (err) {
    sessionStorage.removeItem(KEY_STORAGE);
    const why = err.status === 401 ? "The API key was refused" : "Could not sign in";
    setError($("login-error"), `${why}: ${err.describe()}`);
    return;
  } finally {
    session.signingIn = false;
  }
  setError($("login-error"), "");
  route();
}

// ---------------------------------------------------------------------------------------------
// Runs list

const list = { params: null, cursors: [null], page: 0, seq: 0 };

function listQuery(cursor) {
  const q = new URLSearchParams();
  const p = list.params;
  if (p.get("status")) q.append("status", p.get("status"));
  if (p.get("workflowId")) q.set("workflowId", p.get("workflowId"));
  if (p.get("search")) q.set("search", p.get("search"));
  q.set("limit", p.get("limit") || "50");
  if (cursor) q.set("cursor", cursor);
  return q;
}

function openRuns(params) {
  showView("runs");
  list.params = params;
  list.cursors = [null];
  list.page = 0;
  $("filter-status").value = STATUSES.includes(params.get("status")) ? params.get("status") : "";
  $("filter-workflow").value = params.get("workflowId") || "";
  $("filter-search").value = params.get("search") || "";
  const size = params.get("limit");
  $("filter-limit").value = PAGE_SIZES.includes(size) ? size : "50";
  if (size && !PAGE_SIZES.includes(size)) {
    // A size given in the address but not offered in the list still applies.
    $("filter-limit").append(el("option", {}, size));
    $("filter-limit").value = size;
  }
  loadRuns();
  startTimer(() => {
    if ($("live-refresh").checked) loadRuns();
  });
}

function applyFilters(event) {
  event.preventDefault();
  const q = new URLSearchParams();
  const status = $("filter-status").value;
  const workflowId = $("filter-workflow").value.trim();
  const search = $("filter-search").value.trim();
  if (status) q.set("status", status);
  if (workflowId) q.set("workflowId", workflowId);
  if (search) q.set("search", search);
  q.set("limit", $("filter-limit").value);
  const target = `#/runs?${q}`;
  if (location.hash === target) route();
  else location.hash = target;
}

async function loadRuns() {
  const seq = ++list.seq;
  let answer;
  try {
    answer = await api(`/api/workflow-runs?${listQuery(list.cursors[list.page])}`);
  } catch (err) {
    if (seq === list.seq) setError($("runs-error"), `Could not load runs: ${err.describe()}`);
    return;
  }
  if (seq !== list.seq || session.view !== "runs") return;
  setError($("runs-error"), "");
  const runs = answer.runs || [];
  $("runs-body").replaceChildren(...runs.map(runRow));
  show($("runs-empty"), runs.length === 0);
  list.cursors.length = list.page + 1;
  if (answer.nextCursor) list.cursors.push(answer.nextCursor);
  $("page-next").disabled = !answer.nextCursor;
  $("page-prev").disabled = list.page === 0;
  $("page-first").disabled = list.page === 0;
  $("page-info").textContent = `Page ${list.page + 1} · ${runs.length} run(s)`;
  $("runs-updated").textContent = `updated ${fmtTime(new Date().toISOString())}`;
}

function runRow(run) {
  const workflow = run.workflow_name || run.workflow_id;
  const failing = (run.warnings || []).find((w) => w.code === TASK_FAILING_CODE);
  const status = [statusBadge(run.status)];
  if (failing) {
    status.push(
      " ",
      el(
        "span",
        { class: "badge warn", testid: "row-task-failing", title: failing.message || "" },
        "⚠ task failing",
      ),
    );
  }
  return el(
    "tr",
    { testid: "run-row", "data-run-id": run.run_id, "data-status": run.status },
    el("td", {}, runLink(run.run_id, "run-link")),
    el("td", {}, ...status),
    el("td", { title: run.workflow_id }, `${workflow} · v${run.workflow_version}`),
    el("td", {}, timeCell(run.started_at)),
    el("td", {}, runDuration(run)),
  );
}

function changePage(delta) {
  if (delta === 0) list.page = 0;
  else list.page = Math.max(0, Math.min(list.page + delta, list.cursors.length - 1));
  loadRuns();
}

// ---------------------------------------------------------------------------------------------
// Run details

const detail = {
  runId: null,
  run: null,
  steps: null,
  seq: 0,
  logsCursor: null,
  logsMore: false,
  // invocations the operator expanded: kept open across the live refresh
  openInvocations: new Set(),
};

function openRun(runId) {
  showView("run");
  setError($("control-error"), "");
  $("control-message").textContent = "";
  if (!RUN_ID.test(runId)) {
    detail.runId = null;
    $("run-id").textContent = runId;
    setError($("run-error-load"), "That is not a run id.");
    return;
  }
  if (detail.runId !== runId) {
    detail.run = null;
    detail.steps = null;
    detail.openInvocations = new Set();
    clearRunPanels();
  }
  detail.runId = runId;
  detail.logsMore = false;
  $("run-id").textContent = runId;
  loadRun();
}

function clearRunPanels() {
  $("run-status").textContent = "";
  $("run-status").className = "badge";
  $("run-warnings").replaceChildren();
  $("run-facts").replaceChildren();
  for (const id of ["timeline-body", "waits-body", "invocations", "logs-body", "snapshots"]) {
    $(id).replaceChildren();
  }
  $("run-input").textContent = "";
  show($("quota-panel"), false);
  show($("cancel-open"), false);
  show($("run-error-section"), false);
  show($("result-section"), false);
  setError($("run-error-load"), "");
}

async function loadRun() {
  const runId = detail.runId;
  const seq = ++detail.seq;
  let run, steps, timeline, logs;
  try {
    [run, steps, timeline, logs] = await Promise.all([
      api(runPath(runId)),
      api(runPath(runId, "/steps")),
      api(runPath(runId, "/timeline")),
      detail.logsMore ? Promise.resolve(null) : api(runPath(runId, `/logs?limit=${LOG_PAGE}`)),
    ]);
  } catch (err) {
    if (seq === detail.seq) setError($("run-error-load"), `Could not load the run: ${err.describe()}`);
    return;
  }
  if (seq !== detail.seq || session.view !== "run" || detail.runId !== runId) return;
  setError($("run-error-load"), "");
  detail.run = run;
  detail.steps = steps;
  renderRun(run, steps, timeline.events || []);
  if (logs) renderLogs(logs, false);
  if (TERMINAL.has(run.status)) stopTimer();
  else if (session.timer === null) startTimer(loadRun);
}

function renderRun(run, steps, events) {
  const terminal = TERMINAL.has(run.status);
  const badge = $("run-status");
  badge.textContent = run.status;
  badge.className = `badge status-${String(run.status).toLowerCase()}`;
  show($("cancel-open"), !terminal);
  renderWarnings(run.warnings || []);
  renderQuota(run, steps.quotaPause);
  renderFacts(run);
  const hasError = run.error_json !== null && run.error_json !== undefined;
  show($("run-error-section"), hasError);
  $("run-error-json").textContent = hasError ? prettyJson(run.error_json) : "";
  $("run-input").textContent = prettyJson(run.input_json);
  const hasResult = run.result_json !== null && run.result_json !== undefined;
  show($("result-section"), hasResult);
  $("run-result").textContent = hasResult ? prettyJson(run.result_json) : "";
  renderTimeline(events);
  renderWaits(steps.waits || []);
  renderInvocations(steps.invocations || []);
  renderSnapshots(steps.snapshots || []);
}

function renderWarnings(warnings) {
  $("run-warnings").replaceChildren(...warnings.map(warningBanner));
}

function warningBanner(w) {
  if (w.code === QUEUED_CODE) {
    return el(
      "div",
      { class: "banner warn", role: "alert", testid: "queued-warning" },
      el("strong", {}, QUEUED_TITLE),
      el("p", { testid: "queued-warning-message" }, w.message || ""),
      el(
        "p",
        { class: "hint" },
        "The run is RUNNING with no step after the threshold: check that a worker is " +
          "running and connected to this Temporal namespace.",
      ),
    );
  }
  if (w.code === TASK_FAILING_CODE) {
    const cause = w.cause ? ` · cause ${w.cause}` : "";
    return el(
      "div",
      { class: "banner warn", role: "alert", testid: "task-failing-warning" },
      el("strong", {}, TASK_FAILING_TITLE),
      el("p", { testid: "task-failing-error" }, w.error || w.message || ""),
      el(
        "p",
        { testid: "task-failing-attempts" },
        `attempt ${w.attempts ?? "?"} · failing since ${fmtTime(w.since)}${cause}`,
      ),
      el(
        "p",
        { class: "hint" },
        "Temporal retries the workflow task, and the run cannot progress until the worker " +
          "code is fixed. Cancelling the run ends it: its workflow is terminated if it does " +
          "not close within the grace period.",
      ),
    );
  }
  return el(
    "div",
    { class: "banner warn", role: "alert", testid: "run-warning" },
    el("strong", {}, w.code || "warning"),
    el("p", {}, w.message || ""),
  );
}

function quotaFacts(q) {
  const limit = q.effectiveLimit ?? q.limit;
  return [
    ["Used", q.usedCount, "quota-used"],
    ["Limit", limit === null || limit === undefined ? "unlimited" : limit, "quota-limit"],
    ["Period", `${fmtTime(q.periodStart)} → ${fmtTime(q.periodEnd)}`, "quota-period"],
    ["Paused step", q.stepPath, "quota-step"],
    ["Paused since", fmtTime(q.createdAt), "quota-since"],
    ["Reason", q.reason, "quota-reason"],
  ].filter(([, value]) => value !== undefined && value !== null);
}

function factList(target, facts) {
  target.replaceChildren(
    ...facts.flatMap(([name, value, testid]) => [
      el("dt", {}, name),
      el("dd", { testid }, value instanceof Node ? value : String(value)),
    ]),
  );
}

function renderQuota(run, quotaPause) {
  const paused = run.status === "WAITING" && quotaPause;
  show($("quota-panel"), Boolean(paused));
  if (!paused) return;
  factList($("quota-figures"), quotaFacts(quotaPause));
}

function renderFacts(run) {
  const meta = run.trigger_metadata_json || {};
  const facts = [
    ["Workflow", `${run.workflow_name || "(unnamed)"} · ${run.workflow_id}`, "fact-workflow"],
    ["Version", run.workflow_version, "fact-version"],
    // the task-queue priority the run started with: 1 is dispatched first when workers are busy
    ["Priority", `${run.priority ?? 3} of 5 (1 = most urgent)`, "fact-priority"],
    ["Started", timeCell(run.started_at), "fact-started"],
    ["Completed", timeCell(run.completed_at), "fact-completed"],
    ["Duration", runDuration(run), "fact-duration"],
    ["Node path", run.node_path || "—", "fact-node-path"],
    ["Trigger", run.trigger_type || "manual / replay / child", "fact-trigger"],
  ];
  if (run.event_type) facts.push(["Event type", run.event_type, "fact-event-type"]);
  if (meta.replayOfRunId) facts.push(["Replay of", runLink(meta.replayOfRunId), "fact-replay-of"]);
  if (meta.reason) facts.push(["Replay reason", meta.reason, "fact-replay-reason"]);
  if (run.parent_run_id) facts.push(["Parent run", runLink(run.parent_run_id), "fact-parent"]);
  if (run.root_run_id && run.root_run_id !== run.run_id) {
    facts.push(["Root run", runLink(run.root_run_id), "fact-root"]);
  }
  if (run.idempotency_key) facts.push(["Idempotency key", run.idempotency_key, "fact-idem"]);
  facts.push(["Engine", run.engine || "—", "fact-engine"]);
  if (run.temporal_workflow_id) {
    facts.push(["Temporal workflow", run.temporal_workflow_id, "fact-temporal-id"]);
  }
  factList($("run-facts"), facts);
}

function eventSpan(event) {
  if (event.type === "step") {
    if (event.duration_ms !== null && event.duration_ms !== undefined) return event.duration_ms;
    return spanMs(event.started_at, event.completed_at);
  }
  return spanMs(event.created_at, event.resolved_at);
}

function renderTimeline(events) {
  const spans = events.map(eventSpan);
  const longest = Math.max(1, ...spans.filter((s) => s !== null));
  const rows = events.map((event, i) => {
    const span = spans[i];
    const open = event.type === "step" ? !event.completed_at : !event.resolved_at;
    const bar = el("div", { class: `bar status-${String(event.status).toLowerCase()}` });
    bar.style.width = `${span === null ? 0 : Math.max(2, (100 * span) / longest)}%`;
    const details =
      event.type === "step"
        ? [
            event.definition_step_id ? `step ${event.definition_step_id}` : null,
            event.step_type ? ` (${event.step_type})` : null,
            event.error_json ? el("pre", { class: "json inline" }, prettyJson(event.error_json)) : null,
          ]
        : [
            [
              event.event_name ? `event ${event.event_name}` : null,
              event.key ? `key ${event.key}` : null,
              event.timeout_at ? `timeout ${fmtTime(event.timeout_at)}` : null,
            ]
              .filter(Boolean)
              .join(" · "),
          ];
    return el(
      "tr",
      { testid: "timeline-row", "data-kind": event.type, "data-status": event.status },
      el("td", {}, timeCell(event.timestamp)),
      el("td", {}, event.type === "step" ? "step" : `wait · ${event.wait_type}`),
      el("td", {}, el("code", {}, event.step_path || "")),
      el("td", {}, statusBadge(event.status)),
      el("td", {}, event.type === "step" ? String(event.attempt ?? "") : ""),
      el(
        "td",
        { testid: "timeline-duration" },
        span === null ? "—" : open ? `${fmtDuration(span)} (open)` : fmtDuration(span),
      ),
      el("td", { class: "barcol" }, bar),
      el("td", {}, ...details),
    );
  });
  $("timeline-body").replaceChildren(...rows);
  show($("timeline-empty"), rows.length === 0);
}

function renderWaits(waits) {
  const rows = waits.map((w) =>
    el(
      "tr",
      { testid: "wait-row", "data-wait-type": w.wait_type, "data-status": w.status },
      el("td", {}, w.wait_type),
      el("td", {}, el("code", {}, w.step_path || "")),
      el("td", {}, statusBadge(w.status)),
      el("td", {}, w.event_name || "—"),
      el("td", {}, w.key || "—"),
      el("td", {}, timeCell(w.created_at)),
      el("td", {}, timeCell(w.timeout_at)),
      el("td", {}, timeCell(w.resolved_at)),
      el("td", {}, w.payload === null || w.payload === undefined ? "—" : jsonBlock(w.payload)),
    ),
  );
  $("waits-body").replaceChildren(...rows);
  show($("waits-empty"), rows.length === 0);
}

function renderInvocations(invocations) {
  const items = invocations.map((inv) =>
    el(
      "details",
      {
        class: "card invocation",
        testid: "invocation",
        "data-action-id": inv.action_id,
        open: detail.openInvocations.has(inv.invocation_id),
        ontoggle: (event) => {
          if (event.target.open) detail.openInvocations.add(inv.invocation_id);
          else detail.openInvocations.delete(inv.invocation_id);
        },
      },
      el(
        "summary",
        {},
        el("code", {}, `${inv.action_id}@${inv.action_version}`),
        ` · ${inv.step_path} · attempt ${inv.attempt} · `,
        statusBadge(inv.status),
      ),
      el(
        "dl",
        { class: "facts" },
        el("dt", {}, "Idempotency key"),
        el("dd", {}, inv.idempotency_key || "—"),
        el("dt", {}, "Created"),
        el("dd", {}, timeCell(inv.created_at)),
        el("dt", {}, "Completed"),
        el("dd", {}, timeCell(inv.completed_at)),
      ),
      el("h3", {}, "Input"),
      jsonBlock(inv.input_json, "invocation-input"),
      el("h3", {}, "Output"),
      jsonBlock(inv.output_json, "invocation-output"),
      inv.error_json ? [el("h3", {}, "Error"), jsonBlock(inv.error_json, "invocation-error")] : null,
    ),
  );
  $("invocations").replaceChildren(...items);
  show($("invocations-empty"), items.length === 0);
}

function renderSnapshots(snapshots) {
  show($("snapshots-section"), snapshots.length > 0);
  $("snapshots").replaceChildren(
    ...snapshots.map((s) =>
      el(
        "details",
        { class: "card", testid: "snapshot" },
        el("summary", {}, `${s.step_path} · ${s.size_bytes ?? "?"} bytes · `, timeCell(s.created_at)),
        jsonBlock(s.envelope_json),
      ),
    ),
  );
}

function renderLogs(answer, append) {
  const rows = (answer.logs || []).map((line) =>
    el(
      "tr",
      { testid: "log-row", "data-level": line.level },
      el("td", {}, timeCell(line.created_at)),
      el("td", {}, el("span", { class: `level level-${String(line.level).toLowerCase()}` }, line.level)),
      el("td", {}, line.source || ""),
      el("td", {}, line.step_path ? el("code", {}, line.step_path) : "—"),
      el("td", {}, line.message),
      el("td", {}, line.context_json ? jsonBlock(line.context_json) : "—"),
    ),
  );
  if (append) $("logs-body").append(...rows);
  else $("logs-body").replaceChildren(...rows);
  detail.logsCursor = answer.nextCursor || null;
  show($("logs-more"), Boolean(detail.logsCursor));
  show($("logs-empty"), $("logs-body").childElementCount === 0);
}

async function moreLogs() {
  if (!detail.logsCursor) return;
  const runId = detail.runId;
  const q = new URLSearchParams({ limit: String(LOG_PAGE), cursor: detail.logsCursor });
  try {
    const answer = await api(runPath(runId, `/logs?${q}`));
    if (detail.runId !== runId) return;
    detail.logsMore = true;
    renderLogs(answer, true);
  } catch (err) {
    setError($("control-error"), `Could not load more logs: ${err.describe()}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Controls

const replay = { runId: null, pristine: "" };

function openReplay() {
  if (!detail.run) return;
  replay.runId = detail.run.run_id;
  // The text as first shown is the reference: the payload is sent only when the text differs.
  replay.pristine = prettyJson(detail.run.input_json ?? {});
  $("replay-payload").value = replay.pristine;
  $("replay-reason").value = "";
  setError($("replay-error"), "");
  markReplayEdited();
  $("replay-submit").disabled = false;
  $("replay-dialog").showModal();
  $("replay-reason").focus();
}

function markReplayEdited() {
  const edited = $("replay-payload").value !== replay.pristine;
  $("replay-edited").textContent = edited
    ? "Edited: this payload will be sent."
    : "Unchanged: the original input will be replayed.";
}

async function submitReplay(event) {
  event.preventDefault();
  const text = $("replay-payload").value;
  const reason = $("replay-reason").value.trim();
  const body = { reason };
  if (text !== replay.pristine) {
    let payload;
    try {
      payload = JSON.parse(text);
    } catch (err) {
      setError($("replay-error"), `Invalid JSON — nothing was sent. ${err.message}`);
      return;
    }
    if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
      setError($("replay-error"), "The payload must be a JSON object — nothing was sent.");
      return;
    }
    body.payload = payload;
  }
  if (reason.length < 3) {
    setError($("replay-error"), "Give a reason of at least 3 characters — nothing was sent.");
    return;
  }
  $("replay-submit").disabled = true;
  try {
    const answer = await api(runPath(replay.runId, "/replay"), { method: "POST", body });
    $("replay-dialog").close();
    location.hash = `#/runs/${encodeURIComponent(answer.runId)}`;
  } catch (err) {
    setError($("replay-error"), `Replay failed: ${err.describe()}`);
  } finally {
    $("replay-submit").disabled = false;
  }
}

function openCancel() {
  if (!detail.run) return;
  $("cancel-reason").value = "";
  setError($("cancel-error"), "");
  $("cancel-submit").disabled = false;
  $("cancel-dialog").showModal();
  $("cancel-reason").focus();
}

async function submitCancel(event) {
  event.preventDefault();
  const reason = $("cancel-reason").value.trim();
  if (reason.length < 3) {
    setError($("cancel-error"), "Give a reason of at least 3 characters — nothing was sent.");
    return;
  }
  const runId = detail.runId;
  $("cancel-submit").disabled = true;
  try {
    await api(runPath(runId, "/cancel"), { method: "POST", body: { reason } });
    $("cancel-dialog").close();
    $("control-message").textContent = "Run canceled.";
    await loadRun();
  } catch (err) {
    setError($("cancel-error"), `Cancel failed: ${err.describe()}`);
  } finally {
    $("cancel-submit").disabled = false;
  }
}

async function exportRun() {
  const runId = detail.runId;
  setError($("control-error"), "");
  try {
    const resp = await send(runPath(runId, "/export"));
    const url = URL.createObjectURL(await resp.blob());
    const link = el("a", { href: url, download: `workflow-run-${runId}.json`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    $("control-message").textContent = `Exported workflow-run-${runId}.json`;
  } catch (err) {
    setError($("control-error"), `Export failed: ${err.describe()}`);
  }
}

async function quotaResume() {
  const runId = detail.runId;
  setError($("quota-error"), "");
  $("quota-resume").disabled = true;
  try {
    await api(runPath(runId, "/quota-resume"), {
      method: "POST",
      body: { reason: "resumed from Run Studio" },
    });
    $("control-message").textContent = "Quota pause resumed.";
    await loadRun();
  } catch (err) {
    const q = err.body && err.body.quota;
    const figures = q ? ` — used ${q.usedCount} of ${q.limit ?? q.effectiveLimit ?? "?"}` : "";
    setError($("quota-error"), `Resume failed: ${err.describe()}${figures}`);
  } finally {
    $("quota-resume").disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function init() {
  $("login-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", (event) => {
    event.preventDefault();
    signOut("Signed out.");
    history.replaceState(null, "", "#/runs");
  });
  $("runs-filters").addEventListener("submit", applyFilters);
  $("page-next").addEventListener("click", () => changePage(1));
  $("page-prev").addEventListener("click", () => changePage(-1));
  $("page-first").addEventListener("click", () => changePage(0));
  $("replay-open").addEventListener("click", openReplay);
  $("replay-form").addEventListener("submit", submitReplay);
  $("replay-payload").addEventListener("input", markReplayEdited);
  $("replay-close").addEventListener("click", () => $("replay-dialog").close());
  $("cancel-open").addEventListener("click", openCancel);
  $("cancel-form").addEventListener("submit", submitCancel);
  $("cancel-close").addEventListener("click", () => $("cancel-dialog").close());
  $("export-run").addEventListener("click", exportRun);
  $("quota-resume").addEventListener("click", quotaResume);
  $("logs-more").addEventListener("click", moreLogs);
  window.addEventListener("hashchange", route);
  show($("booting"), false);
  route();
}

init();
