// Human tasks: the inbox (`#/tasks?status=&runId=&q=`) and a task's page (`#/tasks/<taskId>`),
// whose form is built from the task's `form_schema` and completes it; the run then resumes.

import { readForm, schemaForm, showRefusal } from "./forms.js";
import {
  $,
  api,
  el,
  factList,
  prettyJson,
  registerPage,
  setError,
  shortLink,
  shortRunLink,
  show,
  showView,
  statusBadge,
  timeCell,
  UUID,
} from "./studio.js";

const STATUSES = ["PENDING", "COMPLETED", "CANCELED"];
const state = { seq: 0, taskId: null, form: null };

function openTasks(parts, params) {
  if (parts.length === 2) {
    openTask(parts[1]);
    return;
  }
  showView("tasks");
  const status = params.has("status") ? params.get("status") : "PENDING";
  $("tasks-status").value = STATUSES.includes(status) ? status : "";
  $("tasks-run").value = params.get("runId") || "";
  $("tasks-text").value = params.get("q") || "";
  loadTasks();
}

function applyTaskFilters(event) {
  event.preventDefault();
  const q = new URLSearchParams({ status: $("tasks-status").value });
  const runId = $("tasks-run").value.trim();
  const text = $("tasks-text").value.trim();
  if (runId) q.set("runId", runId);
  if (text) q.set("q", text);
  location.hash = `#/tasks?${q}`;
}

async function loadTasks() {
  const seq = ++state.seq;
  const q = new URLSearchParams({ limit: "200" });
  if ($("tasks-status").value) q.set("status", $("tasks-status").value);
  const runId = $("tasks-run").value.trim();
  if (runId) q.set("runId", runId);
  let answer;
  try {
    answer = await api(`/api/workflow/tasks?${q}`);
  } catch (err) {
    if (seq === state.seq) setError($("tasks-error"), `Could not load tasks: ${err.describe()}`);
    return;
  }
  if (seq !== state.seq) return;
  setError($("tasks-error"), "");
  const text = $("tasks-text").value.trim().toLowerCase();
  const tasks = (answer.tasks || []).filter(
    (t) => !text || `${t.title || ""} ${t.task_type || ""}`.toLowerCase().includes(text),
  );
  $("tasks-body").replaceChildren(
    ...tasks.map((t) =>
      el(
        "tr",
        { testid: "task-row", "data-task-id": t.task_id, "data-status": t.status },
        el("td", {}, el("a", { href: `#/tasks/${t.task_id}`, testid: "task-link" }, t.title || "(untitled)")),
        el("td", {}, t.task_type || "—"),
        el("td", {}, statusBadge(t.status)),
        el("td", { class: "nowrap" }, shortRunLink(t.run_id, "task-run-link")),
        el("td", {}, el("code", {}, t.step_path || "")),
        el("td", { class: "nowrap" }, timeCell(t.created_at)),
      ),
    ),
  );
  show($("tasks-empty"), tasks.length === 0);
}

async function openTask(taskId) {
  showView("task");
  state.taskId = taskId;
  show($("task-body"), false);
  $("task-message").textContent = "";
  setError($("task-form-error"), "");
  if (!UUID.test(taskId)) {
    $("task-title").textContent = "Task";
    setError($("task-load-error"), "That is not a task id.");
    return;
  }
  let task;
  try {
    task = await api(`/api/workflow/tasks/${encodeURIComponent(taskId)}`);
  } catch (err) {
    if (state.taskId !== taskId) return;
    $("task-title").textContent = "Task";
    setError(
      $("task-load-error"),
      err.status === 404 ? `Task not found: no task ${taskId} in this tenant.` : `Could not load the task: ${err.describe()}`,
    );
    return;
  }
  if (state.taskId !== taskId) return;
  setError($("task-load-error"), "");
  renderTask(task);
  show($("task-body"), true);
}

function renderTask(task) {
  $("task-title").textContent = task.title || "(untitled task)";
  factList($("task-facts"), [
    ["Status", statusBadge(task.status), "task-status"],
    ["Type", task.task_type || "—", "task-type"],
    ["Run", shortRunLink(task.run_id, "task-run"), "task-run-fact"],
    ["Step", el("code", {}, task.step_path || "—"), "task-step"],
    ["Created", timeCell(task.created_at), "task-created"],
    ["Completed", timeCell(task.completed_at), "task-completed"],
    ["Task id", shortLink(`#/tasks/${task.task_id}`, task.task_id, "task-id"), "task-id-fact"],
  ]);
  $("task-description").textContent = task.description || "";
  show($("task-description"), Boolean(task.description));
  const hasContext = task.context_data !== null && task.context_data !== undefined;
  show($("task-context-section"), hasContext);
  $("task-context").textContent = hasContext ? prettyJson(task.context_data) : "";
  const pending = task.status === "PENDING";
  show($("task-form-section"), pending);
  show($("task-response-section"), !pending && task.response_json !== null && task.response_json !== undefined);
  $("task-response").textContent = prettyJson(task.response_json);
  if (pending) {
    state.form = schemaForm(task.form_schema || {});
    $("task-fields").replaceChildren(state.form.node);
  }
}

async function completeTask(event) {
  event.preventDefault();
  const taskId = state.taskId;
  const payload = readForm(state.form, $("task-form-error"));
  if (payload === undefined) return;
  $("task-submit").disabled = true;
  try {
    const answer = await api(`/api/workflow/tasks/${encodeURIComponent(taskId)}/complete`, {
      method: "POST",
      body: { payload },
    });
    $("task-message").replaceChildren(
      "Task completed — the run resumes. ",
      el("a", { href: `#/runs/${answer.runId}`, testid: "task-done-run" }, "Open the run"),
    );
    const task = await api(`/api/workflow/tasks/${encodeURIComponent(taskId)}`);
    if (state.taskId === taskId) renderTask(task);
  } catch (err) {
    showRefusal(state.form, $("task-form-error"), "Not completed", err);
  } finally {
    $("task-submit").disabled = false;
  }
}

$("tasks-filters").addEventListener("submit", applyTaskFilters);
$("task-form").addEventListener("submit", completeTask);
registerPage("tasks", openTasks);
