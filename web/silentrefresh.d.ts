// Type declarations for silentrefresh.js.

/** Where the tokens are kept. */
export interface StorageAdapter {
  /** Returns the stored string, or null. May return a promise. */
  get(key: string): string | null | Promise<string | null>;
  /** Stores a string. May return a promise. */
  set(key: string, value: string): void | Promise<void>;
  /** Removes a key. May return a promise. */
  remove(key: string): void | Promise<void>;
  /**
   * Whether other tabs read the same data (default true). A shared store is
   * re-read under the lock; an unshared one gets the tokens by message.
   */
  shared?: boolean;
}

/**
 * A DPoP key as the client keeps it: the thumbprint, the public JWK and
 * the non-extractable private CryptoKey.
 */
export interface DPoPKeyRecord {
  /** The RFC 7638 thumbprint of the key (the `jkt` the server binds the session to). */
  readonly jkt: string;
  /** The public key: kty EC, crv P-256, x, y; never a private member. */
  readonly jwk: { kty: 'EC'; crv: 'P-256'; x: string; y: string };
  /** The private key, made with extractable false: it signs but cannot be read. */
  readonly privateKey: CryptoKey;
  /** When it was made, ms since the epoch. */
  readonly createdAt?: number;
}

/**
 * Where the DPoP key is kept. The default is IndexedDB (database
 * "silentrefresh", object store "dpop-keys"), which every tab of the
 * origin shares and which keeps a CryptoKey non-extractable. The methods
 * may return promises.
 */
export interface DPoPKeyStore {
  /** The record stored under name, or null. */
  get(name: string): DPoPKeyRecord | null | Promise<DPoPKeyRecord | null>;
  /** Stores the record under name, replacing any. */
  set(name: string, record: DPoPKeyRecord): void | Promise<void>;
  /** Removes the record under name; with jkt, only if it is that key. */
  remove(name: string, jkt?: string): void | Promise<void>;
  /** Releases what the store holds open (optional). */
  close?(): void;
}

/** The dpop option in full. */
export interface DPoPOptions {
  /** Where the key is kept. Default: IndexedDB. */
  keyStore?: DPoPKeyStore;
  /** The WebCrypto to use. Default: globalThis.crypto (a secure context). */
  crypto?: Crypto;
}

/** The parts of navigator.locks the client uses. */
export interface LockManagerLike {
  request<T>(
    name: string,
    options: { ifAvailable?: boolean; signal?: AbortSignal; mode?: 'exclusive' | 'shared' },
    callback: (lock: unknown | null) => T | Promise<T>,
  ): Promise<T>;
}

