// DPoP in real Chromium against the real server, which verifies every
// proof with the dpop package: tabs share one non-extractable key kept in
// IndexedDB, a reload goes on with it, and a refresh token copied out of
// the page is worthless without it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { launchChromium, PASSWORD, poll, startServer, USER } from './harness.js';

let srv; // the default server: DPoP optional
let strict; // --require-dpop --dpop-nonce
let browser;

before(
  async () => {
    srv = await startServer({ accessTTL: '2s', grace: '10s' });
    strict = await startServer({ accessTTL: '2s', grace: '10s', args: ['--require-dpop', '--dpop-nonce'] });
    browser = await launchChromium();
  },
  { timeout: 600_000 },
);

after(async () => {
  await browser?.close();
  await srv?.stop();
  await strict?.stop();
});

/** A browser context (one profile) that records the requests to the API. */
async function newContext(t, server = srv) {
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const seen = []; // {path, method, authorization, dpop, body}
  ctx.on('request', (r) => {
    const u = new URL(r.url());
    if (!u.pathname.startsWith('/api/')) return;
    const h = r.headers();
    seen.push({ path: u.pathname, method: r.method(), authorization: h.authorization ?? '', dpop: h.dpop ?? '', body: r.postData() });
  });
  await ctx.route(`${server.url}/__blank`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>silentrefresh dpop test</title>' }),
  );
  const errors = [];
  ctx.on('page', (p) => {
    p.on('pageerror', (e) => errors.push(e));
    p.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(new Error(m.text()));
    });
  });
  return { ctx, seen, errors, refreshes: () => seen.filter((r) => r.path === '/api/auth/refresh').length };
}

/** Makes window.client = createClient({dpop, mode, key, ...}) in page, with helpers. */
async function setUp(page, { mode = 'bearer', key, dpop = true }) {
  await page.evaluate(
    async ({ mode, key, dpop }) => {
      const m = await import('/silentrefresh.js');
      window.reauth = [];
      window.client = m.createClient({ mode, key, dpop, onReauthRequired: (e) => window.reauth.push(e.reason) });
      window.fire = async (n) => {
        const rs = await Promise.allSettled(Array.from({ length: n }, () => window.client('/api/me', { cache: 'no-store' })));
        return rs.map((r) => (r.status === 'fulfilled' ? r.value.status : `${r.reason.name}:${r.reason.reason ?? r.reason.code ?? r.reason.message}`));
      };
      // The record the client keeps in IndexedDB, read as any script of the page could.
      window.storedKey = () =>
        new Promise((resolve, reject) => {
          const open = indexedDB.open('silentrefresh');
          open.onerror = () => reject(open.error);
          open.onsuccess = () => {
            const db = open.result;
            if (!db.objectStoreNames.contains('dpop-keys')) return resolve(null), db.close();
            const get = db.transaction('dpop-keys').objectStore('dpop-keys').get(`silentrefresh:${key}`);
            get.onsuccess = () => {
              resolve(get.result ?? null);
              db.close();
            };
            get.onerror = () => reject(get.error);
          };
        });
    },
    { mode, key, dpop },
  );
}

async function openTab(ctx, opts, server = srv) {
  const page = await ctx.newPage();
  await page.goto(`${server.url}/__blank`);
  await setUp(page, opts);
  return page;
}

const login = (page) => page.evaluate(({ u, p }) => window.client.login(u, p), { u: USER, p: PASSWORD });

async function waitExpired(page) {
  await page.waitForFunction(() => {
    const t = window.client.tokens();
    return t != null && t.expiresAt <= Date.now();
  }, null, { polling: 50, timeout: 15_000 });
}

async function metricsDelta(server, before) {
  const now = await server.metrics();
  const d = {};
  for (const k of new Set([...Object.keys(before), ...Object.keys(now)])) d[k] = (now[k] ?? 0) - (before[k] ?? 0);
  return d;
}

