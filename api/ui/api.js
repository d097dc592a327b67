// The /v1 client of the analyst page: one place that knows the API key,
// the base URL and how errors look (RFC 9457 problem+json).

const KEY_STORAGE = "peerlearn.apiKey";
// The page lives at <base>/ui/, the API at <base>/v1/: works behind a path prefix too.
const API_BASE = new URL("../v1/", window.location.href);

export class ApiError extends Error {
  constructor(status, detail, body) {
    super(detail);
    this.status = status;
    this.body = body;
  }
  get isAuth() {
    return this.status === 401 || this.status === 403;
  }
}

/** The stored key: null when never asked, "" when the user chose to go without. */
export function storedKey() {
  try {
    return window.localStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function storeKey(key) {
  try {
    window.localStorage.setItem(KEY_STORAGE, key.trim());
  } catch {
    /* private mode: the key lives for this page only */
  }
  sessionKey = key.trim();
}

let sessionKey = storedKey();
const authListeners = new Set();

/** Called with the ApiError whenever the API refuses the key. */
export function onAuthError(fn) {
  authListeners.add(fn);
}

function url(path, params) {
  const u = new URL(path.replace(/^\//, ""), API_BASE);
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    u.searchParams.set(k, String(v));
  }
  return u;
}

/** GET a /v1 resource as JSON; throws ApiError with the problem's detail. */
export async function get(path, params, { signal } = {}) {
  const headers = { Accept: "application/json" };
  if (sessionKey) headers.Authorization = `Bearer ${sessionKey}`;
  let res;
  try {
    res = await fetch(url(path, params), { headers, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "The server cannot be reached.", null);
  }
  let body = null;
  const text = await res.text();
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!res.ok) {
    const detail = (body && (body.detail || body.title)) || `${res.status} ${res.statusText}`;
    const error = new ApiError(res.status, typeof detail === "string" ? detail : JSON.stringify(detail), body);
    if (error.isAuth) authListeners.forEach((fn) => fn(error));
    throw error;
  }
  return body;
}

/** The list inside a paginated answer, whatever the endpoint calls it. */
export function itemsOf(body) {
  if (Array.isArray(body)) return body;
  if (!body || typeof body !== "object") return [];
  for (const k of ["items", "results", "hits", "data", "cycles", "themes", "practices", "programmes"]) {
    if (Array.isArray(body[k])) return body[k];
  }
  return [];
}

/** Follow next_cursor until `max` items (or the end). */
export async function getAll(path, params, { max = 1000, signal } = {}) {
  const out = [];
  let cursor;
  do {
    const body = await get(path, { ...params, cursor }, { signal });
    out.push(...itemsOf(body));
    cursor = body && body.next_cursor;
  } while (cursor && out.length < max);
  return out.slice(0, max);
}
