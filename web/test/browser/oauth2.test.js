// Browser tests of createClient({oauth2}) in real Chromium: against our own
// /oauth2/token, and against a second, independent RFC 6749 server
// (oauth2-server.js) with strict rotation. Each session is begun elsewhere
// and adopted with setTokens, as after another library's login.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { launchChromium, PASSWORD, poll, startServer, USER } from './harness.js';
import { startTokenServer } from './oauth2-server.js';

let srv; // ours
let idp; // the other one
let browser;

before(
  async () => {
    srv = await startServer({ accessTTL: '2s', grace: '10s' });
    idp = await startTokenServer({ ttl: 2, clientId: 'spa' });
    browser = await launchChromium();
  },
  { timeout: 600_000 },
);

after(async () => {
  await browser?.close();
  await idp?.stop();
  await srv?.stop();
});

const TOKEN_PATHS = new Set(['/oauth2/token', '/token']);

/** A browser context (one profile) that counts token-endpoint calls and collects page errors. */
async function newContext(t, pageOrigin) {
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const refreshes = [];
  const revokes = [];
  ctx.on('request', (r) => {
    const path = new URL(r.url()).pathname;
    if (TOKEN_PATHS.has(path)) refreshes.push(r);
    if (path === '/oauth2/revoke' || path === '/revoke') revokes.push(r);
  });
  if (pageOrigin === srv.url) {
    await ctx.route(`${srv.url}/__blank`, (route) =>
      route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>silentrefresh oauth2 test</title>' }),
    );
  }
  const errors = [];
  ctx.on('page', (p) => {
    p.on('pageerror', (e) => errors.push(e));
    p.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(new Error(m.text()));
    });
  });
  return { ctx, refreshes, revokes, errors };
}

/** Opens a tab on origin with window.client = createClient({oauth2, key}) and helpers. */
async function openTab(ctx, origin, { key, oauth2, lag = 0 }) {
  const page = await ctx.newPage();
  await page.goto(`${origin}/__blank`);
  await page.evaluate(
    async ({ key, oauth2, lag }) => {
      if (lag > 0) {
        // What a loaded machine does now and then: this tab gets the other
        // tabs' messages and localStorage writes lag ms late.
        const Real = window.BroadcastChannel;
        window.BroadcastChannel = class extends Real {
          set onmessage(fn) {
            super.onmessage = this.name.startsWith('silentrefresh:') ? (ev) => setTimeout(() => fn(ev), lag) : fn;
          }
        };
        const getItem = Storage.prototype.getItem;
        const seen = new Map(); // key -> [{at, v}], each value as it was first read
        Storage.prototype.getItem = function (k) {
          const v = getItem.call(this, k);
          const h = seen.get(k) ?? [];
          seen.set(k, h);
          if (!h.length || h.at(-1).v !== v) h.push({ at: performance.now(), v });
          const cutoff = performance.now() - lag;
          let r = h[0].v;
          for (const e of h) if (e.at <= cutoff) r = e.v;
          return r;
        };
      }
      const m = await import('/silentrefresh.js');
      window.reauth = [];
      window.client = m.createClient({ key, oauth2, onReauthRequired: (e) => window.reauth.push(`${e.reason}:${e.description}`) });
      const outcome = (r) => (r.status === 'fulfilled' ? r.value.status : `${r.reason.name}:${r.reason.reason ?? r.reason.code}`);
      window.fire = async (n) =>
        (await Promise.allSettled(Array.from({ length: n }, () => window.client('/api/me', { cache: 'no-store' })))).map(outcome);
      window.post = async (n) =>
        Promise.all(
          Array.from({ length: n }, async (_, i) => {
            const r = await window.client('/api/me', { method: 'POST', body: `request ${i}` });
            return r.ok ? (await r.json()).echo : r.status;
          }),
        );
      window.outcome = outcome;
      window.phases = [];
      window.client.on('refresh', (e) => window.phases.push(e.phase));
    },
    { key, oauth2, lag },
  );
  return page;
}

