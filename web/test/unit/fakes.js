// Test doubles for the parts of a browser that Node lacks or that a unit
// test must control: a token server behind a fetch function, a Web Locks
// manager, localStorage shared by "tabs", and an injectable clock.

export const BASE = 'http://app.test';

/** A promise with its resolve and reject exposed. */
export function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A clock the test moves by hand. */
export function clock(start = 1_700_000_000_000) {
  let t = start;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
  };
}

/** A Storage (getItem/setItem/removeItem) that several clients can share. */
export class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}

/**
 * A Web Locks manager with the parts of navigator.locks the client uses:
 * exclusive locks granted in request order, ifAvailable, and signal.
 */
export class LockManager {
  constructor() {
    this.queues = new Map(); // name -> array of waiters; the first holds the lock
    this.granted = 0;
  }

  request(name, options, callback) {
    if (typeof options === 'function') {
      callback = options;
      options = {};
    }
    const q = this.queues.get(name) ?? [];
    this.queues.set(name, q);
    if (options.ifAvailable && q.length > 0) return Promise.resolve().then(() => callback(null));
    const w = deferred();
    const entry = { grant: w.resolve };
    q.push(entry);
    if (q.length === 1) entry.grant();
    const release = () => {
      const i = q.indexOf(entry);
      if (i >= 0) q.splice(i, 1);
      if (i === 0 && q.length > 0) q[0].grant();
    };
    return new Promise((resolve, reject) => {
      const signal = options.signal;
      let onAbort;
      if (signal) {
        onAbort = () => {
          if (q[0] === entry) return; // already granted: too late to abort
          release();
          reject(signal.reason);
        };
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
      }
      w.promise.then(async () => {
        signal?.removeEventListener('abort', onAbort);
        this.granted++;
        try {
          resolve(await callback({ name, mode: 'exclusive' }));
        } catch (e) {
          reject(e);
        } finally {
          release();
        }
      });
    });
  }
}

/**
 * A token server in the shape of the HTTP contract, served through a fetch
 * function: the JSON API, and /oauth2/token and /oauth2/revoke in RFC 6749
 * form. Refresh tokens rotate; presenting a consumed one revokes the family
 * unless grace is on and its successor is unused (then the same successor
 * comes back, as the real server's grace window does). Without grace a
 * double refresh shows up as a failure.
 */
export class FakeServer {
  constructor({ ttl = 60, cookieMode = false, grace = false } = {}) {
    this.ttl = ttl;
    this.cookieMode = cookieMode;
    this.grace = grace;
    this.n = 0;
    this.refreshToken = null; // the live one
    this.successor = new Map(); // consumed refresh token -> the grant that followed it
    this.consumed = new Set();
    this.access = new Set(); // valid access tokens
    this.revoked = false;
    this.cookie = null; // the cookie jar of the fake browser
    this.calls = { login: 0, refresh: 0, logout: 0, me: 0, heartbeat: 0, revoke: 0 };
    this.log = []; // every request: {path, origin, auth, body, type, credentials}
    this.refreshGate = null; // a promise the refresh handler waits for
    this.refreshStatus = 0; // a forced status for refresh replies
    this.fetch = this.fetch.bind(this);
  }

  /** Rejects every access token issued so far (as a key rotation would). */
  invalidateAccessTokens() {
    this.access.clear();
  }

  grant() {
    const n = ++this.n;
    const at = `at-${n}`;
    const rt = `rt-${n}`;
    this.access.add(at);
    this.refreshToken = rt;
    const body = { accessToken: at, tokenType: 'Bearer', expiresIn: this.ttl, refreshExpiresIn: 3600 };
    if (this.cookieMode) this.cookie = rt;
    else body.refreshToken = rt;
    return body;
  }

  /** The rules of a refresh: a grant body, or {error: reason}. */
  rotate(rt) {
    if (this.revoked) return { error: 'revoked' };
    if (this.consumed.has(rt)) {
      const next = this.successor.get(rt);
      if (this.grace && next && !this.consumed.has(next.rt)) {
        const at = `at-${++this.n}`;
        this.access.add(at);
        if (this.cookieMode) this.cookie = next.rt;
        return { ...next.grant, accessToken: at };
      }
      this.revoked = true;
      return { error: 'reused' };
    }
    if (rt !== this.refreshToken) return { error: 'unknown' };
    this.consumed.add(rt);
    const g = this.grant();
    this.successor.set(rt, { grant: g, rt: this.refreshToken });
    return g;
  }

