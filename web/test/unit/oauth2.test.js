// createClient({oauth2}): the RFC 6749 wire format, setTokens, and the
// logout requests (RFC 7009 revocation; the JSON API's "logout everywhere").
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { createClient, isReauthRequired, RefreshError } from '../../silentrefresh.js';
import { BASE, clock, deferred, FakeServer, LockManager, MemoryStorage, until } from './fakes.js';

let keys = 0;
const OAUTH2 = { tokenEndpoint: `${BASE}/oauth2/token`, clientId: 'spa', revocationEndpoint: `${BASE}/oauth2/revoke` };

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
    onReauthRequired: (e) => reauth.push(e),
    oauth2: OAUTH2,
    ...opts,
  });
  t.after(() => c.close());
  c.reauth = reauth;
  return c;
}

/** A fetch that answers the token endpoint with reply, and passes the rest to server. */
function answering(server, reply, status = 200) {
  return (input, init) => {
    if (new URL(new Request(input, init).url).pathname === '/oauth2/token') {
      return Promise.resolve(new Response(JSON.stringify(reply), { status, headers: { 'Content-Type': 'application/json' } }));
    }
    return server.fetch(input, init);
  };
}

describe('oauth2: the refresh_token grant', () => {
  it('sends a form-encoded refresh_token grant with client_id and scope', async (t) => {
    const server = new FakeServer();
    const clk = clock();
    const c = tab(t, server, clk, { oauth2: { ...OAUTH2, tokenEndpoint: '/oauth2/token', scope: 'api read' } });
    assert.equal(c.info.oauth2.tokenEndpoint, `${BASE}/oauth2/token`, 'a relative endpoint resolves against the base');
    await c.setTokens(server.grant());
    clk.advance(60_000);
    assert.equal((await c(`${BASE}/api/me`)).status, 200);
    const call = server.log.find((l) => l.path === '/oauth2/token');
    assert.equal(call.type, 'application/x-www-form-urlencoded');
    assert.deepEqual(call.body, { grant_type: 'refresh_token', refresh_token: 'rt-1', client_id: 'spa', scope: 'api read' });
    // The reply was snake_case with expires_in quoted and token_type "bearer".
    assert.equal(c.tokens().accessToken, 'at-2');
    assert.equal(c.tokens().refreshToken, 'rt-2');
    assert.equal(c.tokens().tokenType, 'Bearer');
    assert.equal(c.tokens().expiresAt, clk.now() + 60_000);
    assert.equal(server.log.at(-1).auth, 'Bearer at-2');
  });

  const REPLIES = [
    { name: 'no refresh_token: the old one is kept', reply: { access_token: 'x1', token_type: 'Bearer', expires_in: 30 }, refreshToken: 'rt-1', expiresIn: 30 },
    { name: 'no expires_in: never stale by the clock', reply: { access_token: 'x2', token_type: 'Bearer', refresh_token: 'n2' }, refreshToken: 'n2', expiresIn: null },
    { name: 'no token_type', reply: { access_token: 'x3', expires_in: '45', refresh_token: 'n3' }, refreshToken: 'n3', expiresIn: 45 },
    { name: 'token_type mac is refused', reply: { access_token: 'x4', token_type: 'mac', expires_in: 30 }, malformed: true },
    { name: 'negative expires_in is refused', reply: { access_token: 'x5', expires_in: -1 }, malformed: true },
    { name: 'a number for refresh_token is refused', reply: { access_token: 'x6', expires_in: 30, refresh_token: 7 }, malformed: true },
    { name: 'camelCase (the JSON API) is not a token reply here', reply: { accessToken: 'x7', expiresIn: 30 }, malformed: true },
    { name: 'a line break in the access token is refused', reply: { access_token: 'x8\r\nX-Evil: 1', expires_in: 30 }, malformed: true },
    { name: 'a space in the access token is refused', reply: { access_token: 'x9 y', expires_in: 30 }, malformed: true },
    { name: 'an access token of 20 KiB is refused', reply: { access_token: 'a'.repeat(20_480), expires_in: 30 }, malformed: true },
  ];
  for (const tc of REPLIES) {
    it(`reads a reply: ${tc.name}`, async (t) => {
      const server = new FakeServer();
      const clk = clock();
      const c = tab(t, server, clk, { fetch: answering(server, tc.reply) });
      await c.setTokens(server.grant());
      clk.advance(60_000);
      if (tc.malformed) {
        await assert.rejects(c.refresh(), (e) => e instanceof RefreshError && !e.temporary && e.status === 200);
        assert.equal(c.tokens().accessToken, 'at-1', 'tokens kept');
        assert.equal(c.reauth.length, 0);
        return;
      }
      const got = await c.refresh();
      assert.equal(got.accessToken, tc.reply.access_token);
      assert.equal(got.refreshToken, tc.refreshToken);
      assert.equal(got.expiresAt, tc.expiresIn == null ? Number.MAX_SAFE_INTEGER : clk.now() + tc.expiresIn * 1000);
    });
  }

  it('refuses what it cannot do, loudly', async (t) => {
    const server = new FakeServer();
    assert.throws(() => createClient({ baseUrl: BASE, storage: 'memory', oauth2: {} }), /tokenEndpoint is required/);
    assert.throws(() => createClient({ baseUrl: BASE, storage: 'memory', oauth2: OAUTH2, mode: 'cookie' }), /do not go together/);
    const c = tab(t, server, clock());
    await assert.rejects(c.login('alice', 'pw'), (e) => e instanceof TypeError && /setTokens/.test(e.message));
    await c.setTokens(server.grant());
    await assert.rejects(c.logout({ everywhere: true }), (e) => e instanceof TypeError && /RFC 7009/.test(e.message));
    assert.equal(c.tokens().accessToken, 'at-1', 'a refused logout changes nothing');
    assert.equal(server.calls.login + server.calls.logout + server.calls.revoke, 0);
  });

  it('logs out with RFC 7009 revocation of the refresh token', async (t) => {
    const server = new FakeServer();
    const c = tab(t, server, clock());
    await c.setTokens(server.grant());
    assert.equal(await c.logout(), true);
    const call = server.log.at(-1);
    assert.equal(call.path, '/oauth2/revoke');
    assert.equal(call.type, 'application/x-www-form-urlencoded');
    assert.deepEqual(call.body, { token: 'rt-1', token_type_hint: 'refresh_token', client_id: 'spa' });
    assert.equal(c.tokens(), null);
  });

  it('without a revocation endpoint, logs out here only and says the server was not told', async (t) => {
    const server = new FakeServer();
    const c = tab(t, server, clock(), { oauth2: { tokenEndpoint: OAUTH2.tokenEndpoint } });
    await c.setTokens(server.grant());
    assert.equal(await c.logout(), false);
    assert.equal(server.log.length, 0);
    assert.equal(c.tokens(), null);
  });
});

