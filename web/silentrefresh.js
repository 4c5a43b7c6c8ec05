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
// It speaks the seed's JSON API (bearer or cookie mode), or with the oauth2
// option any RFC 6749 token endpoint; setTokens adopts a session begun
// elsewhere. With the dpop option the session is bound to a non-extractable
// key kept in IndexedDB (RFC 9449), and every call carries a proof of it. When a session is over and when a token is stale is one rule
// for this client and the Go client: docs/API.md.
//
// No dependencies, no build step: import it as an ES module.

const DEFAULT_PATHS = Object.freeze({
  login: '/api/auth/login',
  exchange: '/api/auth/exchange',
  refresh: '/api/auth/refresh',
  logout: '/api/auth/logout',
  heartbeat: '/api/heartbeat',
});

/**
 * The session is over: the token endpoint answered invalid_grant (the
 * refresh token is unknown, revoked, expired, superseded or was reused),
 * there was no refresh token to present, or the user logged out (here or in
 * another tab). The user has to log in again.
 */
export class ReauthRequiredError extends Error {
  /**
   * @param {string} reason why: "unknown", "revoked", "expired", "superseded",
   *   "reused", "invalid_grant", "no_session", "no_refresh_token",
   *   "no_dpop_key", "logout"
   * @param {{cause?: unknown, description?: string}} [options]
   */
  constructor(reason, options = {}) {
    super(`silentrefresh: log in again (${reason})`, { cause: options.cause });
    this.name = 'ReauthRequiredError';
    this.reason = reason;
    this.description = options.description ?? '';
  }
}

/**
 * A refresh failed but the session is not over: the tokens are kept. A
 * temporary failure (network error, timeout, 429, 5xx) was retried with
 * backoff before it was reported; a permanent one (any other 4xx: the
 * request or the client is wrong, not the session) was not retried. The
 * next request that needs a refresh tries again.
 */
