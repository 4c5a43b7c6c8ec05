// DPoP (RFC 9449) in the browser client: the proofs it signs, checked here
// with Node's WebCrypto and node:crypto (independently of the module's own
// code), nonces, and the key's life from login to logout. The browser tests
// check the same against the real server.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, webcrypto } from 'node:crypto';

import { createClient, isReauthRequired, LoginError } from '../../silentrefresh.js';
import { BASE, clock, FakeServer, handoffStore, heldChannel, LockManager, MemoryStorage, until } from './fakes.js';

const sha256 = (s) => createHash('sha256').update(s).digest('base64url');

/** Decodes a proof and checks its signature with the key it carries. */
async function readProof(jws) {
  const parts = jws.split('.');
  assert.equal(parts.length, 3, 'a compact JWS');
  const [h, c, sig] = parts;
  const header = JSON.parse(Buffer.from(h, 'base64url').toString());
  const claims = JSON.parse(Buffer.from(c, 'base64url').toString());
  const key = await webcrypto.subtle.importKey('jwk', header.jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  const signature = Buffer.from(sig, 'base64url');
  const valid = await webcrypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, signature, Buffer.from(`${h}.${c}`));
  const { crv, kty, x, y } = header.jwk;
  return { header, claims, valid, sigLength: signature.length, jkt: sha256(JSON.stringify({ crv, kty, x, y })) };
}

/**
 * A DPoP token server in front of FakeServer: it verifies every proof
 * (signature, typ, alg, htm, htu, jti once, ath, nonce), binds a session
 * to the login's key, answers tokenType DPoP, revokes the session when a
 * refresh comes without a proof of that key, and asks for nonces when
 * `nonce` is set.
 */
class DPoPServer {
  constructor(opts = {}) {
    this.inner = new FakeServer(opts);
    this.proofs = []; // every proof received: {path, method, header, claims, jkt, valid}
    this.jtis = new Set();
    this.nonce = null;
    this.bound = null; // the jkt the session is bound to
    this.answers = []; // [path, status, error] of every answer
    this.fetch = this.fetch.bind(this);
  }

