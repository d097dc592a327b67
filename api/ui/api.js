// The /v1 client of the /ui app (the analyst page, and the host, manager/partner
// and curation pages): one place that knows the API key, the base URL and how
// errors look (RFC 9457 problem+json).

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

/** One /v1 request with the key: the answer's JSON (null when empty), or an
 *  ApiError carrying the problem's detail and status. `body` is an object
 *  (sent as JSON) or FormData (a file upload). */
async function request(method, path, { params, body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (sessionKey) headers.Authorization = `Bearer ${sessionKey}`;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url(path, params), { method, headers, body: payload, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "The server cannot be reached.", null);
  }
  let data = null;
  const text = await res.text();
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const detail = (data && (data.detail || data.title)) || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, typeof detail === "string" ? detail : JSON.stringify(detail), data);
  }
  return data;
}

/** GET a /v1 resource as JSON; throws ApiError with the problem's detail, and
 *  a refused key (401/403) reopens the key prompt through onAuthError. */
export async function get(path, params, { signal } = {}) {
  try {
    return await request("GET", path, { params, signal });
  } catch (err) {
    if (err instanceof ApiError && err.isAuth) authListeners.forEach((fn) => fn(err));
    throw err;
  }
}

/** Any /v1 call of the role pages (host, manager/partner, curation); `body`
 *  an object (JSON) or FormData. Throws ApiError (its `status` tells a 404
 *  from a refusal). A 403 here is the page's to show (a role may read but not
 *  act), so unlike `get` it does not reopen the key prompt. */
export function call(method, path, body) {
  return request(method, path, { body });
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
