// Browser tests: silentrefresh.js and the demo page in real Chromium against
// the real server, with 2 s access tokens. Refreshes are counted twice: by
// intercepting the browser's requests and by the server's metrics.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { ensureOutputDir, launchChromium, PASSWORD, poll, startServer, USER } from './harness.js';

let srv;
let browser;

before(
  async () => {
    srv = await startServer({ accessTTL: '2s', grace: '10s' });
    browser = await launchChromium();
  },
  { timeout: 600_000 },
);

after(async () => {
  await browser?.close();
  await srv?.stop();
});

/** A browser context (one profile: shared storage, cookies, locks) with a refresh counter. */
async function newContext(t) {
  const ctx = await browser.newContext();
  t.after(() => ctx.close());
  const refreshes = [];
  ctx.on('request', (r) => {
    if (new URL(r.url()).pathname === '/api/auth/refresh') refreshes.push(r);
  });
  // An empty page on the server's origin for the tests that drive the module directly.
  await ctx.route(`${srv.url}/__blank`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>silentrefresh test</title>' }),
  );
  const errors = [];
  ctx.on('page', (p) => {
    p.on('pageerror', (e) => errors.push(e));
    // Chromium logs every 4xx as a console error; a 401 is part of the story here.
    p.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(new Error(m.text()));
    });
  });
  return { ctx, refreshes, errors };
}

/**
 * Opens a tab with window.client = createClient({mode, key, heartbeat,
 * ...options}) and helpers; window.retries collects the refresh retries.
 */
async function openTab(ctx, { mode = 'bearer', key, heartbeat = 0, options = {} }) {
  const page = await ctx.newPage();
  await page.goto(`${srv.url}/__blank`);
  await page.evaluate(
    async ({ mode, key, heartbeat, options }) => {
      const m = await import('/silentrefresh.js');
      window.reauth = [];
      window.retries = [];
      window.client = m.createClient({ mode, key, heartbeat, ...options, onReauthRequired: (e) => window.reauth.push(e.reason) });
      window.client.on('refresh', (e) => e.phase === 'retry' && window.retries.push(e.delay));
      // n concurrent GET /api/me: each a status, or the error's name and reason.
      window.fire = async (n) => {
        const rs = await Promise.allSettled(Array.from({ length: n }, () => window.client('/api/me', { cache: 'no-store' })));
        return rs.map((r) => (r.status === 'fulfilled' ? r.value.status : `${r.reason.name}:${r.reason.reason ?? r.reason.message}`));
      };
    },
    { mode, key, heartbeat, options },
  );
  return page;
}

/** Waits (polling in the page) until the tab's access token has expired by the server's expiresIn. */
async function waitExpired(page, { demo = false } = {}) {
  await page.waitForFunction(
    (demo) => {
      const t = (demo ? window.silentrefreshDemo.client : window.client).tokens();
      return t != null && t.expiresAt <= Date.now();
    },
    demo,
    { polling: 50, timeout: 15_000 },
  );
}

async function metricsDelta(before) {
  const now = await srv.metrics();
  const d = {};
  for (const k of new Set([...Object.keys(before), ...Object.keys(now)])) d[k] = (now[k] ?? 0) - (before[k] ?? 0);
  return d;
}

