// silentrefresh: silent token refresh for the browser.
//
// createClient returns a fetch-compatible function that keeps an access
// token fresh: a token about to expire is refreshed before the request goes
// out (proactive), a 401 triggers one refresh and one replay (reactive), and
// both go through a single flight, so twenty requests that find the token
// expired cause one refresh and are all sent with the new token. Across the
// tabs of one origin the refresh runs under a Web Lock; the tab that gets
// the lock second re-reads the shared tokens first and finds the refresh
// already done. New tokens are announced on a BroadcastChannel (the storage
// event is the fallback). When the session is over, every waiting request
// rejects with ReauthRequiredError and onReauthRequired runs once.
//
// No dependencies, no build step: import it as an ES module.

const DEFAULT_PATHS = Object.freeze({
  login: '/api/auth/login',
  refresh: '/api/auth/refresh',
  logout: '/api/auth/logout',
  heartbeat: '/api/heartbeat',
});

/**
 * The session is over: the refresh token is unknown, revoked, expired,
 * superseded or was reused, or the user logged out (here or in another tab).
 * The user has to log in again.
 */
export class ReauthRequiredError extends Error {
  /**
   * @param {string} reason why: "unknown", "revoked", "expired", "superseded",
   *   "reused", "logout", "no_session", "inactive"
   * @param {{cause?: unknown}} [options]
   */
  constructor(reason, options) {
    super(`silentrefresh: log in again (${reason})`, options);
    this.name = 'ReauthRequiredError';
    this.reason = reason;
  }
}

/**
 * A refresh failed for a reason that may pass (network error, timeout, 5xx,
 * 429): the tokens are kept and the next request tries again.
 */
export class RefreshError extends Error {
  /**
   * @param {string} message
   * @param {{cause?: unknown, status?: number}} [options]
   */
  constructor(message, options = {}) {
    super(`silentrefresh: refresh failed: ${message}`, { cause: options.cause });
    this.name = 'RefreshError';
    this.status = options.status ?? 0;
  }
}

/** A login was refused: bad credentials, rate limited, or a server error. */
export class LoginError extends Error {
  /**
   * @param {string} code "invalid_credentials", "rate_limited", "network", "server_error", ...
   * @param {{cause?: unknown, status?: number, retryAfter?: number}} [options]
   */
  constructor(code, options = {}) {
    super(`silentrefresh: login failed: ${code}`, { cause: options.cause });
    this.name = 'LoginError';
    this.code = code;
    this.status = options.status ?? 0;
    this.retryAfter = options.retryAfter ?? 0;
  }
}

/**
 * Reports whether err means the user has to log in again.
 * @param {unknown} err
 */
export function isReauthRequired(err) {
  return err instanceof ReauthRequiredError || (err != null && err.name === 'ReauthRequiredError');
}

// ---------------------------------------------------------------------------
// Storage

/** An in-memory adapter. */
function memoryAdapter() {
  const m = new Map();
  return {
    get: (k) => (m.has(k) ? m.get(k) : null),
    set: (k, v) => void m.set(k, v),
    remove: (k) => void m.delete(k),
  };
}

/** Wraps a Web Storage object (localStorage, sessionStorage). */
function webStorageAdapter(s) {
  return {
    get: (k) => s.getItem(k),
    set: (k, v) => s.setItem(k, v),
    remove: (k) => s.removeItem(k),
  };
}

function resolveAdapter(storage) {
  if (storage == null || storage === 'local') {
    const ls = globalThis.localStorage;
    if (!ls) throw new TypeError("silentrefresh: storage 'local' needs localStorage; pass storage: 'memory' or an adapter");
    return { adapter: webStorageAdapter(ls), shared: true, web: ls };
  }
  if (storage === 'memory') return { adapter: memoryAdapter(), shared: false, web: null };
  if (typeof storage === 'object') {
    if (typeof storage.getItem === 'function') return { adapter: webStorageAdapter(storage), shared: true, web: storage };
    if (typeof storage.get === 'function' && typeof storage.set === 'function' && typeof storage.remove === 'function') {
      return { adapter: storage, shared: storage.shared !== false, web: null };
    }
  }
  throw new TypeError("silentrefresh: storage must be 'local', 'memory' or an adapter {get, set, remove}");
}