export interface ClientOptions {
  /**
   * The server's base URL, e.g. "https://auth.example.com": the auth paths
   * hang off it, and requests to its origin get the access token. Default
   * (or ''): the page's origin, location.origin.
   */
  baseUrl?: string;
  /**
   * 'local' (localStorage, the default: shared by tabs), 'memory' (this tab
   * only, gone on reload), a Web Storage object, or an adapter.
   */
  storage?: 'local' | 'memory' | Storage | StorageAdapter;
  /**
   * 'bearer' (default): the JSON API returns both tokens and the client keeps
   * them. 'cookie': the server keeps the refresh token in an HttpOnly
   * `__Host-srt` cookie; script never sees it, and storage holds only the
   * access token.
   */
  mode?: 'bearer' | 'cookie';
  /**
   * Refresh against any OAuth2 server instead of the JSON API: the standard
   * refresh_token grant (RFC 6749 section 6, form-encoded, snake_case
   * reply), and RFC 7009 revocation on logout. Begin the session with
   * setTokens (after your server's own login flow). Not with mode 'cookie'.
   */
  oauth2?: OAuth2Options;
  /**
   * DPoP (RFC 9449): bind the session to a key pair made here with
   * WebCrypto (ECDSA P-256, the private key non-extractable) and kept in
   * IndexedDB, so that every tab signs with the same key and a reload keeps
   * the session. Every login makes a new key; the login, every refresh and
   * every request the client attaches a token to carry a fresh proof
   * (`Authorization: DPoP <token>` plus a `DPoP` header); server nonces
   * (DPoP-Nonce) are remembered per origin, with one retry when a server
   * asks for one. Logout removes the key. A stolen refresh token is then
   * useless without the key, and presenting it without a proof revokes the
   * session. JSON API only (bearer or cookie mode), not with oauth2.
   * Default false.
   */
  dpop?: boolean | DPoPOptions;
  /** Names the session: storage key, lock and channel are "silentrefresh:<key>". Default "default". */
  key?: string;
  /**
   * Called once when the session is over: the token endpoint answered
   * invalid_grant (refresh token unknown, revoked, expired, superseded or
   * reused), there was no refresh token to present, or the user logged out
   * in another tab. Nothing else ends a session (docs/API.md, "When the
   * session is over"). Called again only after a new session has begun.
   */
  onReauthRequired?: (err: ReauthRequiredError) => void;
  /**
   * Milliseconds before expiry at which a token counts as stale and is no
   * longer sent. Default: a tenth of the token's lifetime, at most 10000.
   * When set, it replaces that rule; 0 sends a token until it expires.
   */
  leeway?: number;
  /** Milliseconds for one call to the token endpoint. Default 15000. A refresh, retries included, gets twice this. */
  refreshTimeout?: number;
  /** Retries of a refresh that failed for a temporary reason (network, 429, 5xx). Default 3; 0 for none. */
  maxRetries?: number;
  /** Milliseconds before the first retry, doubled for each one after it, with jitter. Default 200. */
  backoff?: number;
  /** Cap of the delay between retries, unless Retry-After asks for more. Default 5000. */
  maxBackoff?: number;
  /** Heartbeat interval in ms while the tab is visible; true means 60000; 0 or false (default) disables it. */
  heartbeat?: number | boolean;
  /** Coordinate with other tabs (Web Locks, BroadcastChannel). Default: true unless storage is 'memory'. */
  crossTab?: boolean;
  /** fetch credentials for the auth calls. Default 'same-origin' in cookie mode; use 'include' for a cross-origin server. */
  credentials?: RequestCredentials;
  /** Endpoint paths, relative to baseUrl. */
  paths?: Partial<{ login: string; exchange: string; refresh: string; logout: string; heartbeat: string }>;
  /** Whether a request URL gets the access token. Default: same origin as baseUrl. */
  shouldAttach?: (url: string) => boolean;
  /** The fetch to use. Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /** Web Locks. Default navigator.locks; null disables locking. */
  locks?: LockManagerLike | null;
  /**
   * Where a tab that refreshed under the lock records which tokens are
   * newest, for the next tab to get the lock: a store every tab reads
   * consistently ({get, set}, methods may return promises). Default:
   * IndexedDB (database "silentrefresh-tabs"); none where it is missing.
   */
  handoffStore?: {
    get(name: string): unknown | Promise<unknown>;
    set(name: string, record: { n: number; at: number }): void | Promise<void>;
    close?(): void;
  };
  /** BroadcastChannel constructor. Default globalThis.BroadcastChannel; null disables it. */
  BroadcastChannel?: typeof BroadcastChannel | null;
  /** For visibilitychange. Default globalThis.document. */
  document?: Pick<Document, 'visibilityState' | 'addEventListener' | 'removeEventListener'> | null;
  /** For online and storage events. Default window. */
  window?: Pick<Window, 'addEventListener' | 'removeEventListener'> | null;
  /** The clock, in ms since the epoch. Default Date.now. */
  now?: () => number;
}

