// The task list: rows as the server lists and pushes them, each updated in place as its task changes.

import { cell, duration, percent } from "./format.js";

const ACTIVE = new Set(["PENDING", "RUNNING"]);

export class TaskList {
  /** actions: open(id), cancel(id), resubmit(id), requeue(id) */
  constructor(actions) {
    this.actions = actions;
    this.body = document.querySelector("#tasks tbody");
    this.rows = new Map(); // task_id -> { state, tr }
    this.limit = 50;
    this.paged = false;
    this.now = Date.now() / 1000;
    this.body.addEventListener("click", (event) => this.clicked(event));
  }

  /** A rows frame: "replace" (a new list), "append" (older page), "prepend" (new tasks, live:
   * each placed by age, newest first, as the server keeps them). */
  applyRows({ mode, rows, next_cursor: nextCursor }) {
    if (mode === "replace") {
      this.rows.clear();
      this.body.replaceChildren();
      this.paged = false;
    }
    if (mode === "append") this.paged = true;
    const fresh = rows.filter((state) => !this.rows.has(state.task_id));
    const trs = fresh.map((state) => this.add(state));
    if (mode === "prepend") for (const tr of trs) this.place(tr);
    else this.body.append(...trs);
    if (mode === "prepend" && !this.paged) this.trim();
    document.getElementById("more").hidden = !nextCursor;
    document.getElementById("no-tasks").hidden = this.rows.size > 0;
  }

  /** A task frame: the newest state of a listed (or opened) task. */
  applyTask(state) {
    const row = this.rows.get(state.task_id);
    if (!row || state.seq <= row.state.seq) return;
    row.state = { ...row.state, ...state };
    this.fill(row);
  }

  tick(now) {
    this.now = now;
    for (const row of this.rows.values()) row.tr.querySelector(".age").textContent = duration(now - row.state.created_at);
  }

  add(state) {
    const tr = document.createElement("tr");
    tr.dataset.taskId = state.task_id;
    tr.tabIndex = 0;
    const row = { state, tr };
    this.rows.set(state.task_id, row);
    this.fill(row);
    return tr;
  }

  /** A new row before the first one older than it (by created_at, then task id). */
  place(tr) {
    const { created_at: at, task_id: id } = this.rows.get(tr.dataset.taskId).state;
    const older = [...this.body.children].find((other) => {
      const { created_at: otherAt, task_id: otherId } = this.rows.get(other.dataset.taskId).state;
      return otherAt < at || (otherAt === at && otherId < id);
    });
    this.body.insertBefore(tr, older ?? null);
  }

  trim() {
    const extra = [...this.body.children].slice(this.limit);
    for (const tr of extra) {
      this.rows.delete(tr.dataset.taskId);
      tr.remove();
    }
  }

  fill({ state, tr }) {
    tr.dataset.status = state.status;
    const status = cell("", "status");
    const badge = document.createElement("span");
    badge.className = `badge ${state.status.toLowerCase()}`;
    badge.textContent = state.status;
    status.append(badge);
    const error = cell(state.error ?? "", "error");
    if (state.error) error.title = state.error;
    tr.replaceChildren(
      status, cell(state.kind, "kind"), progress(state.progress), cell(state.attempts, "attempts"),
      cell(duration(this.now - state.created_at), "age"), error, cell(state.task_id.slice(0, 8), "task-id"),
      buttons(state),
    );
  }

  clicked(event) {
    const tr = event.target.closest("tr[data-task-id]");
    if (!tr) return;
    const action = event.target.closest("button[data-action]")?.dataset.action;
    this.actions[action ?? "open"](tr.dataset.taskId);
  }
}

function progress(value) {
  const td = cell("", "progress");
  if (value === null || value === undefined) return td;
  const bar = document.createElement("meter");
  bar.min = 0;
  bar.max = 1;
  bar.value = value;
  td.append(bar, ` ${percent(value)}`);
  return td;
}

function buttons(state) {
  const td = cell("", "actions");
  const add = (action, label) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "small";
    button.dataset.action = action;
    button.textContent = label;
    td.append(button);
  };
  if (ACTIVE.has(state.status)) add("cancel", "Cancel");
  if (state.status === "FAILED") {
    add("resubmit", "Resubmit");
    add("requeue", "Requeue dead letter");
  }
  return td;
}
