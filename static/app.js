/*
 * taskcast demo page — entry module (served as /static/app.js, type="module").
 *
 * Modules: taskcast.js (the reusable client, with its parts in taskcast/: HTTP calls, watch()
 * with its fallback, resume and stream cap, the shared /ws socket), api.js (the page's client:
 * key and token storage, error text), store.js (task list + localStorage), watch.js (one module
 * watch() per unfinished task, applied to the list), view.js (DOM).
 *
 * DOM hooks for browser tests
 * ---------------------------
 * Form       #submit-form, #prompt (textarea), #duration, #steps, #fail (checkbox),
 *            #fail-times, #kind (text; empty = the default kind), #delay (s; empty = none), #submit. The form is novalidate: the server judges input, and
 *            a 422 marks the named fields with aria-invalid="true".
 * Settings   #transport <select> values: auto | sse | websocket | polling (kept in localStorage)
 *            #api-key (kept in localStorage; applied on "change")
 *            #transport-in-use  text "auto → SSE" / "WebSocket" …;
 *                               data-choice = the select value, data-resolved = what auto uses now
 *            #socket-state      data-state = idle | connecting | open | retrying (shared /ws socket)
 *            #clear-finished    removes finished and expired tasks from the list
 * Messages   #message  (hidden when empty) data-kind = error | info; errors of submit,
 *            cancel, auth (401/403), 413, 422 (field: msg; …), 503 (with Retry-After).
 * Task list  #tasks (newest first), #empty shown when there are none.
 *   li.task  data-task-id, data-status (PENDING|RUNNING|DONE|FAILED|CANCELLED),
 *            data-seq (last applied seq, "" before any event), data-progress ("" or 0..1),
 *            data-transport (sse|websocket|polling|cache), data-link (connecting|live|
 *            queued|retrying|auth|"" when not watching), data-cached (true|false),
 *            data-gone (true when the server answered 404), data-kind, data-run-at ("" or epoch s)
 *     .status        badge text = status
 *     .transport     label "SSE" | "WebSocket" | "polling" | "cache"; .link = live state text
 *     .cached        "from cache" mark, hidden unless cached
 *     .task-id, .prompt, .params, .created (time)
 *     progress.progress (no value attribute = unknown), .progress-text "40%", .attempts
 *     .cancel        button, hidden once terminal
 *     pre.result     pretty JSON, visible only when DONE (textContent is exactly the JSON)
 *     pre.error      error text (hidden when none); data-label says final or retrying
 *     .note          "expired or unknown" note, visible when data-gone="true"
 *     .event-count   number of timeline entries
 *     ol.timeline > li.event  data-seq, data-status, data-via (sse|websocket|polling|get|cache)
 *                    with time, .ev-status, .ev-progress, .ev-seq, .ev-via
 */

import { UNREACHABLE, cancelTask, describeError, getApiKey, setApiKey, submitTask, validationErrors } from "./api.js";
import { addTask, isTerminal, load, newestFirst, removeTask, saveNow, taskFromSubmit, tasks } from "./store.js";
import { clearMessage, placeOnTop, removeTaskElement, renderAll, showMessage } from "./view.js";
import { deliver, ensureWatched, reconnectNow, refresh, rewatchAll, setChoice, unwatch } from "./watch.js";

const TRANSPORT_STORAGE = "taskcast.transport";
const NUMBER_FIELDS = { duration: "duration", steps: "steps", fail_times: "fail-times" };
// Request field (as FastAPI names it in a 422 "loc", minus "body") -> input id.
const INPUT_FOR_FIELD = {
  prompt: "prompt",
  "params.duration": "duration",
  "params.steps": "steps",
  "params.fail": "fail",
  "params.fail_times": "fail-times",
  kind: "kind",
  delay: "delay",
};

const field = (id) => document.getElementById(id);

function init() {
  load();
  renderAll(newestFirst());
  restoreSettings();
  bindEvents();
  setChoice(field("transport").value);
}

function restoreSettings() {
  const saved = localStorage.getItem(TRANSPORT_STORAGE);
  const select = field("transport");
  if ([...select.options].some((option) => option.value === saved)) select.value = saved;
  field("api-key").value = getApiKey();
}

function bindEvents() {
  field("submit-form").addEventListener("submit", onSubmit);
  field("prompt").addEventListener("keydown", submitOnCtrlEnter);
  field("transport").addEventListener("change", onTransportChange);
  field("api-key").addEventListener("change", onApiKeyChange);
  field("tasks").addEventListener("click", onTaskClick);
  field("clear-finished").addEventListener("click", clearFinished);
  window.addEventListener("pagehide", saveNow);
  window.addEventListener("online", reconnectNow);
}

