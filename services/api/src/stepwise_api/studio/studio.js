// Run Studio: the operators' console over the Stepwise JSON API. Plain ES modules, no build.
//
// This module holds the shared parts (DOM and time helpers, the API client, the session, the hash
// router) and the runs pages; tasks.js, workflows.js and events.js register their pages with
// `registerPage`. Routing is by hash: `#/runs?status=…&waitingOn=…&workflow=…&search=…&limit=…`
// is the list, `#/runs/<runId>` a run, `#/tasks[/<id>]`, `#/workflows[/<id>]`, `#/events[/<id>]`.
// Every value coming from the API is rendered as text (never as HTML), and JSON is shown exactly
// as the API returns it — the API has already redacted it. The run controls are Replay, Cancel,
// Export and, for quota-paused runs, Resume (quota); there is no retry, engine resume or requeue.

const KEY_STORAGE = "stepwise.studio.apiKey";
const REFRESH_MS = 5000;
const LOG_PAGE = 200;
const QUEUED_CODE = "RUN_QUEUED_NO_PROGRESS";
const QUEUED_TITLE = "Queued — no worker has picked this run up";
const TASK_FAILING_CODE = "RUN_WORKFLOW_TASK_FAILING";
const TASK_FAILING_TITLE = "Workflow task failing — the run cannot progress";
const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELED"]);
const STATUSES = ["RUNNING", "WAITING", "SUCCEEDED", "FAILED", "CANCELED"];
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PAGE_SIZES = ["10", "25", "50", "100"];

export const $ = (id) => document.getElementById(id);
export const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";

// ---------------------------------------------------------------------------------------------
// DOM helpers