describe('silentrefresh.js in Chromium', { concurrency: false }, () => {
  it('refreshes once for 20 concurrent fetches on an expired token', { timeout: 60_000 }, async (t) => {
    const { ctx, refreshes, errors } = await newContext(t);
    const page = await openTab(ctx, { key: 't1' });
    await page.evaluate(({ u, p }) => window.client.login(u, p), { u: USER, p: PASSWORD });
    await waitExpired(page);
    const m0 = await srv.metrics();
    const n0 = refreshes.length;

    const statuses = await page.evaluate(() => window.fire(20));

    assert.deepEqual(statuses, Array(20).fill(200));
    assert.equal(refreshes.length - n0, 1, 'refresh requests seen by the browser');
    const d = await metricsDelta(m0);
    assert.equal(d.rotated, 1, 'rotations counted by the server');
    assert.equal(d.reused ?? 0, 0);
    assert.deepEqual(await page.evaluate(() => window.reauth), []);
    assert.deepEqual(errors, []);
  });

  it('refreshes once for two tabs firing at once after expiry', { timeout: 60_000 }, async (t) => {
    const { ctx, refreshes, errors } = await newContext(t);
    const a = await openTab(ctx, { key: 't2' });
    const b = await openTab(ctx, { key: 't2' });
    await a.evaluate(({ u, p }) => window.client.login(u, p), { u: USER, p: PASSWORD });
    await b.waitForFunction(() => window.client.tokens() != null, null, { polling: 20, timeout: 10_000 });
    await waitExpired(a);
    await waitExpired(b);
    const m0 = await srv.metrics();
    const n0 = refreshes.length;

    // B fires when A says go; A fires right after saying it.
    await b.evaluate(() => {
      window.results = null;
      const go = new BroadcastChannel('test-go');
      go.onmessage = async () => {
        window.results = await window.fire(10);
      };
    });
    const ra = await a.evaluate(async () => {
      new BroadcastChannel('test-go').postMessage('go');
      return window.fire(10);
    });
    const rb = await b.waitForFunction(() => window.results, null, { polling: 20, timeout: 15_000 }).then((h) => h.jsonValue());

    assert.deepEqual([...ra, ...rb], Array(20).fill(200));
    assert.equal(refreshes.length - n0, 1, 'refresh requests seen by the browser, both tabs');
    const d = await metricsDelta(m0);
    assert.equal(d.rotated, 1);
    assert.equal(d.reused ?? 0, 0, 'the server detected refresh-token reuse');
    assert.equal(d.grace_replay ?? 0, 0);
    const [ta, tb] = await Promise.all([a, b].map((p) => p.evaluate(() => window.client.tokens().accessToken)));
    assert.equal(ta, tb, 'both tabs hold the same new token');
    assert.deepEqual(errors, []);
  });

  it('the heartbeat notices a session revoked elsewhere before any click', { timeout: 60_000 }, async (t) => {
    const { ctx, errors } = await newContext(t);
    const beats = [];
    const calls = [];
    ctx.on('request', (r) => {
      const path = new URL(r.url()).pathname;
      if (path === '/api/heartbeat') beats.push(r);
      if (path === '/api/me') calls.push(r);
    });
    const a = await openTab(ctx, { key: 't6', heartbeat: 300 });
    const b = await openTab(ctx, { key: 't6', heartbeat: 300 });
    await a.evaluate(({ u, p }) => window.client.login(u, p), { u: USER, p: PASSWORD });
    await b.waitForFunction(() => window.client.tokens() != null, null, { polling: 20, timeout: 10_000 });
    await poll(() => beats.length > 0, 'a heartbeat');

    // Another device signs the session out.
    const { refreshToken } = await a.evaluate(() => JSON.parse(localStorage.getItem('silentrefresh:t6')));
    const out = await fetch(`${srv.api}/api/auth/logout`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken }),
    });
    assert.equal(out.status, 204);

    const reauth = (p) => p.evaluate(() => window.reauth);
    await poll(async () => (await reauth(a)).length === 1 && (await reauth(b)).length === 1, 'both tabs told');
    for (const p of [a, b]) {
      assert.equal(await p.evaluate(() => window.client.tokens()), null);
      assert.match((await reauth(p))[0], /^(revoked|inactive)$/);
    }
    assert.equal(calls.length, 0, 'no request of the application was needed');
    assert.deepEqual(errors, []);
  });

  it("an empty baseUrl means the page's origin", { timeout: 60_000 }, async (t) => {
    const { ctx, errors } = await newContext(t);
    const page = await openTab(ctx, { key: 'base', options: { baseUrl: '' } });
    assert.equal(await page.evaluate(() => window.client.info.baseUrl), srv.url);
    const seen = [];
    page.on('request', (r) => new URL(r.url()).pathname === '/api/me' && seen.push(r.headers().authorization));
    await page.evaluate(({ u, p }) => window.client.login(u, p), { u: USER, p: PASSWORD });
    assert.deepEqual(await page.evaluate(() => window.fire(1)), [200]);
    assert.match(seen[0] ?? '', /^Bearer ey/, 'the token went to the page origin');
    assert.deepEqual(errors, []);
  });

  it("an answer lost after the server rotated: the retry gets the grace window's successor", { timeout: 60_000 }, async (t) => {
    const { ctx, refreshes, errors } = await newContext(t);
    const page = await openTab(ctx, { key: 'lost' });
    await page.evaluate(({ u, p }) => window.client.login(u, p), { u: USER, p: PASSWORD });
    let first = true;
    await page.route('**/api/auth/refresh', async (route) => {
      if (!first) return route.continue();
      first = false;
      await route.fetch(); // the server rotates...
      await route.abort('connectionreset'); // ...and the answer never arrives
    });
    await waitExpired(page);
    const m0 = await srv.metrics();
    const n0 = refreshes.length;
    assert.deepEqual(await page.evaluate(() => window.fire(5)), Array(5).fill(200));
    assert.equal(refreshes.length - n0, 2, 'the call and its retry');
    assert.equal(refreshes.at(-1).postData(), refreshes.at(-2).postData(), 'the retry presents the same refresh token');
    assert.equal((await page.evaluate(() => window.retries)).length, 1);
    const d = await metricsDelta(m0);
    assert.equal(d.rotated, 1);
    assert.equal(d.grace_replay, 1, 'the server answered the retry from its grace window');
    assert.equal(d.reused ?? 0, 0);
    assert.deepEqual(await page.evaluate(() => window.reauth), []);
    assert.deepEqual(errors, []);
  });

  it('a refresh that timed out is retried once at once, inside the grace window', { timeout: 60_000 }, async (t) => {
    const { ctx, refreshes, errors } = await newContext(t);
    const page = await openTab(ctx, { key: 'timeout', options: { refreshTimeout: 1000 } });
    await page.evaluate(({ u, p }) => window.client.login(u, p), { u: USER, p: PASSWORD });
    let first = true;
    await page.route('**/api/auth/refresh', async (route) => {
      if (!first) return route.continue();
      first = false;
      await route.fetch(); // rotated at the server; the browser gives up waiting after 1 s
      await new Promise((r) => setTimeout(r, 3000));
      await route.abort().catch(() => {});
    });
    await waitExpired(page);
    const m0 = await srv.metrics();
    const n0 = refreshes.length;
    assert.deepEqual(await page.evaluate(() => window.fire(3)), Array(3).fill(200));
    assert.equal(refreshes.length - n0, 2);
    assert.deepEqual(await page.evaluate(() => window.retries), [0], 'retried at once');
    const d = await metricsDelta(m0);
    assert.equal(d.rotated, 1);
    assert.equal(d.grace_replay, 1);
    assert.deepEqual(errors, []);
  });

  it('cookie mode keeps the refresh token away from script and still refreshes', { timeout: 60_000 }, async (t) => {
    const { ctx, refreshes, errors } = await newContext(t);
    const page = await openTab(ctx, { mode: 'cookie', key: 't4' });
    const login = await page.evaluate(({ u, p }) => window.client.login(u, p), { u: USER, p: PASSWORD });
    assert.equal(login.refreshToken, undefined);

    const cookie = async () => (await ctx.cookies(srv.url)).find((c) => c.name === '__Host-srt');
    const c1 = await cookie();
    assert.ok(c1?.value, 'the server set the refresh cookie');
    assert.equal(c1.httpOnly, true);
    assert.equal(c1.secure, true);
    assert.equal(c1.sameSite, 'Strict');
    assert.equal(c1.path, '/');

    const visible = () =>
      page.evaluate(() => ({ cookie: document.cookie, storage: JSON.stringify({ ...localStorage }), tokens: JSON.stringify(window.client.tokens()) }));
    for (const [where, text] of Object.entries(await visible())) {
      assert.ok(!text.includes(c1.value), `refresh token visible in ${where}`);
    }

    await waitExpired(page);
    const m0 = await srv.metrics();
    const n0 = refreshes.length;
    assert.deepEqual(await page.evaluate(() => window.fire(5)), Array(5).fill(200));
    assert.equal(refreshes.length - n0, 1);
    assert.equal(refreshes.at(-1).postData(), '{}', 'the refresh call carries no token in its body');
    assert.equal((await metricsDelta(m0)).rotated, 1);

    const c2 = await cookie();
    assert.ok(c2?.value && c2.value !== c1.value, 'the cookie rotated');
    for (const [where, text] of Object.entries(await visible())) {
      assert.ok(!text.includes(c2.value), `new refresh token visible in ${where}`);
    }

    // The cookie is refused to a request from another origin.
    const cross = await fetch(`${srv.api}/api/auth/refresh`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Origin: 'http://evil.example', Cookie: `__Host-srt=${c2.value}` },
      body: '{}',
    });
    assert.equal(cross.status, 403);
    assert.equal((await cross.json()).error, 'invalid_origin');
    assert.deepEqual(errors, []);
  });
});