function submitOnCtrlEnter(event) {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) field("submit-form").requestSubmit();
}

async function onSubmit(event) {
  event.preventDefault();
  markInvalid([]);
  const unreadable = unreadableNumbers();
  if (unreadable.length) {
    markInvalid(unreadable);
    return showMessage(`Not a number: ${unreadable.join(", ")}`, "error");
  }
  const body = readForm();
  setSubmitting(true);
  try {
    handleSubmitAnswer(body, await submitTask(body));
  } catch {
    showMessage(UNREACHABLE, "error");
  } finally {
    setSubmitting(false);
  }
}

function readForm() {
  const params = { fail: field("fail").checked };
  for (const [name, id] of Object.entries(NUMBER_FIELDS)) {
    const text = field(id).value.trim();
    if (text !== "") params[name] = Number(text);
  }
  // fail_times is an extra of the demo handler; leave it out unless asked for.
  if (!params.fail_times) delete params.fail_times;
  const body = { prompt: field("prompt").value, params };
  const kind = field("kind").value.trim();
  const delay = field("delay").value.trim();
  if (kind) body.kind = kind;
  if (delay) body.delay = Number(delay);
  return body;
}

/** A number input holding text the browser cannot parse reports an empty value. */
function unreadableNumbers() {
  const unreadable = Object.entries(NUMBER_FIELDS)
    .filter(([, id]) => field(id).validity.badInput)
    .map(([name]) => `params.${name}`);
  return field("delay").validity.badInput ? [...unreadable, "delay"] : unreadable;
}

function handleSubmitAnswer(body, answer) {
  if (answer.status >= 200 && answer.status < 300 && answer.data?.task_id !== undefined) {
    return accept(body, answer.data);
  }
  showMessage(describeError(answer), "error");
  if (answer.status === 422) markInvalid(validationErrors(answer.data).map((error) => error.field));
}

function accept(body, answer) {
  const fresh = taskFromSubmit(body, answer);
  for (const droppedId of addTask(fresh)) removeTaskElement(droppedId);
  const task = tasks.get(fresh.task_id);
  placeOnTop(task);
  if (fresh.cached) showMessage("Served from the cache: the same request finished recently.", "info");
  else clearMessage();
  ensureWatched(task);
}

function setSubmitting(busy) {
  const button = field("submit");
  button.disabled = busy;
  button.setAttribute("aria-busy", String(busy));
}

/** Field names come from the 422 body ("prompt", "params.steps") or from unreadableNumbers. */
function markInvalid(fieldNames) {
  for (const input of field("submit-form").querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
  }
  for (const name of fieldNames) {
    if (Object.hasOwn(INPUT_FOR_FIELD, name)) field(INPUT_FOR_FIELD[name]).setAttribute("aria-invalid", "true");
  }
}

function onTransportChange() {
  const value = field("transport").value;
  localStorage.setItem(TRANSPORT_STORAGE, value);
  setChoice(value);
}

function onApiKeyChange() {
  setApiKey(field("api-key").value.trim());
  clearMessage();
  rewatchAll();
}

function onTaskClick(event) {
  const button = event.target.closest(".cancel");
  const taskId = button?.closest(".task")?.dataset.taskId;
  if (taskId) cancel(taskId, button);
}

async function cancel(taskId, button) {
  button.disabled = true;
  button.textContent = "Cancelling…";
  try {
    await handleCancelAnswer(taskId, await cancelTask(taskId));
  } catch {
    showMessage(UNREACHABLE, "error");
  } finally {
    button.disabled = false;
    button.textContent = "Cancel";
  }
}

async function handleCancelAnswer(taskId, answer) {
  const task = tasks.get(taskId);
  if (!task) return;
  if (answer.status >= 200 && answer.status < 300) {
    // CANCELLED arrives as an event on the task's stream; apply the answer too if it carries a seq.
    if (answer.data?.seq !== undefined) deliver(taskId, answer.data, "get");
    ensureWatched(task);
    return;
  }
  showMessage(describeError(answer), answer.status === 409 ? "info" : "error");
  if (answer.status === 409 || answer.status === 404) await refresh(task);
}

function clearFinished() {
  for (const task of newestFirst()) {
    if (!isTerminal(task) && !task.gone) continue;
    unwatch(task.task_id);
    removeTask(task.task_id);
    removeTaskElement(task.task_id);
  }
}

init();
