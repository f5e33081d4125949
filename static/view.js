// DOM rendering. All server data goes in through textContent or dataset, never as HTML.

import { isTerminal } from "./store.js";

export const TRANSPORT_LABELS = { sse: "SSE", websocket: "WebSocket", polling: "polling", cache: "cache" };

const LINK_TEXT = {
  connecting: "connecting…",
  live: "live",
  queued: "waiting for a free connection",
  retrying: "reconnecting…",
  auth: "needs API key",
};

const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3, hour12: false,
});

const elements = new Map();

const byId = (id) => document.getElementById(id);

export function renderAll(tasksNewestFirst) {
  for (const task of tasksNewestFirst) {
    byId("tasks").append(elementFor(task));
    renderTask(task);
  }
  syncEmpty();
}

export function placeOnTop(task) {
  byId("tasks").prepend(elementFor(task));
  renderTask(task);
  syncEmpty();
}

export function removeTaskElement(taskId) {
  elements.get(taskId)?.remove();
  elements.delete(taskId);
  syncEmpty();
}

export function renderTask(task) {
  const li = elementFor(task);
  Object.assign(li.dataset, {
    status: task.status,
    seq: task.seq ?? "",
    transport: task.transport ?? "",
    cached: String(task.cached),
    link: task.link,
    gone: String(task.gone),
    kind: task.kind ?? "default",
    runAt: task.run_at ?? "",
  });
  renderHead(li, task);
  renderProgress(li, task);
  renderOutcome(li, task);
  renderTimeline(li, task);
}

function elementFor(task) {
  let li = elements.get(task.task_id);
  if (li) return li;
  li = byId("task-template").content.firstElementChild.cloneNode(true);
  li.dataset.taskId = task.task_id;
  li.querySelector(".task-id").textContent = task.task_id;
  li.querySelector(".prompt").textContent = task.prompt ?? "";
  li.querySelector(".params").textContent = [task.kind ?? "default", paramsText(task.params)].filter(Boolean).join(" · ");
  elements.set(task.task_id, li);
  return li;
}

function renderHead(li, task) {
  li.querySelector(".status").textContent = task.status;
  li.querySelector(".transport").textContent = TRANSPORT_LABELS[task.transport] ?? "—";
  const link = li.querySelector(".link");
  link.textContent = LINK_TEXT[task.link] ?? "";
  link.hidden = !link.textContent;
  li.querySelector(".cached").hidden = !task.cached;
  li.querySelector(".cancel").hidden = isTerminal(task) || task.gone;
  const created = li.querySelector(".created");
  const createdMs = typeof task.created_at === "number" ? task.created_at * 1000 : task.addedAt;
  created.dateTime = new Date(createdMs).toISOString();
  created.textContent = clock.format(createdMs);
}

function renderProgress(li, task) {
  const value = progressValue(task);
  const bar = li.querySelector(".progress");
  if (value === null) bar.removeAttribute("value");
  else bar.value = value;
  li.dataset.progress = value ?? "";
  li.querySelector(".progress-text").textContent = value === null ? "…" : percent(value);
  li.querySelector(".attempts").textContent = Number.isFinite(task.attempts) ? `attempts: ${task.attempts}` : "";
}

/** null means "unknown" and shows an indeterminate bar while the task can still move. */
function progressValue(task) {
  if (typeof task.progress === "number" && Number.isFinite(task.progress)) {
    return Math.min(1, Math.max(0, task.progress));
  }
  if (task.status === "DONE") return 1;
  return isTerminal(task) ? 0 : null;
}

function renderOutcome(li, task) {
  const result = li.querySelector(".result");
  result.hidden = task.status !== "DONE";
  result.textContent = result.hidden ? "" : prettyJson(task.result ?? null);

  const error = li.querySelector(".error");
  error.hidden = task.error === null || task.error === undefined || task.error === "";
  error.textContent = error.hidden ? "" : errorText(task.error);
  error.dataset.label = errorLabel(task);

  li.querySelector(".note").hidden = !task.gone;
}

function errorLabel(task) {
  if (task.status === "DONE") return "An earlier attempt failed";
  if (isTerminal(task)) return "Error";
  return "Last attempt failed, retrying";
}

function renderTimeline(li, task) {
  const list = li.querySelector(".timeline");
  const last = task.timeline.at(-1);
  const key = `${task.timeline.length}/${last?.at}/${last?.seq}`;
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  list.replaceChildren(...task.timeline.map(timelineItem));
  li.querySelector(".event-count").textContent = String(task.timeline.length);
}

function timelineItem(entry) {
  const item = document.createElement("li");
  item.className = "event";
  Object.assign(item.dataset, { seq: entry.seq ?? "", status: entry.status, via: entry.via });
  const time = document.createElement("time");
  time.dateTime = new Date(entry.at).toISOString();
  time.textContent = clock.format(entry.at);
  item.append(
    time,
    span("ev-status", entry.status),
    span("ev-progress", typeof entry.progress === "number" ? percent(entry.progress) : "–"),
    span("ev-seq", entry.seq === null ? "no seq" : `seq ${entry.seq}`),
    span("ev-via", entry.via),
  );
  return item;
}

export function showMessage(text, kind = "error") {
  const box = byId("message");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
}

export function clearMessage() {
  const box = byId("message");
  box.textContent = "";
  box.hidden = true;
}

/** The global transport line: the choice, what auto resolved to, and the shared socket. */
export function renderTransport({ choice, resolved, socket, subscribed }) {
  const inUse = byId("transport-in-use");
  inUse.textContent = choice === "auto"
    ? `auto → ${TRANSPORT_LABELS[resolved]}`
    : TRANSPORT_LABELS[choice];
  Object.assign(inUse.dataset, { choice, resolved });
  const socketState = byId("socket-state");
  socketState.dataset.state = socket;
  socketState.textContent = socket === "idle" ? "" : `socket ${socket}, ${subscribed} subscribed`;
}

function syncEmpty() {
  byId("empty").hidden = elements.size > 0;
}

function span(className, text) {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

function percent(value) {
  return `${Math.round(value * 100)}%`;
}

function prettyJson(value) {
  return JSON.stringify(value, null, 2);
}

function errorText(error) {
  return typeof error === "string" ? error : prettyJson(error);
}

function paramsText(params) {
  if (!params || typeof params !== "object") return "";
  return Object.entries(params).map(([name, value]) => `${name}=${value}`).join(" · ");
}
