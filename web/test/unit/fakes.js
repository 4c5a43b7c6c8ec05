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
 * function. Refresh tokens rotate; presenting a consumed one revokes the
 * family (no grace here, so a double refresh shows up as a failure).
 */
export class FakeServer {
  constructor({ ttl = 60, cookieMode = false } = {}) {
    this.ttl = ttl;
    this.cookieMode = cookieMode;
    this.n = 0;
    this.refreshToken = null; // the live one
    this.consumed = new Set();
    this.access = new Set(); // valid access tokens
    this.revoked = false;
    this.cookie = null; // the cookie jar of the fake browser
    this.calls = { login: 0, refresh: 0, logout: 0, me: 0, heartbeat: 0 };
    this.log = []; // every request: {path, auth, body, credentials}
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

  async fetch(input, init) {
    const req = new Request(input, init);
    const url = new URL(req.url);
    const text = req.method === 'GET' || req.method === 'HEAD' ? '' : await req.text();
    const body = text ? JSON.parse(text) : null;
    const auth = req.headers.get('Authorization');
    this.log.push({ path: url.pathname, origin: url.origin, auth, body, credentials: init?.credentials ?? req.credentials });
    const json = (status, v, headers = {}) =>
      new Response(v == null ? null : JSON.stringify(v), {
        status,
        headers: { 'Content-Type': 'application/json', ...headers },
      });
    const bearerOK = () => auth && auth.startsWith('Bearer ') && this.access.has(auth.slice(7)) && !this.revoked;
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
        const fail = (d) => json(401, { error: 'invalid_grant', error_description: d });
        if (!rt) return fail('unknown');
        if (this.revoked) return fail('revoked');
        if (this.consumed.has(rt)) {
          this.revoked = true;
          return fail('reused');
        }
        if (rt !== this.refreshToken) return fail('unknown');
        this.consumed.add(rt);
        return json(200, this.grant());
      }
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

/** Waits until cond() is true, polling on the event loop (no timers). */
export async function until(cond, what = 'condition', tries = 10_000) {
  for (let i = 0; i < tries; i++) {
    if (await cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`timed out waiting for ${what}`);
}
