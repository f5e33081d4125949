// What an operator does from the page: cancel, resubmit a FAILED task, requeue a dead letter.
// One-off requests, each started by a click; the page's updates still arrive over the socket.

import { cancelTask, describeError, request, UNREACHABLE } from "../api.js";

export async function cancel(taskId) {
  return outcome(() => cancelTask(taskId), 202, () => "Cancelled.");
}

export async function resubmit(taskId) {
  const path = `/tasks/${encodeURIComponent(taskId)}/resubmit`;
  return outcome(() => request("POST", path), 202, (data) => `Resubmitted as a new task ${short(data)}.`);
}

export async function requeue(ident) {
  const path = `/deadletters/${encodeURIComponent(ident)}/requeue`;
  return outcome(() => request("POST", path), 202, (data) => `Dead letter requeued as a new task ${short(data)}.`);
}

export async function deadLetters() {
  const answer = await reach(() => request("GET", "/deadletters?limit=100"));
  if (answer.status !== 200) throw new Error(answer.message ?? describeError(answer));
  return answer.data;
}

/** { ok, message, status } for a request expected to answer `expected` (200 counts too). */
async function outcome(send, expected, describe) {
  const answer = await reach(send);
  if (answer.message) return { ok: false, message: answer.message, status: 0 };
  if (answer.status === expected || answer.status === 200) return { ok: true, message: describe(answer.data), status: answer.status };
  const text = answer.status === 404 || answer.status === 409 ? (answer.data?.detail ?? describeError(answer)) : describeError(answer);
  return { ok: false, message: text, status: answer.status };
}

async function reach(send) {
  try {
    return await send();
  } catch {
    return { message: UNREACHABLE };
  }
}

function short(data) {
  return String(data?.task_id ?? "").slice(0, 8);
}
