// One task's timeline, live: the state when opened, then every change pushed for it.

import { clock, percent } from "./format.js";

export class Timeline {
  constructor(onClose) {
    this.panel = document.getElementById("timeline");
    this.list = document.getElementById("timeline-events");
    this.taskId = null;
    this.lastSeq = 0;
    document.getElementById("timeline-close").addEventListener("click", () => {
      this.taskId = null;
      this.panel.hidden = true;
      onClose();
    });
  }

  open(taskId) {
    this.taskId = taskId;
    this.lastSeq = 0;
    this.list.replaceChildren();
    document.getElementById("timeline-id").textContent = taskId.slice(0, 12);
    this.panel.hidden = false;
  }

  /** The timeline answer or a task frame; ignored unless it is this task's and newer. */
  apply(state) {
    if (state.task_id !== this.taskId || state.seq <= this.lastSeq) return;
    this.lastSeq = state.seq;
    const item = document.createElement("li");
    item.className = "event";
    item.dataset.status = state.status;
    const details = [
      `#${state.seq}`, state.status, percent(state.progress), `attempt ${state.attempts}`, state.error ?? "",
    ];
    item.textContent = `${clock(state.updated_at)}  ${details.filter(Boolean).join(" · ")}`;
    this.list.append(item);
  }
}