describe('DPoP in Chromium', { concurrency: false }, () => {
  it('two tabs share one key: 20 requests at expiry, one refresh, all 200, no reuse', { timeout: 60_000 }, async (t) => {
    const { ctx, seen, errors, refreshes } = await newContext(t);
    const a = await openTab(ctx, { key: 'two' });
    const b = await openTab(ctx, { key: 'two' });
    const tokens = await login(a);
    assert.equal(tokens.tokenType, 'DPoP', 'the server bound the session');
    assert.match(tokens.jkt, /^[A-Za-z0-9_-]{43}$/);
    await b.waitForFunction(() => window.client.tokens() != null, null, { polling: 20, timeout: 10_000 });
    await waitExpired(a);
    await waitExpired(b);
    const m0 = await srv.metrics();
    const n0 = refreshes();
    const s0 = seen.length;

    await b.evaluate(() => {
      window.results = null;
      new BroadcastChannel('test-go').onmessage = async () => {
        window.results = await window.fire(10);
      };
    });
    const ra = await a.evaluate(async () => {
      new BroadcastChannel('test-go').postMessage('go');
      return window.fire(10);
    });
    const rb = await b.waitForFunction(() => window.results, null, { polling: 20, timeout: 15_000 }).then((h) => h.jsonValue());

    assert.deepEqual([...ra, ...rb], Array(20).fill(200));
    assert.equal(refreshes() - n0, 1, 'refresh requests seen by the browser, both tabs');
    const d = await metricsDelta(srv, m0);
    assert.equal(d.rotated, 1);
    assert.equal(d.reused ?? 0, 0);
    assert.equal(d.dpop_proof_missing ?? 0, 0);
    assert.equal(d.dpop_key_mismatch ?? 0, 0);
    const after = seen.slice(s0);
    const me = after.filter((r) => r.path === '/api/me');
    assert.equal(me.length, 20);
    for (const r of me) {
      assert.match(r.authorization, /^DPoP ey/);
      assert.equal(r.dpop.split('.').length, 3, 'a proof with every request');
    }
    const refresh = after.find((r) => r.path === '/api/auth/refresh');
    assert.ok(refresh.dpop, 'the refresh carries a proof');
    const [ja, jb] = await Promise.all([a, b].map((p) => p.evaluate(async () => [window.client.tokens().jkt, (await window.storedKey()).jkt])));
    assert.deepEqual(ja, [tokens.jkt, tokens.jkt]);
    assert.deepEqual(jb, [tokens.jkt, tokens.jkt], 'both tabs sign with the one stored key');
    const jwks = new Set(after.map((r) => JSON.stringify(JSON.parse(Buffer.from(r.dpop.split('.')[0], 'base64url')).jwk)));
    assert.equal(jwks.size, 1, 'one public key in every proof of both tabs');
    assert.deepEqual(errors, []);
  });

  it('the stored key cannot be exported, by the client or by any other script', { timeout: 60_000 }, async (t) => {
    const { ctx, errors } = await newContext(t);
    const page = await openTab(ctx, { key: 'export' });
    const tokens = await login(page);
    const got = await page.evaluate(async () => {
      const rec = await window.storedKey();
      const tries = {};
      for (const format of ['jwk', 'pkcs8']) {
        try {
          await crypto.subtle.exportKey(format, rec.privateKey);
          tries[format] = 'exported';
        } catch (e) {
          tries[format] = e.name;
        }
      }
      return { jkt: rec.jkt, extractable: rec.privateKey.extractable, type: rec.privateKey.type, usages: rec.privateKey.usages, tries, jwk: Object.keys(rec.jwk).sort() };
    });
    assert.equal(got.jkt, tokens.jkt);
    assert.equal(got.type, 'private');
    assert.equal(got.extractable, false);
    assert.deepEqual(got.usages, ['sign']);
    assert.deepEqual(got.tries, { jwk: 'InvalidAccessError', pkcs8: 'InvalidAccessError' });
    assert.deepEqual(got.jwk, ['crv', 'kty', 'x', 'y'], 'only the public half is readable');
    assert.deepEqual(errors, []);
  });

  it('after a reload the session goes on with the same key, refreshes included', { timeout: 60_000 }, async (t) => {
    const { ctx, errors, refreshes } = await newContext(t);
    const page = await openTab(ctx, { key: 'reload' });
    const tokens = await login(page);
    await page.reload();
    await setUp(page, { key: 'reload' });
    assert.deepEqual(await page.evaluate(() => window.fire(1)), [200]);
    assert.equal(await page.evaluate(() => window.client.tokens().accessToken), tokens.accessToken, 'no refresh was needed');
    await waitExpired(page);
    const m0 = await srv.metrics();
    const n0 = refreshes();
    assert.deepEqual(await page.evaluate(() => window.fire(3)), [200, 200, 200]);
    assert.equal(refreshes() - n0, 1);
    const d = await metricsDelta(srv, m0);
    assert.equal(d.rotated, 1);
    assert.equal(d.dpop_proof_missing ?? 0, 0);
    assert.equal(d.dpop_key_mismatch ?? 0, 0);
    assert.equal(await page.evaluate(() => window.client.tokens().jkt), tokens.jkt);
    assert.deepEqual(await page.evaluate(() => window.reauth), []);
    assert.deepEqual(errors, []);
  });

  it('a refresh token copied out of the page is refused without a proof, and the session is revoked', { timeout: 60_000 }, async (t) => {
    const { ctx, errors } = await newContext(t);
    const page = await openTab(ctx, { key: 'stolen' });
    await login(page);
    const { refreshToken } = await page.evaluate(() => JSON.parse(localStorage.getItem('silentrefresh:stolen')));
    assert.ok(refreshToken);
    const m0 = await srv.metrics();

    // The thief, from elsewhere, with the token but not the key.
    const res = await fetch(`${srv.api}/api/auth/refresh`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken }),
    });
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { error: 'invalid_grant', error_description: 'dpop_proof_missing' });
    assert.equal((await metricsDelta(srv, m0)).dpop_proof_missing, 1);

    // The owner's next request: the session is over, said once.
    assert.deepEqual(await page.evaluate(() => window.fire(3)), Array(3).fill('ReauthRequiredError:revoked'));
    assert.deepEqual(await page.evaluate(() => window.reauth), ['revoked']);
    assert.equal(await page.evaluate(() => window.client.tokens()), null);
    await poll(async () => (await page.evaluate(() => window.storedKey())) === null, 'the key to be removed');
    assert.deepEqual(errors, []);
  });

  it('a copied refresh token with a valid proof of another key is refused too, and the session revoked', { timeout: 60_000 }, async (t) => {
    const { ctx, errors } = await newContext(t);
    const page = await openTab(ctx, { key: 'otherkey' });
    await login(page);
    const { refreshToken } = await page.evaluate(() => JSON.parse(localStorage.getItem('silentrefresh:otherkey')));
    const m0 = await srv.metrics();

    // The thief's own key, and a proof the server's checks accept as a proof.
    const { subtle } = globalThis.crypto;
    const kp = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    const { kty, crv, x, y } = await subtle.exportKey('jwk', kp.publicKey);
    const enc = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const input = `${enc({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } })}.${enc({
      jti: crypto.randomUUID(),
      htm: 'POST',
      htu: `${srv.url}/api/auth/refresh`,
      iat: Math.floor(Date.now() / 1000),
    })}`;
    const sig = Buffer.from(await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, kp.privateKey, Buffer.from(input))).toString('base64url');
    const res = await fetch(`${srv.api}/api/auth/refresh`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', DPoP: `${input}.${sig}` },
      body: JSON.stringify({ refreshToken }),
    });
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { error: 'invalid_grant', error_description: 'dpop_key_mismatch' });
    assert.equal((await metricsDelta(srv, m0)).dpop_key_mismatch, 1);

    assert.deepEqual(await page.evaluate(() => window.fire(2)), Array(2).fill('ReauthRequiredError:revoked'));
    assert.deepEqual(await page.evaluate(() => window.reauth), ['revoked']);
    assert.deepEqual(errors, []);
  });

  it('cookie mode: the proof in the header, the refresh token in the cookie; logout removes the key', { timeout: 60_000 }, async (t) => {
    const { ctx, seen, errors, refreshes } = await newContext(t);
    const page = await openTab(ctx, { mode: 'cookie', key: 'cookie' });
    const tokens = await login(page);
    assert.equal(tokens.tokenType, 'DPoP');
    assert.equal(tokens.refreshToken, undefined);
    assert.ok((await ctx.cookies(srv.url)).find((c) => c.name === '__Host-srt')?.value);
    await waitExpired(page);
    const m0 = await srv.metrics();
    const n0 = refreshes();
    assert.deepEqual(await page.evaluate(() => window.fire(5)), Array(5).fill(200));
    assert.equal(refreshes() - n0, 1);
    const refresh = seen.filter((r) => r.path === '/api/auth/refresh').at(-1);
    assert.equal(refresh.body, '{}');
    assert.ok(refresh.dpop);
    assert.equal((await metricsDelta(srv, m0)).rotated, 1);

    assert.ok(await page.evaluate(() => window.storedKey()));
    assert.equal(await page.evaluate(() => window.client.logout()), true);
    assert.equal(await page.evaluate(() => window.storedKey()), null, 'the key is gone with the session');
    // No key and no tokens: nothing to restore, and nothing is sent.
    const n1 = refreshes();
    assert.equal(await page.evaluate(() => window.client.restore()), null);
    assert.equal(refreshes(), n1);
    assert.deepEqual(await page.evaluate(() => window.reauth), []);
    // A cookie-mode refresh without the cookie ends the session (401 invalid_grant), not a 400.
    const gone = await fetch(`${srv.api}/api/auth/refresh`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Origin: srv.url },
      body: '{}',
    });
    assert.equal(gone.status, 401);
    assert.deepEqual(await gone.json(), { error: 'invalid_grant', error_description: 'unknown' });
    assert.deepEqual(errors, []);
  });

  it('serve --require-dpop refuses a login without DPoP; with it (and server nonces) the session works', { timeout: 60_000 }, async (t) => {
    const { ctx, seen, errors, refreshes } = await newContext(t, strict);
    const plain = await openTab(ctx, { key: 'plain', dpop: false }, strict);
    const refused = await plain.evaluate(({ u, p }) => window.client.login(u, p).then(
      () => 'logged in',
      (e) => `${e.name}:${e.code}:${e.status}`,
    ), { u: USER, p: PASSWORD });
    assert.equal(refused, 'LoginError:invalid_dpop_proof:400');

    const page = await openTab(ctx, { key: 'strict' }, strict);
    const s0 = seen.length;
    const tokens = await login(page);
    assert.equal(tokens.tokenType, 'DPoP');
    const logins = seen.slice(s0).filter((r) => r.path === '/api/auth/login');
    assert.equal(logins.length, 2, 'the login and its retry with the server nonce');
    const nonceOf = (r) => JSON.parse(Buffer.from(r.dpop.split('.')[1], 'base64url')).nonce;
    assert.equal(nonceOf(logins[0]), undefined);
    assert.ok(nonceOf(logins[1]));
    assert.deepEqual(await page.evaluate(() => window.fire(2)), [200, 200]);
    await waitExpired(page);
    const m0 = await strict.metrics();
    const n0 = refreshes();
    assert.deepEqual(await page.evaluate(() => window.fire(5)), Array(5).fill(200));
    assert.equal(refreshes() - n0, 1, 'the nonce is kept: no second try');
    assert.equal((await metricsDelta(strict, m0)).rotated, 1);
    assert.deepEqual(await page.evaluate(() => window.reauth), []);
    assert.deepEqual(errors, []);
  });

  it('the demo page with DPoP ticked: 20 requests after expiry, one refresh, all OK', { timeout: 60_000 }, async (t) => {
    const { ctx, seen, errors, refreshes } = await newContext(t);
    const page = await ctx.newPage();
    await page.goto(`${srv.url}/`);
    await page.waitForSelector('body[data-state="login"]');
    await page.fill('#username', USER);
    await page.fill('#password', PASSWORD);
    await page.check('#dpop-mode');
    await page.click('#login-button');
    await page.waitForSelector('body[data-state="app"]');
    assert.match(await page.textContent('#mode'), /DPoP/);
    await page.waitForFunction(() => document.getElementById('ttl').textContent === 'expired', null, { polling: 50, timeout: 15_000 });
    const n0 = refreshes();
    const s0 = seen.length;
    await page.click('#fire');
    await page.waitForFunction(() => document.getElementById('stat-ok').textContent === '20', null, { polling: 20, timeout: 15_000 });
    assert.equal(refreshes() - n0, 1);
    const me = seen.slice(s0).filter((r) => r.path === '/api/me');
    assert.equal(me.length, 20);
    assert.ok(me.every((r) => r.authorization.startsWith('DPoP ') && r.dpop));
    assert.deepEqual(errors, []);
  });
});
