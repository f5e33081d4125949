// The operations page: one WebSocket (link.js) feeds every panel; clicks send ops or one-off requests.
//
//   stats frame (every second) ─▶ counters, charts, workers, row ages
//   rows frame                 ─▶ the task list (replace | append | prepend)
//   task frame                 ─▶ that row, and the timeline when it is the open task
//   closed ─▶ banner "disconnected", reconnect with backoff ─▶ open ─▶ list again (resync)

import { getApiKey, setApiKey } from "../api.js";
import { cancel, deadLetters, requeue, resubmit } from "./actions.js";
import { Link } from "./link.js";
import { showStats } from "./stats.js";
import { TaskList } from "./tasks.js";
import { Timeline } from "./timeline.js";

const $ = (id) => document.getElementById(id);

const timeline = new Timeline(() => {});
const list = new TaskList({
  open: (id) => openTimeline(id),
  cancel: (id) => act(cancel(id)),
  resubmit: (id) => act(resubmit(id)),
  requeue: (id) => act(requeue(id)),
});
const link = new Link({ onFrame, onOpen, onDown, onUnauthorized });

function onFrame(frame) {
  switch (frame.type) {
    case "stats":
      if (!frame.redis_ok) banner(`The API cannot reach Redis: ${frame.error}`);
      else if ($("link").dataset.state === "live") banner("");
      showStats(frame);
      list.tick(frame.time);
      kindOptions(Object.keys(frame.kinds ?? {}));
      break;
    case "rows":
      list.applyRows(frame);
      break;
    case "task":
      list.applyTask(frame.state);
      timeline.apply(frame.state);
      break;
    case "timeline":
      timeline.apply(frame.state);
      break;
    case "error":
      notice(frame.detail, false);
      break;
  }
}

function onOpen() {
  linkState("live", "Live");
  banner("");
  $("key-form").hidden = true;
  sendFilter();
  if (timeline.taskId) link.send({ op: "timeline", task_id: timeline.taskId });
}

function onDown({ attempt, delayMs, reason }) {
  linkState("down", "Disconnected");
  banner(`Disconnected from the API (${reason}). Reconnecting in ${Math.ceil(delayMs / 1000)} s (attempt ${attempt})…`);
}

function onUnauthorized() {
  linkState("down", "Needs a key");
  banner(getApiKey() ? "That API key was refused. Enter the right one." : "This API needs a key. Enter it to connect.");
  $("key-form").hidden = false;
  $("api-key").focus();
}

function openTimeline(taskId) {
  timeline.open(taskId);
  link.send({ op: "timeline", task_id: taskId });
}

async function act(pending) {
  const { ok, message, status } = await pending;
  notice(message, ok);
  if (status === 401) onUnauthorized();
}

function sendFilter() {
  const op = { op: "list", status: $("filter-status").value || null, kind: $("filter-kind").value || null };
  link.send(op);
}

function kindOptions(kinds) {
  const select = $("filter-kind");
  const known = new Set([...select.options].map((o) => o.value));
  for (const kind of kinds) if (!known.has(kind)) select.append(new Option(kind, kind));
}

function linkState(state, text) {
  $("link").dataset.state = state;
  $("link").textContent = text;
}

function banner(text) {
  $("banner").textContent = text;
  $("banner").hidden = !text;
}

function notice(text, ok) {
  $("notice").textContent = text;
  $("notice").dataset.ok = String(ok);
  $("notice").hidden = !text;
}

async function showDeadLetters() {
  const panel = $("dead");
  panel.hidden = false;
  try {
    const letters = await deadLetters();
    $("dead-list").replaceChildren(...letters.map(deadLetterItem));
    $("no-dead").hidden = letters.length > 0;
  } catch (error) {
    notice(error.message, false);
  }
}

function deadLetterItem(letter) {
  const item = document.createElement("li");
  item.dataset.entryId = letter.entry_id;
  const text = document.createElement("span");
  text.textContent = `${letter.kind} · ${letter.task_id.slice(0, 8)} · ${letter.attempts} attempts · ${letter.error}`;
  const button = document.createElement("button");
  button.type = "button";
  button.className = "small";
  button.textContent = "Requeue";
  button.addEventListener("click", async () => {
    const result = await requeue(letter.entry_id);
    notice(result.message, result.ok);
    if (result.ok) item.remove();
  });
  item.append(text, button);
  return item;
}

$("filters").addEventListener("change", sendFilter);
$("filters").addEventListener("submit", (event) => event.preventDefault());
$("more").addEventListener("click", () => link.send({ op: "more" }));
$("show-dead").addEventListener("click", showDeadLetters);
$("dead-close").addEventListener("click", () => ($("dead").hidden = true));
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey($("api-key").value.trim());
  link.connect();
});

link.connect();
