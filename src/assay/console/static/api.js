// The JSON API, called with the signed-in key. The key lives in this tab's sessionStorage
// only: it is sent as an Authorization header, never put in a URL, never logged.

const STORAGE = "assay.console.key";
/** Where the API lives: the root of the server that served this file (…/ui/static/api.js). */
export const ROOT = new URL("../../", import.meta.url).pathname;

let memoryKey = null; // used when sessionStorage is unavailable

export function currentKey() {
  try {
    return sessionStorage.getItem(STORAGE) ?? memoryKey;
  } catch {
    return memoryKey;
  }
}

export function storeKey(key) {
  memoryKey = key;
  try {
    if (key === null) sessionStorage.removeItem(STORAGE);
    else sessionStorage.setItem(STORAGE, key);
  } catch {
    // private modes may refuse storage: the key stays in memory for this page
  }
}

export class ApiError extends Error {
  constructor(status, type, message, details) {
    super(message);
    this.status = status;
    this.type = type;
    this.details = details;
  }
}

/** Listeners told when the API refuses the key (401): the app signs out. */
const unauthorized = new Set();
export function onUnauthorized(listener) {
  unauthorized.add(listener);
}

/** A path with every interpolated value URL-encoded: path`/v1/buckets/${name}`. */
export function path(strings, ...values) {
  return strings.reduce(
    (out, s, i) => out + s + (i < values.length ? encodeURIComponent(String(values[i])) : ""),
    "",
  );
}

export function authHeaders(ns, key = currentKey()) {
  const headers = { Authorization: `Bearer ${key}` };
  if (ns) headers["X-Namespace"] = ns;
  return headers;
}

/**
 * Call the API. `ns` sets X-Namespace; `body` is sent as JSON; `raw` returns the Response.
 * Errors raise ApiError with the server's message.
 */
export async function api(method, route, { ns, body, signal, headers, raw, key } = {}) {
  const init = { method, headers: { ...authHeaders(ns, key ?? currentKey()), ...headers }, signal };
  init.cache = "no-store";
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(ROOT + route.replace(/^\//, ""), init);
  if (!response.ok) {
    let envelope = null;
    try {
      envelope = await response.json();
    } catch {
      // not JSON: described by the status alone
    }
    const error = envelope?.error ?? {};
    const failure = new ApiError(
      response.status,
      error.type ?? "HTTPError",
      error.message ?? `${response.status} ${response.statusText}`,
      error.details,
    );
    if (response.status === 401 && key === undefined) unauthorized.forEach((f) => f(failure));
    throw failure;
  }
  if (raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

export const get = (route, options) => api("GET", route, options);
export const post = (route, body, options) => api("POST", route, { ...options, body });

/** Every result of a list route, following cursors (at most `max`). */
export async function all(route, options = {}, max = 1000) {
  const out = [];
  let cursor = null;
  do {
    const sep = route.includes("?") ? "&" : "?";
    const page = await get(
      `${route}${sep}limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
      options,
    );
    out.push(...page.results);
    cursor = page.pagination?.next_cursor ?? null;
  } while (cursor && out.length < max);
  return out;
}
