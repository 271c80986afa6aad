// The dashboard talks only to the public local API, like any LAN client.
const store = window.sessionStorage;

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code;
    this.field = err.field;
    this.line = err.line;  // YAML bodies: where the problem is
  }
}

export const session = {
  get access() { return store.getItem("uone.access"); },
  get refresh() { return store.getItem("uone.refresh"); },
  set(tokens) {
    if (tokens.access_token) store.setItem("uone.access", tokens.access_token);
    if (tokens.refresh_token) store.setItem("uone.refresh", tokens.refresh_token);
  },
  clear() { store.removeItem("uone.access"); store.removeItem("uone.refresh"); },
};

let onSignedOut = () => {};
export function whenSignedOut(fn) { onSignedOut = fn; }

// `type`: send `body` as it is (a string) with this Content-Type instead of as JSON.
async function raw(method, path, body, { auth = true, headers = {}, type } = {}) {
  const h = { ...headers };
  if (body !== undefined) h["Content-Type"] = type || "application/json";
  if (auth && session.access) h.Authorization = `Bearer ${session.access}`;
  return fetch(path, {
    method, headers: h, body: body === undefined ? undefined : type ? body : JSON.stringify(body),
    credentials: "omit", cache: "no-store",
  });
}

let refreshing = null;
async function refresh() {
  if (!session.refresh) return false;
  refreshing ??= (async () => {
    const r = await raw("POST", "/api/auth/refresh", { refresh_token: session.refresh },
                        { auth: false });
    if (!r.ok) return false;
    session.set(await r.json());
    return true;
  })().finally(() => { refreshing = null; });
  return refreshing;
}

export async function api(method, path, body, opts = {}) {
  let r = await raw(method, path, body, opts);
  if (r.status === 401 && opts.auth !== false && await refresh()) {
    r = await raw(method, path, body, opts);
  }
  if (r.status === 401 && opts.auth !== false) {
    session.clear();
    onSignedOut();
  }
  if (opts.blob && r.ok) return r.blob();
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

export const get = (p) => api("GET", p);
export const post = (p, b = {}) => api("POST", p, b);
export const put = (p, b) => api("PUT", p, b);
export const patch = (p, b) => api("PATCH", p, b);
export const del = (p) => api("DELETE", p);

// Live updates over the websocket: state changes and events pushed by the hub, no polling.
export class Live {
  constructor() { this.handlers = new Set(); this.ws = null; this.closed = false; this.retry = 500; }
  on(fn) { this.handlers.add(fn); return () => this.handlers.delete(fn); }
  open() {
    if (!session.access || this.closed) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/ws`);
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 500;
      ws.send(JSON.stringify({ type: "auth", token: session.access }));
      ws.send(JSON.stringify({ type: "subscribe" }));
    };
    ws.onmessage = (m) => {
      let msg; try { msg = JSON.parse(m.data); } catch { return; }
      for (const fn of this.handlers) fn(msg);
    };
    ws.onclose = () => {
      this.ws = null;
      if (this.closed) return;
      setTimeout(() => this.open(), this.retry);
      this.retry = Math.min(this.retry * 2, 15000);
    };
  }
  close() { this.closed = true; if (this.ws) this.ws.close(); }
}
