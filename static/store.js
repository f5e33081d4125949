// The page's task list: one plain object per task, kept in localStorage so a reload
// shows the same list and resumes watching the tasks that have not ended.

import { keepTokens } from "./api.js";
import { TERMINAL } from "./taskcast.js";

const STORAGE_KEY = "taskcast.tasks.v1";
const MAX_TASKS = 50;
const MAX_TIMELINE = 100;
const EVENT_FIELDS = ["status", "kind", "progress", "attempts", "result", "error", "created_at", "updated_at", "run_at"];

/** task_id -> task. Fields not persisted: link (live connection state). */
export const tasks = new Map();

export function isTerminal(task) {
  return TERMINAL.has(task.status);
}

export function newestFirst() {
  return [...tasks.values()].sort((a, b) => b.addedAt - a.addedAt);
}

/** A task from the answer to POST /tasks (202 PENDING, or 200 DONE from the cache). */
export function taskFromSubmit(body, answer) {
  const task = {
    task_id: String(answer.task_id),
    prompt: body.prompt,
    params: body.params,
    kind: body.kind ?? "default",
    run_at: answer.run_at ?? null,
    addedAt: Date.now(),
    status: typeof answer.status === "string" ? answer.status : "PENDING",
    progress: null,
    attempts: null,
    result: answer.result ?? null,
    error: null,
    seq: null,
    created_at: null,
    updated_at: null,
    cached: answer.cached === true,
    transport: answer.cached === true ? "cache" : null,
    timeline: [],
    gone: false,
    link: "",
  };
  if (task.cached) addTimeline(task, { seq: null, via: "cache" });
  return task;
}

/**
 * Apply one event (or GET snapshot). Every event carries the whole state at its seq,
 * so only a larger seq than the last applied one may change anything.
 * Returns true when the task changed.
 */
export function applyEvent(task, event, via) {
  const seq = Number(event?.seq);
  if (event?.seq === null || event?.seq === undefined || !Number.isFinite(seq)) return false;
  if (task.seq !== null && seq <= task.seq) return false;
  for (const field of EVENT_FIELDS) {
    if (Object.hasOwn(event, field)) task[field] = event[field];
  }
  task.seq = seq;
  addTimeline(task, { seq, via });
  return true;
}

function addTimeline(task, { seq, via }) {
  task.timeline.push({
    at: Date.now(),
    seq,
    status: task.status,
    progress: task.progress,
    attempts: task.attempts,
    via,
  });
  if (task.timeline.length > MAX_TIMELINE) task.timeline.splice(0, task.timeline.length - MAX_TIMELINE);
}

/** Adds a task (or refreshes one the server answered with again); returns ids dropped to stay small. */
export function addTask(task) {
  const known = tasks.get(task.task_id);
  if (known) {
    mergeResubmit(known, task);
  } else {
    tasks.set(task.task_id, task);
  }
  save();
  return pruneOldFinished();
}

function mergeResubmit(known, fresh) {
  known.addedAt = fresh.addedAt;
  if (!fresh.cached || isTerminal(known)) return;
  known.cached = true;
  known.status = fresh.status;
  known.result = fresh.result;
  known.timeline.push(...fresh.timeline);
}

function pruneOldFinished() {
  const dropped = [];
  const finishedOldestFirst = newestFirst().filter(isTerminal).reverse();
  while (tasks.size > MAX_TASKS && finishedOldestFirst.length) {
    const task = finishedOldestFirst.shift();
    tasks.delete(task.task_id);
    dropped.push(task.task_id);
  }
  return dropped;
}

export function removeTask(taskId) {
  tasks.delete(taskId);
  save();
}

let saveTimer = 0;

/** Coalesces the many saves a burst of events would cause. */
export function save() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(saveNow, 200);
}

export function saveNow() {
  clearTimeout(saveTimer);
  const list = newestFirst().map(({ link, ...rest }) => rest);
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(list));
    keepTokens(list.map((task) => task.task_id));
  } catch {
    // Storage full or disabled: the page keeps working from memory.
  }
}

export function load() {
  let list = [];
  try {
    list = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "[]");
  } catch {
    list = [];
  }
  if (!Array.isArray(list)) return;
  for (const task of list) {
    if (typeof task?.task_id !== "string" || !Array.isArray(task.timeline)) continue;
    tasks.set(task.task_id, { ...task, link: "" });
  }
}