export class RefreshError extends Error {
  /**
   * @param {string} message
   * @param {{cause?: unknown, status?: number, code?: string, description?: string,
   *   temporary?: boolean, retryAfter?: number, attempts?: number}} [options]
   */
  constructor(message, options = {}) {
    super(`silentrefresh: refresh failed: ${message}`, { cause: options.cause });
    this.name = 'RefreshError';
    this.status = options.status ?? 0;
    this.code = options.code ?? '';
    this.description = options.description ?? '';
    this.temporary = options.temporary ?? this.status === 0;
    this.retryAfter = options.retryAfter ?? 0;
    this.attempts = options.attempts ?? 1;
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
  if (s.jkt) v.jkt = s.jkt;
  return Object.freeze(v);
}

/**
 * The delay a Retry-After header asks for, in ms: delay-seconds or an HTTP
 * date; 0 when absent or unreadable; at most a day.
 */
function retryAfterMs(value, nowMs) {
  const v = String(value ?? '').trim();
  if (!v) return 0;
  if (/^\d+$/.test(v)) return Math.min(Number(v), 86_400) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.min(Math.max(0, t - nowMs), 86_400_000) : 0;
}

/** Reads a JSON body: {data} (null when it is not JSON), or {lost} when the answer broke off. */
async function readBody(res) {
  try {
    return { data: await res.json() };
  } catch (e) {
    if (e?.name === 'SyntaxError') return { data: null };
    return { data: null, lost: e };
  }
}

const FORM = 'application/x-www-form-urlencoded';

// What a token and an auth scheme may be made of: visible ASCII (RFC 6750's
// b64token and more), so that no reply can smuggle a space or a line break
// into an Authorization header; and an RFC 9110 token.
const TOKEN_CHARS = /^[\x21-\x7e]{1,16384}$/;
const SCHEME_CHARS = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/;

// ---------------------------------------------------------------------------
// DPoP (RFC 9449): proofs of a key that never leaves the browser

const utf8 = new TextEncoder();

function b64url(buf) {
  const b = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const b64urlJSON = (v) => b64url(utf8.encode(JSON.stringify(v)));

/**
 * The htu of a proof for a request to url (RFC 9449 sections 4.2 and 4.3):
 * scheme, host and path, without query or fragment, in the normal form of
 * RFC 3986 section 6.2.2 (the URL parser lower-cases scheme and host, drops
 * the default port and removes dot segments; percent-encodings are made
 * upper case, and decoded where they stand for unreserved characters).
 */
function dpopHTU(url) {
  const u = new URL(url);
  const path = (u.pathname || '/').replace(/%([0-9a-fA-F]{2})/g, (_, h) => {
    const c = String.fromCharCode(parseInt(h, 16));
    return /[A-Za-z0-9\-._~]/.test(c) ? c : `%${h.toUpperCase()}`;
  });
  return `${u.protocol}//${u.host}${path}`;
}

/** The RFC 7638 thumbprint of an EC public key. */
async function jwkThumbprint(subtle, jwk) {
  const canonical = `{"crv":"${jwk.crv}","kty":"${jwk.kty}","x":"${jwk.x}","y":"${jwk.y}"}`;
  return b64url(await subtle.digest('SHA-256', utf8.encode(canonical)));
}

const IDB_NAME = 'silentrefresh';
const IDB_STORE = 'dpop-keys';

/**
 * The default key store: IndexedDB, database "silentrefresh", object store
 * "dpop-keys", one record per session key. IndexedDB keeps a CryptoKey as
 * the browser made it, non-extractable, and every tab of the origin reads
 * the same records.
 */
function indexedDBKeyStore(idb, dbName = IDB_NAME, storeName = IDB_STORE) {
  let dbp = null;
  const open = () =>
    (dbp ??= new Promise((resolve, reject) => {
      const r = idb.open(dbName, 1);
      r.onupgradeneeded = () => r.result.createObjectStore(storeName);
      r.onsuccess = () => {
        const db = r.result;
        db.onversionchange = () => {
          db.close();
          dbp = null;
        };
        resolve(db);
      };
      r.onerror = () => {
        dbp = null;
        reject(r.error);
      };
    }));
  const tx = async (mode, fn) => {
    const db = await open();
    return new Promise((resolve, reject) => {
      const t = db.transaction(storeName, mode);
      let out;
      fn(t.objectStore(storeName), (v) => (out = v));
      t.oncomplete = () => resolve(out);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  };
  return {
    get: (name) =>
      tx('readonly', (st, set) => {
        const r = st.get(name);
        r.onsuccess = () => set(r.result ?? null);
      }),
    set: (name, record) => tx('readwrite', (st) => st.put(record, name)),
    // In one transaction, so that a key another tab has just stored for a
    // new session is not removed with the old one.
    remove: (name, jkt) =>
      tx('readwrite', (st) => {
        const r = st.get(name);
        r.onsuccess = () => {
          if (r.result && (jkt == null || r.result.jkt === jkt)) st.delete(name);
        };
      }),
    close() {
      if (dbp) dbp.then((db) => db.close()).catch(() => {});
      dbp = null;
    },
  };
}

/**
 * The store of the handoff record between lock holders: the handoffStore
 * option ({get, set}, methods may return promises), else IndexedDB
 * (database "silentrefresh-tabs", store "handoff"), else none.
 */
function handoffStore(given) {
  if (given != null) {
    if (typeof given.get !== 'function' || typeof given.set !== 'function') {
      throw new TypeError('silentrefresh: handoffStore must be {get, set}');
    }
    return given;
  }
  if (!globalThis.indexedDB) return null;
  return indexedDBKeyStore(globalThis.indexedDB, 'silentrefresh-tabs', 'handoff');
}

/** A record of the key store: {jkt, jwk, privateKey}, or null for anything else. */
function keyRecord(r) {
  if (!r || typeof r.jkt !== 'string' || !r.jwk || typeof r.jwk.x !== 'string' || typeof r.jwk.y !== 'string') return null;
  if (!r.privateKey || typeof r.privateKey !== 'object') return null;
  return r;
}

/**
 * The DPoP side of one client: makes the key pair, keeps it in the key
 * store under name, signs proofs with it, and remembers the nonce each
 * origin asked for (RFC 9449 section 8). opts: {keyStore, crypto} of the
 * dpop option.
 */
function dpopProver(opts, name, now) {
  const o = opts === true ? {} : opts;
  if (typeof o !== 'object' || o === null) throw new TypeError('silentrefresh: dpop must be true or {keyStore, crypto}');
  const c = o.crypto ?? globalThis.crypto;
  const subtle = c?.subtle;
  if (!subtle || typeof c.getRandomValues !== 'function') {
    throw new TypeError('silentrefresh: dpop needs WebCrypto (crypto.subtle: a secure context, https or localhost)');
  }
  let keys = o.keyStore;
  if (keys == null) {
    if (!globalThis.indexedDB) throw new TypeError('silentrefresh: dpop needs IndexedDB to keep its key; pass dpop.keyStore');
    keys = indexedDBKeyStore(globalThis.indexedDB);
  } else if (typeof keys.get !== 'function' || typeof keys.set !== 'function' || typeof keys.remove !== 'function') {
    throw new TypeError('silentrefresh: dpop.keyStore must be {get, set, remove}');
  }

  let cached = null; // the record this tab signs with, as last read or made
  let loading = null; // the read of the key store in progress
  let hashed = null; // {token, ath}: the access token hashed last
  const nonces = new Map(); // origin -> the last DPoP-Nonce it sent

  function jti() {
    const b = new Uint8Array(16);
    c.getRandomValues(b);
    return b64url(b);
  }

  async function ath(token) {
    if (hashed?.token !== token) hashed = { token, ath: b64url(await subtle.digest('SHA-256', utf8.encode(token))) };
    return hashed.ath;
  }

  return {
    /** A new key pair, not stored yet: a login stores it once it succeeded. */
    async create() {
      const kp = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
      const pub = await subtle.exportKey('jwk', kp.publicKey);
      const jwk = { kty: 'EC', crv: 'P-256', x: pub.x, y: pub.y }; // public members only
      return { jkt: await jwkThumbprint(subtle, jwk), jwk, privateKey: kp.privateKey, createdAt: now() };
    },
    /** Makes rec the key of the session, for every tab. */
    async store(rec) {
      await keys.set(name, rec);
      cached = rec;
    },
    /**
     * The stored key: with jkt, only if it is that key (else null). A
     * tab reads the store once and then signs from memory.
     */
    async key(jkt) {
      if (cached && (jkt == null || cached.jkt === jkt)) return cached;
      loading ??= Promise.resolve(keys.get(name))
        .then((r) => (cached = keyRecord(r)))
        .finally(() => {
          loading = null;
        });
      const r = await loading;
      return r && (jkt == null || r.jkt === jkt) ? r : null;
    },
    /** Forgets the key here; with remove, also in the store (only the key jkt, when given). */
    async drop(jkt, remove) {
      if (jkt == null || cached?.jkt === jkt) cached = null;
      if (remove) await keys.remove(name, jkt);
    },
    /** A fresh proof for a request; ath is bound to accessToken when given. */
    async proof(rec, method, url, accessToken) {
      const claims = { jti: jti(), htm: method, htu: dpopHTU(url), iat: Math.floor(now() / 1000) };
      if (accessToken) claims.ath = await ath(accessToken);
      const nonce = nonces.get(new URL(url).origin);
      if (nonce) claims.nonce = nonce;
      const input = `${b64urlJSON({ typ: 'dpop+jwt', alg: 'ES256', jwk: rec.jwk })}.${b64urlJSON(claims)}`;
      const sig = await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, rec.privateKey, utf8.encode(input));
      return `${input}.${b64url(sig)}`;
    },
    /** Remembers the nonce an answer sends for its origin; reports whether it sent one. */
    learn(url, res) {
      const n = res.headers.get('DPoP-Nonce');
      if (!n || !TOKEN_CHARS.test(n) || n.length > 1024) return false;
      nonces.set(new URL(url).origin, n);
      return true;
    },
    close() {
      keys.close?.();
    },
  };
}

/** Whether a resource's 401 asks for a proof with its nonce (RFC 9449 section 9). */
function resourceAsksNonce(res) {
  if (res.status !== 401 || !res.headers.get('DPoP-Nonce')) return false;
  return /(^|[\s,])DPoP\s[^]*?error="?use_dpop_nonce\b/i.test(res.headers.get('WWW-Authenticate') || '');
}

/** Whether a token endpoint's answer asks for a proof with its nonce (RFC 9449 section 8). */
function tokenEndpointAsksNonce(res, data) {
  return res.status >= 400 && res.status < 500 && data?.error === 'use_dpop_nonce' && !!res.headers.get('DPoP-Nonce');
}

const isDPoP = (s) => /^dpop$/i.test(s?.tokenType ?? '');

// ---------------------------------------------------------------------------
// Wire formats: how a refresh and a logout are asked for, and how a token
// reply reads. Both produce a grant {accessToken, tokenType, expiresIn,
// refreshToken, refreshExpiresIn}, or null for a reply that is not one.

/** The seed's JSON API: camelCase JSON both ways. */
function jsonApiWire({ endpoint, cookie, post }) {
  return {
    refreshRequest(s) {
      return [endpoint('refresh'), post('application/json', JSON.stringify(cookie ? {} : { refreshToken: s?.refreshToken }))];
    },
    grant(d) {
      if (!d || typeof d.accessToken !== 'string' || !d.accessToken) return null;
      return {
        accessToken: d.accessToken,
        tokenType: d.tokenType,
        expiresIn: d.expiresIn,
        refreshToken: d.refreshToken,
        refreshExpiresIn: d.refreshExpiresIn,
      };
    },
    logoutRequest(s, everywhere) {
      const body = cookie || !s?.refreshToken ? {} : { refreshToken: s.refreshToken };
      if (everywhere) body.all = true;
      const init = post('application/json', JSON.stringify(body));
      if (s?.accessToken) init.headers.Authorization = `Bearer ${s.accessToken}`;
      return [endpoint('logout'), init];
    },
  };
}

/**
 * Any OAuth2 server: the refresh_token grant of RFC 6749 section 6
 * (form-encoded, snake_case reply) and revocation by RFC 7009.
 */
function oauth2Wire({ tokenEndpoint, clientId, revocationEndpoint, scope }, post) {
  const form = (fields) => {
    const f = new URLSearchParams();
    for (const [k, v] of Object.entries(fields)) if (v != null && v !== '') f.set(k, String(v));
    return post(FORM, f.toString());
  };
  return {
    refreshRequest(s) {
      return [tokenEndpoint, form({ grant_type: 'refresh_token', refresh_token: s?.refreshToken, client_id: clientId, scope })];
    },
    grant(d) {
      if (!d || typeof d.access_token !== 'string' || !d.access_token) return null;
      if (d.token_type != null && String(d.token_type).toLowerCase() !== 'bearer') return null;
      return {
        accessToken: d.access_token,
        tokenType: 'Bearer',
        expiresIn: d.expires_in,
        refreshToken: d.refresh_token,
        refreshExpiresIn: d.refresh_expires_in,
      };
    },
    logoutRequest(s) {
      if (!revocationEndpoint || !s) return null;
      const [token, hint] = s.refreshToken ? [s.refreshToken, 'refresh_token'] : [s.accessToken, 'access_token'];
      return [revocationEndpoint, form({ token, token_type_hint: hint, client_id: clientId })];
    },
  };
}

/** Checks the oauth2 option and resolves its endpoints against the page. */
function oauth2Options(o, base) {
  if (typeof o !== 'object') throw new TypeError('silentrefresh: oauth2 must be {tokenEndpoint, clientId, revocationEndpoint}');
  if (!o.tokenEndpoint) throw new TypeError('silentrefresh: oauth2.tokenEndpoint is required');
  const abs = (u) => (u ? new URL(String(u), base).href : '');
  return {
    tokenEndpoint: abs(o.tokenEndpoint),
    revocationEndpoint: abs(o.revocationEndpoint),
    clientId: o.clientId == null ? '' : String(o.clientId),
    scope: o.scope == null ? '' : String(o.scope),
  };
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
  // An empty baseUrl, like none, means the page's origin.
  const baseUrl = String(options.baseUrl || (loc ? loc.origin : '')).replace(/\/+$/, '');
  if (!baseUrl) throw new TypeError('silentrefresh: baseUrl is required outside a browser page');
  const baseOrigin = new URL(baseUrl).origin;
  const paths = { ...DEFAULT_PATHS, ...(options.paths || {}) };
  const endpoint = (name) => baseUrl + paths[name];
  const oauth2 = options.oauth2 ? oauth2Options(options.oauth2, loc ? loc.href : baseUrl + '/') : null;
  if (oauth2 && cookie) throw new TypeError("silentrefresh: oauth2 and mode 'cookie' do not go together: the cookie is the JSON API's");

  const key = options.key ?? 'default';
  const storageKey = `silentrefresh:${key}`;
  const heartbeatKey = `${storageKey}:heartbeat`;
  const lockName = `silentrefresh:${key}`;

  const { adapter, shared, web } = resolveAdapter(options.storage);
  const crossTab = options.crossTab ?? shared;

  const now = options.now ?? (() => Date.now());
  const leeway = options.leeway == null ? null : Math.max(0, Number(options.leeway) || 0);
  const refreshTimeout = options.refreshTimeout ?? 15_000;
  const maxRetries = options.maxRetries == null ? 3 : Math.max(0, Math.floor(Number(options.maxRetries) || 0));
  const backoff = options.backoff ?? 200;
  const maxBackoff = options.maxBackoff ?? 5_000;
  const credentials = options.credentials ?? (cookie ? 'same-origin' : undefined);
  const heartbeatInterval = options.heartbeat === true ? 60_000 : Number(options.heartbeat || 0);
  const onReauthRequired = options.onReauthRequired;
  const getFetch = () => options.fetch ?? globalThis.fetch.bind(globalThis);
  const locks = options.locks === undefined ? globalThis.navigator?.locks : options.locks;
  const BC = options.BroadcastChannel === undefined ? globalThis.BroadcastChannel : options.BroadcastChannel;
  const doc = options.document === undefined ? globalThis.document : options.document;
  const win = options.window === undefined ? (typeof window !== 'undefined' ? window : undefined) : options.window;
  const tabId = randomId();
  if (options.dpop && oauth2) throw new TypeError('silentrefresh: dpop is for the JSON API (bearer or cookie mode), not oauth2');
  const prover = options.dpop ? dpopProver(options.dpop, storageKey, now) : null;
  const handoff = crossTab && locks && typeof locks.request === 'function' ? handoffStore(options.handoffStore) : null;

  // State. JavaScript runs one task at a time, so plain variables are safe;
  // what needs care is the interleaving at every await.
  let current = null; // the token state this tab uses (from the shared store)
  let loaded = false; // current has been read from the store at least once
  let inflight = null; // the one refresh of this tab in progress, or null
  let notified = false; // onReauthRequired has run for the session that ended
  let closed = false;
  let seq = 0;
  let epoch = 0; // bumped when a session ends: a refresh begun before it is void
  let gen = 0; // bumped when a session begins (login, setTokens): an older refresh's result is not kept
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

  /**
   * How long before expiry a token stops being sent: the leeway option, or
   * else a tenth of the token's lifetime, at most 10 s.
   */
  function marginOf(s) {
    if (leeway != null) return leeway;
    const life = Math.max(0, s.expiresAt - (s.obtainedAt ?? s.expiresAt));
    return Math.min(10_000, life / 10);
  }

  function isStale(s) {
    if (!s || !s.accessToken) return true;
    return now() >= s.expiresAt - marginOf(s);
  }

  /** The state for a grant received now, or null if the grant is malformed. */
  function stateFromGrant(g) {
    if (!g || typeof g.accessToken !== 'string' || !TOKEN_CHARS.test(g.accessToken)) return null;
    if (g.tokenType != null && (typeof g.tokenType !== 'string' || !SCHEME_CHARS.test(g.tokenType))) return null;
    const secs = (v) => (v == null || v === '' ? null : Number(v));
    const expiresIn = secs(g.expiresIn);
    const refreshExpiresIn = secs(g.refreshExpiresIn);
    if (expiresIn != null && !(expiresIn >= 0)) return null;
    if (refreshExpiresIn != null && !(refreshExpiresIn >= 0)) return null;
    if (g.refreshToken != null && typeof g.refreshToken !== 'string') return null;
    const t = now();
    const s = {
      v: 1,
      accessToken: g.accessToken,
      tokenType: isDPoP(g) ? 'DPoP' : g.tokenType || 'Bearer',
      obtainedAt: t,
      // No expires_in (RFC 6749 only recommends it): only a 401 ends the token.
      expiresAt: expiresIn == null ? Number.MAX_SAFE_INTEGER : t + expiresIn * 1000,
      refreshExpiresAt: refreshExpiresIn ? t + refreshExpiresIn * 1000 : null,
    };
    if (!cookie && g.refreshToken) s.refreshToken = g.refreshToken;
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
      endSession(msg.reason || 'logout', false, typeof msg.description === 'string' ? msg.description : '');
    }
  }

  async function withLock(fn, opts = {}) {
    if (!crossTab || !locks || typeof locks.request !== 'function') return fn(true);
    if (opts.ifAvailable) return locks.request(lockName, { ifAvailable: true }, (lock) => fn(lock != null));
    // Another tab's refresh may hold the lock for its whole budget (twice
    // refreshTimeout) plus the one call begun just before that ran out.
    const signal = timeoutSignal(refreshTimeout * 3 + 1000);
    try {
      return await locks.request(lockName, signal ? { signal } : {}, () => fn(true));
    } catch (e) {
      if (e && (e.name === 'AbortError' || e.name === 'TimeoutError') && signal?.aborted) {
        throw new RefreshError('timed out waiting for another tab', { cause: e });
      }
      throw e;
    }
  }

  // --- the handoff between lock holders -----------------------------------
  //
  // The lock says who refreshes; it does not carry the tokens. A tab that
  // gets the lock right after another tab's refresh may not have received
  // that tab's localStorage write nor its message yet (browsers deliver
  // both to other tabs asynchronously, late on a loaded machine), and would
  // present the refresh token that was just rotated: a strict server takes
  // that for theft and ends the session. So every lock holder that makes
  // new tokens numbers them (state.handoff, one more than the last) and
  // records {n, at} under the lock in a store that every tab reads
  // consistently the moment the lock is released (IndexedDB). The next
  // holder reads that record first, and if its tokens are older it waits,
  // a bounded time, for the newer ones to arrive by message or storage.

  const handoffWait = Math.min(refreshTimeout, 5_000);

  async function readHandoff() {
    if (!handoff) return null;
    try {
      const h = await handoff.get(lockName);
      return h && Number.isFinite(h.n) && Number.isFinite(h.at) ? h : null;
    } catch {
      return null; // no IndexedDB here (private mode, quota): as without one
    }
  }

  /** Numbers s as the tokens after h and records that, under the lock. */
  async function recordHandoff(h, s) {
    s.handoff = (h?.n ?? 0) + 1;
    if (!handoff) return;
    try {
      await handoff.set(lockName, { n: s.handoff, at: s.obtainedAt ?? now() });
    } catch {
      // Nothing recorded: the next holder falls back on storage and messages.
    }
  }

  /** Whether the state s is the one h records, or a later one. */
  function caughtUp(s, h) {
    return !h || h.at <= endedAt || (s != null && ((s.handoff ?? 0) >= h.n || (s.obtainedAt ?? 0) >= h.at));
  }

  /**
   * Waits until this tab has the tokens h records (from a message or from
   * storage), at most handoffWait ms; then a temporary RefreshError: the
   * tokens stay, and nothing is presented that may have been rotated.
   */
  async function catchUp(h, e0) {
    const deadline = Date.now() + handoffWait;
    for (;;) {
      if (epoch !== e0) throw new ReauthRequiredError('logout');
      let s = await readStore();
      if (newer(current, s)) s = current;
      if (caughtUp(s, h)) return s;
      if (Date.now() >= deadline) {
        throw new RefreshError("the tokens another tab refreshed have not reached this tab", { temporary: true });
      }
      await new Promise((r) => setTimeoutAtLoad(r, 10));
    }
  }

  // --- ending a session ----------------------------------------------------

  /**
   * Forgets the tokens and, once per lost session, tells the application.
   * wipe: also clear the shared store and tell the other tabs.
   */
  function endSession(reason, wipe, description = '', jkt = undefined) {
    const err = new ReauthRequiredError(reason, { description });
    epoch++;
    endedAt = now();
    const had = current;
    current = null;
    loaded = true;
    if (wipe) {
      Promise.resolve(clearStore()).catch(() => {});
      announce({ type: 'ended', reason, description });
    }
    // The session's DPoP key signs nothing more: gone from memory, and
    // from the key store when this tab wipes the session.
    if (prover) prover.drop(jkt ?? had?.jkt, wipe).catch(() => {});
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
    const g0 = gen;
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
        // The last holder's tokens may not have reached this tab yet.
        const h = await readHandoff();
        if (s && !caughtUp(s, h)) s = await catchUp(h, e0);
        if (usable(s)) {
          emit('refresh', { id, phase: 'adopted', at: now(), startedAt: started });
          return adopt(s, 'peer');
        }
        if (!s && !cookie) throw endSession('no_session', false);
        // Nothing to present: no refresh token, or (cookie mode) the cookie
        // has run out with the refresh token's lifetime.
        if (s && !cookie && !s.refreshToken) throw endSession('no_refresh_token', true);
        if (s && cookie && s.refreshExpiresAt != null && now() >= s.refreshExpiresAt) throw endSession('expired', true);
        // A DPoP-bound session (and a cookie with no tokens here, which
        // this client's login bound) refreshes only with a proof of its
        // key: without one the server would revoke it as stolen.
        const rec = prover ? await prover.key(s?.jkt ?? null) : null;
        if (prover && !rec && (isDPoP(s) || !s)) throw endSession('no_dpop_key', true);
        emit('refresh', { id, phase: 'start', at: now() });
        const s2 = await exchange(s, id, e0, rec);
        // Logged out (here or in another tab) while the call was out: the
        // new tokens belong to a session that is over.
        if (epoch !== e0) throw new ReauthRequiredError('logout');
        // A new session began meanwhile (possible only without locks): it wins.
        if (gen !== g0 && current) return current;
        await recordHandoff(h, s2);
        await writeStore(s2);
        adopt(s2, 'refresh');
        announce({ type: 'tokens' });
        emit('refresh', { id, phase: 'done', at: now(), startedAt: started });
        return s2;
      });
      return result;
    } catch (e) {
      emit('refresh', { id, phase: 'failed', at: now(), startedAt: started, reason: e?.reason ?? e?.code ?? e?.message });
      throw e;
    }
  }

  /** The init of a POST to one of the auth endpoints. */
  function post(contentType, body) {
    const init = {
      method: 'POST',
      headers: { 'Content-Type': contentType, Accept: 'application/json' },
      body,
      cache: 'no-store',
    };
    if (credentials) init.credentials = credentials;
    return init;
  }
  const jsonPost = (v) => post('application/json', JSON.stringify(v));

  const wire = oauth2 ? oauth2Wire(oauth2, post) : jsonApiWire({ endpoint, cookie, post });

  /** The delay before retry n (0-based): exponential, capped, jittered in its upper half. */
  function backoffDelay(n) {
    const d = Math.min(backoff * 2 ** n, maxBackoff);
    return d / 2 + Math.random() * (d / 2);
  }

  /**
   * One call to the token endpoint. Returns {state} or {fail, kind}, kind
   * being "invalid_grant" (the session is over), "unanswered" (sent, no
   * answer: a timeout or a reply that broke off), "network", "temporary"
   * (429, 5xx) or "permanent" (any other 4xx, a malformed reply).
   */
  async function callTokenEndpoint(s, rec) {
    const [url, init] = wire.refreshRequest(s);
    let res;
    let data;
    for (let attempt = 0; ; attempt++) {
      const sig = timeoutSignal(refreshTimeout);
      if (sig) init.signal = sig;
      try {
        if (rec) init.headers.DPoP = await prover.proof(rec, 'POST', url);
        res = await getFetch()(url, init);
      } catch (e) {
        const timeout = e?.name === 'TimeoutError';
        return { kind: timeout ? 'unanswered' : 'network', fail: { message: timeout ? 'timeout' : 'network error', cause: e } };
      }
      if (rec) prover.learn(url, res);
      const body = await readBody(res);
      if (body.lost) return { kind: 'unanswered', fail: { message: 'the answer broke off', cause: body.lost, status: res.status } };
      data = body.data;
      // Asked for a server nonce: once more, with the nonce just learnt.
      if (!(rec && attempt === 0 && tokenEndpointAsksNonce(res, data))) break;
    }
    if (res.ok) {
      const s2 = stateFromGrant(wire.grant(data));
      if (!s2) return { kind: 'permanent', fail: { message: 'malformed reply', status: res.status } };
      if (isDPoP(s2) && !rec) return { kind: 'permanent', fail: { message: 'a DPoP-bound token for a request without a proof', status: res.status } };
      if (isDPoP(s2)) s2.jkt = rec.jkt;
      if (!cookie && !s2.refreshToken && s?.refreshToken) s2.refreshToken = s.refreshToken; // a server that does not rotate
      return { state: s2 };
    }
    const code = typeof data?.error === 'string' ? data.error : '';
    const description = typeof data?.error_description === 'string' ? data.error_description : '';
    const fail = { message: code ? `${res.status} ${code}` : `HTTP ${res.status}`, status: res.status, code, description };
    if (res.status >= 400 && res.status < 500 && code === 'invalid_grant') return { kind: 'invalid_grant', fail };
    if (res.status === 429 || res.status >= 500) {
      fail.retryAfter = retryAfterMs(res.headers.get('Retry-After'), Date.now()) / 1000;
      return { kind: 'temporary', fail };
    }
    return { kind: 'permanent', fail };
  }

  /**
   * Gets the tokens that follow s from the token endpoint, retrying what
   * may pass: a call sent but unanswered once at once (the server's grace
   * window answers it with the same successor), a network error, 429 or
   * 5xx up to maxRetries times with backoff, honouring Retry-After. The
   * whole refresh stays within twice refreshTimeout.
   */
  async function exchange(s, id, e0, rec) {
    const deadline = now() + 2 * refreshTimeout;
    let retries = 0;
    let lostRetried = false;
    for (let attempt = 1; ; attempt++) {
      const r = await callTokenEndpoint(s, rec);
      if (r.state) return r.state;
      if (r.kind === 'invalid_grant') {
        // A tab without the lock (or an old version) may have rotated the
        // token under us: if the store moved on, take what it holds.
        const again = await readStore();
        if (again && !cookie && again.refreshToken && again.refreshToken !== s?.refreshToken) return again;
        const d = r.fail.description;
        const reason = /^[a-z_]{1,32}$/.test(d) ? d : 'invalid_grant';
        const stillOurs = !again || cookie || again.refreshToken === s?.refreshToken;
        throw endSession(reason, stillOurs, d, rec?.jkt);
      }
      let delay = -1;
      if (r.kind === 'unanswered' && !lostRetried) {
        lostRetried = true;
        delay = 0;
      } else if ((r.kind === 'network' || r.kind === 'temporary') && retries < maxRetries) {
        delay = Math.max(backoffDelay(retries), (r.fail.retryAfter ?? 0) * 1000);
        retries++;
      }
      if (delay < 0 || now() + delay > deadline) {
        const temporary = r.kind !== 'permanent';
        throw new RefreshError(r.fail.message, { ...r.fail, temporary, attempts: attempt });
      }
      emit('refresh', { id, phase: 'retry', at: now(), attempt, delay, reason: r.fail.code || r.fail.message });
      if (delay > 0) await new Promise((res) => globalThis.setTimeout(res, delay));
      if (epoch !== e0) throw new ReauthRequiredError('logout');
    }
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
    if (!s && !cookie) throw endSession('no_session', false);
    return abortable(refresh(s), signal);
  }

  /** The token to replay with after `used` was rejected with a 401. */
  async function tokenAfter401(used, signal) {
    if (inflight) await abortable(inflight, signal);
    if (current && current.accessToken !== used.accessToken && !isStale(current)) return current;
    return abortable(refresh(used), signal);
  }

  /** Sends req with the credentials of s: a DPoP-bound token goes with a fresh proof of its key. */
  async function send(req, s) {
    if (prover && isDPoP(s)) {
      let rec = await prover.key(s.jkt ?? null);
      if (!rec) {
        // Another tab may have begun a new session (a new key) meanwhile:
        // go on with it. Otherwise the key is gone, and with it the session.
        const again = await readStore();
        rec = again && again.accessToken !== s.accessToken && isDPoP(again) ? await prover.key(again.jkt ?? null) : null;
        if (!rec) throw endSession('no_dpop_key', !again || again.accessToken === s.accessToken);
        s = adopt(again, 'store');
      }
      req.headers.set('Authorization', `DPoP ${s.accessToken}`);
      req.headers.set('DPoP', await prover.proof(rec, req.method, req.url, s.accessToken));
      const res = await getFetch()(req);
      prover.learn(req.url, res);
      return res;
    }
    req.headers.set('Authorization', `${s.tokenType || 'Bearer'} ${s.accessToken}`);
    return getFetch()(req);
  }

  /** Frees the body of an answer that is not handed on. */
  async function discard(res) {
    try {
      await res.body?.cancel();
    } catch {
      // Already read or errored: nothing to free.
    }
  }

  /**
   * send, and once more with a fresh proof when a DPoP resource answers
   * with a use_dpop_nonce challenge (RFC 9449 section 9). next() gives
   * another copy of the request for the second call.
   */
  async function sendWithNonce(req, s, next) {
    const res = await send(req, s);
    if (!(prover && isDPoP(s) && resourceAsksNonce(res))) return res;
    await discard(res);
    return send(next(), s);
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
      // One copy of the request for each call it may take: this one, a
      // nonce retry (DPoP), the replay after a refresh, its nonce retry.
      let spare = req.clone();
      const next = () => {
        const r = spare;
        spare = r.clone();
        return r;
      };
      let res = await sendWithNonce(req, s, next);
      if (res.status === 401) {
        await discard(res);
        s = await tokenAfter401(s, signal);
        replayed = true;
        res = await sendWithNonce(next(), s, next);
      }
      emit('request', { ...info, phase: 'end', status: res.status, endedAt: now(), replayed, waited });
      return res;
    } catch (e) {
      emit('request', { ...info, phase: 'end', status: 0, error: e?.name ?? 'Error', endedAt: now(), replayed, waited });
      throw e;
    }
  }

  // --- login / logout ----------------------------------------------------

  /** Makes s the session of every tab: a login, or tokens from elsewhere. */
  async function begin(s, source, rec = null) {
    await withLock(async () => {
      gen++; // under the lock: a refresh holding it finishes (and is overwritten) first
      await recordHandoff(await readHandoff(), s);
      // The key first: a tab that sees the tokens finds their key.
      if (rec) await prover.store(rec);
      await writeStore(s);
      adopt(s, source);
      notified = false;
      announce({ type: 'tokens' });
    });
    return view(s);
  }

  async function login(username, password, extra = {}) {
    if (oauth2) {
      throw new TypeError("silentrefresh: in oauth2 mode, sign in with your server's own flow and pass its tokens to setTokens");
    }
    return signIn('login', { ...extra, username, password }, 'login');
  }

  /**
   * Exchanges a JWT bearer assertion (RFC 7523) that the application's
   * backend signed after its own sign-in for a session:
   * POST /api/auth/exchange. Errors as login's; a refused assertion is
   * LoginError 'invalid_grant'.
   */
  async function exchangeAssertion(assertion, extra = {}) {
    if (oauth2) {
      throw new TypeError('silentrefresh: in oauth2 mode, exchange the assertion at your token endpoint and pass its tokens to setTokens');
    }
    if (typeof assertion !== 'string' || !assertion) {
      throw new TypeError('silentrefresh: exchange needs the assertion, a non-empty string');
    }
    return signIn('exchange', { ...extra, assertion }, 'login');
  }

  /** Posts a login or an exchange and begins the session it answers. */
  async function signIn(name, body, source) {
    if (cookie) body.cookie = true;
    // With DPoP every sign-in gets a new key, kept only if it succeeds.
    const rec = prover ? await prover.create() : null;
    const url = endpoint(name);
    let res;
    let data;
    for (let attempt = 0; ; attempt++) {
      const init = jsonPost(body);
      try {
        if (rec) init.headers.DPoP = await prover.proof(rec, 'POST', url);
        res = await getFetch()(url, init);
      } catch (e) {
        throw new LoginError('network', { cause: e });
      }
      if (rec) prover.learn(url, res);
      data = await readJSON(res);
      if (!(rec && attempt === 0 && tokenEndpointAsksNonce(res, data))) break;
    }
    if (!res.ok) {
      const retryAfter = Number(res.headers.get('Retry-After') || 0);
      const code = res.status === 429 ? 'rate_limited' : data?.error || (res.status >= 500 ? 'server_error' : 'rejected');
      throw new LoginError(code, { status: res.status, retryAfter });
    }
    const s = stateFromGrant(wire.grant(data));
    if (!s || (isDPoP(s) && !rec)) throw new LoginError('malformed_reply', { status: res.status });
    if (isDPoP(s)) s.jkt = rec.jkt;
    return begin(s, source, rec);
  }

  /** Adopts a session begun elsewhere (another library's login, a server-side exchange). */
  async function setTokens(t) {
    if (!t || typeof t.accessToken !== 'string' || !t.accessToken) {
      throw new TypeError('silentrefresh: setTokens needs {accessToken, refreshToken, expiresIn}');
    }
    const n = Number(t.expiresIn);
    if (t.expiresIn == null || !Number.isFinite(n) || n <= 0) {
      throw new TypeError('silentrefresh: setTokens: expiresIn must be a positive number of seconds');
    }
    if (t.refreshToken != null && (typeof t.refreshToken !== 'string' || !t.refreshToken)) {
      throw new TypeError('silentrefresh: setTokens: refreshToken must be a non-empty string');
    }
    if (cookie && t.refreshToken != null) {
      throw new TypeError('silentrefresh: setTokens: in cookie mode the refresh token stays in its cookie; pass none');
    }
    const s = stateFromGrant({ ...t, expiresIn: n });
    if (!s) throw new TypeError('silentrefresh: setTokens: malformed tokens');
    return begin(s, 'set');
  }

  async function logout(opts = {}) {
    const everywhere = opts?.everywhere === true;
    if (everywhere && oauth2) {
      throw new TypeError('silentrefresh: logout({everywhere}) needs the JSON API; RFC 7009 revokes one session');
    }
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
    emit('logout', { everywhere });
    const call = wire.logoutRequest(s, everywhere);
    if (prover) {
      // A DPoP-bound access token revokes only with a proof of its key;
      // then the key goes, here and in the key store.
      const rec = await prover.key(s?.jkt ?? null).catch(() => null);
      const headers = call?.[1].headers;
      if (headers?.Authorization && isDPoP(s)) {
        if (rec) {
          headers.Authorization = `DPoP ${s.accessToken}`;
          headers.DPoP = await prover.proof(rec, 'POST', call[0], s.accessToken);
        } else delete headers.Authorization;
      }
      await prover.drop(s?.jkt ?? rec?.jkt, true).catch(() => {});
    }
    if (!call) return false; // no revocation endpoint: the server was not told
    try {
      const res = await getFetch()(...call);
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
      endSession('logout', false);
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
      // A 401 has already had its refresh (silentFetch). Told "inactive":
      // the refresh decides, as for a 401; only its invalid_grant ends it.
      if (res.ok && data?.active === false && current) await refresh(current);
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
    exchange: exchangeAssertion,
    logout,
    setTokens,
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
        // Cookie mode with nothing here: a server before the 401 for a
        // missing cookie answers 400 for it.
        if (!s && cookie && e instanceof RefreshError && e.status === 400) return null;
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
      prover?.close();
      handoff?.close?.();
      listeners.clear();
    },
    /** The options in force, for display. */
    info: Object.freeze({
      mode,
      key,
      baseUrl,
      crossTab,
      heartbeat: heartbeatInterval,
      tabId,
      dpop: prover != null,
      oauth2: oauth2 ? Object.freeze({ ...oauth2 }) : null,
    }),
  });
  return client;
}

export default createClient;
