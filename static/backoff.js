// The dashboard's import of the client module's backoff (static/dashboard/link.js).

export { Backoff } from "./taskcast.js";