describe('setTokens', () => {
  const BAD = [
    { name: 'nothing', t: undefined },
    { name: 'no access token', t: { refreshToken: 'r', expiresIn: 60 } },
    { name: 'an empty access token', t: { accessToken: '', refreshToken: 'r', expiresIn: 60 } },
    { name: 'no expiresIn', t: { accessToken: 'a', refreshToken: 'r' } },
    { name: 'expiresIn 0', t: { accessToken: 'a', refreshToken: 'r', expiresIn: 0 } },
    { name: 'expiresIn negative', t: { accessToken: 'a', refreshToken: 'r', expiresIn: -5 } },
    { name: 'expiresIn not a number', t: { accessToken: 'a', refreshToken: 'r', expiresIn: 'soon' } },
    { name: 'an empty refresh token', t: { accessToken: 'a', refreshToken: '', expiresIn: 60 } },
    { name: 'a refresh token that is not a string', t: { accessToken: 'a', refreshToken: 42, expiresIn: 60 } },
    { name: 'a line break in the access token', t: { accessToken: 'a\nb', refreshToken: 'r', expiresIn: 60 } },
    { name: 'a token type with a space', t: { accessToken: 'a', refreshToken: 'r', expiresIn: 60, tokenType: 'Bearer x' } },
    { name: 'a refresh token in cookie mode', t: { accessToken: 'a', refreshToken: 'r', expiresIn: 60 }, opts: { mode: 'cookie', oauth2: undefined } },
  ];
  for (const tc of BAD) {
    it(`refuses ${tc.name} and keeps the session it has`, async (t) => {
      const server = new FakeServer();
      const c = tab(t, server, clock(), tc.opts);
      await c.setTokens({ accessToken: 'keep', expiresIn: 60 });
      await assert.rejects(c.setTokens(tc.t), TypeError);
      assert.equal(c.tokens().accessToken, 'keep');
    });
  }

  it('adopts the tokens in every tab, and the JSON API client refreshes them', async (t) => {
    const server = new FakeServer();
    const clk = clock();
    const shared = { storage: new MemoryStorage(), locks: new LockManager(), BroadcastChannel, key: `s${++keys}`, oauth2: undefined };
    const a = tab(t, server, clk, shared);
    const b = tab(t, server, clk, shared);
    const sources = [];
    a.on('tokens', (e) => sources.push(e.source));
    const g = server.grant();
    const got = await a.setTokens({ accessToken: g.accessToken, refreshToken: g.refreshToken, expiresIn: g.expiresIn, refreshExpiresIn: 3600 });
    assert.equal(got.expiresAt, clk.now() + 60_000);
    assert.equal(got.refreshExpiresAt, clk.now() + 3_600_000);
    assert.deepEqual(sources, ['set']);
    await until(() => b.tokens()?.accessToken === g.accessToken, 'b sees them');
    clk.advance(60_000);
    assert.deepEqual([(await a(`${BASE}/api/me`)).status, (await b(`${BASE}/api/me`)).status], [200, 200]);
    assert.equal(server.calls.refresh, 1);
    assert.equal(server.calls.login, 0);
  });

  it('a new session set while an old refresh is out (no locks) is not overwritten by it', async (t) => {
    const server = new FakeServer();
    const clk = clock();
    const c = tab(t, server, clk);
    await c.setTokens(server.grant());
    clk.advance(60_000);
    const gate = deferred();
    server.refreshGate = gate.promise;
    const req = c(`${BASE}/api/me`);
    await until(() => server.calls.refresh === 1, 'refresh out');
    await c.setTokens({ accessToken: 'new-session', refreshToken: 'new-rt', expiresIn: 60 });
    server.access.add('new-session');
    gate.resolve();
    assert.equal((await req).status, 200);
    assert.equal(c.tokens().accessToken, 'new-session');
    assert.equal(c.tokens().refreshToken, 'new-rt');
    assert.equal(server.log.at(-1).auth, 'Bearer new-session');
  });
});

