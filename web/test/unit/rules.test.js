// The two rules of docs/API.md ("When the session is over, and when a token
// is stale"), one table each, run against both wire formats: the JSON API
// and an RFC 6749 token endpoint.
import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';

import { createClient, isReauthRequired, RefreshError } from '../../silentrefresh.js';
import { BASE, clock, FakeServer, MemoryStorage, scripted } from './fakes.js';

const WIRES = {
  json: {},
  oauth2: { oauth2: { tokenEndpoint: `${BASE}/oauth2/token`, clientId: 'web' } },
};

/** A client on a scripted fetch, its session begun (login, or setTokens for oauth2). */
async function begin(t, { wire = 'json', server = new FakeServer({ grace: true }), script = [], opts = {} } = {}) {
  const clk = clock();
  const storage = new MemoryStorage();
  const net = scripted(server, script);
  const reauth = [];
  const retries = [];
  const c = createClient({
    baseUrl: BASE,
    storage,
    fetch: net.fetch,
    locks: null,
    BroadcastChannel: null,
    document: null,
    window: null,
    now: clk.now,
    onReauthRequired: (e) => reauth.push(e),
    ...WIRES[wire],
    ...opts,
  });
  t.after(() => c.close());
  // Backoff waits run on mocked timers, advanced as soon as they are set.
  c.on('refresh', (e) => {
    if (e.phase !== 'retry') return;
    retries.push(e.delay);
    if (e.delay > 0) queueMicrotask(() => mock.timers.tick(e.delay));
  });
  if (opts.mode === 'cookie' || wire === 'json') await c.login('alice', 'pw');
  else await c.setTokens(server.grant());
  return { c, clk, server, storage, net, reauth, retries };
}

function mockTimers(t) {
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
}

const json = (status, body, headers) => ({ status, body, headers });
const down = (n) => Array(n).fill(json(503, { error: 'temporarily_unavailable' }));

