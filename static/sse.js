// One EventSource for one task. It only reports; watch.js decides what an error means.

import { streamUrl, taskPath, watchToken } from "./api.js";

// The server sends the current state first, so a fresh stream that stays silent this long
// is being held up somewhere (a buffering proxy, say) and auto mode should move on.
const FIRST_EVENT_TIMEOUT_MS = 10000;

/**
 * hooks: onEvent(data), onTrouble({ working, closed, timedOut }), setLink(state).
 * "working" means this stream has proved it delivers: an event arrived, or, when resuming
 * from a known seq (the server may have nothing newer to say), the connection opened.
 */
export function openSse(task, hooks) {
  const resuming = task.seq !== null;
  const params = { token: watchToken(task.task_id), last_event_id: resuming ? task.seq : null };
  const url = streamUrl(`${taskPath(task.task_id)}/events`, params);
  const source = new EventSource(url);
  let working = false;

  const receive = (message) => {
    working = true;
    clearTimeout(timer);
    hooks.setLink("live");
    const data = parseJson(message.data);
    if (data) hooks.onEvent(data);
  };
  source.addEventListener("task", receive);
  // Also accept unnamed events, in case a server build leaves out "event: task".
  source.addEventListener("message", receive);
  source.onopen = () => {
    if (resuming) working = true;
    hooks.setLink(resuming ? "live" : "connecting");
  };
  source.onerror = () => {
    hooks.onTrouble({ working, closed: source.readyState === EventSource.CLOSED, timedOut: false });
  };
  const timer = resuming ? 0 : setTimeout(() => {
    if (!working) hooks.onTrouble({ working, closed: false, timedOut: true });
  }, FIRST_EVENT_TIMEOUT_MS);

  return {
    stop() {
      clearTimeout(timer);
      source.close();
    },
  };
}

function parseJson(text) {
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}