export function el(tag, props = {}, ...children) {
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

export function show(node, visible) {
  node.hidden = !visible;
}

export function setError(node, message) {
  node.textContent = message || "";
  show(node, Boolean(message));
}

export function prettyJson(value) {
  return JSON.stringify(value === undefined ? null : value, null, 2);
}

export function jsonBlock(value, testid) {
  return el("pre", { class: "json", testid }, prettyJson(value));
}

export function runLink(runId, testid) {
  return el("a", { href: `#/runs/${encodeURIComponent(runId)}`, testid }, String(runId));
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

// A short id that links to its page and keeps the full id a click away (title, copy button).
export function shortLink(href, id, testid) {
  const full = String(id);
  const copy = el(
    "button",
    {
      type: "button",
      class: "copy",
      title: `Copy ${full}`,
      "aria-label": `Copy id ${full}`,
      testid: "copy-id",
      onclick: async (event) => {
        event.preventDefault();
        try {
          await navigator.clipboard.writeText(full);
          copy.textContent = "copied";
        } catch {
          copy.textContent = "select to copy";
        }
        setTimeout(() => (copy.textContent = "copy"), 1500);
      },
    },
    "copy",
  );
  return el(
    "span",
    { class: "short-id" },
    el("a", { href, testid, title: full }, el("code", {}, shortId(full))),
    " ",
    copy,
  );
}

export function shortRunLink(runId, testid) {
  return shortLink(`#/runs/${encodeURIComponent(runId)}`, runId, testid);
}

// One line for an error document: category · code · message · at step.
export function errorLine(error, stepId) {
  if (error === null || error === undefined) return "";
  if (typeof error !== "object") return String(error);
  const parts = [error.category || error.type, error.code, error.message || error.reason];
  const at = stepId || error.stepId || error.nodePath;
  if (at) parts.push(`at step ${at}`);
  const line = parts.filter(Boolean).join(" · ");
  return line || JSON.stringify(error);
}

// What an open run waits on, in words (the `waiting_on` of run reads and lists).
export function waitingText(w) {
  if (!w) return "";
  if (w.type === "event") {
    return `event ${w.event_name || "?"}${w.key ? ` · key ${w.key}` : ""}`;
  }
  if (w.type === "time") return `timer until ${fmtTime(w.until)}`;
  if (w.type === "human") return `person: ${w.task_title ? `“${w.task_title}”` : "a task"}`;
  if (w.type === "quota") return "step quota";
  return String(w.type);
}

export function statusBadge(status, testid) {
  return el("span", { class: `badge status-${String(status).toLowerCase()}`, testid }, status);
}

function pad(n, width = 2) {
  return String(n).padStart(width, "0");
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

export function timeCell(iso) {
  const title = iso ? `${iso} (shown in ${TIME_ZONE})` : undefined;
  return el("time", { datetime: iso || undefined, title }, fmtTime(iso));
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(Math.floor(s % 60))}s`;
  return `${Math.floor(m / 60)}h ${pad(m % 60)}m`;
}

export function spanMs(startIso, endIso) {
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

export async function api(path, options) {
  const resp = await send(path, options);
  return resp.status === 204 ? null : resp.json();
}

export const runPath = (runId, suffix = "") =>
  `/api/workflow-runs/${encodeURIComponent(runId)}${suffix}`;

// ---------------------------------------------------------------------------------------------
// Session and routing

export const session = { signingIn: false, timer: null, view: null };
const pages = new Map();

// A page of another module: `open(parts, params)` for `#/<section>/...`.
export function registerPage(section, open) {
  pages.set(section, open);
}

export function stopTimer() {
  if (session.timer !== null) clearInterval(session.timer);
  session.timer = null;
}

export function startTimer(tick) {
  stopTimer();
  session.timer = setInterval(() => {
    if (!document.hidden && !anyDialogOpen()) tick();
  }, REFRESH_MS);
}

function anyDialogOpen() {
  return [...document.querySelectorAll("dialog")].some((d) => d.open);
}

export function showView(name) {
  session.view = name;
  for (const view of document.querySelectorAll("main > section[id$='-view']")) {
    show(view, view.id === `${name}-view`);
  }
  show($("session-nav"), name !== "login");
  const section = name === "login" ? "" : name.replace(/s?$/, "s");
  for (const link of document.querySelectorAll("#session-nav a[data-section]")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
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
  } else if (pages.has(parts[0])) {
    pages.get(parts[0])(parts, params);
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

const list = { params: null, cursors: [null], page: 0, seq: 0, suggested: false };

function listQuery(cursor) {
  const q = new URLSearchParams();
  const p = list.params;
  if (p.get("status")) q.append("status", p.get("status"));
  if (p.get("waitingOn")) q.append("waitingOn", p.get("waitingOn"));
  const workflow = p.get("workflow") || p.get("workflowId");
  if (workflow) q.set("workflow", workflow);
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
  $("filter-workflow").value = params.get("workflow") || params.get("workflowId") || "";
  const waiting = params.get("waitingOn") || "";
  $("filter-waiting").value = ["event", "time", "human", "quota"].includes(waiting) ? waiting : "";
  loadSuggestions();
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
  const workflow = $("filter-workflow").value.trim();
  const waiting = $("filter-waiting").value;
  const search = $("filter-search").value.trim();
  if (status) q.set("status", status);
  if (waiting) q.set("waitingOn", waiting);
  if (workflow) q.set("workflow", workflow);
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

// The workflow filter's suggestions: the tenant's workflows by key and by name (once a session).
async function loadSuggestions() {
  if (list.suggested) return;
  list.suggested = true;
  let answer;
  try {
    answer = await api("/api/workflow-definitions?limit=500");
  } catch {
    list.suggested = false;
    return;
  }
  const seen = new Set();
  const options = [];
  for (const d of answer.definitions || []) {
    for (const value of [d.key, d.name]) {
      if (!value || seen.has(value)) continue;
      seen.add(value);
      options.push(el("option", { value }, d.key && value === d.name ? `key ${d.key}` : d.name));
    }
  }
  $("workflow-suggestions").replaceChildren(...options);
}

function runRow(run) {
  const workflow = run.workflow_name || run.workflow_id;
  const error = run.error_json ? errorLine(run.error_json) : "";
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
    el("td", { class: "nowrap" }, shortRunLink(run.run_id, "run-link")),
    el("td", {}, ...status),
    el("td", { title: run.workflow_id }, `${workflow} · v${run.workflow_version}`),
    el("td", { testid: "row-waiting" }, waitingText(run.waiting_on)),
    el("td", { class: "one-line", title: error, testid: "row-error" }, error),
    el("td", { class: "nowrap" }, timeCell(run.started_at)),
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
  // the timeline row whose panel is open (`step:<path>` or `wait:<id>`)
  panel: null,
};

function openRun(runId) {
  showView("run");
  setError($("control-error"), "");
  $("control-message").textContent = "";
  if (!UUID.test(runId)) {
    detail.runId = null;
    $("run-id").textContent = runId;
    clearRunPanels();
    setError($("run-error-load"), "That is not a run id.");
    return;
  }
  if (detail.runId !== runId) {
    detail.run = null;
    detail.steps = null;
    detail.panel = null;
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
  show($("run-status"), false);
  show($("run-body"), false);
  $("run-warnings").replaceChildren();
  $("run-facts").replaceChildren();
  $("run-headline").replaceChildren();
  for (const id of ["waterfall", "waits-body", "invocations", "logs-body", "snapshots"]) {
    $(id).replaceChildren();
  }
  $("run-input").textContent = "";
  show($("quota-panel"), false);
  show($("cancel-open"), false);
  show($("run-error-section"), false);
  show($("result-section"), false);
  show($("step-panel"), false);
  setError($("run-error-load"), "");
}

async function loadRun() {
  const runId = detail.runId;
  const seq = ++detail.seq;
  let run, steps, logs;
  try {
    [run, steps, logs] = await Promise.all([
      api(runPath(runId)),
      api(runPath(runId, "/steps")),
      detail.logsMore ? Promise.resolve(null) : api(runPath(runId, `/logs?limit=${LOG_PAGE}`)),
    ]);
  } catch (err) {
    if (seq !== detail.seq) return;
    if (err.status === 404) {
      // not found: only the not-found state, no controls and no empty tables
      clearRunPanels();
      stopTimer();
      setError($("run-error-load"), `Run not found: no run ${runId} in this tenant.`);
    } else {
      setError($("run-error-load"), `Could not load the run: ${err.describe()}`);
    }
    return;
  }
  if (seq !== detail.seq || session.view !== "run" || detail.runId !== runId) return;
  setError($("run-error-load"), "");
  detail.run = run;
  detail.steps = steps;
  renderRun(run, steps);
  if (logs) renderLogs(logs, false);
  show($("run-body"), true);
  if (TERMINAL.has(run.status)) stopTimer();
  else if (session.timer === null) startTimer(loadRun);
}

function renderRun(run, steps) {
  const terminal = TERMINAL.has(run.status);
  const badge = $("run-status");
  badge.textContent = run.status;
  badge.className = `badge status-${String(run.status).toLowerCase()}`;
  show(badge, true);
  show($("cancel-open"), !terminal);
  renderWarnings(run.warnings || []);
  renderQuota(run, steps.quotaPause);
  renderHeadline(run, steps.steps || []);
  renderFacts(run);
  renderError(run, steps.steps || []);
  $("run-input").textContent = prettyJson(run.input_json);
  const hasResult = run.result_json !== null && run.result_json !== undefined;
  show($("result-section"), hasResult);
  $("run-result").textContent = hasResult ? prettyJson(run.result_json) : "";
  renderTimeline(run, steps);
  renderWaits(steps.waits || []);
  renderInvocations(steps.invocations || []);
  renderSnapshots(steps.snapshots || []);
}

function failedStep(steps) {
  const failed = steps.filter((s) => s.status === "FAILED");
  // the innermost failure: the deepest path (a container fails with its child)
  failed.sort((a, b) => stepDepth(b.step_path) - stepDepth(a.step_path));
  return failed[0] || null;
}

function stepName(step) {
  return step.definition_step_id || step.step_path;
}

// One sentence: what the run is doing, waiting for, or how it ended.
function renderHeadline(run, steps) {
  const target = $("run-headline");
  const w = run.waiting_on;
  const parts = [];
  if (run.status === "SUCCEEDED") {
    parts.push(`Succeeded in ${runDuration(run)}.`);
  } else if (run.status === "FAILED") {
    const step = failedStep(steps);
    parts.push(step ? `Failed at step ${stepName(step)} — the error is below.` : "Failed — the error is below.");
  } else if (run.status === "CANCELED") {
    const reason = run.error_json && run.error_json.reason;
    parts.push(reason ? `Canceled: ${reason}.` : "Canceled.");
  } else if (w && w.type === "event") {
    parts.push(
      `Waiting for event ${w.event_name || "?"}` +
        (w.key ? ` with correlation key ${w.key}` : " (any key)") +
        (w.until ? `, at most until ${fmtTime(w.until)}.` : "."),
    );
  } else if (w && w.type === "time") {
    parts.push(`Sleeping until ${fmtTime(w.until)}.`);
  } else if (w && w.type === "human") {
    parts.push(`Waiting for a person to complete the task “${w.task_title || "untitled"}”. `);
    if (w.key) {
      parts.push(el("a", { href: `#/tasks/${encodeURIComponent(w.key)}`, testid: "open-task" }, "Open the task"));
    }
  } else if (w && w.type === "quota") {
    parts.push("Paused: the tenant's step quota is used up.");
  } else {
    const current = steps.filter((s) => s.status === "STARTED").pop();
    parts.push(current ? `Running step ${stepName(current)} (${current.step_type || "step"}).` : "Running.");
  }
  target.replaceChildren(...parts);
}

function renderError(run, steps) {
  const error = run.error_json;
  const has = error !== null && error !== undefined;
  show($("run-error-section"), has);
  $("run-error-json").textContent = has ? prettyJson(error) : "";
  if (!has) return;
  const step = failedStep(steps);
  $("run-error-line").textContent = errorLine(error, step ? stepName(step) : null);
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

export function factList(target, facts) {
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

function triggerFact(run) {
  const meta = run.trigger_metadata_json || {};
  if (run.trigger_type === "event") {
    const name = run.event_type || meta.eventName || "?";
    if (!meta.eventId) return `event ${name}`;
    return el(
      "span",
      {},
      `event ${name} · `,
      el("a", { href: `#/events/${encodeURIComponent(meta.eventId)}`, testid: "trigger-event" }, `event ${meta.eventId}`),
    );
  }
  if (run.trigger_type) return String(run.trigger_type);
  if (meta.replayOfRunId) return el("span", {}, "replay of ", runLink(meta.replayOfRunId));
  if (run.parent_run_id) return el("span", {}, "child of ", runLink(run.parent_run_id));
  const by = meta.launchedBy;
  if (by && typeof by === "object") {
    return `API launch with the key “${by.keyName || by.keyId}” (${by.role || "?"})`;
  }
  return "API launch";
}

function renderFacts(run) {
  const meta = run.trigger_metadata_json || {};
  const workflow = el(
    "a",
    { href: `#/workflows/${encodeURIComponent(run.workflow_id)}` },
    run.workflow_name || "(unnamed)",
  );
  const facts = [
    ["Workflow", el("span", {}, workflow, ` · ${run.workflow_id}`), "fact-workflow"],
    ["Version", run.workflow_version, "fact-version"],
    // the task-queue priority the run started with: 1 is dispatched first when workers are busy
    ["Priority", `${run.priority ?? 3} of 5 (1 = most urgent)`, "fact-priority"],
    ["Trigger", triggerFact(run), "fact-trigger"],
    ["Started", timeCell(run.started_at), "fact-started"],
    ["Completed", timeCell(run.completed_at), "fact-completed"],
    ["Duration", runDuration(run), "fact-duration"],
  ];
  if (run.waiting_on) facts.push(["Waiting on", waitingText(run.waiting_on), "fact-waiting"]);
  if (!TERMINAL.has(run.status) && run.node_path) facts.push(["At", run.node_path, "fact-node-path"]);
  if (meta.replayOfRunId) facts.push(["Replay of", runLink(meta.replayOfRunId), "fact-replay-of"]);
  if (meta.reason) facts.push(["Replay reason", meta.reason, "fact-replay-reason"]);
  if (run.parent_run_id) facts.push(["Parent run", runLink(run.parent_run_id), "fact-parent"]);
  if (run.root_run_id && run.root_run_id !== run.run_id) {
    facts.push(["Root run", runLink(run.root_run_id), "fact-root"]);
  }
  if (run.idempotency_key) facts.push(["Idempotency key", run.idempotency_key, "fact-idem"]);
  // "db" or none on runs adopted from the reference runtime's database
  facts.push(["Engine", run.engine || "—", "fact-engine"]);
  if (run.temporal_workflow_id) {
    facts.push(["Temporal workflow", run.temporal_workflow_id, "fact-temporal-id"]);
  }
  factList($("run-facts"), facts);
}

// ---- Timeline: a waterfall to scale, one row per step path (attempts grouped) and per wait.

function stepDepth(path) {
  return Math.max(0, (String(path || "").match(/steps\[/g) || []).length - 1);
}

function timelineItems(steps, waits) {
  const groups = new Map();
  for (const step of steps) {
    if (!groups.has(step.step_path)) {
      groups.set(step.step_path, { kind: "step", key: `step:${step.step_path}`, path: step.step_path, attempts: [] });
    }
    groups.get(step.step_path).attempts.push(step);
  }
  const items = [];
  for (const group of groups.values()) {
    group.attempts.sort((a, b) => (a.attempt ?? 0) - (b.attempt ?? 0));
    const last = group.attempts[group.attempts.length - 1];
    group.status = last.status;
    group.label = last.definition_step_id || group.path;
    group.type = last.step_type || "step";
    group.spans = group.attempts.map((a) => [a.started_at, a.completed_at, a.status]);
    items.push(group);
  }
  for (const wait of waits) {
    items.push({
      kind: "wait",
      key: `wait:${wait.wait_id}`,
      path: wait.step_path,
      wait,
      status: wait.status,
      label: `wait · ${wait.wait_type}`,
      type: [wait.event_name, wait.key ? `key ${wait.key}` : null].filter(Boolean).join(" · "),
      spans: [[wait.created_at, wait.resolved_at, wait.status]],
    });
  }
  const start = (item) => Date.parse(item.spans[0][0]);
  items.sort((a, b) => start(a) - start(b) || (a.kind === "step" ? -1 : 1));
  return items;
}

function renderTimeline(run, steps) {
  const items = timelineItems(steps.steps || [], steps.waits || []);
  const now = Date.now();
  const t0 = Math.min(
    Date.parse(run.started_at) || now,
    ...items.map((i) => Date.parse(i.spans[0][0]) || now),
  );
  const ends = items.flatMap((i) => i.spans.map(([, end]) => (end ? Date.parse(end) : now)));
  const t1 = Math.max(run.completed_at ? Date.parse(run.completed_at) : now, ...ends);
  const total = Math.max(1, t1 - t0);
  const axis = el(
    "div",
    { class: "wf-row wf-axis", "aria-hidden": "true" },
    el("span", { class: "wf-label" }, `start ${fmtTime(new Date(t0).toISOString())}`),
    el("span", { class: "wf-track" }, el("span", { class: "wf-axis-end" }, `+${fmtDuration(total)}`)),
    el("span", { class: "wf-dur" }, "duration"),
  );
  const rows = items.map((item) => timelineRow(item, t0, total, now));
  $("waterfall").replaceChildren(...(rows.length ? [axis, ...rows] : []));
  show($("timeline-empty"), rows.length === 0);
  if (detail.panel) {
    const open = items.find((i) => i.key === detail.panel);
    if (open) renderPanel(open);
  }
}

function timelineRow(item, t0, total, now) {
  const bars = item.spans.map(([startIso, endIso, status]) => {
    const start = Date.parse(startIso);
    const end = endIso ? Date.parse(endIso) : now;
    const bar = el("span", { class: `bar status-${String(status).toLowerCase()}${endIso ? "" : " open"}` });
    bar.style.left = `${(100 * (start - t0)) / total}%`;
    bar.style.width = `${Math.max(0.3, (100 * (end - start)) / total)}%`;
    return bar;
  });
  const last = item.kind === "step" ? item.attempts[item.attempts.length - 1] : null;
  let span;
  if (last && last.duration_ms !== null && last.duration_ms !== undefined) span = last.duration_ms;
  else span = spanMs(item.spans.at(-1)[0], item.spans.at(-1)[1]);
  const open = !item.spans.at(-1)[1];
  const attempts = item.kind === "step" && item.attempts.length > 1 ? ` ×${item.attempts.length} attempts` : "";
  const label = el(
    "button",
    {
      type: "button",
      class: "wf-label",
      title: item.path,
      "aria-label": `${item.label} ${item.type} ${item.status}: show details`,
      "aria-expanded": detail.panel === item.key ? "true" : "false",
      testid: "timeline-open",
      onclick: () => {
        detail.panel = item.key;
        renderPanel(item);
        $("step-panel").focus();
      },
    },
    el("span", { class: "wf-indent" }),
    el("strong", {}, item.label),
    " ",
    el("span", { class: "muted" }, item.type),
    attempts,
    ["SUCCEEDED", "RESOLVED"].includes(item.status) ? null : statusBadge(item.status),
  );
  // a wait belongs to its step: one level deeper
  const depth = stepDepth(item.path) + (item.kind === "wait" ? 1 : 0);
  label.firstChild.style.width = `${depth * 1.2}rem`;
  return el(
    "div",
    {
      class: "wf-row",
      role: "listitem",
      testid: "timeline-row",
      "data-kind": item.kind,
      "data-status": item.status,
      "data-path": item.path,
      "data-depth": String(depth),
    },
    label,
    el("span", { class: "wf-track" }, ...bars),
    el(
      "span",
      { class: "wf-dur", testid: "timeline-duration" },
      span === null ? "—" : open ? `${fmtDuration(span)} (open)` : fmtDuration(span),
    ),
  );
}

function renderPanel(item) {
  show($("step-panel"), true);
  $("step-panel-title").textContent =
    item.kind === "step" ? `Step ${item.label} (${item.type})` : `Wait · ${item.wait.wait_type}`;
  const facts = [["Path", el("code", {}, item.path || "—"), "panel-path"], ["Status", statusBadge(item.status), "panel-status"]];
  const body = [];
  if (item.kind === "step") {
    for (const a of item.attempts) {
      facts.push([
        `Attempt ${a.attempt ?? 1}`,
        `${a.status} · ${fmtTime(a.started_at)} · ${fmtDuration(a.duration_ms ?? spanMs(a.started_at, a.completed_at))}`,
        "panel-attempt",
      ]);
    }
    const invocations = (detail.steps.invocations || []).filter((i) => i.step_path === item.path);
    for (const inv of invocations) {
      body.push(
        el("h4", {}, `${inv.action_id}@${inv.action_version} · attempt ${inv.attempt} · ${inv.status}`),
        el("h5", {}, "Input"),
        jsonBlock(inv.input_json, "panel-input"),
        el("h5", {}, "Output"),
        jsonBlock(inv.output_json, "panel-output"),
      );
      if (inv.error_json) body.push(el("h5", {}, "Error"), jsonBlock(inv.error_json, "panel-error"));
    }
    const failed = item.attempts.filter((a) => a.error_json);
    if (failed.length && !invocations.some((i) => i.error_json)) {
      body.push(el("h5", {}, "Error"), jsonBlock(failed.at(-1).error_json, "panel-error"));
    }
    if (!body.length) body.push(el("p", { class: "muted" }, "This step called no action: no input or output recorded."));
  } else {
    const w = item.wait;
    if (w.event_name) facts.push(["Event", w.event_name, "panel-event"]);
    if (w.key) facts.push(["Key", w.key, "panel-key"]);
    facts.push(["Opened", timeCell(w.created_at), "panel-opened"]);
    if (w.timeout_at) facts.push(["Timeout", timeCell(w.timeout_at), "panel-timeout"]);
    if (w.resolved_at) facts.push(["Resolved", timeCell(w.resolved_at), "panel-resolved"]);
    if (w.wait_type === "human" && w.key) {
      facts.push(["Task", el("a", { href: `#/tasks/${encodeURIComponent(w.key)}` }, w.key), "panel-task"]);
    }
    body.push(el("h5", {}, "Payload"), jsonBlock(w.payload, "panel-payload"));
  }
  factList($("step-panel-facts"), facts);
  $("step-panel-body").replaceChildren(...body);
}

function closePanel() {
  detail.panel = null;
  show($("step-panel"), false);
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
      el(
        "td",
        {},
        w.payload === null || w.payload === undefined
          ? "—"
          : el("details", {}, el("summary", {}, "payload"), jsonBlock(w.payload)),
      ),
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
      el(
        "td",
        {},
        line.context_json
          ? el("details", {}, el("summary", {}, "context"), jsonBlock(line.context_json))
          : "—",
      ),
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
  fieldErrors($("replay-field-errors"), null);
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
    fieldErrors($("replay-field-errors"), err);
  } finally {
    $("replay-submit").disabled = false;
  }
}

// The `errors` of a problem answer (`[{path, message}]`), one item each.
export function fieldErrors(target, err) {
  const errors = (err && err.body && Array.isArray(err.body.errors) && err.body.errors) || [];
  target.replaceChildren(
    ...errors.map((e) =>
      el(
        "li",
        { testid: "field-error" },
        el("code", {}, (e && (e.path || e.field)) || "/"),
        ` ${(e && e.message) || JSON.stringify(e)}`,
      ),
    ),
  );
  show(target, errors.length > 0);
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
  $("step-panel-close").addEventListener("click", closePanel);
  $("time-zone").textContent = `Times in ${TIME_ZONE}`;
  window.addEventListener("hashchange", route);
  show($("booting"), false);
  route();
}

// Deferred modules run in order before DOMContentLoaded: by then every page has registered.
document.addEventListener("DOMContentLoaded", init);
