// The page's client of the taskcast API (the client module, taskcast.js, with the page's
// storage of the key and the watch tokens), and error answers as sentences a person can act on.
//
// Credentials: the API key only submits and cancels. Watching (GET, SSE, WebSocket) uses the
// task's watch token from POST /tasks, good for that one task; a server without API_KEY
// hands out none and needs none.

import { TaskcastClient } from "./taskcast.js";

const API_KEY_STORAGE = "taskcast.apiKey";
const TOKENS_STORAGE = "taskcast.watchTokens";

function loadTokens() {
  try {
    return JSON.parse(localStorage.getItem(TOKENS_STORAGE) ?? "{}") ?? {};
  } catch {
    return {};
  }
}

/** The task's watch token, or null (an open server, or a task from before tokens). */
function watchToken(taskId) {
  return loadTokens()[taskId] ?? null;
}

function saveToken(taskId, token) {
  const tokens = loadTokens();
  tokens[taskId] = token;
  localStorage.setItem(TOKENS_STORAGE, JSON.stringify(tokens));
}

/** Drop the tokens of tasks the page no longer lists. */
export function keepTokens(taskIds) {
  const tokens = loadTokens();
  const kept = Object.fromEntries(taskIds.filter((id) => tokens[id]).map((id) => [id, tokens[id]]));
  localStorage.setItem(TOKENS_STORAGE, JSON.stringify(kept));
}

export function getApiKey() {
  return localStorage.getItem(API_KEY_STORAGE) ?? "";
}

export function setApiKey(value) {
  if (value) localStorage.setItem(API_KEY_STORAGE, value);
  else localStorage.removeItem(API_KEY_STORAGE);
}

// Every call and every watch goes through the client module; the key only submits and cancels.
export const client = new TaskcastClient({
  apiKey: getApiKey,
  tokens: { get: watchToken, set: saveToken },
  watchWithKey: false,
});

/** The dashboard's socket URL (it adds the operator's key itself). */
export function wsUrl(path, params = {}) {
  return client.wsUrl(path, params);
}

/** fetch() that never throws on an HTTP status; it throws only when the server is unreachable. */
export function request(method, path, options = {}) {
  return client.request(method, path, options);
}

/** POST /tasks: { status, headers, data }; retried with one Idempotency-Key (taskcast.js), which
 * also keeps the answer's watch token (saveToken). */
export function submitTask(body) {
  return client.submit(body);
}

export function cancelTask(taskId) {
  return client.cancel(taskId);
}

/** GET /tasks/{id}, with the task's watch token. */
export function getTask(taskId) {
  return client.get(taskId);
}

export const UNREACHABLE = "Cannot reach the server. Is the API running?";

export function describeError({ status, headers, data }) {
  switch (status) {
    case 401:
    case 403:
      return "The server wants an API key (to submit or cancel) or a valid watch token (to watch): enter the key under “API key”.";
    case 404:
      return "Unknown task: it never existed or has expired.";
    case 409:
      return "The task has already finished.";
    case 413:
      return "The request is too large: shorten the prompt.";
    case 422:
      return `Invalid input: ${validationErrors(data).map((e) => `${e.field}: ${e.message}`).join("; ")}`;
    case 503:
      return `The queue is full${retryAfterText(headers)}. Nothing was queued.`;
    default:
      return `The server answered ${status}${detailText(data)}.`;
  }
}

/** FastAPI's 422 body: {"detail": [{"loc": ["body", "params", "steps"], "msg": "..."}]}. */
export function validationErrors(data) {
  const detail = data?.detail;
  if (!Array.isArray(detail)) return [{ field: "request", message: detailMessage(data) || "rejected" }];
  return detail.map((item) => ({ field: fieldName(item?.loc), message: String(item?.msg ?? "invalid") }));
}

function fieldName(loc) {
  const parts = Array.isArray(loc) ? loc.filter((part) => part !== "body") : [];
  return parts.length ? parts.join(".") : "body";
}

function retryAfterText(headers) {
  const after = headers?.get("Retry-After");
  if (!after) return "";
  return /^\d+$/.test(after) ? `, retry in ${after} s` : `, retry after ${after}`;
}

function detailMessage(data) {
  if (typeof data === "string") return data.slice(0, 200);
  if (typeof data?.detail === "string") return data.detail;
  return "";
}

function detailText(data) {
  const message = detailMessage(data);
  return message ? `: ${message}` : "";
}
