// What a stats frame shows: counters by kind and state, the two charts, the workers table.

import { drawChart } from "./chart.js";
import { cell, duration } from "./format.js";

const COLORS = { done: "#22c55e", failed: "#ef4444", queued: "#3b82f6", running: "#f59e0b" };

export function showStats(frame) {
  if (!frame.redis_ok) return;
  counters(frame.kinds);
  charts(frame);
  workers(frame.workers, frame.time, frame.worker_gone_after);
}

const TILES = [
  ["queued", "queued", (k) => k.queued],
  ["delayed", "delayed", (k) => k.delayed],
  ["running", "running", (k) => k.running],
  ["dead", "dead letters", (k) => k.dead_letters],
  ["pending", "pending", (k) => k.tasks.PENDING],
  ["done", "done", (k) => k.tasks.DONE],
  ["failed", "failed", (k) => k.tasks.FAILED],
  ["cancelled", "cancelled", (k) => k.tasks.CANCELLED],
  ["done-rate", "done/s (1 min)", (k) => k.done_per_second.toFixed(2)],
  ["failed-rate", "failed/s (1 min)", (k) => k.failed_per_second.toFixed(2)],
];

function counters(kinds) {
  document.getElementById("counters").replaceChildren(
    ...Object.entries(kinds).map(([kind, k]) => {
      const group = document.createElement("div");
      group.className = "kind";
      group.dataset.kind = kind;
      const title = document.createElement("h3");
      title.textContent = kind;
      group.append(title, ...TILES.map(([name, label, value]) => tile(name, label, value(k))));
      return group;
    }),
  );
}

function tile(name, label, value) {
  const box = document.createElement("div");
  box.className = `tile ${name}`;
  const number = document.createElement("span");
  number.className = "n";
  number.textContent = String(value);
  const text = document.createElement("span");
  text.className = "l";
  text.textContent = label;
  box.append(number, text);
  return box;
}

function charts({ series, time }) {
  // series: [second, done, failed, queued, running]; the current second is still being counted.
  const complete = series.filter(([t]) => t < Math.floor(time));
  const pick = (rows, i) => rows.filter((row) => row[i] !== null).map((row) => [row[0], row[i]]);
  drawChart(document.getElementById("throughput"), {
    now: time,
    lines: [
      { color: COLORS.done, points: pick(complete, 1) },
      { color: COLORS.failed, points: pick(complete, 2) },
    ],
  });
  drawChart(document.getElementById("depth"), {
    now: time,
    lines: [
      { color: COLORS.queued, points: pick(series, 3) },
      { color: COLORS.running, points: pick(series, 4) },
    ],
  });
  const last = complete.at(-1) ?? [0, 0, 0];
  const depth = series.at(-1) ?? [0, 0, 0, 0, 0];
  document.getElementById("throughput-now").textContent = `now ${last[1]} + ${last[2]}/s`;
  document.getElementById("depth-now").textContent = `now ${depth[3] ?? 0} queued, ${depth[4] ?? 0} running`;
}

function workers(list, now, goneAfter) {
  const body = document.querySelector("#workers tbody");
  body.replaceChildren(
    ...list.map((w) => {
      const row = document.createElement("tr");
      row.dataset.name = w.name;
      row.append(
        cell(w.name, "name"), cell(w.host, "host"), cell(w.pid, "pid"), cell(w.kinds.join(", "), "kinds"),
        cell(`${w.running}/${w.concurrency}`, "running"), cell(w.done, "done"), cell(w.failed, "failed"),
        cell(duration(now - w.started_at), "up"), cell(`${duration(now - w.last_heartbeat)} ago`, "heartbeat"),
      );
      return row;
    }),
  );
  document.getElementById("no-workers").hidden = list.length > 0;
  document.getElementById("workers-note").textContent = `${list.length} live · gone after ${goneAfter} s silent`;
}