describe('logout everywhere', { concurrency: false }, () => {
  it('ends the sessions of every device of the user; a plain logout ends only its own', { timeout: 60_000 }, async (t) => {
    // Two devices: two browser contexts, nothing shared. A is in cookie mode.
    const A = await newContext(t);
    const B = await newContext(t);
    const a = await openTab(A.ctx, { mode: 'cookie', key: 'e1' });
    const b = await openTab(B.ctx, { key: 'e1' });
    const login = (p) => p.evaluate(({ u, p }) => window.client.login(u, p), { u: USER, p: PASSWORD });
    await login(a);
    await login(b);
    assert.deepEqual(await b.evaluate(() => window.fire(1)), [200]);

    assert.equal(await a.evaluate(() => window.client.logout()), true);
    assert.deepEqual(await b.evaluate(() => window.fire(2)), [200, 200], 'a plain logout leaves the other device alone');

    await login(a);
    const call = a.waitForRequest((r) => new URL(r.url()).pathname === '/api/auth/logout');
    assert.equal(await a.evaluate(() => window.client.logout({ everywhere: true })), true);
    assert.equal((await call).postData(), '{"all":true}', 'cookie mode: the cookie and "all"');
    assert.equal((await A.ctx.cookies(srv.url)).find((c) => c.name === '__Host-srt'), undefined, 'the cookie is cleared');

    // B's access token is still fresh by the clock; the session check refuses it,
    // and the refresh that follows finds the session revoked.
    assert.ok(await b.evaluate(() => window.client.tokens().expiresAt > Date.now()));
    assert.deepEqual(await b.evaluate(() => window.fire(3)), Array(3).fill('ReauthRequiredError:revoked'));
    assert.deepEqual(await b.evaluate(() => window.reauth), ['revoked']);
    assert.deepEqual(await a.evaluate(() => window.reauth), [], 'the device that logged out is not told');
    assert.deepEqual([...A.errors, ...B.errors], []);
  });

  it("the demo page's Sign out everywhere ends another device's session", { timeout: 60_000 }, async (t) => {
    const A = await newContext(t);
    const B = await newContext(t);
    const demo = await A.ctx.newPage();
    await demo.goto(`${srv.url}/`);
    await demo.waitForSelector('body[data-state="login"]');
    await demo.fill('#username', USER);
    await demo.fill('#password', PASSWORD);
    await demo.click('#login-button');
    await demo.waitForSelector('body[data-state="app"]');
    const b = await openTab(B.ctx, { key: 'e2' });
    await b.evaluate(({ u, p }) => window.client.login(u, p), { u: USER, p: PASSWORD });
    assert.deepEqual(await b.evaluate(() => window.fire(1)), [200]);

    const out = demo.waitForResponse((r) => new URL(r.url()).pathname === '/api/auth/logout');
    await demo.click('#logout-all');
    const res = await out;
    assert.equal(res.status(), 204);
    assert.equal(JSON.parse(res.request().postData()).all, true);
    await demo.waitForSelector('body[data-state="login"]');
    assert.match(await demo.textContent('#log'), /Signed out on every device/);
    assert.deepEqual(await b.evaluate(() => window.fire(2)), Array(2).fill('ReauthRequiredError:revoked'));
    assert.deepEqual([...A.errors, ...B.errors], []);
  });
});