describe('logout everywhere (JSON API)', () => {
  it('sends {"all": true} with the refresh token and the access token', async (t) => {
    const server = new FakeServer();
    const c = tab(t, server, clock(), { oauth2: undefined });
    await c.login('alice', 'pw');
    const events = [];
    c.on('logout', (e) => events.push(e));
    assert.equal(await c.logout({ everywhere: true }), true);
    const call = server.log.at(-1);
    assert.equal(call.path, '/api/auth/logout');
    assert.equal(call.type, 'application/json');
    assert.deepEqual(call.body, { refreshToken: 'rt-1', all: true });
    assert.equal(call.auth, 'Bearer at-1');
    assert.deepEqual(events, [{ everywhere: true }]);
    assert.equal(c.tokens(), null);
    await assert.rejects(c(`${BASE}/api/me`), isReauthRequired);
  });

  it('in cookie mode sends {"all": true} and the cookie', async (t) => {
    const server = new FakeServer({ cookieMode: true });
    const c = tab(t, server, clock(), { oauth2: undefined, mode: 'cookie' });
    await c.login('alice', 'pw');
    assert.equal(await c.logout({ everywhere: true }), true);
    const call = server.log.at(-1);
    assert.deepEqual(call.body, { all: true });
    assert.equal(call.credentials, 'same-origin');
  });

  it('a plain logout sends no "all"', async (t) => {
    const server = new FakeServer();
    const c = tab(t, server, clock(), { oauth2: undefined });
    await c.login('alice', 'pw');
    await c.logout();
    assert.deepEqual(server.log.at(-1).body, { refreshToken: 'rt-1' });
  });
});