// Answers of the token endpoint, and what the client must do. outcome:
// "ok" (refreshed, every request 200), "over" (session ended), "permanent"
// or "temporary" (every request rejects with RefreshError, tokens kept).
const SESSION_RULE = [
  // The session is over: invalid_grant, whatever the 4xx status.
  { name: 'JSON API 401 invalid_grant', script: [json(401, { error: 'invalid_grant', error_description: 'revoked' })], outcome: 'over', reason: 'revoked', calls: 1 },
  { name: 'RFC 6749 400 invalid_grant', script: [json(400, { error: 'invalid_grant', error_description: 'expired' })], outcome: 'over', reason: 'expired', calls: 1 },
  { name: 'invalid_grant with a sentence for a description', script: [json(400, { error: 'invalid_grant', error_description: 'Token is not active' })], outcome: 'over', reason: 'invalid_grant', description: 'Token is not active', calls: 1 },
  { name: 'invalid_grant with no description', script: [json(403, { error: 'invalid_grant' })], outcome: 'over', reason: 'invalid_grant', calls: 1 },
  { name: 'the real server: a reused token', server: () => new FakeServer(), script: ['lost', 'ok'], outcome: 'over', reason: 'reused', calls: 2 },
  // Any other 4xx is permanent: no logout, no retry.
  { name: '400 invalid_request', script: [json(400, { error: 'invalid_request' })], outcome: 'permanent', code: 'invalid_request', status: 400, calls: 1 },
  { name: '401 invalid_client', script: [json(401, { error: 'invalid_client' })], outcome: 'permanent', code: 'invalid_client', status: 401, calls: 1 },
  { name: '400 unauthorized_client', script: [json(400, { error: 'unauthorized_client' })], outcome: 'permanent', code: 'unauthorized_client', status: 400, calls: 1 },
  { name: '400 unsupported_grant_type', script: [json(400, { error: 'unsupported_grant_type' })], outcome: 'permanent', code: 'unsupported_grant_type', status: 400, calls: 1 },
  { name: '400 invalid_scope', script: [json(400, { error: 'invalid_scope' })], outcome: 'permanent', code: 'invalid_scope', status: 400, calls: 1 },
  { name: '401 without a JSON error', script: [json(401, 'Unauthorized')], outcome: 'permanent', code: '', status: 401, calls: 1 },
  { name: '400 with an empty body', script: [json(400)], outcome: 'permanent', code: '', status: 400, calls: 1 },
  { name: '403 invalid_origin (cookie check)', script: [json(403, { error: 'invalid_origin' })], outcome: 'permanent', code: 'invalid_origin', status: 403, calls: 1 },
  { name: '404', script: [json(404, { error: 'not_found' })], outcome: 'permanent', code: 'not_found', status: 404, calls: 1 },
  { name: '200 that is not a token reply', script: [json(200, { hello: 'world' })], outcome: 'permanent', status: 200, calls: 1 },
  { name: '200 whose token would break the Authorization header', script: [json(200, { accessToken: 'a\r\nb', access_token: 'a\r\nb', expiresIn: 30, expires_in: 30 })], outcome: 'permanent', status: 200, calls: 1 },
  // 429, 5xx and network errors are temporary: retried with backoff.
  { name: '503 then ok', script: down(1), outcome: 'ok', calls: 2, delays: [[100, 200]] },
  { name: '503 four times: three retries, then given up', script: down(4), outcome: 'temporary', status: 503, calls: 4, delays: [[100, 200], [200, 400], [400, 800]] },
  { name: '500 with an invalid_grant body is a 5xx, not the end', script: [json(500, { error: 'invalid_grant' })], outcome: 'ok', calls: 2, delays: [[100, 200]] },
  { name: '429 honours Retry-After in seconds', script: [json(429, { error: 'rate_limited' }, { 'Retry-After': '3' })], outcome: 'ok', calls: 2, delays: [[3000, 3000]] },
  { name: '503 honours Retry-After as a date', script: () => [json(503, {}, { 'Retry-After': new Date(Date.now() + 8_000).toUTCString() })], outcome: 'ok', calls: 2, delays: [[6500, 8000]] },
  { name: 'Retry-After past the refresh budget: not retried', script: [json(429, { error: 'rate_limited' }, { 'Retry-After': '3600' })], outcome: 'temporary', status: 429, retryAfter: 3600, calls: 1, delays: [] },
  { name: 'network error then ok', script: ['network'], outcome: 'ok', calls: 2, delays: [[100, 200]] },
  { name: 'network errors until the retries run out', script: Array(4).fill('network'), outcome: 'temporary', status: 0, calls: 4, delays: [[100, 200], [200, 400], [400, 800]] },
  { name: 'answer lost after the server rotated: the retry gets the same successor', script: ['lost'], outcome: 'ok', calls: 2, samePresented: true, delays: [[100, 200]] },
  { name: 'sent, unanswered (timeout): retried once at once', script: ['timeout'], opts: { refreshTimeout: 30 }, outcome: 'ok', calls: 2, samePresented: true, delays: [[0, 0]] },
  { name: 'unanswered twice: given up after the one immediate retry', script: ['timeout', 'timeout'], opts: { refreshTimeout: 30 }, outcome: 'temporary', status: 0, calls: 2, delays: [[0, 0]] },
  { name: 'maxRetries: 0 retries nothing but an unanswered call', script: down(1), opts: { maxRetries: 0 }, outcome: 'temporary', status: 503, calls: 1, delays: [] },
];