function parseState(raw) {
  if (raw == null || raw === '') return null;
  try {
    const s = typeof raw === 'string' ? JSON.parse(raw) : raw;
    if (!s || typeof s.accessToken !== 'string' || typeof s.expiresAt !== 'number') return null;
    return s;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------
// Helpers

function abortable(promise, signal) {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

// Lets the tasks already queued (a peer's message) run first.
const setTimeoutAtLoad = globalThis.setTimeout;
function yieldTask() {
  return new Promise((r) => setTimeoutAtLoad(r, 0));
}

function timeoutSignal(ms) {
  if (!(ms > 0)) return undefined;
  if (typeof AbortSignal !== 'undefined' && typeof AbortSignal.timeout === 'function') return AbortSignal.timeout(ms);
  return undefined;
}

async function readJSON(res) {
  try {
    return await res.json();
  } catch {
    return null;
  }
}

function randomId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

/** The public view of a token state: never a copy the caller can corrupt. */
function view(s) {
  if (!s) return null;
  const v = {
    accessToken: s.accessToken,
    tokenType: s.tokenType || 'Bearer',
    expiresAt: s.expiresAt,
    obtainedAt: s.obtainedAt,
    refreshExpiresAt: s.refreshExpiresAt ?? null,
  };
  if (s.refreshToken) v.refreshToken = s.refreshToken;
  return Object.freeze(v);
}

// ---------------------------------------------------------------------------
// The client

/**
 * Creates a client. See silentrefresh.d.ts for the options and the methods
 * of the returned function.
 *
 * @param {import('./silentrefresh.js').ClientOptions} [options]
 */
export function createClient(options = {}) {
  const mode = options.mode ?? 'bearer';
  if (mode !== 'bearer' && mode !== 'cookie') throw new TypeError("silentrefresh: mode must be 'bearer' or 'cookie'");
  const cookie = mode === 'cookie';

  const loc = globalThis.location;
  const baseUrl = String(options.baseUrl ?? (loc ? loc.origin : '')).replace(/\/+$/, '');
  if (!baseUrl) throw new TypeError('silentrefresh: baseUrl is required outside a browser page');
  const baseOrigin = new URL(baseUrl).origin;
  const paths = { ...DEFAULT_PATHS, ...(options.paths || {}) };
  const endpoint = (name) => baseUrl + paths[name];

  const key = options.key ?? 'default';
  const storageKey = `silentrefresh:${key}`;
  const heartbeatKey = `${storageKey}:heartbeat`;
  const lockName = `silentrefresh:${key}`;

  const { adapter, shared, web } = resolveAdapter(options.storage);
  const crossTab = options.crossTab ?? shared;

  const now = options.now ?? (() => Date.now());
  const leeway = options.leeway ?? 10_000;
  const refreshTimeout = options.refreshTimeout ?? 15_000;
  const credentials = options.credentials ?? (cookie ? 'same-origin' : undefined);
  const heartbeatInterval = options.heartbeat === true ? 60_000 : Number(options.heartbeat || 0);
  const onReauthRequired = options.onReauthRequired;
  const getFetch = () => options.fetch ?? globalThis.fetch.bind(globalThis);
  const locks = options.locks === undefined ? globalThis.navigator?.locks : options.locks;
  const BC = options.BroadcastChannel === undefined ? globalThis.BroadcastChannel : options.BroadcastChannel;
  const doc = options.document === undefined ? globalThis.document : options.document;
  const win = options.window === undefined ? (typeof window !== 'undefined' ? window : undefined) : options.window;
  const tabId = randomId();

  // State. JavaScript runs one task at a time, so plain variables are safe;
  // what needs care is the interleaving at every await.
  let current = null; // the token state this tab uses (from the shared store)
  let loaded = false; // current has been read from the store at least once
  let inflight = null; // the one refresh of this tab in progress, or null
  let notified = false; // onReauthRequired has run for the session that ended
  let closed = false;
  let seq = 0;
  let epoch = 0; // bumped when a session ends: a refresh begun before it is void
  let endedAt = -Infinity; // when the last session ended here: older tokens are dead
  const listeners = new Map();
  const cleanups = [];

  function emit(type, detail) {
    const set = listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(detail);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  // --- store -------------------------------------------------------------

  async function readStore() {
    const s = parseState(await adapter.get(storageKey));
    if (cookie && s) delete s.refreshToken;
    return s;
  }

  async function writeStore(s) {
    await adapter.set(storageKey, JSON.stringify(s));
  }

  async function clearStore() {
    await adapter.remove(storageKey);
  }

  async function load() {
    if (!loaded) {
      const s = await readStore();
      if (!loaded) {
        current = s;
        loaded = true;
      }
    }
    return current;
  }

  /** Makes s the tab's state; emits "tokens" when the access token changed. */
  function adopt(s, source) {
    const changed = (current?.accessToken ?? null) !== (s?.accessToken ?? null);
    current = s;
    loaded = true;
    if (s) notified = false;
    if (changed && s) emit('tokens', { tokens: view(s), source });
    return s;
  }

  function isStale(s) {
    if (!s || !s.accessToken) return true;
    const life = Math.max(0, s.expiresAt - (s.obtainedAt ?? s.expiresAt));
    const margin = Math.min(leeway, life / 4);
    return now() >= s.expiresAt - margin;
  }

  function stateFromReply(data) {
    if (!data || typeof data.accessToken !== 'string' || !data.accessToken) return null;
    const t = now();
    const s = {
      v: 1,
      accessToken: data.accessToken,
      tokenType: data.tokenType || 'Bearer',
      obtainedAt: t,
      expiresAt: t + Number(data.expiresIn || 0) * 1000,
      refreshExpiresAt: data.refreshExpiresIn ? t + Number(data.refreshExpiresIn) * 1000 : null,
    };
    if (!cookie && typeof data.refreshToken === 'string') s.refreshToken = data.refreshToken;
    return s;
  }

  // --- cross-tab ---------------------------------------------------------

  let channel = null;
  if (crossTab && typeof BC === 'function') {
    channel = new BC(lockName);
    channel.onmessage = (ev) => void onPeerMessage(ev.data);
    cleanups.push(() => channel.close());
  } else if (crossTab && web && win && typeof win.addEventListener === 'function') {
    // Fallback: the storage event fires in the other tabs when one writes.
    const onStorage = (ev) => {
      if (ev.key !== storageKey && ev.key !== null) return;
      void onPeerMessage({ type: ev.newValue ? 'tokens' : 'ended', reason: 'logout', from: 'storage' });
    };
    win.addEventListener('storage', onStorage);
    cleanups.push(() => win.removeEventListener('storage', onStorage));
  }

  function announce(msg) {
    if (!channel) return;
    try {
      const m = { ...msg, from: tabId, at: now() };
      // The message carries the state: another tab's copy of localStorage
      // may lag behind this tab's write (browsers propagate it
      // asynchronously), and the message may be the first to arrive.
      if (msg.type === 'tokens' && current) m.state = current;
      channel.postMessage(m);
    } catch {
      // A closed channel: nothing to tell.
    }
  }

  /** Whether a is a later state than b (by when it was obtained). */
  function newer(a, b) {
    return a != null && (b == null || (a.obtainedAt ?? 0) > (b.obtainedAt ?? 0));
  }

  async function onPeerMessage(msg) {
    if (closed || !msg || msg.from === tabId) return;
    if (msg.type === 'tokens') {
      let s = parseState(msg.state);
      if (!s && shared) s = await readStore(); // the storage event: storage is up to date
      if (!s) return;
      if (cookie) delete s.refreshToken;
      if (current && !newer(s, current)) return; // nothing new, or older than ours
      if ((s.obtainedAt ?? 0) <= endedAt) return; // from before a logout: revoked
      if (!shared) await writeStore(s);
      adopt(s, 'peer');
      emit('peer', { type: 'tokens' });
    } else if (msg.type === 'ended') {
      if (!current) return;
      // A login after the logout (in storage already) wins over it.
      const s = shared ? await readStore() : null;
      if (s && (s.obtainedAt ?? 0) > (msg.at ?? 0) && newer(s, current)) {
        adopt(s, 'peer');
        return;
      }
      if (!current) return;
      // Tokens this tab wrote before it heard of the end are dead: drop them.
      if (!shared || (s && s.accessToken === current.accessToken)) await clearStore();
      emit('peer', { type: 'ended', reason: msg.reason });
      endSession(msg.reason || 'logout', null, false);
    }
  }

  async function withLock(fn, opts = {}) {
    if (!crossTab || !locks || typeof locks.request !== 'function') return fn(true);
    if (opts.ifAvailable) return locks.request(lockName, { ifAvailable: true }, (lock) => fn(lock != null));
    const signal = timeoutSignal(refreshTimeout * 2);
    try {
      return await locks.request(lockName, signal ? { signal } : {}, () => fn(true));
    } catch (e) {
      if (e && (e.name === 'AbortError' || e.name === 'TimeoutError') && signal?.aborted) {
        throw new RefreshError('timed out waiting for another tab', { cause: e });
      }
      throw e;
    }
  }

  // --- ending a session ----------------------------------------------------

  /**
   * Forgets the tokens and, once per lost session, tells the application.
   * wipe: also clear the shared store and tell the other tabs.
   */
  function endSession(reason, cause, wipe) {
    const err = new ReauthRequiredError(reason, cause ? { cause } : undefined);
    epoch++;
    endedAt = now();
    const had = current;
    current = null;
    loaded = true;
    if (wipe) {
      Promise.resolve(clearStore()).catch(() => {});
      announce({ type: 'ended', reason });
    }
    if (had || !notified) emit('reauth', { reason });
    if (!notified) {
      notified = true;
      if (typeof onReauthRequired === 'function') {
        try {
          onReauthRequired(err);
        } catch (e) {
          queueMicrotask(() => {
            throw e;
          });
        }
      }
    }
    return err;
  }

  // --- refresh (single flight) -------------------------------------------

  /**
   * Refreshes, or joins the refresh in flight. stale is the state whose
   * access token is no good; if the shared store already holds a fresh,
   * different one (another tab refreshed), that one is adopted instead.
   */
  function refresh(stale) {
    if (!inflight) {
      inflight = runRefresh(stale).finally(() => {
        inflight = null;
      });
    }
    return inflight;
  }

  async function runRefresh(stale) {
    const id = ++seq;
    const e0 = epoch;
    const started = now();
    emit('refresh', { id, phase: 'wait', at: started });
    try {
      const result = await withLock(async () => {
        let s = await readStore();
        // A peer's message may be ahead of this tab's view of storage, and
        // may still be queued behind the lock grant: let it in once.
        if (newer(current, s)) s = current;
        const usable = (x) => x && x.accessToken !== stale?.accessToken && !isStale(x);
        if (!usable(s) && channel) {
          await yieldTask();
          if (newer(current, s)) s = current;
        }
        if (usable(s)) {
          emit('refresh', { id, phase: 'adopted', at: now(), startedAt: started });
          return adopt(s, 'peer');
        }
        if (!s && !cookie) throw endSession('no_session', null, false);
        emit('refresh', { id, phase: 'start', at: now() });
        const s2 = await exchange(s);
        // Logged out (here or in another tab) while the call was out: the
        // new tokens belong to a session that is over.
        if (epoch !== e0) throw new ReauthRequiredError('logout');
        await writeStore(s2);
        adopt(s2, 'refresh');
        announce({ type: 'tokens' });
        emit('refresh', { id, phase: 'done', at: now(), startedAt: started });
        return s2;
      });
      return result;
    } catch (e) {
      emit('refresh', { id, phase: 'failed', at: now(), startedAt: started, reason: e?.reason ?? e?.message });
      throw e;
    }
  }

  /** The init of a JSON POST to one of the auth endpoints. */
  function jsonPost(body) {
    const init = {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
      cache: 'no-store',
    };
    if (credentials) init.credentials = credentials;
    return init;
  }

  /** One call to the refresh endpoint, with the state read under the lock. */
  async function exchange(s) {
    const sent = s?.refreshToken;
    const body = cookie ? {} : { refreshToken: sent };
    let res;
    try {
      const init = jsonPost(body);
      const sig = timeoutSignal(refreshTimeout);
      if (sig) init.signal = sig;
      res = await getFetch()(endpoint('refresh'), init);
    } catch (e) {
      throw new RefreshError(e?.name === 'TimeoutError' ? 'timeout' : 'network error', { cause: e });
    }
    const data = await readJSON(res);
    if (res.ok) {
      const s2 = stateFromReply(data);
      if (!s2) throw new RefreshError('malformed reply', { status: res.status });
      if (!cookie && !s2.refreshToken) s2.refreshToken = sent; // a server that does not rotate
      return s2;
    }
    const code = data?.error;
    if (res.status === 401 || res.status === 400 || code === 'invalid_grant') {
      // A tab without the lock (or an old version) may have rotated the
      // token under us: if the store moved on, take what it holds.
      const again = await readStore();
      if (again && !cookie && again.refreshToken && again.refreshToken !== sent) return again;
      const reason = (code === 'invalid_grant' && data?.error_description) || code || 'unknown';
      const stillOurs = !again || cookie || again.refreshToken === sent;
      throw endSession(String(reason), null, stillOurs);
    }
    throw new RefreshError(`HTTP ${res.status}`, { status: res.status });
  }

  // --- the fetch function ------------------------------------------------

  function resolveURL(input) {
    if (typeof Request !== 'undefined' && input instanceof Request) return input.url;
    const base = loc ? loc.href : baseUrl + '/';
    return new URL(String(input), base).href;
  }

  function shouldAttach(url) {
    if (options.shouldAttach) return options.shouldAttach(url);
    try {
      return new URL(url).origin === baseOrigin;
    } catch {
      return false;
    }
  }

  /** A usable token for a request: waits for a refresh when needed. */
  async function tokenFor(signal) {
    if (inflight) await abortable(inflight, signal);
    let s = await load();
    if (!s) s = adopt(await readStore(), 'store'); // another tab may have logged in
    if (s && !isStale(s)) return s;
    if (!s && !cookie) throw endSession('no_session', null, false);
    return abortable(refresh(s), signal);
  }

  /** The token to replay with after `used` was rejected with a 401. */
  async function tokenAfter401(used, signal) {
    if (inflight) await abortable(inflight, signal);
    if (current && current.accessToken !== used.accessToken && !isStale(current)) return current;
    return abortable(refresh(used), signal);
  }

  function send(req, s) {
    req.headers.set('Authorization', `${s.tokenType || 'Bearer'} ${s.accessToken}`);
    return getFetch()(req);
  }

  async function silentFetch(input, init) {
    if (closed) throw new TypeError('silentrefresh: client is closed');
    const url = resolveURL(input);
    const req = new Request(input instanceof Request ? input : url, init);
    if (!shouldAttach(req.url)) return getFetch()(req);
    const id = ++seq;
    const startedAt = now();
    const info = { id, method: req.method, url: req.url, startedAt };
    emit('request', { ...info, phase: 'start' });
    let replayed = false;
    let waited = false;
    try {
      const signal = req.signal;
      waited = inflight != null || isStale(current);
      let s = await tokenFor(signal);
      const spare = req.clone();
      let res = await send(req, s);
      if (res.status === 401) {
        try {
          await res.body?.cancel();
        } catch {
          // Already read or errored: nothing to free.
        }
        s = await tokenAfter401(s, signal);
        replayed = true;
        res = await send(spare, s);
      }
      emit('request', { ...info, phase: 'end', status: res.status, endedAt: now(), replayed, waited });
      return res;
    } catch (e) {
      emit('request', { ...info, phase: 'end', status: 0, error: e?.name ?? 'Error', endedAt: now(), replayed, waited });
      throw e;
    }
  }

  // --- login / logout ----------------------------------------------------

  async function login(username, password, extra = {}) {
    const body = { ...extra, username, password };
    if (cookie) body.cookie = true;
    let res;
    try {
      res = await getFetch()(endpoint('login'), jsonPost(body));
    } catch (e) {
      throw new LoginError('network', { cause: e });
    }
    const data = await readJSON(res);
    if (!res.ok) {
      const retryAfter = Number(res.headers.get('Retry-After') || 0);
      const code = res.status === 429 ? 'rate_limited' : data?.error || (res.status >= 500 ? 'server_error' : 'rejected');
      throw new LoginError(code, { status: res.status, retryAfter });
    }
    const s = stateFromReply(data);
    if (!s) throw new LoginError('malformed_reply', { status: res.status });
    await withLock(async () => {
      await writeStore(s);
      adopt(s, 'login');
      notified = false;
      announce({ type: 'tokens' });
    });
    return view(s);
  }

  async function logout() {
    // Not under the lock: signing out is at once. The server revokes the
    // whole family whichever of its tokens it is given, and a refresh in
    // flight anywhere is voided (epoch here, the "ended" message elsewhere).
    epoch++;
    endedAt = now();
    notified = true; // the application asked for it: no onReauthRequired here
    const mine = current;
    current = null;
    loaded = true;
    let s = await readStore();
    if (newer(mine, s)) s = mine;
    await clearStore();
    announce({ type: 'ended', reason: 'logout' });
    emit('logout', {});
    const headers = { 'Content-Type': 'application/json' };
    if (s?.accessToken) headers.Authorization = `Bearer ${s.accessToken}`;
    const body = cookie || !s?.refreshToken ? {} : { refreshToken: s.refreshToken };
    const init = { method: 'POST', headers, body: JSON.stringify(body), cache: 'no-store' };
    if (credentials) init.credentials = credentials;
    try {
      const res = await getFetch()(endpoint('logout'), init);
      return res.ok;
    } catch {
      return false; // the local session is gone all the same
    }
  }

  // --- re-checks and heartbeat -------------------------------------------

  async function check() {
    if (closed) return;
    const s = await readStore();
    if (newer(s, current)) adopt(s, 'store');
    else if (!s && current && shared && !channel) {
      // No channel to hear it on: an empty store means a logout elsewhere.
      endSession('logout', null, false);
      return;
    }
    if (current && isStale(current)) {
      try {
        await refresh(current);
      } catch {
        // Reported through onReauthRequired or left for the next request.
      }
    }
    if (heartbeatInterval > 0) void beat();
  }

  function visible() {
    return !doc || doc.visibilityState !== 'hidden';
  }

  /** Claims this heartbeat round for this tab unless another tab did it. */
  async function claimBeat() {
    return withLock(
      async (got) => {
        if (!got) return false;
        const last = Number((await adapter.get(heartbeatKey)) || 0);
        if (now() - last < heartbeatInterval * 0.9) return false;
        await adapter.set(heartbeatKey, String(now()));
        return true;
      },
      { ifAvailable: true },
    );
  }

  async function beat() {
    if (closed || !visible() || !current) return;
    if (!(await claimBeat())) return;
    emit('heartbeat', { phase: 'start', at: now() });
    try {
      const res = await silentFetch(endpoint('heartbeat'), { cache: 'no-store' });
      const data = await readJSON(res);
      const active = res.ok && data?.active !== false;
      emit('heartbeat', { phase: 'end', at: now(), status: res.status, active });
      // Refused even after a refresh, or told so: the session is over.
      if (res.status === 401 || (res.ok && data?.active === false)) endSession('inactive', null, true);
    } catch (e) {
      emit('heartbeat', { phase: 'end', at: now(), status: 0, active: !isReauthRequired(e), error: e?.name });
    }
  }

  let beatTimer = null;
  function scheduleBeat() {
    if (closed || !(heartbeatInterval > 0)) return;
    beatTimer = setTimeout(async () => {
      try {
        await beat();
      } finally {
        scheduleBeat();
      }
    }, heartbeatInterval);
  }
  if (heartbeatInterval > 0) {
    scheduleBeat();
    cleanups.push(() => clearTimeout(beatTimer));
  }

  if (doc && typeof doc.addEventListener === 'function') {
    const onVis = () => {
      if (visible()) void check();
    };
    doc.addEventListener('visibilitychange', onVis);
    cleanups.push(() => doc.removeEventListener('visibilitychange', onVis));
  }
  if (win && typeof win.addEventListener === 'function') {
    const onOnline = () => void check();
    win.addEventListener('online', onOnline);
    cleanups.push(() => win.removeEventListener('online', onOnline));
  }

  // --- the returned function ---------------------------------------------

  const client = (input, init) => silentFetch(input, init);
  Object.assign(client, {
    login,
    logout,
    /** The current tokens of this tab, or null. */
    tokens: () => view(current),
    /** Loads the tokens; in cookie mode, tries the cookie when there are none. */
    async restore() {
      const s = await load();
      if (s && !isStale(s)) return view(s);
      if (!s && !cookie) return null;
      // A probe: no onReauthRequired if there is no session to restore.
      if (!s) notified = true;
      try {
        return view(await refresh(s));
      } catch (e) {
        if (isReauthRequired(e)) return null;
        throw e;
      }
    },
    /** Refreshes now (through the single flight) and returns the new tokens. */
    async refresh() {
      const s = await load();
      return view(await refresh(s ?? null));
    },
    /** Re-reads the shared tokens and refreshes if they are stale. */
    check,
    /** Runs one heartbeat round now (if no other tab just did). */
    heartbeat: beat,
    /** Subscribes to an event; returns the function that unsubscribes. */
    on(type, fn) {
      if (!listeners.has(type)) listeners.set(type, new Set());
      listeners.get(type).add(fn);
      return () => listeners.get(type)?.delete(fn);
    },
    /** Stops listening to other tabs and timers. */
    close() {
      closed = true;
      for (const c of cleanups.splice(0)) c();
      listeners.clear();
    },
    /** The options in force, for display. */
    info: Object.freeze({ mode, key, baseUrl, crossTab, heartbeat: heartbeatInterval, tabId }),
  });
  return client;
}

export default createClient;
