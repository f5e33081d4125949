// Chooses a transport per task and owns its watching session.
//
//   watch(task) ─▶ SSE (one EventSource, at most SLOT_COUNT at once)
//              ├─▶ WebSocket (one shared /ws socket, taskcast.js's Mux)
//              └─▶ polling (long-poll, shares the SSE slots)
//   any transport ─▶ deliver(event) ─▶ applyEvent (seq must grow) ─▶ render, save
//                                      └─ terminal ─▶ unwatch
//
// When a transport fails, refresh() does one plain GET to learn why: 401 stops all
// watching until the key changes, 404 marks the task gone, a reachable server with a
// silent stream makes auto mode fall back (SSE → WebSocket → polling), and an
// unreachable one means "wait and reconnect".

import { describeError, getTask, watchToken, wsUrl } from "./api.js";
import { Backoff } from "./backoff.js";
import { Slots } from "./slots.js";
import { Mux } from "./taskcast.js";
import { pollTask } from "./poll.js";
import { openSse } from "./sse.js";
import { applyEvent, isTerminal, newestFirst, save, tasks } from "./store.js";
import { renderTask, renderTransport, showMessage } from "./view.js";

const LEVELS = ["sse", "websocket", "polling"];
// Browsers open about 6 HTTP/1.1 connections per host; keep 2 free for POST, DELETE and GET.
const SLOT_COUNT = 4;

const slots = new Slots(SLOT_COUNT);
const sessions = new Map();
const backoffs = new Map();
let choice = "auto";
let autoLevel = "sse";
let probingSocket = false;

const mux = new Mux({
  // A server with API_KEY admits /ws with any valid watch token; each subscribe frame then
  // carries the token of its own task.
  url: (taskIds) => wsUrl("/ws", { token: taskIds.map(watchToken).find(Boolean) }),
  tokenOf: watchToken,
  seqOf: (taskId) => tasks.get(taskId)?.seq ?? null,
  onEvent: socketEvent,
  onControl: socketControl,
  onDrop: socketDropped,
  onState: renderTransportState,
});

export function setChoice(value) {
  choice = LEVELS.includes(value) ? value : "auto";
  autoLevel = "sse";
  rewatchAll();
}

export function watch(task) {
  unwatch(task.task_id);
  if (isTerminal(task) || task.gone) return;
  start(task, resolveKind());
}

export function ensureWatched(task) {
  if (!sessions.has(task.task_id)) watch(task);
}

export function rewatchAll() {
  for (const task of newestFirst()) watch(task);
  renderTransportState();
}

export function unwatch(taskId, { ended = false } = {}) {
  const session = sessions.get(taskId);
  if (!session) return;
  sessions.delete(taskId);
  session.stopped = true;
  session.stop({ ended });
  if (ended) backoffs.delete(taskId);
  const task = tasks.get(taskId);
  if (task) setLink(task, "");
  renderTransportState();
}

export function reconnectNow() {
  mux.reconnectNow();
}

/** One plain GET: applies the state and reports "ok", "gone", "auth" or "down". */
export async function refresh(task) {
  let answer;
  try {
    answer = await getTask(task.task_id);
  } catch {
    return "down";
  }
  if (answer.status === 200) {
    deliver(task.task_id, answer.data, "get");
    return "ok";
  }
  if (answer.status === 404) return markGone(task);
  if (answer.status === 401 || answer.status === 403) return authFailed();
  return "down";
}

/** Applies an event or snapshot from any source; returns true when it changed the task. */
export function deliver(taskId, data, via) {
  const task = tasks.get(taskId);
  if (!task || !applyEvent(task, data, via)) return false;
  task.gone = false;
  backoffs.get(taskId)?.reset();
  if (isTerminal(task)) unwatch(taskId, { ended: true });
  renderTask(task);
  save();
  return true;
}

function resolveKind() {
  if (choice !== "auto") return choice;
  // More SSE streams than slots would queue; the shared socket costs no extra connection.
  if (autoLevel === "sse" && !slots.hasFree()) return "websocket";
  return autoLevel;
}

function start(task, kind) {
  if (kind === "sse") startSse(task);
  else if (kind === "websocket") startSocket(task);
  else startPolling(task);
  renderTransportState();
}

function beginSession(task, kind) {
  const session = { kind, stopped: false, abort: new AbortController(), stop: () => {} };
  sessions.set(task.task_id, session);
  task.transport = kind;
  setLink(task, "connecting");
  return session;
}

function startSse(task) {
  const session = beginSession(task, "sse");
  session.stop = () => {
    session.abort.abort();
    clearTimeout(session.timer);
    session.source?.stop();
    session.release?.();
  };
  const open = (release) => {
    if (!release) return;
    if (session.stopped) return release();
    session.release = release;
    session.source = openSse(task, sseHooks(task, session));
  };
  const release = slots.tryAcquire();
  if (release) return open(release);
  setLink(task, "queued");
  slots.acquire(session.abort.signal).then(open);
}