/** Where and as whom an OAuth2 server is asked for tokens. */
export interface OAuth2Options {
  /** The token endpoint, absolute or relative to the page. Required. */
  tokenEndpoint: string;
  /** The public client's client_id, sent with every call. */
  clientId?: string;
  /** RFC 7009 revocation endpoint; without it logout() forgets the tokens here only and resolves false. */
  revocationEndpoint?: string;
  /** Sent as scope with each refresh (a server may narrow to it). */
  scope?: string;
}

/** A session begun elsewhere, for setTokens. */
export interface TokensInput {
  accessToken: string;
  /** Absent: the session ends (onReauthRequired) when the access token goes stale. Not in cookie mode. */
  refreshToken?: string;
  /** Seconds from now; must be positive. */
  expiresIn: number;
  /** Seconds until the refresh token idles out, if known. */
  refreshExpiresIn?: number;
  /** Default "Bearer". */
  tokenType?: string;
}

/** The tokens of the current session, as this tab sees them. */
export interface Tokens {
  readonly accessToken: string;
  readonly tokenType: string;
  /** When the access token expires, ms since the epoch (client clock). */
  readonly expiresAt: number;
  /** When the client received it, ms since the epoch. */
  readonly obtainedAt: number;
  /** When the refresh token idles out, ms since the epoch, if the server said. */
  readonly refreshExpiresAt: number | null;
  /** Absent in cookie mode. */
  readonly refreshToken?: string;
  /** With DPoP: the thumbprint of the key the tokens are bound to (tokenType "DPoP"). */
  readonly jkt?: string;
}

export interface RequestEvent {
  id: number;
  method: string;
  url: string;
  phase: 'start' | 'end';
  startedAt: number;
  endedAt?: number;
  /** 0 when the request failed without a response. */
  status?: number;
  /** The name of the error when it failed. */
  error?: string;
  /** Sent a second time after a 401. */
  replayed?: boolean;
  /** Waited for a refresh before it went out. */
  waited?: boolean;
}

export interface RefreshEvent {
  id: number;
  /**
   * wait: waiting for the lock; start: calling the server; retry: the call
   * failed for a temporary reason and is made again after delay; done: new
   * tokens; adopted: another tab had refreshed; failed: see reason.
   */
  phase: 'wait' | 'start' | 'retry' | 'done' | 'adopted' | 'failed';
  at: number;
  startedAt?: number;
  reason?: string;
  /** retry: the attempt that failed (1 is the first call). */
  attempt?: number;
  /** retry: milliseconds until the next call. */
  delay?: number;
}

export interface ClientEvents {
  request: RequestEvent;
  refresh: RefreshEvent;
  tokens: { tokens: Tokens; source: 'login' | 'set' | 'refresh' | 'peer' | 'store' };
  reauth: { reason: string };
  logout: { everywhere: boolean };
  peer: { type: 'tokens' | 'ended'; reason?: string };
  heartbeat: { phase: 'start' | 'end'; at: number; status?: number; active?: boolean; error?: string };
}

