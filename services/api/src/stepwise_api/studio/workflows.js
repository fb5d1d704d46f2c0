// Workflows: the list (`#/workflows`) with their 24-hour figures, and a workflow's page
// (`#/workflows/<id>`): versions, the definition as an outline of steps, validation issues,
// pause/unpause, and a launch form built from the payload schema of the latest version.

import { readForm, schemaForm, showRefusal } from "./forms.js";
import {
  $,
  api,
  el,
  factList,
  registerPage,
  setError,
  show,
  showView,
  timeCell,
  UUID,
} from "./studio.js";

const state = { seq: 0, workflowId: null, workflow: null, form: null, cursor: null };

function openWorkflows(parts) {
  if (parts.length === 2) {
    openWorkflow(parts[1]);
    return;
  }
  showView("workflows");
  state.cursor = null;
  loadWorkflows(false);
}

function percent(part, whole) {
  if (!whole) return "—";
  return `${Math.round((100 * part) / whole)} %`;
}

async function loadWorkflows(append) {
  const seq = ++state.seq;
  const q = new URLSearchParams({ limit: "100" });
  if (append && state.cursor) q.set("cursor", state.cursor);
  let answer;
  try {
    answer = await api(`/api/workflow-definitions?${q}`);
  } catch (err) {
    if (seq === state.seq) setError($("workflows-error"), `Could not load workflows: ${err.describe()}`);
    return;
  }
  if (seq !== state.seq) return;
  setError($("workflows-error"), "");
  const rows = (answer.definitions || []).map((d) =>
    el(
      "tr",
      { testid: "workflow-row", "data-workflow-id": d.workflow_id, "data-paused": String(d.is_paused) },
      el("td", {}, el("a", { href: `#/workflows/${d.workflow_id}`, testid: "workflow-link" }, d.name || "(unnamed)")),
      el("td", {}, d.key ? el("code", {}, d.key) : "—"),
      el("td", {}, d.latest_published_version ? `v${d.latest_published_version}` : "—"),
      el("td", {}, d.status),
      el("td", { testid: "workflow-row-paused" }, d.is_paused ? "paused" : "no"),
      el("td", {}, String(d.runs_24h ?? 0)),
      el("td", { testid: "workflow-row-failure-rate" }, percent(d.failed_24h ?? 0, d.runs_24h ?? 0)),
      el("td", {}, validationBadge(d.validation_status)),
    ),
  );
  if (append) $("workflows-body").append(...rows);
  else $("workflows-body").replaceChildren(...rows);
  state.cursor = answer.nextCursor || null;
  show($("workflows-more"), Boolean(state.cursor));
  show($("workflows-empty"), $("workflows-body").childElementCount === 0);
}

function validationBadge(status) {
  const kind = { valid: "succeeded", warning: "waiting", error: "failed" }[status] || "canceled";
  return el("span", { class: `badge status-${kind}` }, status || "not validated");
}

async function openWorkflow(workflowId) {
  showView("workflow");
  state.workflowId = workflowId;
  show($("workflow-body"), false);
  show($("workflow-paused"), false);
  $("workflow-message").textContent = "";
  setError($("workflow-error"), "");
  if (!UUID.test(workflowId)) {
    $("workflow-title").textContent = "Workflow";
    setError($("workflow-load-error"), "That is not a workflow id.");
    return;
  }
  await loadWorkflow(workflowId, true);
}

async function loadWorkflow(workflowId, rebuildForm) {
  let workflow;
  let version = null;
  try {
    workflow = await api(`/api/workflow-definitions/${encodeURIComponent(workflowId)}`);
    if (workflow.latest_published_version) {
      version = await api(
        `/api/workflow-definitions/${encodeURIComponent(workflowId)}/versions/${workflow.latest_published_version}`,
      );
    }
  } catch (err) {
    if (state.workflowId !== workflowId) return;
    $("workflow-title").textContent = "Workflow";
    setError(
      $("workflow-load-error"),
      err.status === 404
        ? `Workflow not found: no workflow ${workflowId} in this tenant.`
        : `Could not load the workflow: ${err.describe()}`,
    );
    return;
  }
  if (state.workflowId !== workflowId) return;
  setError($("workflow-load-error"), "");
  state.workflow = workflow;
  renderWorkflow(workflow, version, rebuildForm);
  show($("workflow-body"), true);
}