  async fetch(input, init) {
    const req = new Request(input, init);
    const url = new URL(req.url);
    const text = req.method === 'GET' || req.method === 'HEAD' ? '' : await req.text();
    const form = (req.headers.get('Content-Type') || '').startsWith('application/x-www-form-urlencoded');
    const body = !text ? null : form ? Object.fromEntries(new URLSearchParams(text)) : JSON.parse(text);
    const auth = req.headers.get('Authorization');
    this.log.push({
      path: url.pathname,
      origin: url.origin,
      auth,
      body,
      type: req.headers.get('Content-Type'),
      credentials: init?.credentials ?? req.credentials,
    });
    const json = (status, v, headers = {}) =>
      new Response(v == null ? null : JSON.stringify(v), {
        status,
        headers: { 'Content-Type': 'application/json', ...headers },
      });
    // DPoP-scheme tokens too: dpop.test.js checks their proofs in front of this.
    const bearerOK = () => auth && /^(Bearer|DPoP) /.test(auth) && this.access.has(auth.slice(auth.indexOf(' ') + 1)) && !this.revoked;
    switch (url.pathname) {
      case '/api/auth/login':
        this.calls.login++;
        if (body?.password !== 'pw') return json(401, { error: 'invalid_credentials' });
        this.revoked = false;
        this.consumed.clear();
        return json(200, this.grant());
      case '/api/auth/refresh': {
        this.calls.refresh++;
        if (this.refreshGate) await this.refreshGate;
        if (this.refreshStatus) return json(this.refreshStatus, { error: 'server_error' });
        const rt = this.cookieMode ? this.cookie : body?.refreshToken;
        if (!rt) return json(400, { error: 'invalid_request', error_description: 'field "refreshToken" is required' });
        const r = this.rotate(rt);
        return r.error ? json(401, { error: 'invalid_grant', error_description: r.error }) : json(200, r);
      }
      case '/oauth2/token': {
        this.calls.refresh++;
        if (this.refreshGate) await this.refreshGate;
        if (!form) return json(400, { error: 'invalid_request', error_description: 'form-encoded body expected' });
        if (body.grant_type !== 'refresh_token') return json(400, { error: 'unsupported_grant_type' });
        if (!body.refresh_token) return json(400, { error: 'invalid_request', error_description: 'refresh_token is required' });
        const r = this.rotate(body.refresh_token);
        if (r.error) return json(400, { error: 'invalid_grant', error_description: r.error });
        return json(200, {
          access_token: r.accessToken,
          token_type: 'bearer',
          expires_in: String(r.expiresIn), // some servers quote it
          refresh_token: r.refreshToken,
        });
      }
      case '/oauth2/revoke':
        this.calls.revoke++;
        this.revoked = true;
        return new Response(null, { status: 200 });
      case '/api/auth/logout':
        this.calls.logout++;
        this.revoked = true;
        this.cookie = null;
        return new Response(null, { status: 204 });
      case '/api/me':
        this.calls.me++;
        if (!bearerOK()) return json(401, { error: 'invalid_token' }, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
        return json(200, { sub: 'u1', echo: body });
      case '/api/heartbeat':
        this.calls.heartbeat++;
        if (!bearerOK()) return json(401, { error: 'invalid_token' });
        return json(200, { active: true, expiresIn: this.ttl });
      default:
        return json(404, { error: 'not_found' });
    }
  }
}

/**
 * A BroadcastChannel class whose messages to this "tab" can be held back
 * (hold) and let through later (deliver), as a loaded browser delivers
 * them late.
 */
export function heldChannel() {
  const held = [];
  let open = true;
  class HeldChannel extends BroadcastChannel {
    set onmessage(fn) {
      super.onmessage = (ev) => (open ? fn(ev) : held.push(() => fn(ev)));
    }
  }
  return {
    BroadcastChannel: HeldChannel,
    held,
    hold() {
      open = false;
    },
    deliver() {
      open = true;
      for (const f of held.splice(0)) f();
    },
  };
}

/** A handoffStore consistent across tabs, as IndexedDB is; counts reads and writes. */
export function handoffStore() {
  const m = new Map();
  const st = {
    reads: 0,
    writes: 0,
    get: async (k) => {
      st.reads++;
      return m.get(k) ?? null;
    },
    set: async (k, v) => {
      st.writes++;
      m.set(k, structuredClone(v));
    },
  };
  return st;
}

/** Waits until cond() is true, polling on the event loop (no timers). */
export async function until(cond, what = 'condition', tries = 10_000) {
  for (let i = 0; i < tries; i++) {
    if (await cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * A fetch in front of server whose answers to refresh calls follow a script,
 * one entry per call: "ok" (the server answers), "network" (fails before
 * the server sees it), "lost" (the server rotates, the answer is lost),
 * "timeout" (the server rotates, the answer never comes: the client's
 * timeout fires), or {status, body, headers} (answered as given). Past the
 * script, the server answers. presented lists the refresh token of each call.
 */
export function scripted(server, script) {
  const presented = [];
  const fetch = async (input, init) => {
    const req = new Request(input, init);
    const path = new URL(req.url).pathname;
    if (path !== '/api/auth/refresh' && path !== '/oauth2/token') return server.fetch(input, init);
    const text = typeof init?.body === 'string' ? init.body : '';
    presented.push(text.startsWith('{') ? JSON.parse(text).refreshToken : new URLSearchParams(text).get('refresh_token'));
    const a = script.length ? script.shift() : 'ok';
    switch (a) {
      case 'ok':
        return server.fetch(input, init);
      case 'network':
        throw new TypeError('Failed to fetch');
      case 'lost':
        await server.fetch(input, init);
        throw new TypeError('Failed to fetch');
      case 'timeout': {
        await server.fetch(input, init);
        const signal = init.signal;
        if (!signal) throw new Error('scripted: a timeout needs the request to carry a signal');
        // AbortSignal.timeout's timer does not keep Node's event loop alive.
        const alive = setInterval(() => {}, 1000);
        await new Promise((r) => (signal.aborted ? r() : signal.addEventListener('abort', r, { once: true })));
        clearInterval(alive);
        throw signal.reason;
      }
      default: {
        const body = a.body === undefined ? null : typeof a.body === 'string' ? a.body : JSON.stringify(a.body);
        const type = typeof a.body === 'string' ? 'text/plain' : 'application/json';
        return new Response(body, { status: a.status, headers: { 'Content-Type': type, ...(a.headers || {}) } });
      }
    }
  };
  return { fetch, presented };
}