/** A fetch-compatible function that keeps its tokens fresh, plus session methods. */
export interface SilentRefreshClient {
  (input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** Logs in; in cookie mode asks the server for the refresh-token cookie. Rejects with a TypeError in oauth2 mode (use setTokens). */
  login(username: string, password: string, extra?: Record<string, unknown>): Promise<Tokens>;
  /** Exchanges a JWT bearer assertion (RFC 7523) signed by your backend for a session (POST /api/auth/exchange); in cookie mode asks for the cookie. Rejects with a TypeError in oauth2 mode (use setTokens). */
  exchange(assertion: string, extra?: { scope?: string } & Record<string, unknown>): Promise<Tokens>;
  /**
   * Adopts a session begun elsewhere (another library's login, a
   * server-side exchange): stores the tokens, tells every tab, and keeps
   * them fresh from then on. Rejects with a TypeError for malformed tokens,
   * leaving the current session as it was.
   */
  setTokens(tokens: TokensInput): Promise<Tokens>;
  /**
   * Forgets the tokens here and in every tab, and revokes the session (in
   * oauth2 mode by RFC 7009). everywhere: true revokes every session of the
   * user (JSON API `{"all": true}`; a TypeError in oauth2 mode). Resolves
   * false if the server was not reached or not told.
   */
  logout(options?: { everywhere?: boolean }): Promise<boolean>;
  /** This tab's tokens, or null. */
  tokens(): Tokens | null;
  /** Loads the tokens; in cookie mode without tokens, tries the cookie. Null when there is no session; never calls onReauthRequired for that. */
  restore(): Promise<Tokens | null>;
  /** Refreshes now (joining a refresh in flight). */
  refresh(): Promise<Tokens>;
  /** Re-reads the shared tokens and refreshes if stale (what visibilitychange and online do). */
  check(): Promise<void>;
  /** One heartbeat round now, unless another tab just did one. */
  heartbeat(): Promise<void>;
  /** Subscribes to an event; returns the unsubscribe function. */
  on<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): () => void;
  /** Stops listening to other tabs, events and timers. */
  close(): void;
  /** The options in force. */
  readonly info: Readonly<{
    mode: 'bearer' | 'cookie';
    key: string;
    baseUrl: string;
    crossTab: boolean;
    heartbeat: number;
    tabId: string;
    /** Whether the client signs DPoP proofs. */
    dpop: boolean;
    /** The oauth2 option with its endpoints resolved, or null for the JSON API. */
    oauth2: Readonly<Required<OAuth2Options>> | null;
  }>;
}

/** Creates a client. */
export function createClient(options?: ClientOptions): SilentRefreshClient;
export default createClient;

/** The session is over; the user has to log in again. */
export class ReauthRequiredError extends Error {
  constructor(reason: string, options?: { cause?: unknown; description?: string });
  readonly name: 'ReauthRequiredError';
  /**
   * The server's error_description when it is one word ("unknown",
   * "revoked", "expired", "superseded", "reused", "dpop_proof_missing",
   * "dpop_key_mismatch"), else "invalid_grant"; or "no_session",
   * "no_refresh_token", "no_dpop_key" (a DPoP-bound session whose key is
   * gone from the key store: nothing can prove it), "logout".
   */
  readonly reason: string;
  /** The server's error_description, as sent ('' if none). */
  readonly description: string;
}

/**
 * A refresh failed but the session is not over; the tokens are kept.
 * temporary: a network error, timeout, 429 or 5xx, already retried;
 * otherwise another 4xx (the request or the client is wrong), not retried.
 */
export class RefreshError extends Error {
  constructor(
    message: string,
    options?: { cause?: unknown; status?: number; code?: string; description?: string; temporary?: boolean; retryAfter?: number; attempts?: number },
  );
  readonly name: 'RefreshError';
  /** The HTTP status, 0 if there was no response. */
  readonly status: number;
  /** The OAuth2 "error" of the answer ('' if none): "invalid_request", "invalid_client", ... */
  readonly code: string;
  /** The answer's error_description ('' if none). */
  readonly description: string;
  /** Whether trying later may succeed (network, timeout, 429, 5xx). */
  readonly temporary: boolean;
  /** Seconds the server asked for in Retry-After, 0 if none. */
  readonly retryAfter: number;
  /** Calls made to the token endpoint. */
  readonly attempts: number;
}

/** A login was refused. */
export class LoginError extends Error {
  constructor(code: string, options?: { cause?: unknown; status?: number; retryAfter?: number });
  readonly name: 'LoginError';
  /** "invalid_credentials", "rate_limited", "network", "server_error", ... */
  readonly code: string;
  readonly status: number;
  /** Seconds, from Retry-After on a 429. */
  readonly retryAfter: number;
}

/** Whether err means the user has to log in again. */
export function isReauthRequired(err: unknown): err is ReauthRequiredError;
