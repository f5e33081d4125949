// The page's watching: one watch() of the client module (taskcast.js) per unfinished task.
// The module chooses the transport, falls back, resumes and caps the streams; this file applies
// its states to the task list and shows its transport and link state.
//
//   watch(task) ─▶ client.watch(id, { transport: choice, lastSeq: task.seq })
//                    ├─ onState ─▶ deliver ─▶ applyEvent (seq must grow) ─▶ render, save
//                    ├─ onTransport, onLink ─▶ render
//                    └─ done rejects ─▶ 404: the task is gone; 401: stop every watch

import { client, describeError, getTask } from "./api.js";
import { applyEvent, isTerminal, newestFirst, save, tasks } from "./store.js";
import { renderTask, renderTransport, showMessage } from "./view.js";

const CHOICES = ["sse", "websocket", "polling"];

const watchers = new Map();
let choice = "auto";

client.socket().onChange(renderTransportState);

export function setChoice(value) {
  choice = CHOICES.includes(value) ? value : "auto";
  client.autoTransport = "sse"; // a new choice tries the whole chain again
  rewatchAll();
}

export function watch(task) {
  unwatch(task.task_id);
  if (isTerminal(task) || task.gone) return;
  const watcher = client.watch(task.task_id, {
    transport: choice,
    lastSeq: task.seq,
    onState: (state, via) => deliver(task.task_id, state, via),
    onTransport: (transport) => showTransport(task, transport),
    onLink: (state) => setLink(task, state),
  });
  watchers.set(task.task_id, watcher);
  watcher.done.catch((error) => {
    if (watchers.get(task.task_id) === watcher) watchFailed(task, error);
  });
  renderTransportState();
}

export function ensureWatched(task) {
  if (!watchers.has(task.task_id)) watch(task);
}

export function rewatchAll() {
  for (const task of newestFirst()) watch(task);
  renderTransportState();
}

export function unwatch(taskId) {
  const watcher = watchers.get(taskId);
  if (!watcher) return;
  watchers.delete(taskId);
  watcher.stop();
  setLink(tasks.get(taskId), "");
  renderTransportState();
}

export function reconnectNow() {
  client.socket().reconnectNow();
}

/** One plain GET (after a refused cancel, say): applies the state, or marks the task gone. */
export async function refresh(task) {
  let answer;
  try {
    answer = await getTask(task.task_id);
  } catch {
    return; // unreachable: its watch, if any, reconnects by itself
  }
  if (answer.status === 200) deliver(task.task_id, answer.data, "get");
  else if (answer.status === 404) markGone(task);
  else if (answer.status === 401 || answer.status === 403) authFailed();
}

/** Applies an event or snapshot from any source; returns true when it changed the task. */
export function deliver(taskId, data, via) {
  const task = tasks.get(taskId);
  if (!task || !applyEvent(task, data, via)) return false;
  task.gone = false;
  if (isTerminal(task)) unwatch(taskId);
  renderTask(task);
  save();
  return true;
}

function watchFailed(task, error) {
  if (error.status === 404) markGone(task);
  else authFailed();
}

function markGone(task) {
  unwatch(task.task_id);
  task.gone = true;
  renderTask(task);
  save();
}

/** A rejected key is rejected for every task: stop them all until the key changes. */
function authFailed() {
  for (const taskId of [...watchers.keys()]) {
    unwatch(taskId);
    setLink(tasks.get(taskId), "auth");
  }
  showMessage(describeError({ status: 401 }), "error");
}

function showTransport(task, transport) {
  task.transport = transport;
  renderTask(task);
  renderTransportState();
}

function setLink(task, state) {
  if (!task) return;
  task.link = state;
  renderTask(task);
}

function renderTransportState() {
  const socket = client.socket();
  renderTransport({
    choice,
    resolved: choice === "auto" ? client.autoTransport : choice,
    socket: socket.state,
    subscribed: socket.size,
  });
}
