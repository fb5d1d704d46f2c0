// Events: what arrived (`#/events?eventName=&correlationKey=&status=`) with its outcome, one
// event's page (`#/events/<eventId>`) with its payload as the API returns it (redacted), and the
// dead-letter queue: the messages the router could not route, with reason and detail.

import {
  $,
  api,
  el,
  factList,
  jsonBlock,
  prettyJson,
  registerPage,
  setError,
  shortRunLink,
  show,
  showView,
  timeCell,
} from "./studio.js";

const STATUSES = ["matched", "unmatched", "error", "pending"];
const state = { seq: 0, eventId: null, cursor: null };

function openEvents(parts, params) {
  if (parts.length >= 2) {
    openEvent(decodeURIComponent(parts.slice(1).join("/")));
    return;
  }
  showView("events");
  $("events-name").value = params.get("eventName") || "";
  $("events-key").value = params.get("correlationKey") || "";
  const status = params.get("status") || "";
  $("events-status").value = STATUSES.includes(status) ? status : "";
  state.cursor = null;
  loadEvents(false);
  loadDeadLetters();
}

function applyEventFilters(event) {
  event.preventDefault();
  const q = new URLSearchParams();
  for (const [id, name] of [["events-name", "eventName"], ["events-key", "correlationKey"], ["events-status", "status"]]) {
    const value = $(id).value.trim();
    if (value) q.set(name, value);
  }
  const target = `#/events?${q}`;
  if (location.hash === target) openEvents(["events"], q);
  else location.hash = target;
}

// The outcome in words: resumed runs / started runs / matched nothing / error / not routed yet.
function outcome(e) {
  const signaled = e.signaled_run_ids || [];
  const started = e.started_run_ids || [];
  // matched_run_id names the one run when there is one, resumed or started
  const resumed =
    signaled.length || (e.matched_run_id && !started.includes(e.matched_run_id) ? 1 : 0);
  if (e.status === "pending") return "not routed yet";
  const parts = [];
  if (resumed) parts.push(`resumed ${resumed} run${resumed === 1 ? "" : "s"}`);
  if (started.length) parts.push(`started ${started.length} run${started.length === 1 ? "" : "s"}`);
  if (e.error_message) parts.push(`error: ${e.error_message}`);
  return parts.length ? parts.join(" · ") : "matched nothing";
}

async function loadEvents(append) {
  const seq = ++state.seq;
  const q = new URLSearchParams({ limit: "50" });
  for (const [id, name] of [["events-name", "eventName"], ["events-key", "correlationKey"], ["events-status", "status"]]) {
    const value = $(id).value.trim();
    if (value) q.set(name, value);
  }
  if (append && state.cursor) q.set("cursor", state.cursor);
  let answer;
  try {
    answer = await api(`/api/workflow/events?${q}`);
  } catch (err) {
    if (seq === state.seq) setError($("events-error"), `Could not load events: ${err.describe()}`);
    return;
  }
  if (seq !== state.seq) return;
  setError($("events-error"), "");
  const rows = (answer.events || []).map((e) =>
    el(
      "tr",
      { testid: "event-row", "data-event-id": e.event_id, "data-status": e.status },
      el("td", { class: "nowrap" }, timeCell(e.created_at)),
      el("td", {}, el("a", { href: `#/events/${encodeURIComponent(e.event_id)}`, testid: "event-link" }, e.event_name)),
      el("td", {}, e.correlation_key || "—"),
      el("td", { class: `outcome outcome-${e.status}`, testid: "event-outcome-cell" }, outcome(e)),
    ),
  );
  if (append) $("events-body").append(...rows);
  else $("events-body").replaceChildren(...rows);
  state.cursor = answer.nextCursor || null;
  show($("events-more"), Boolean(state.cursor));
  show($("events-empty"), $("events-body").childElementCount === 0);
}

async function loadDeadLetters() {
  let answer;
  try {
    answer = await api("/api/workflow/events/dead-letters?limit=50");
  } catch (err) {
    setError($("dlq-error"), `Could not read the dead-letter queue: ${err.describe()}`);
    return;
  }
  setError($("dlq-error"), "");
  const letters = answer.deadLetters || [];
  $("dlq-body").replaceChildren(
    ...letters.map((d) =>
      el(
        "tr",
        { testid: "dlq-row", "data-reason": d.reason || "" },
        el("td", { class: "nowrap" }, timeCell(d.receivedAt)),
        el("td", {}, el("code", {}, d.reason || "—")),
        el("td", { testid: "dlq-detail" }, d.detail || "—"),
        el("td", {}, [d.eventName, d.eventId].filter(Boolean).join(" · ") || "—"),
        el("td", {}, el("code", {}, d.originalSubject || d.subject)),
        el(
          "td",
          {},
          d.bodyIsJson
            ? el("details", {}, el("summary", {}, `${d.bodyBytes} bytes (JSON)`), jsonBlock(d.body))
            : `${d.bodyBytes} bytes, not JSON (not shown)`,
        ),
      ),
    ),
  );
  show($("dlq-empty"), letters.length === 0);
}

function resumedRuns(e) {
  if (e.signaled_run_ids && e.signaled_run_ids.length) return e.signaled_run_ids;
  const started = e.started_run_ids || [];
  return e.matched_run_id && !started.includes(e.matched_run_id) ? [e.matched_run_id] : [];
}

async function openEvent(eventId) {
  showView("event");
  state.eventId = eventId;
  $("event-id").textContent = eventId;
  show($("event-body"), false);
  let e;
  try {
    e = await api(`/api/workflow/events/${encodeURIComponent(eventId)}`);
  } catch (err) {
    if (state.eventId !== eventId) return;
    setError(
      $("event-load-error"),
      err.status === 404 ? `Event not found: no event ${eventId} in this tenant.` : `Could not load the event: ${err.describe()}`,
    );
    return;
  }
  if (state.eventId !== eventId) return;
  setError($("event-load-error"), "");
  $("event-outcome").textContent = `${e.event_name}: ${outcome(e)}.`;
  const runs = (ids) => (ids && ids.length ? el("span", { class: "run-list" }, ...ids.flatMap((id) => [shortRunLink(id), " "])) : "—");
  factList($("event-facts"), [
    ["Name", e.event_name, "event-name"],
    ["Type", e.event_type || "—", "event-type"],
    ["Correlation key", e.correlation_key || "—", "event-key"],
    ["All keys", (e.correlation_keys || []).join(", ") || "—", "event-keys"],
    ["Received", timeCell(e.created_at), "event-received"],
    ["Routed", timeCell(e.processed_at), "event-routed"],
    ["Resumed runs", runs(resumedRuns(e)), "event-resumed"],
    ["Started runs", runs(e.started_run_ids), "event-started"],
    ["Error", e.error_message || "—", "event-error"],
    ["Payload schema", e.payload_schema_ref || "—", "event-schema"],
  ]);
  $("event-payload").textContent = prettyJson(e.payload);
  show($("event-body"), true);
}

$("events-filters").addEventListener("submit", applyEventFilters);
$("events-more").addEventListener("click", () => loadEvents(true));
registerPage("events", openEvents);