describe('the session rule: which answers end the session', () => {
  for (const wire of Object.keys(WIRES)) {
    for (const tc of SESSION_RULE) {
      it(`${wire}: ${tc.name} → ${tc.outcome}`, async (t) => {
        mockTimers(t);
        const { c, clk, storage, net, reauth, retries } = await begin(t, {
          wire,
          server: tc.server?.(),
          script: typeof tc.script === 'function' ? tc.script() : [...tc.script],
          opts: tc.opts,
        });
        const before = c.tokens();
        clk.advance(60_000); // expired: every request waits for the one refresh
        const results = await Promise.allSettled([1, 2, 3].map(() => c(`${BASE}/api/me`)));
        assert.equal(net.presented.length, tc.calls, 'calls to the token endpoint');
        if (tc.samePresented) assert.equal(new Set(net.presented).size, 1, 'the retry presents the same token');
        if (tc.delays) {
          assert.equal(retries.length, tc.delays.length, `retries ${JSON.stringify(retries)}`);
          tc.delays.forEach(([lo, hi], i) => assert.ok(retries[i] >= lo && retries[i] <= hi, `retry ${i} after ${retries[i]} ms, want ${lo}..${hi}`));
        }
        switch (tc.outcome) {
          case 'ok':
            assert.deepEqual(
              results.map((r) => r.value?.status ?? String(r.reason)),
              [200, 200, 200],
            );
            assert.notEqual(c.tokens().accessToken, before.accessToken);
            assert.equal(reauth.length, 0);
            break;
          case 'over':
            for (const r of results) {
              assert.equal(r.status, 'rejected');
              assert.ok(isReauthRequired(r.reason), String(r.reason));
              assert.equal(r.reason.reason, tc.reason);
              if (tc.description) assert.equal(r.reason.description, tc.description);
            }
            assert.equal(reauth.length, 1, 'onReauthRequired once');
            assert.equal(c.tokens(), null);
            assert.equal(storage.getItem('silentrefresh:default'), null, 'tokens cleared from storage');
            break;
          default:
            for (const r of results) {
              assert.equal(r.status, 'rejected');
              assert.ok(r.reason instanceof RefreshError, String(r.reason));
              assert.equal(r.reason.temporary, tc.outcome === 'temporary');
              assert.equal(r.reason.attempts, tc.calls);
              if (tc.status != null) assert.equal(r.reason.status, tc.status);
              if (tc.code != null) assert.equal(r.reason.code, tc.code);
              if (tc.retryAfter != null) assert.equal(r.reason.retryAfter, tc.retryAfter);
            }
            assert.equal(reauth.length, 0, 'no logout');
            assert.deepEqual(c.tokens(), before, 'tokens kept');
            assert.ok(storage.getItem('silentrefresh:default'), 'tokens kept in storage');
        }
      });
    }
  }

  it('no refresh token to present ends the session without a call', async (t) => {
    const { c, clk, net, reauth, storage } = await begin(t, { wire: 'oauth2' });
    await c.setTokens({ accessToken: 'from-elsewhere', expiresIn: 60 });
    clk.advance(60_000);
    await assert.rejects(c(`${BASE}/api/me`), (e) => isReauthRequired(e) && e.reason === 'no_refresh_token');
    assert.equal(net.presented.length, 0);
    assert.equal(reauth.length, 1);
    assert.equal(storage.getItem('silentrefresh:default'), null);
  });

  it('cookie mode: a cookie past its lifetime is nothing to present', async (t) => {
    const server = new FakeServer({ cookieMode: true });
    const { c, clk, net, reauth } = await begin(t, { server, opts: { mode: 'cookie' } });
    clk.advance(3600_000); // refreshExpiresIn: the cookie's Max-Age
    await assert.rejects(c(`${BASE}/api/me`), (e) => isReauthRequired(e) && e.reason === 'expired');
    assert.equal(net.presented.length, 0);
    assert.equal(reauth.length, 1);
  });

  it('cookie mode: invalid_grant ends it, a 400 for a missing cookie does not', async (t) => {
    mockTimers(t);
    const server = new FakeServer({ cookieMode: true });
    const { c, clk, reauth } = await begin(t, { server, opts: { mode: 'cookie' } });
    server.cookie = null; // the browser lost the cookie: the server answers 400 invalid_request
    clk.advance(61_000);
    await assert.rejects(c(`${BASE}/api/me`), (e) => e instanceof RefreshError && !e.temporary && e.code === 'invalid_request');
    assert.equal(reauth.length, 0);
    assert.ok(c.tokens());
    server.cookie = 'rt-1';
    server.revoked = true;
    await assert.rejects(c(`${BASE}/api/me`), (e) => isReauthRequired(e) && e.reason === 'revoked');
    assert.equal(reauth.length, 1);
  });
});