function sseHooks(task, session) {
  return {
    onEvent: (data) => deliver(task.task_id, data, "sse"),
    onTrouble: (info) => sseTrouble(task, session, info),
    setLink: linkSetter(task, session),
  };
}

async function sseTrouble(task, session, { working, closed, timedOut }) {
  if (!timedOut) setLink(task, "retrying");
  const mayFallBack = choice === "auto" && !working;
  // An open-but-retrying EventSource reconnects by itself (with Last-Event-ID).
  if ((!closed && !mayFallBack) || session.probing) return;
  session.probing = true;
  const verdict = await refresh(task);
  session.probing = false;
  if (session.stopped) return;
  if (verdict === "ok" && mayFallBack) return fallBack(task, "websocket");
  if (closed) reopenSse(task, session);
}

/** EventSource gives up on a non-200 answer (a proxy's 502, say); try again later ourselves. */
function reopenSse(task, session) {
  session.source?.stop();
  clearTimeout(session.timer);
  session.timer = setTimeout(() => {
    if (!session.stopped) session.source = openSse(task, sseHooks(task, session));
  }, backoffFor(task.task_id).next());
}

function startSocket(task) {
  const session = beginSession(task, "websocket");
  session.stop = ({ ended }) => (ended ? mux.forget(task.task_id) : mux.unsubscribe(task.task_id));
  mux.subscribe(task.task_id);
}

function socketEvent(frame) {
  const task = tasks.get(String(frame.task_id));
  if (!task) return;
  if (sessions.get(task.task_id)?.kind === "websocket") setLink(task, "live");
  deliver(task.task_id, frame, "websocket");
}

function socketControl(frame) {
  const task = tasks.get(String(frame.task_id));
  if (frame.op === "error") showMessage(`WebSocket: ${frame.error ?? "error"}`, "error");
  if (!task || !mux.has(task.task_id)) return;
  if (frame.op === "subscribed") setLink(task, "live");
  // An error or an unasked-for "unsubscribed" for a task we still watch: the server
  // dropped that subscription, so check the task and subscribe again.
  if (frame.op === "error" || frame.op === "unsubscribed") resubscribeLater(task);
}

function resubscribeLater(task) {
  const session = sessions.get(task.task_id);
  mux.forget(task.task_id);
  setLink(task, "retrying");
  setTimeout(async () => {
    if (session.stopped) return;
    await refresh(task);
    if (!session.stopped) mux.subscribe(task.task_id);
  }, backoffFor(task.task_id).next());
}

async function socketDropped({ everOpened }) {
  const watched = socketTasks();
  for (const task of watched) setLink(task, "retrying");
  if (!watched.length || probingSocket) return;
  probingSocket = true;
  const verdict = await refresh(watched[0]);
  probingSocket = false;
  // The server answers HTTP but the socket never opened: WebSocket is blocked on the way.
  if (verdict !== "ok" || everOpened || choice !== "auto") return;
  for (const task of socketTasks()) fallBack(task, "polling");
}

function socketTasks() {
  return [...sessions]
    .filter(([, session]) => session.kind === "websocket")
    .map(([taskId]) => tasks.get(taskId))
    .filter(Boolean);
}

function startPolling(task) {
  const session = beginSession(task, "polling");
  session.stop = () => session.abort.abort();
  const hooks = {
    slots,
    onEvent: (data) => deliver(task.task_id, data, "polling"),
    onGone: () => markGone(task),
    onAuth: () => authFailed(),
    setLink: linkSetter(task, session),
  };
  pollTask(task, hooks, session.abort.signal);
}

function fallBack(task, kind) {
  if (LEVELS.indexOf(kind) > LEVELS.indexOf(autoLevel)) autoLevel = kind;
  unwatch(task.task_id);
  start(task, kind);
}

function markGone(task) {
  unwatch(task.task_id);
  task.gone = true;
  renderTask(task);
  save();
  return "gone";
}

/** A rejected key is rejected for every task: stop them all until the key changes. */
function authFailed() {
  for (const taskId of [...sessions.keys()]) {
    unwatch(taskId);
    setLink(tasks.get(taskId), "auth");
  }
  showMessage(describeError({ status: 401 }), "error");
  return "auth";
}

function setLink(task, state) {
  if (!task) return;
  task.link = state;
  renderTask(task);
}

/** Transports report link states; a stopped session must not overwrite its successor's. */
function linkSetter(task, session) {
  return (state) => {
    if (!session.stopped) setLink(task, state);
  };
}

function backoffFor(taskId) {
  if (!backoffs.has(taskId)) backoffs.set(taskId, new Backoff(1000, 30000));
  return backoffs.get(taskId);
}

function renderTransportState() {
  renderTransport({
    choice,
    resolved: choice === "auto" ? autoLevel : choice,
    socket: mux.state,
    subscribed: mux.subs.size,
  });
}