  async fetch(input, init) {
    const req = input instanceof Request ? input.clone() : new Request(input, init);
    const url = new URL(req.url);
    const path = url.pathname;
    const signIn = path === '/api/auth/login' || path === '/api/auth/exchange';
    const tokenEndpoint = signIn || path === '/api/auth/refresh';
    const json = (status, v, headers = {}) => {
      this.answers.push([path, status, v.error]);
      return new Response(JSON.stringify(v), { status, headers: { 'Content-Type': 'application/json', ...headers } });
    };
    const auth = req.headers.get('Authorization') || '';
    const raw = req.headers.get('DPoP');
    let p = null;
    if (raw) {
      p = { path, method: req.method, auth, ...(await readProof(raw)) };
      this.proofs.push(p);
      const { header, claims } = p;
      const problem =
        (!p.valid && 'signature') ||
        (header.typ !== 'dpop+jwt' && 'typ') ||
        (header.alg !== 'ES256' && 'alg') ||
        ('d' in header.jwk && 'private key') ||
        (claims.htm !== req.method && 'htm') ||
        (claims.htu !== url.origin + url.pathname && 'htu') ||
        (this.jtis.has(claims.jti) && 'jti replayed') ||
        (typeof claims.iat !== 'number' && 'iat');
      this.jtis.add(claims.jti);
      if (problem) return json(tokenEndpoint ? 400 : 401, { error: 'invalid_dpop_proof', error_description: problem });
      if (this.nonce && claims.nonce !== this.nonce) {
        if (tokenEndpoint) return json(400, { error: 'use_dpop_nonce' }, { 'DPoP-Nonce': this.nonce });
        return json(401, { error: 'use_dpop_nonce' }, { 'WWW-Authenticate': 'DPoP error="use_dpop_nonce", algs="ES256"', 'DPoP-Nonce': this.nonce });
      }
    }
    if (path === '/api/auth/refresh' && this.bound && p?.jkt !== this.bound) {
      this.inner.revoked = true; // a bound refresh token without its key: stolen
      return json(401, { error: 'invalid_grant', error_description: p ? 'dpop_key_mismatch' : 'dpop_proof_missing' });
    }
    if (auth.startsWith('DPoP ')) {
      const at = auth.slice(5);
      if (!p || p.claims.ath !== sha256(at) || p.jkt !== this.bound) {
        return json(401, { error: 'invalid_dpop_proof' }, { 'WWW-Authenticate': 'DPoP error="invalid_dpop_proof"' });
      }
    } else if (auth.startsWith('Bearer ') && this.bound && path !== '/api/auth/logout') {
      return json(401, { error: 'invalid_token' }, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
    }
    // An assertion exchange (RFC 7523) that the fake takes as a login.
    const res = path === '/api/auth/exchange' ? new Response(JSON.stringify(this.inner.grant())) : await this.inner.fetch(input, init);
    if (!tokenEndpoint || !res.ok) return res;
    const body = await res.json();
    if (p) {
      if (signIn) this.bound = p.jkt;
      body.tokenType = 'DPoP';
    }
    return json(200, body, this.nonce ? { 'DPoP-Nonce': this.nonce } : {});
  }
}

/** A key store in memory, shared by the "tabs" given the same one. */
function memoryKeyStore() {
  const m = new Map();
  return {
    m,
    get: async (name) => m.get(name) ?? null,
    set: async (name, rec) => void m.set(name, rec),
    remove: async (name, jkt) => {
      if (jkt == null || m.get(name)?.jkt === jkt) m.delete(name);
    },
  };
}

function tab(t, server, clk, opts = {}) {
  const reauth = [];
  const c = createClient({
    baseUrl: BASE,
    storage: new MemoryStorage(),
    fetch: server.fetch,
    locks: null,
    BroadcastChannel: null,
    document: null,
    window: null,
    now: clk.now,
    onReauthRequired: (err) => reauth.push(err),
    dpop: { keyStore: opts.keyStore ?? memoryKeyStore() },
    ...opts,
  });
  t.after(() => c.close());
  c.reauth = reauth;
  return c;
}

const expire = (clk, c) => clk.advance(c.tokens().expiresAt - clk.now() + 1);

describe('DPoP proofs', () => {
  it('a login proof: typ, ES256, the public key only, jti, htm, htu, iat, no ath; the session is bound to it', async (t) => {
    const server = new DPoPServer();
    const clk = clock();
    const keyStore = memoryKeyStore();
    const c = tab(t, server, clk, { keyStore });
    const got = await c.login('alice', 'pw');

    assert.equal(server.proofs.length, 1);
    const p = server.proofs[0];
    assert.equal(p.valid, true, 'the signature verifies with the jwk of the header');
    assert.equal(p.sigLength, 64, 'ES256 signatures are r||s, 64 bytes');
    assert.deepEqual(Object.keys(p.header).sort(), ['alg', 'jwk', 'typ']);
    assert.equal(p.header.typ, 'dpop+jwt');
    assert.equal(p.header.alg, 'ES256');
    assert.deepEqual(Object.keys(p.header.jwk).sort(), ['crv', 'kty', 'x', 'y'], 'public members only');
    assert.equal(p.header.jwk.kty, 'EC');
    assert.equal(p.header.jwk.crv, 'P-256');
    assert.deepEqual(Object.keys(p.claims).sort(), ['htm', 'htu', 'iat', 'jti']);
    assert.equal(p.claims.htm, 'POST');
    assert.equal(p.claims.htu, `${BASE}/api/auth/login`);
    assert.equal(p.claims.iat, Math.floor(clk.now() / 1000));
    assert.match(p.claims.jti, /^[A-Za-z0-9_-]{22,}$/);

    assert.equal(got.tokenType, 'DPoP');
    assert.equal(got.jkt, p.jkt, 'the tokens name the RFC 7638 thumbprint of the key');
    const rec = keyStore.m.get('silentrefresh:default');
    assert.equal(rec.jkt, p.jkt, 'the key is stored');
    assert.equal(rec.privateKey.extractable, false);
    assert.equal(rec.privateKey.type, 'private');
    await assert.rejects(webcrypto.subtle.exportKey('jwk', rec.privateKey), /not extractable/i);
    assert.ok(!('d' in rec.jwk));
  });

  it('a request: Authorization DPoP, a fresh proof of the same key with htm, htu (normalised) and ath', async (t) => {
    const server = new DPoPServer();
    const c = tab(t, server, clock());
    await c.login('alice', 'pw');
    const res = await Promise.all([
      c(`${BASE}/api/me?x=1#frag`),
      c(`${BASE}/api/x/../me`, { method: 'POST', body: '{}' }),
      c('/api/me'),
    ]);
    assert.deepEqual(
      res.map((r) => r.status),
      [200, 200, 200],
    );
    const [login, ...reqs] = server.proofs;
    assert.equal(reqs.length, 3);
    for (const p of reqs) {
      assert.equal(p.valid, true);
      assert.equal(p.auth, 'DPoP at-1');
      assert.equal(p.claims.ath, sha256('at-1'), 'ath: base64url(SHA-256(access token))');
      assert.equal(p.claims.htu, `${BASE}/api/me`, 'no query, no fragment, no dot segments');
      assert.deepEqual(p.header.jwk, login.header.jwk);
    }
    assert.deepEqual(reqs.map((p) => p.claims.htm).sort(), ['GET', 'GET', 'POST']);
    assert.equal(new Set(server.proofs.map((p) => p.claims.jti)).size, 4, 'a new jti every time');
  });

  it('htu: scheme and host in lower case, no default port, percent-encodings normalised', async (t) => {
    const server = new DPoPServer();
    const c = tab(t, server, clock(), { baseUrl: 'HTTP://App.Test:80' });
    await c.login('alice', 'pw');
    await c('http://app.test/api/items/%7euser/%2fx%41?q');
    assert.equal(server.proofs[0].claims.htu, 'http://app.test/api/auth/login');
    assert.equal(server.proofs[1].claims.htu, 'http://app.test/api/items/~user/%2FxA');
  });

  it('every refresh carries a proof of the same key, without ath; the tokens stay bound', async (t) => {
    const server = new DPoPServer();
    const clk = clock();
    const c = tab(t, server, clk);
    await c.login('alice', 'pw');
    for (let i = 2; i <= 4; i++) {
      expire(clk, c);
      const rs = await Promise.all(Array.from({ length: 5 }, () => c(`${BASE}/api/me`)));
      assert.deepEqual(
        rs.map((r) => r.status),
        Array(5).fill(200),
      );
      assert.equal(c.tokens().accessToken, `at-${i}`);
      assert.equal(c.tokens().tokenType, 'DPoP');
    }
    const refreshes = server.proofs.filter((p) => p.path === '/api/auth/refresh');
    assert.equal(refreshes.length, 3);
    for (const p of refreshes) {
      assert.equal(p.claims.htu, `${BASE}/api/auth/refresh`);
      assert.equal('ath' in p.claims, false);
      assert.equal(p.jkt, server.bound);
    }
    assert.equal(server.inner.calls.refresh, 3);
  });

  it('tabs sharing the key store sign with the same key; a reload (a new client) goes on with it', async (t) => {
    const server = new DPoPServer();
    const clk = clock();
    const keyStore = memoryKeyStore();
    const storage = new MemoryStorage();
    const a = tab(t, server, clk, { keyStore, storage });
    await a.login('alice', 'pw');
    const b = tab(t, server, clk, { keyStore, storage });
    assert.equal((await b(`${BASE}/api/me`)).status, 200);
    expire(clk, b);
    assert.equal((await b(`${BASE}/api/me`)).status, 200, 'the other tab refreshes with the key');
    a.close();
    const reloaded = tab(t, server, clk, { keyStore, storage });
    assert.equal((await reloaded(`${BASE}/api/me`)).status, 200);
    assert.equal(new Set(server.proofs.map((p) => p.jkt)).size, 1);
    assert.equal(server.answers.filter(([, s]) => s !== 200).length, 0);
  });

  it("a tab that gets the lock after another tab's refresh waits for its tokens and signs with the one key", async (t) => {
    // Tab b's storage never sees a's writes; a's messages reach b only
    // when let through. b must not present the refresh token a rotated.
    const server = new DPoPServer();
    const clk = clock();
    const keyStore = memoryKeyStore();
    const ch = heldChannel();
    const shared = { keyStore, locks: new LockManager(), handoffStore: handoffStore(), key: 'dpop-handoff' };
    const storage = new MemoryStorage();
    const lagging = new MemoryStorage();
    const a = tab(t, server, clk, { ...shared, storage, BroadcastChannel });
    const b = tab(t, server, clk, { ...shared, storage: lagging, BroadcastChannel: ch.BroadcastChannel });
    await a.login('alice', 'pw');
    await until(() => b.tokens() != null, 'b has the session');
    lagging.setItem('silentrefresh:dpop-handoff', storage.getItem('silentrefresh:dpop-handoff'));
    ch.hold();
    expire(clk, a);
    assert.equal((await a(`${BASE}/api/me`)).status, 200);
    const reads = shared.handoffStore.reads;
    const rb = b(`${BASE}/api/me`);
    await until(() => shared.handoffStore.reads > reads || server.inner.calls.refresh >= 2, 'b holds the lock after a');
    ch.deliver();
    assert.equal((await rb).status, 200);
    assert.equal(server.inner.calls.refresh, 1);
    assert.equal(server.inner.revoked, false, 'a refresh token presented twice');
    assert.equal(b.tokens().accessToken, a.tokens().accessToken);
    assert.equal(new Set(server.proofs.map((p) => p.jkt)).size, 1);
    assert.equal(server.answers.filter(([, s]) => s !== 200).length, 0);
  });

  it('cookie mode: the refresh body is {} and the proof rides in the header', async (t) => {
    const server = new DPoPServer({ cookieMode: true });
    const clk = clock();
    const c = tab(t, server, clk, { mode: 'cookie' });
    await c.login('alice', 'pw');
    expire(clk, c);
    assert.equal((await c(`${BASE}/api/me`)).status, 200);
    const refresh = server.inner.log.find((l) => l.path === '/api/auth/refresh');
    assert.deepEqual(refresh.body, {});
    assert.equal(server.proofs.filter((p) => p.path === '/api/auth/refresh' && p.jkt === server.bound).length, 1);
  });
});

describe('DPoP nonces', () => {
  it('a token endpoint asking for a nonce gets one retry with it; the nonce is kept for later proofs', async (t) => {
    const server = new DPoPServer();
    server.nonce = 'n-1';
    const clk = clock();
    const c = tab(t, server, clk);
    await c.login('alice', 'pw');
    assert.deepEqual(
      server.answers.map(([p, s, e]) => `${p} ${s} ${e ?? ''}`.trim()),
      ['/api/auth/login 400 use_dpop_nonce', '/api/auth/login 200'],
    );
    assert.equal(server.proofs[1].claims.nonce, 'n-1');
    assert.equal((await c(`${BASE}/api/me`)).status, 200);
    assert.equal(server.proofs[2].claims.nonce, 'n-1', 'the nonce of the origin goes with resource proofs too');
    assert.equal(server.inner.calls.login, 1);

    // The server moves on: the refresh is refused once, then passes.
    server.nonce = 'n-2';
    expire(clk, c);
    assert.equal((await c(`${BASE}/api/me`)).status, 200);
    const refreshes = server.answers.filter(([p]) => p === '/api/auth/refresh').map(([, s, e]) => `${s} ${e ?? ''}`.trim());
    assert.deepEqual(refreshes, ['400 use_dpop_nonce', '200']);
    assert.equal(server.inner.calls.refresh, 1);
    assert.deepEqual(c.reauth, []);
  });

  it('a resource asking for a nonce (401 DPoP use_dpop_nonce) gets one retry, body included, and no refresh', async (t) => {
    const server = new DPoPServer();
    const c = tab(t, server, clock());
    await c.login('alice', 'pw');
    server.nonce = 'n-7';
    const res = await c(`${BASE}/api/me`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"n":1}' });
    assert.equal(res.status, 200);
    assert.deepEqual((await res.json()).echo, { n: 1 });
    const me = server.proofs.filter((p) => p.path === '/api/me');
    assert.deepEqual(
      me.map((p) => p.claims.nonce ?? null),
      [null, 'n-7'],
    );
    assert.equal(server.inner.calls.refresh, 0, 'a nonce challenge is not a reason to refresh');
  });

  it('a nonce refused again is not retried a second time', async (t) => {
    const server = new DPoPServer();
    // A server whose every answer asks for a new nonce.
    let n = 0;
    const fetch = async (input, init) => {
      server.nonce = `n-${++n}`;
      return server.fetch(input, init);
    };
    const c2 = tab(t, { fetch }, clock());
    await assert.rejects(c2.login('alice', 'pw'), (e) => e instanceof LoginError && e.code === 'use_dpop_nonce');
    assert.equal(server.answers.length, 2, 'the call and one retry');
    assert.equal(c2.tokens(), null);
  });
});

describe('the key and the session', () => {
  it('a refresh token presented without the proof revokes the session; the next request ends it', async (t) => {
    const server = new DPoPServer();
    const clk = clock();
    const storage = new MemoryStorage();
    const c = tab(t, server, clk, { storage });
    await c.login('alice', 'pw');
    const stolen = JSON.parse(storage.getItem('silentrefresh:default')).refreshToken;
    const thief = await server.fetch(`${BASE}/api/auth/refresh`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken: stolen }),
    });
    assert.equal(thief.status, 401);
    assert.deepEqual(await thief.json(), { error: 'invalid_grant', error_description: 'dpop_proof_missing' });
    await assert.rejects(c(`${BASE}/api/me`), (e) => isReauthRequired(e) && e.reason === 'revoked');
    assert.equal(c.reauth.length, 1);
  });

  it('an assertion exchange binds the session to a new key as a login does', async (t) => {
    const server = new DPoPServer();
    const keyStore = memoryKeyStore();
    const c = tab(t, server, clock(), { keyStore });
    const got = await c.exchange('eyJ.assertion.sig');
    const p = server.proofs[0];
    assert.equal(p.claims.htu, `${BASE}/api/auth/exchange`);
    assert.equal(got.tokenType, 'DPoP');
    assert.equal(got.jkt, p.jkt);
    assert.equal(keyStore.m.get('silentrefresh:default').jkt, p.jkt);
    assert.equal((await c(`${BASE}/api/me`)).status, 200);
  });

  it('logout removes the key; the next login makes a new one', async (t) => {
    const server = new DPoPServer();
    const keyStore = memoryKeyStore();
    const c = tab(t, server, clock(), { keyStore });
    const first = await c.login('alice', 'pw');
    assert.ok(keyStore.m.has('silentrefresh:default'));
    assert.equal(await c.logout(), true);
    assert.equal(keyStore.m.size, 0, 'the key is gone with the session');
    const second = await c.login('alice', 'pw');
    assert.notEqual(second.jkt, first.jkt);
    assert.equal(keyStore.m.get('silentrefresh:default').jkt, second.jkt);
  });

  it('a failed login keeps the key of the session in force', async (t) => {
    const server = new DPoPServer();
    const keyStore = memoryKeyStore();
    const c = tab(t, server, clock(), { keyStore });
    const got = await c.login('alice', 'pw');
    await assert.rejects(c.login('alice', 'wrong'), LoginError);
    assert.equal(keyStore.m.get('silentrefresh:default').jkt, got.jkt);
  });

  it('a bound session whose key is gone ends without presenting its refresh token', async (t) => {
    const server = new DPoPServer();
    const clk = clock();
    const keyStore = memoryKeyStore();
    const storage = new MemoryStorage();
    const a = tab(t, server, clk, { keyStore, storage });
    await a.login('alice', 'pw');
    a.close();
    keyStore.m.clear(); // site data for IndexedDB cleared, localStorage kept
    const b = tab(t, server, clk, { keyStore, storage });
    clk.advance(120_000);
    await assert.rejects(b(`${BASE}/api/me`), (e) => isReauthRequired(e) && e.reason === 'no_dpop_key');
    assert.equal(server.inner.calls.refresh, 0, 'no refresh without a proof, which would look like theft');
    assert.equal(b.reauth.length, 1);
  });

  it('a request on a bound session whose key is gone ends it in every tab, and sends nothing', async (t) => {
    const server = new DPoPServer();
    const clk = clock();
    const keyStore = memoryKeyStore();
    const storage = new MemoryStorage();
    const a = tab(t, server, clk, { keyStore, storage });
    await a.login('alice', 'pw');
    a.close();
    keyStore.m.clear();
    const b = tab(t, server, clk, { keyStore, storage });
    const calls = server.inner.log.length;
    await assert.rejects(b(`${BASE}/api/me`), (e) => isReauthRequired(e) && e.reason === 'no_dpop_key');
    assert.equal(server.inner.log.length, calls, 'no request went out');
    assert.equal(storage.getItem('silentrefresh:default'), null, 'the tokens are gone too');
  });

  it('a tab whose tokens are older than the stored key takes the newer session', async (t) => {
    const server = new DPoPServer();
    const clk = clock();
    const keyStore = memoryKeyStore();
    const storage = new MemoryStorage();
    const a = tab(t, server, clk, { keyStore, storage });
    await a.login('alice', 'pw');
    const b = tab(t, server, clk, { keyStore, storage });
    await b.restore(); // b holds the first session, and has not read its key yet
    clk.advance(1);
    await a.login('alice', 'pw'); // a new session, a new key, b not told (no channel)
    const res = await b(`${BASE}/api/me`);
    assert.equal(res.status, 200);
    assert.equal(b.tokens().jkt, a.tokens().jkt);
    assert.deepEqual(b.reauth, []);
  });

  it('a proof the token endpoint refuses (invalid_dpop_proof) keeps the session', async (t) => {
    const server = new DPoPServer();
    const clk = clock();
    const fetch = async (input, init) => {
      if (new URL(new Request(input, init).url).pathname === '/api/auth/refresh') {
        return new Response(JSON.stringify({ error: 'invalid_dpop_proof', error_description: 'iat too old' }), { status: 400 });
      }
      return server.fetch(input, init);
    };
    const c = tab(t, { fetch }, clk);
    await c.login('alice', 'pw');
    expire(clk, c);
    await assert.rejects(c(`${BASE}/api/me`), (e) => e.name === 'RefreshError' && e.code === 'invalid_dpop_proof' && !e.temporary);
    assert.ok(c.tokens(), 'the tokens are kept');
    assert.deepEqual(c.reauth, []);
  });

  it('two tabs with one lock at expiry: one refresh, one key', async (t) => {
    const server = new DPoPServer();
    const clk = clock();
    const keyStore = memoryKeyStore();
    const storage = new MemoryStorage();
    const locks = new LockManager();
    const opts = { keyStore, storage, locks, BroadcastChannel };
    const a = tab(t, server, clk, { ...opts, key: 'two' });
    const b = tab(t, server, clk, { ...opts, key: 'two' });
    await a.login('alice', 'pw');
    expire(clk, a);
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b)(`${BASE}/api/me`)));
    assert.deepEqual(
      rs.map((r) => r.status),
      Array(20).fill(200),
    );
    assert.equal(server.inner.calls.refresh, 1);
    assert.equal(new Set(server.proofs.map((p) => p.jkt)).size, 1);
  });

  it('refuses dpop with oauth2', () => {
    assert.throws(
      () => createClient({ baseUrl: BASE, storage: 'memory', dpop: { keyStore: memoryKeyStore() }, oauth2: { tokenEndpoint: `${BASE}/oauth2/token` } }),
      TypeError,
    );
  });
});