/** The RFC 6749 reply as setTokens takes it. */
const adopt = (page, g) =>
  page.evaluate((g) => window.client.setTokens({ accessToken: g.access_token, refreshToken: g.refresh_token, expiresIn: g.expires_in }), g);

async function waitExpired(page) {
  await page.waitForFunction(() => {
    const t = window.client.tokens();
    return t != null && t.expiresAt <= Date.now();
  }, null, { polling: 50, timeout: 15_000 });
}

/** Fires n requests from each tab at the same moment (a BroadcastChannel "go"). */
async function fireTogether(a, b, n) {
  await b.evaluate((n) => {
    window.results = null;
    new BroadcastChannel('test-go').onmessage = async () => {
      window.results = await window.fire(n);
    };
  }, n);
  const ra = await a.evaluate((n) => {
    new BroadcastChannel('test-go').postMessage('go');
    return window.fire(n);
  }, n);
  const rb = await b.waitForFunction(() => window.results, null, { polling: 20, timeout: 15_000 }).then((h) => h.jsonValue());
  return [...ra, ...rb];
}

async function ourMetrics() {
  const m = await srv.metrics();
  return { rotated: m.rotated ?? 0, reused: m.reused ?? 0, grace: m.grace_replay ?? 0, revoked: m.revoked ?? 0 };
}

describe('oauth2 mode against our /oauth2/token', { concurrency: false }, () => {
  const oauth2 = { tokenEndpoint: '/oauth2/token', clientId: 'web-test', revocationEndpoint: '/oauth2/revoke' };

  async function passwordLogin() {
    const res = await fetch(`${srv.api}/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username: USER, password: PASSWORD, client_id: 'web-test' }),
    });
    assert.equal(res.status, 200);
    return res.json();
  }

  it('adopts a session from setTokens in every tab, refreshes once for two tabs, revokes on logout', { timeout: 60_000 }, async (t) => {
    const { ctx, refreshes, revokes, errors } = await newContext(t, srv.url);
    const a = await openTab(ctx, srv.url, { key: 'o1', oauth2 });
    const b = await openTab(ctx, srv.url, { key: 'o1', oauth2 });
    const g = await passwordLogin();
    await adopt(a, g);
    await b.waitForFunction((at) => window.client.tokens()?.accessToken === at, g.access_token, { polling: 20, timeout: 10_000 });
    assert.equal(refreshes.length, 0, 'the other tab took the tokens without a call');

    await waitExpired(a);
    await waitExpired(b);
    const m0 = await ourMetrics();
    assert.deepEqual(await fireTogether(a, b, 10), Array(20).fill(200));
    assert.equal(refreshes.length, 1, 'one refresh for both tabs');
    const sent = new URLSearchParams(refreshes[0].postData());
    assert.equal(refreshes[0].headers()['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(sent.get('grant_type'), 'refresh_token');
    assert.equal(sent.get('refresh_token'), g.refresh_token);
    assert.equal(sent.get('client_id'), 'web-test');
    const m1 = await ourMetrics();
    assert.equal(m1.rotated - m0.rotated, 1);
    assert.equal(m1.reused - m0.reused, 0);
    const [ta, tb] = await Promise.all([a, b].map((p) => p.evaluate(() => window.client.tokens())));
    assert.equal(ta.accessToken, tb.accessToken);
    assert.notEqual(ta.refreshToken, g.refresh_token, 'rotated');

    assert.equal(await a.evaluate(() => window.client.logout()), true);
    assert.equal(revokes.length, 1);
    const r = new URLSearchParams(revokes[0].postData());
    assert.equal(r.get('token'), ta.refreshToken);
    assert.equal(r.get('token_type_hint'), 'refresh_token');
    assert.equal(r.get('client_id'), 'web-test');
    await poll(async () => (await b.evaluate(() => window.reauth)).length === 1, 'the other tab told');
    // The server agrees: the session is gone.
    const after = await fetch(`${srv.api}/oauth2/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: ta.refreshToken, client_id: 'web-test' }),
    });
    assert.equal(after.status, 400);
    assert.equal((await after.json()).error, 'invalid_grant');
    assert.deepEqual(errors, []);
  });

  it("ends the session on the server's 400 invalid_grant, once, in every tab", { timeout: 60_000 }, async (t) => {
    const { ctx, refreshes, errors } = await newContext(t, srv.url);
    const a = await openTab(ctx, srv.url, { key: 'o2', oauth2 });
    const b = await openTab(ctx, srv.url, { key: 'o2', oauth2 });
    const g = await passwordLogin();
    await adopt(a, g);
    await b.waitForFunction(() => window.client.tokens() != null, null, { polling: 20, timeout: 10_000 });
    const out = await fetch(`${srv.api}/oauth2/revoke`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: g.refresh_token }),
    });
    assert.equal(out.status, 200);
    await waitExpired(a);
    assert.deepEqual(await a.evaluate(() => window.fire(5)), Array(5).fill('ReauthRequiredError:revoked'));
    assert.equal(refreshes.length, 1);
    for (const p of [a, b]) {
      await poll(async () => (await p.evaluate(() => window.reauth)).length === 1, 'told');
      assert.deepEqual(await p.evaluate(() => window.reauth), ['revoked:revoked']);
      assert.equal(await p.evaluate(() => window.client.tokens()), null);
    }
    assert.deepEqual(errors, []);
  });
});

