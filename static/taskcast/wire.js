// What every part of the client reads off the wire: states and their end.

export const TERMINAL = new Set(["DONE", "FAILED", "CANCELLED"]);

/** A JSON object from text, or null (not JSON, or not an object). */
export function parseJson(text) {
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}