describe('the demo page', { concurrency: false }, () => {
  async function openDemo(ctx) {
    const page = await ctx.newPage();
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${srv.url}/`);
    return page;
  }

  async function signIn(page) {
    await page.waitForSelector('body[data-state="login"]');
    await page.fill('#username', USER);
    await page.fill('#password', PASSWORD);
    await page.click('#login-button');
    await page.waitForSelector('body[data-state="app"]');
  }

  const demoStats = (page) => page.evaluate(() => ({ ...window.silentrefreshDemo.stats }));

  it('rejects every queued request when another tab logs out, says so once, and shows login', { timeout: 60_000 }, async (t) => {
    const { ctx, refreshes, errors } = await newContext(t);
    const a = await openDemo(ctx);
    await signIn(a);
    const b = await openDemo(ctx);
    await b.waitForSelector('body[data-state="app"]'); // restored from the shared storage
    await waitExpired(b, { demo: true });
    const m0 = await srv.metrics();
    const n0 = refreshes.length;

    // Hold B's refresh on the wire while A logs out.
    const held = [];
    await b.route('**/api/auth/refresh', (route) => held.push(route));
    await b.evaluate(() => {
      window.results = null;
      const { client } = window.silentrefreshDemo;
      Promise.allSettled(Array.from({ length: 10 }, () => client('/api/me'))).then((rs) => {
        window.results = rs.map((r) => (r.status === 'fulfilled' ? r.value.status : `${r.reason.name}:${r.reason.reason}`));
      });
    });
    await poll(() => held.length === 1, "B's refresh on the wire");

    const loggedOut = a.waitForResponse((r) => new URL(r.url()).pathname === '/api/auth/logout');
    await a.click('#logout');
    assert.equal((await loggedOut).status(), 204);
    await a.waitForSelector('body[data-state="login"]');
    await held[0].continue();

    const results = await b.waitForFunction(() => window.results, null, { polling: 20, timeout: 15_000 }).then((h) => h.jsonValue());
    assert.equal(results.length, 10);
    for (const r of results) assert.match(String(r), /^ReauthRequiredError:/);
    await b.waitForSelector('body[data-state="login"]');
    assert.ok(await b.isVisible('#login-form'));
    assert.ok(await b.isVisible('#login-reason'));

    // Nothing more to say: a later request rejects without a second call.
    await b.evaluate(() => window.silentrefreshDemo.client('/api/me').catch((e) => e.name));
    assert.equal((await demoStats(b)).reauth, 1, 'onReauthRequired calls in tab B');
    assert.equal((await demoStats(a)).reauth, 0, 'the tab that logged out is not told');
    assert.equal(refreshes.length - n0, 1);
    const d = await metricsDelta(m0);
    assert.equal(d.revoked, 1, "B's refresh met the revoked session");
    assert.equal(d.reused ?? 0, 0);
    assert.equal(d.rotated ?? 0, 0);
    assert.deepEqual(errors, []);
  });

  it('signs in, fires 20 requests after expiry and shows one refresh', { timeout: 60_000 }, async (t) => {
    const out = ensureOutputDir();
    const { ctx, refreshes, errors } = await newContext(t);
    const page = await openDemo(ctx);
    await page.waitForSelector('body[data-state="login"]');
    assert.ok(await page.isVisible('#login-form'));
    await page.screenshot({ path: join(out, 'demo-login.png') });
    await signIn(page);
    assert.equal(await page.textContent('#stat-refreshes'), '0');

    await page.waitForFunction(() => document.getElementById('ttl').textContent === 'expired', null, { polling: 50, timeout: 15_000 });
    const n0 = refreshes.length;
    await page.click('#fire');
    await page.waitForFunction(() => document.getElementById('stat-ok').textContent === '20', null, { polling: 20, timeout: 15_000 });

    assert.equal(refreshes.length - n0, 1);
    assert.equal(await page.textContent('#stat-refreshes'), '1');
    assert.equal(await page.textContent('#stat-failed'), '0');
    assert.notEqual(await page.textContent('#ttl'), 'expired');
    const log = await page.textContent('#log');
    assert.match(log, /Refreshed the token in \d+ ms: one call for \d+ waiting requests?/);
    assert.match(log, /20 requests: 20 × 200/);
    assert.equal(await page.locator('#lane-refresh .bar-item.refresh').count(), 1);
    assert.equal(await page.locator('#lane-requests .bar-item.ok').count(), 20);
    await page.screenshot({ path: join(out, 'demo-after-refresh.png'), fullPage: true });

    // A second tab: it takes the first tab's tokens instead of refreshing.
    // (Opening it may refresh once, if the token is already close to expiry.)
    const second = await openDemo(ctx);
    await second.waitForSelector('body[data-state="app"]');
    const tokensOf = (p) => p.evaluate(() => window.silentrefreshDemo.client.tokens());
    await poll(async () => {
      const [ta, tb] = await Promise.all([tokensOf(page), tokensOf(second)]);
      return ta && tb && ta.accessToken === tb.accessToken && ta.expiresAt <= Date.now();
    }, 'both tabs on one expired token');
    const n1 = refreshes.length;
    const before = await demoStats(second);
    await page.click('#fire');
    await page.waitForFunction(() => document.getElementById('stat-ok').textContent === '40', null, { polling: 20, timeout: 15_000 });
    await poll(async () => (await demoStats(second)).adopted > before.adopted, 'the second tab to take the new token');
    assert.equal(refreshes.length - n1, 1, 'one refresh for both tabs');
    assert.equal((await demoStats(second)).refreshes, before.refreshes, 'the second tab did not refresh');
    assert.match(await second.textContent('#log'), /Another tab refreshed/);
    const [ta, tb] = await Promise.all([tokensOf(page), tokensOf(second)]);
    assert.equal(ta.accessToken, tb.accessToken);
    await second.click('#fire');
    await second.waitForFunction(() => document.getElementById('stat-ok').textContent === '20', null, { polling: 20, timeout: 15_000 });
    await second.screenshot({ path: join(out, 'demo-second-tab.png'), fullPage: true });
    assert.deepEqual(errors, []);
  });
});