describe('oauth2 mode against another RFC 6749 server', { concurrency: false }, () => {
  const oauth2 = () => ({ tokenEndpoint: idp.tokenEndpoint, clientId: idp.clientId, revocationEndpoint: idp.revocationEndpoint });

  async function twoTabs(t, key, lagB = 0) {
    const c = await newContext(t, idp.url);
    const a = await openTab(c.ctx, idp.url, { key, oauth2: oauth2() });
    const b = await openTab(c.ctx, idp.url, { key, oauth2: oauth2(), lag: lagB });
    const g = idp.login();
    await adopt(a, g);
    await b.waitForFunction((at) => window.client.tokens()?.accessToken === at, g.access_token, { polling: 20, timeout: 10_000 });
    return { ...c, a, b, g };
  }

  it('single flight across two tabs on a strictly rotating server: no reuse, no lost session', { timeout: 60_000 }, async (t) => {
    const { a, b, g, refreshes, errors } = await twoTabs(t, 'i1');
    assert.equal(refreshes.length, 0);
    const s0 = { ...idp.stats };
    for (let round = 0; round < 3; round++) {
      await waitExpired(a);
      assert.deepEqual(await fireTogether(a, b, 10), Array(20).fill(200), `round ${round}`);
    }
    assert.equal(idp.stats.rotated - s0.rotated, 3, 'one rotation per expiry');
    assert.equal(idp.stats.reused - s0.reused, 0, 'the server saw a refresh token twice');
    assert.equal(refreshes.length, 3);
    assert.equal(refreshes[0].headers()['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(new URLSearchParams(refreshes[0].postData()).get('client_id'), 'spa');
    assert.equal(idp.revoked(g.sid), false);
    assert.deepEqual(await a.evaluate(() => window.reauth), []);
    assert.deepEqual(errors, []);
  });

  it("a tab that gets the other tab's messages and storage late still never presents a rotated token", { timeout: 60_000 }, async (t) => {
    // Tab b gets everything from tab a 600 ms late. Right after a's refresh
    // (done, lock released) b needs one too: it gets the lock at once, and
    // its storage and its messages still show the token a has rotated.
    const { a, b, g, refreshes, errors } = await twoTabs(t, 'i5', 600);
    const s0 = { ...idp.stats };
    for (let round = 0; round < 2; round++) {
      await waitExpired(a);
      assert.deepEqual(await a.evaluate(() => window.fire(5)), Array(5).fill(200), `round ${round}, tab a`);
      assert.deepEqual(await b.evaluate(() => window.fire(5)), Array(5).fill(200), `round ${round}, tab b`);
    }
    assert.equal(idp.stats.reused - s0.reused, 0, 'the server saw a refresh token twice');
    assert.equal(idp.stats.rotated - s0.rotated, 2, 'one rotation per expiry');
    assert.equal(refreshes.length, 2);
    assert.ok(!(await b.evaluate(() => window.phases)).includes('start'), 'tab b made no refresh call');
    assert.equal(idp.revoked(g.sid), false);
    assert.deepEqual(await b.evaluate(() => window.reauth), []);
    assert.deepEqual(errors, []);
  });

  it('replays requests refused with 401, bodies included, after one refresh', { timeout: 60_000 }, async (t) => {
    const { a, refreshes, errors } = await twoTabs(t, 'i2');
    idp.dropAccessTokens(); // fresh by the clock, refused by the server
    const bodies = await a.evaluate(() => window.post(8));
    assert.deepEqual(bodies, Array.from({ length: 8 }, (_, i) => `request ${i}`));
    assert.equal(refreshes.length, 1);
    assert.deepEqual(errors, []);
  });

  it('keeps the session through a permanent error and through going offline', { timeout: 60_000 }, async (t) => {
    const { ctx, a, b, refreshes, errors } = await twoTabs(t, 'i3');
    await waitExpired(a);
    idp.failNext({ status: 401, body: { error: 'invalid_client', error_description: 'client disabled' } });
    const before = await a.evaluate(() => window.client.tokens());
    assert.deepEqual(await a.evaluate(() => window.fire(3)), Array(3).fill('RefreshError:invalid_client'));
    assert.equal(refreshes.length, 1, 'not retried');
    assert.deepEqual(await a.evaluate(() => window.client.tokens()), before, 'tokens kept');

    await ctx.setOffline(true);
    const failed = await a.evaluate(async () => {
      const [r] = await Promise.allSettled([window.client('/api/me')]);
      return { name: r.reason?.name, temporary: r.reason?.temporary, attempts: r.reason?.attempts };
    });
    assert.deepEqual(failed, { name: 'RefreshError', temporary: true, attempts: 4 });
    assert.deepEqual(await a.evaluate(() => window.client.tokens()), before, 'tokens kept offline');
    const n = refreshes.length;
    // Back online: the tabs re-check by themselves, and one of them refreshes.
    await ctx.setOffline(false);
    await a.waitForFunction((at) => window.client.tokens()?.accessToken !== at, before.accessToken, { polling: 50, timeout: 15_000 });
    await b.waitForFunction((at) => window.client.tokens()?.accessToken !== at, before.accessToken, { polling: 50, timeout: 15_000 });
    assert.ok(refreshes.length > n);
    assert.equal(idp.stats.reused, 0);
    assert.deepEqual(await b.evaluate(() => window.fire(2)), [200, 200]);
    assert.deepEqual(await a.evaluate(() => window.reauth), []);
    assert.deepEqual(errors, []);
  });

  it("ends the session on the server's invalid_grant; logout revokes with RFC 7009", { timeout: 60_000 }, async (t) => {
    const first = await twoTabs(t, 'i4');
    idp.revoke(first.g.sid);
    await waitExpired(first.a);
    assert.deepEqual(await first.a.evaluate(() => window.fire(3)), Array(3).fill('ReauthRequiredError:invalid_grant'));
    for (const p of [first.a, first.b]) {
      await poll(async () => (await p.evaluate(() => window.reauth)).length === 1, 'told');
    }
    assert.deepEqual(await first.a.evaluate(() => window.reauth), ['invalid_grant:Token is not active']);

    // A new session, adopted again; then logout.
    const g = idp.login();
    await adopt(first.a, g);
    assert.equal(await first.a.evaluate(() => window.client.logout()), true);
    assert.equal(first.revokes.length, 1);
    const r = new URLSearchParams(first.revokes[0].postData());
    assert.equal(r.get('token'), g.refresh_token);
    assert.equal(r.get('client_id'), 'spa');
    assert.equal(idp.revoked(g.sid), true);
    assert.deepEqual(first.errors, []);
  });
});