describe('the session rule: a 401 on a request never ends the session by itself', () => {
  it('a request still refused after a good refresh returns its 401; the session stays', async (t) => {
    const server = new FakeServer();
    const reauth = [];
    const f = (input, init) => {
      const r = new Request(input, init);
      if (new URL(r.url).pathname === '/api/me') return Promise.resolve(new Response('{"error":"invalid_token"}', { status: 401 }));
      return server.fetch(input, init);
    };
    const c = createClient({ baseUrl: BASE, storage: 'memory', fetch: f, locks: null, BroadcastChannel: null, document: null, window: null, onReauthRequired: (e) => reauth.push(e) });
    t.after(() => c.close());
    await c.login('alice', 'pw');
    const res = await c(`${BASE}/api/me`);
    assert.equal(res.status, 401);
    assert.equal(server.calls.refresh, 1, 'the one refresh');
    assert.equal(c.tokens().accessToken, 'at-2', 'the new tokens kept');
    assert.equal(reauth.length, 0);
  });

  it('the heartbeat: a 401 after a good refresh ends nothing; after invalid_grant it does', async (t) => {
    const server = new FakeServer();
    const reauth = [];
    let refuse = true;
    const f = (input, init) => {
      const r = new Request(input, init);
      if (refuse && new URL(r.url).pathname === '/api/heartbeat') return Promise.resolve(new Response('{}', { status: 401 }));
      return server.fetch(input, init);
    };
    const c = createClient({ baseUrl: BASE, storage: 'memory', fetch: f, locks: null, BroadcastChannel: null, document: null, window: null, onReauthRequired: (e) => reauth.push(e) });
    t.after(() => c.close());
    await c.login('alice', 'pw');
    await c.heartbeat();
    assert.equal(server.calls.refresh, 1);
    assert.equal(reauth.length, 0);
    assert.ok(c.tokens());
    refuse = false;
    server.revoked = true;
    await c.heartbeat();
    assert.equal(reauth.length, 1);
    assert.equal(reauth[0].reason, 'revoked');
    assert.equal(c.tokens(), null);
  });
});

// When a token stops being sent: margin = min(10 s, lifetime/10), or leeway.
const STALE_RULE = [
  { name: '60 s token: margin 6 s', ttl: 60, fresh: 53_999, stale: 54_000 },
  { name: '1 h token: margin capped at 10 s', ttl: 3600, fresh: 3_589_999, stale: 3_590_000 },
  { name: '2 s token: margin 200 ms', ttl: 2, fresh: 1_799, stale: 1_800 },
  { name: 'leeway 0: sent until expiry', ttl: 60, leeway: 0, fresh: 59_999, stale: 60_000 },
  { name: 'leeway 30 s overrides the tenth', ttl: 60, leeway: 30_000, fresh: 29_999, stale: 30_000 },
  { name: 'leeway 20 s on a 1 h token overrides the 10 s cap', ttl: 3600, leeway: 20_000, fresh: 3_579_999, stale: 3_580_000 },
  { name: 'leeway longer than the lifetime: never sent', ttl: 60, leeway: 90_000, fresh: null, stale: 0 },
];

describe('the stale rule', () => {
  for (const wire of Object.keys(WIRES)) {
    for (const tc of STALE_RULE) {
      it(`${wire}: ${tc.name}`, async (t) => {
        const server = new FakeServer({ ttl: tc.ttl });
        const { c, clk } = await begin(t, { wire, server, opts: tc.leeway == null ? {} : { leeway: tc.leeway } });
        const t0 = clk.now();
        const first = c.tokens().accessToken;
        if (tc.fresh != null) {
          clk.advance(tc.fresh);
          assert.equal((await c(`${BASE}/api/me`)).status, 200);
          assert.equal(server.calls.refresh, 0, `sent at ${tc.fresh} ms`);
          assert.equal(server.log.at(-1).auth, `Bearer ${first}`);
        }
        clk.advance(tc.stale - (clk.now() - t0));
        assert.equal((await c(`${BASE}/api/me`)).status, 200);
        assert.equal(server.calls.refresh, 1, `refreshed first at ${tc.stale} ms`);
        assert.notEqual(server.log.at(-1).auth, `Bearer ${first}`);
      });
    }
  }
});