function renderWorkflow(wf, version, rebuildForm) {
  $("workflow-title").textContent = wf.name || "(unnamed workflow)";
  show($("workflow-paused"), Boolean(wf.is_paused));
  show($("workflow-pause"), !wf.is_paused);
  show($("workflow-unpause"), Boolean(wf.is_paused));
  $("workflow-runs-link").href = `#/runs?workflow=${encodeURIComponent(wf.workflow_id)}`;
  factList($("workflow-facts"), [
    ["Workflow id", wf.workflow_id, "wf-id"],
    ["Key", wf.key || "—", "wf-key"],
    ["Status", wf.status, "wf-status"],
    ["Latest version", wf.latest_published_version ? `v${wf.latest_published_version}` : "not published", "wf-latest"],
    ["Draft version", wf.draft_version ?? "—", "wf-draft"],
    ["Paused", wf.is_paused ? "yes: launches and event triggers are refused" : "no", "wf-paused"],
    ["Concurrency limit", wf.concurrency_limit ?? "none", "wf-concurrency"],
    ["Trigger", wf.trigger_event_name ? `event ${wf.trigger_event_name}` : "API launches only", "wf-trigger"],
    ["Payload schema", wf.payload_schema_ref || "any object", "wf-schema"],
    ["Updated", timeCell(wf.updated_at), "wf-updated"],
  ]);
  renderValidation(wf);
  const definition = version ? version.definition_json : wf.draft_definition;
  $("outline-source").textContent = version
    ? `The steps of v${version.version} (published).`
    : "The steps of the draft (not published).";
  $("outline").replaceChildren(outline(definition && definition.steps));
  $("versions-body").replaceChildren(
    ...(wf.versions || []).map((v) =>
      el(
        "tr",
        { testid: "version-row" },
        el("td", {}, `v${v.version}`),
        el("td", {}, timeCell(v.published_at)),
        el("td", {}, el("code", {}, String(v.definition_hash || "").slice(0, 16))),
      ),
    ),
  );
  show($("versions-empty"), !(wf.versions || []).length);
  show($("launch-section"), Boolean(version));
  if (version && rebuildForm) {
    const schema = version.payload_schema_json;
    $("launch-schema").textContent = wf.payload_schema_ref
      ? `Payload checked against ${wf.payload_schema_ref} by the API.`
      : "Any JSON object.";
    state.form = schemaForm(schema && typeof schema === "object" ? schema : {});
    $("launch-fields").replaceChildren(state.form.node);
    setError($("launch-error"), "");
  }
}

function renderValidation(wf) {
  const errors = wf.validation_errors || [];
  const warnings = wf.validation_warnings || [];
  const status = wf.validation_status || "not validated";
  $("validation-status").replaceChildren(validationBadge(wf.validation_status), ` ${status === "valid" ? "The draft is valid." : `${errors.length} error(s), ${warnings.length} warning(s) in the draft.`}`);
  $("validation-issues").replaceChildren(
    ...[...errors, ...warnings].map((issue) =>
      el(
        "li",
        { testid: "validation-issue", class: issue.severity === "error" ? "error" : "" },
        `${issue.severity || "issue"} ${issue.code || ""}: ${issue.message || ""}`,
        issue.stepPath ? el("code", {}, ` at ${issue.stepPath}`) : null,
      ),
    ),
  );
}

// Child step lists of a step: `then`/`else` (control.if), `try`/`catch` (control.tryCatch),
// `body` (control.forEach), and `steps`/`branches` wherever a step type keeps them.
const CHILD_LISTS = ["then", "else", "try", "catch", "body", "steps"];

function childLists(step) {
  const out = [];
  for (const holder of [step || {}, (step && step.config) || {}]) {
    for (const name of CHILD_LISTS) {
      if (Array.isArray(holder[name])) out.push([name, holder[name]]);
    }
    if (Array.isArray(holder.branches)) {
      holder.branches.forEach((branch, i) => {
        const steps = Array.isArray(branch) ? branch : branch && branch.steps;
        if (Array.isArray(steps)) out.push([`branches[${i}]`, steps]);
      });
    }
  }
  return out;
}

function outline(steps) {
  if (!Array.isArray(steps) || !steps.length) return el("p", { class: "muted" }, "No steps.");
  return el(
    "ul",
    { class: "tree", role: "tree" },
    ...steps.map((step) => {
      const children = childLists(step);
      const head = [el("strong", {}, (step && step.id) || "(no id)"), " ", el("span", { class: "muted" }, (step && step.type) || "?")];
      if (!children.length) return el("li", { role: "treeitem", testid: "outline-step" }, ...head);
      return el(
        "li",
        { role: "treeitem", testid: "outline-step" },
        el(
          "details",
          { open: true },
          el("summary", {}, ...head),
          ...children.map(([name, list]) => el("div", { class: "branch" }, el("span", { class: "hint" }, name), outline(list))),
        ),
      );
    }),
  );
}

async function setPaused(paused) {
  const workflowId = state.workflowId;
  setError($("workflow-error"), "");
  for (const id of ["workflow-pause", "workflow-unpause"]) $(id).disabled = true;
  try {
    await api(`/api/workflow-definitions/${encodeURIComponent(workflowId)}`, {
      method: "PATCH",
      body: { isPaused: paused },
    });
    $("workflow-message").textContent = paused
      ? "Paused: new launches are refused."
      : "Unpaused: launches are accepted again.";
    await loadWorkflow(workflowId, false);
  } catch (err) {
    setError($("workflow-error"), `Could not ${paused ? "pause" : "unpause"}: ${err.describe()}`);
  } finally {
    for (const id of ["workflow-pause", "workflow-unpause"]) $(id).disabled = false;
  }
}

async function launch(event) {
  event.preventDefault();
  setError($("launch-error"), "");
  const payload = readForm(state.form, $("launch-error"));
  if (payload === undefined) return;
  $("launch-submit").disabled = true;
  try {
    const answer = await api("/api/workflow-runs", {
      method: "POST",
      body: { workflowId: state.workflowId, payload },
    });
    location.hash = `#/runs/${answer.runId}`;
  } catch (err) {
    showRefusal(state.form, $("launch-error"), "Not launched", err);
  } finally {
    $("launch-submit").disabled = false;
  }
}

$("workflow-pause").addEventListener("click", () => setPaused(true));
$("workflow-unpause").addEventListener("click", () => setPaused(false));
$("launch-form").addEventListener("submit", launch);
$("workflows-more").addEventListener("click", () => loadWorkflows(true));
registerPage("workflows", openWorkflows);
