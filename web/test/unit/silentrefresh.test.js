import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';

import {
  createClient,
  isReauthRequired,
  LoginError,
  ReauthRequiredError,
  RefreshError,
} from '../../silentrefresh.js';
import { BASE, clock, deferred, FakeServer, handoffStore, heldChannel, LockManager, MemoryStorage, until } from './fakes.js';

let keys = 0;

/**
 * One "tab": a client wired to the fake server. Cross-tab parts (locks,
 * BroadcastChannel, window, document) are off unless given.
 */
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
    ...opts,
  });
  t.after(() => c.close());
  c.reauth = reauth;
  return c;
}

function expire(clk, c) {
  clk.advance(c.tokens().expiresAt - clk.now() + 1);
}

async function statuses(promises) {
  return (await Promise.all(promises)).map((r) => r.status);
}

describe('login and storage', () => {
  const cases = [
    { name: 'memory', storage: 'memory', stored: () => null },
    {
      name: 'web storage',
      storage: new MemoryStorage(),
      stored: (s) => JSON.parse(s.getItem('silentrefresh:default')),
    },
    {
      name: 'async adapter',
      storage: (() => {
        const m = new Map();
        return {
          get: async (k) => m.get(k) ?? null,
          set: async (k, v) => void m.set(k, v),
          remove: async (k) => void m.delete(k),
          m,
        };
      })(),
      stored: (s) => JSON.parse(s.m.get('silentrefresh:default')),
    },
  ];
  for (const tc of cases) {
    it(`keeps both tokens in ${tc.name} storage`, async (t) => {
      const server = new FakeServer();
      const clk = clock();
      const c = tab(t, server, clk, { storage: tc.storage });
      const got = await c.login('alice', 'pw');
      assert.equal(got.accessToken, 'at-1');
      assert.equal(got.refreshToken, 'rt-1');
      assert.equal(got.expiresAt, clk.now() + 60_000);
      assert.deepEqual(server.log[0].body, { username: 'alice', password: 'pw' });
      const stored = tc.stored(tc.storage);
      if (stored) assert.equal(stored.refreshToken, 'rt-1');
      const res = await c(`${BASE}/api/me`);
      assert.equal(res.status, 200);
      assert.equal(server.log.at(-1).auth, 'Bearer at-1');
    });
  }

  it('rejects bad credentials with LoginError', async (t) => {
    const c = tab(t, new FakeServer(), clock());
    await assert.rejects(c.login('alice', 'nope'), (e) => e instanceof LoginError && e.code === 'invalid_credentials');
    assert.equal(c.tokens(), null);
  });

  it('rejects a request without a session and says so once', async (t) => {
    const server = new FakeServer();
    const c = tab(t, server, clock());
    for (let i = 0; i < 3; i++) {
      await assert.rejects(c(`${BASE}/api/me`), (e) => isReauthRequired(e) && e.reason === 'no_session');
    }
    assert.equal(c.reauth.length, 1);
    assert.equal(server.calls.me, 0);
  });

  it('sends the token only to its own origin', async (t) => {
    const server = new FakeServer();
    const c = tab(t, server, clock());
    await c.login('alice', 'pw');
    await c('http://elsewhere.test/api/me');
    await c('/api/me');
    assert.equal(server.log.at(-2).auth, null);
    assert.equal(server.log.at(-1).auth, 'Bearer at-1');
  });
});

describe('single flight in one tab', () => {
  it('refreshes once for 20 concurrent requests on an expired token', async (t) => {
    const server = new FakeServer();
    const clk = clock();
    const c = tab(t, server, clk);
    await c.login('alice', 'pw');
    expire(clk, c);
    const got = await statuses(Array.from({ length: 20 }, () => c(`${BASE}/api/me`)));
    assert.deepEqual(got, Array(20).fill(200));
    assert.equal(server.calls.refresh, 1);
    const auths = server.log.filter((l) => l.path === '/api/me').map((l) => l.auth);
    assert.deepEqual([...new Set(auths)], ['Bearer at-2']);
  });

  it('refreshes once when 10 requests get a 401 and replays each with its body', async (t) => {
    const server = new FakeServer();
    const clk = clock();
    const c = tab(t, server, clk);
    await c.login('alice', 'pw');
    server.invalidateAccessTokens(); // fresh by the clock, refused by the server
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        c(`${BASE}/api/me`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ i }) }),
      ),
    );
    assert.deepEqual(
      replies.map((r) => r.status),
      Array(10).fill(200),
    );
    const bodies = await Promise.all(replies.map((r) => r.json()));
    assert.deepEqual(
      bodies.map((b) => b.echo.i),
      Array.from({ length: 10 }, (_, i) => i),
    );
    assert.equal(server.calls.refresh, 1);
    assert.equal(server.calls.me, 20); // each request: one 401, one replay
  });

  it('lets an aborted request go without cancelling the refresh', async (t) => {
    const server = new FakeServer();
    const clk = clock();
    const c = tab(t, server, clk);
    await c.login('alice', 'pw');
    expire(clk, c);
    const gate = deferred();
    server.refreshGate = gate.promise;
    const ac = new AbortController();
    const a = c(`${BASE}/api/me`);
    const b = c(`${BASE}/api/me`, { signal: ac.signal });
    const d = c(`${BASE}/api/me`);
    await until(() => server.calls.refresh === 1, 'refresh sent');
    ac.abort();
    await assert.rejects(b, (e) => e.name === 'AbortError');
    gate.resolve();
    assert.deepEqual(await statuses([a, d]), [200, 200]);
    assert.equal(server.calls.refresh, 1);
    assert.equal(server.calls.me, 2);
  });

  it('rejects at once for a signal aborted before the call', async (t) => {
    const server = new FakeServer();
    const clk = clock();
    const c = tab(t, server, clk);
    await c.login('alice', 'pw');
    expire(clk, c);
    await assert.rejects(c(`${BASE}/api/me`, { signal: AbortSignal.abort() }), (e) => e.name === 'AbortError');
  });

  it('rejects every queued request when the session is revoked and says so once', async (t) => {
    const storage = new MemoryStorage();
    const server = new FakeServer();
    const clk = clock();
    const c = tab(t, server, clk, { storage });
    await c.login('alice', 'pw');
    server.revoked = true;
    expire(clk, c);
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => c(`${BASE}/api/me`)));
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.ok(r.reason instanceof ReauthRequiredError);
      assert.equal(r.reason.reason, 'revoked');
    }
    assert.equal(server.calls.refresh, 1);
    assert.equal(c.reauth.length, 1);
    assert.equal(c.reauth[0].reason, 'revoked');
    assert.equal(c.tokens(), null);
    assert.equal(storage.getItem('silentrefresh:default'), null);
    await assert.rejects(c(`${BASE}/api/me`), isReauthRequired);
    assert.equal(c.reauth.length, 1);
    // A new login makes it report the next lost session again.
    await c.login('alice', 'pw');
    server.revoked = true;
    expire(clk, c);
    await assert.rejects(c(`${BASE}/api/me`), isReauthRequired);
    assert.equal(c.reauth.length, 2);
  });

  it('keeps the tokens when a refresh fails for a passing reason', async (t) => {
    const cases = [
      { name: '503', setup: (s) => (s.refreshStatus = 503), undo: (s) => (s.refreshStatus = 0), status: 503 },
      { name: 'network', network: true, status: 0 },
    ];
    for (const tc of cases) {
      await t.test(tc.name, async (t) => {
        const server = new FakeServer();
        const clk = clock();
        let down = false;
        const fetch = (i, init) => (down ? Promise.reject(new TypeError('Failed to fetch')) : server.fetch(i, init));
        const c = tab(t, server, clk, { fetch });
        await c.login('alice', 'pw');
        expire(clk, c);
        if (tc.setup) tc.setup(server);
        if (tc.network) down = true;
        const results = await Promise.allSettled([c(`${BASE}/api/me`), c(`${BASE}/api/me`)]);
        for (const r of results) {
          assert.equal(r.status, 'rejected');
          assert.ok(r.reason instanceof RefreshError, String(r.reason));
          assert.equal(r.reason.status, tc.status);
        }
        assert.equal(c.reauth.length, 0);
        assert.equal(c.tokens().refreshToken, 'rt-1');
        if (tc.undo) tc.undo(server);
        down = false;
        assert.equal((await c(`${BASE}/api/me`)).status, 200);
        assert.equal(c.tokens().refreshToken, 'rt-2');
      });
    }
  });
});

describe('across tabs', () => {
  function twoTabs(t, opts = {}) {
    const server = opts.server ?? new FakeServer();
    const clk = clock();
    const shared = {
      storage: new MemoryStorage(),
      locks: opts.locks === undefined ? new LockManager() : opts.locks,
      BroadcastChannel: opts.BroadcastChannel === undefined ? BroadcastChannel : opts.BroadcastChannel,
      key: `k${++keys}`,
      ...opts.client,
    };
    const a = tab(t, server, clk, { ...shared, ...opts.a });
    const b = tab(t, server, clk, { ...shared, ...opts.b });
    return { server, clk, a, b, shared };
  }

  it('refreshes once when two tabs fire at once after expiry', async (t) => {
    const { server, clk, a, b } = twoTabs(t);
    await a.login('alice', 'pw');
    await until(() => b.tokens()?.accessToken === 'at-1', 'b sees the login');
    expire(clk, a);
    const peers = [];
    b.on('tokens', (e) => peers.push(e.source));
    const all = [];
    for (let i = 0; i < 10; i++) all.push(a(`${BASE}/api/me`), b(`${BASE}/api/me`));
    assert.deepEqual(await statuses(all), Array(20).fill(200));
    assert.equal(server.calls.refresh, 1);
    assert.equal(server.revoked, false, 'the server saw a reused refresh token');
    assert.equal(a.tokens().accessToken, 'at-2');
    assert.equal(b.tokens().accessToken, 'at-2');
    assert.ok(peers.includes('peer'));
  });

  it('without the lock, both tabs refresh (the lock is what prevents it)', async (t) => {
    const { server, clk, a, b } = twoTabs(t, { locks: null });
    await a.login('alice', 'pw');
    await until(() => b.tokens()?.accessToken === 'at-1', 'b sees the login');
    expire(clk, a);
    const gate = deferred();
    server.refreshGate = gate.promise;
    const all = Promise.allSettled([a(`${BASE}/api/me`), b(`${BASE}/api/me`)]);
    await until(() => server.calls.refresh === 2, 'both tabs refreshing');
    gate.resolve();
    await all;
    assert.ok(server.calls.refresh >= 2);
    assert.equal(server.revoked, true, 'the fake server (no grace) saw the reuse');
  });

  it("trusts a peer's message over its own lagging copy of storage", async (t) => {
    // Browsers propagate localStorage writes to other tabs asynchronously:
    // tab b's storage here never sees tab a's writes at all.
    const lagging = new MemoryStorage();
    const { server, clk, a, b, shared } = twoTabs(t, { b: { storage: lagging } });
    const key = `silentrefresh:${shared.key}`;
    await a.login('alice', 'pw');
    await until(() => b.tokens()?.accessToken === 'at-1', 'b gets the login by message');
    lagging.setItem(key, shared.storage.getItem(key));
    expire(clk, a);
    const all = [];
    for (let i = 0; i < 5; i++) all.push(a(`${BASE}/api/me`), b(`${BASE}/api/me`));
    assert.deepEqual(await statuses(all), Array(10).fill(200));
    assert.equal(server.calls.refresh, 1);
    assert.equal(server.revoked, false);
    assert.equal(b.tokens().accessToken, 'at-2');
  });

  // The race seen on a loaded machine: tab a refreshes under the lock,
  // writes storage, posts the new tokens and lets go of the lock; tab b,
  // waiting for the lock, gets it before a's storage write or a's message
  // has reached it, and presents the refresh token a has just rotated. Here
  // b's copy of storage never sees a's writes, and a's messages reach b
  // only when the test lets them through (held).
  const modes = [
    { name: 'bearer', server: () => new FakeServer(), client: {} },
    { name: 'cookie', server: () => new FakeServer({ cookieMode: true }), client: { mode: 'cookie' } },
    {
      name: 'oauth2',
      server: () => new FakeServer(),
      client: { oauth2: { tokenEndpoint: `${BASE}/oauth2/token`, clientId: 'spa' } },
      begin: async (a, server) => {
        const g = server.grant();
        await a.setTokens({ accessToken: g.accessToken, refreshToken: g.refreshToken, expiresIn: g.expiresIn });
      },
    },
  ];

  async function laggingPair(t, m, b = {}) {
    const ch = heldChannel();
    const lagging = new MemoryStorage();
    const handoff = handoffStore();
    const { server, clk, a, b: tabB, shared } = twoTabs(t, {
      server: m.server(),
      client: { handoffStore: handoff, ...m.client },
      b: { storage: lagging, BroadcastChannel: ch.BroadcastChannel, ...b },
    });
    const key = `silentrefresh:${shared.key}`;
    if (m.begin) await m.begin(a, server);
    else await a.login('alice', 'pw');
    await until(() => tabB.tokens()?.accessToken === 'at-1', 'b has the session');
    lagging.setItem(key, shared.storage.getItem(key));
    ch.hold();
    return { server, clk, a, b: tabB, ch, lagging, key, shared, handoff };
  }

  for (const m of modes) {
    it(`${m.name}: the tab that gets the lock next waits for the last holder's tokens (strict rotation)`, async (t) => {
      const { server, clk, a, b, ch, handoff } = await laggingPair(t, m);
      expire(clk, a);
      const reads = handoff.reads;
      const ra = a(`${BASE}/api/me`);
      const rb = b(`${BASE}/api/me`);
      // a refreshes; b gets the lock, finds the store behind the handoff
      // and waits (or, without the handoff, refreshes with the old token).
      await until(() => server.calls.refresh >= 2 || (server.calls.refresh === 1 && ch.held.length > 0 && handoff.reads >= reads + 2), 'b holds the lock after a');
      ch.deliver();
      assert.deepEqual(await statuses([ra, rb]), [200, 200]);
      assert.equal(server.calls.refresh, 1, 'one refresh across the tabs');
      assert.equal(server.revoked, false, 'the strict server saw a refresh token twice');
      assert.equal(b.tokens().accessToken, a.tokens().accessToken);
    });
  }

  it("a holder whose predecessor's tokens never arrive gives up in time, keeping the session", async (t) => {
    const { server, clk, a, b, ch, handoff } = await laggingPair(t, modes[0], { refreshTimeout: 200 });
    expire(clk, a);
    assert.equal((await a(`${BASE}/api/me`)).status, 200);
    assert.equal(handoff.writes, 2, 'the login and the refresh recorded their generation');
    await assert.rejects(b(`${BASE}/api/me`), (e) => e instanceof RefreshError && e.temporary);
    assert.equal(server.calls.refresh, 1);
    assert.equal(server.revoked, false);
    assert.equal(b.reauth.length, 0);
    ch.deliver();
    assert.equal((await b(`${BASE}/api/me`)).status, 200);
    assert.equal(server.calls.refresh, 1);
    assert.equal(b.tokens().accessToken, 'at-2');
  });

  it('tells the other tab about a logout, once', async (t) => {
    const { server, a, b } = twoTabs(t);
    await a.login('alice', 'pw');
    await until(() => b.tokens() != null, 'b sees the login');
    assert.equal(await a.logout(), true);
    assert.equal(server.calls.logout, 1);
    assert.deepEqual(server.log.at(-1).body, { refreshToken: 'rt-1' });
    await until(() => b.reauth.length === 1, 'b told');
    assert.equal(b.reauth[0].reason, 'logout');
    assert.equal(a.reauth.length, 0, 'the tab that logged out is not told');
    await assert.rejects(b(`${BASE}/api/me`), isReauthRequired);
    assert.equal(b.reauth.length, 1);
  });

  it("logs out at once while another tab's refresh is in flight; the other tab drops it", async (t) => {
    const { server, clk, a, b, shared } = twoTabs(t);
    await a.login('alice', 'pw');
    await until(() => b.tokens() != null, 'b sees the login');
    expire(clk, a);
    const gate = deferred();
    server.refreshGate = gate.promise;
    const req = b(`${BASE}/api/me`);
    await until(() => server.calls.refresh === 1, "b's refresh on the wire");
    assert.equal(await a.logout(), true);
    assert.deepEqual(server.log.find((l) => l.path === '/api/auth/logout').body, { refreshToken: 'rt-1' });
    await until(() => b.reauth.length === 1, 'b told');
    assert.equal(b.reauth[0].reason, 'logout');
    gate.resolve();
    await assert.rejects(req, isReauthRequired);
    assert.equal(shared.storage.getItem(`silentrefresh:${shared.key}`), null);
    assert.equal(b.tokens(), null);
    assert.equal(a.tokens(), null);
    assert.equal(a.reauth.length, 0);
    assert.equal(b.reauth.length, 1);
  });

  it('drops tokens its refresh won just before it heard of a logout', async (t) => {
    const { server, clk, a, b, shared } = twoTabs(t);
    await a.login('alice', 'pw');
    await until(() => b.tokens() != null, 'b sees the login');
    expire(clk, a);
    const gate = deferred();
    server.refreshGate = gate.promise;
    const req = b(`${BASE}/api/me`);
    await until(() => server.calls.refresh === 1, "b's refresh on the wire");
    // The server answers b's refresh before it sees a's logout.
    server.refreshGate = null;
    gate.resolve();
    assert.equal((await req).status, 200);
    await a.logout();
    await until(() => b.reauth.length === 1, 'b told');
    assert.equal(shared.storage.getItem(`silentrefresh:${shared.key}`), null);
    assert.equal(a.tokens(), null, 'the tab that logged out took no tokens from the refresh');
    assert.equal(b.tokens(), null);
  });

  it('voids its own refresh in flight when it logs out', async (t) => {
    const storage = new MemoryStorage();
    const server = new FakeServer();
    const clk = clock();
    const c = tab(t, server, clk, { storage, locks: new LockManager(), key: `k${++keys}` });
    await c.login('alice', 'pw');
    expire(clk, c);
    const gate = deferred();
    server.refreshGate = gate.promise;
    const req = c(`${BASE}/api/me`);
    await until(() => server.calls.refresh === 1, 'refresh on the wire');
    const out = c.logout();
    gate.resolve();
    await assert.rejects(req, isReauthRequired);
    await out;
    assert.equal(c.tokens(), null);
    assert.equal(storage.getItem(`silentrefresh:k${keys}`), null);
    assert.equal(c.reauth.length, 0);
  });

  it('tells the other tab when a refresh finds the session revoked', async (t) => {
    const { server, clk, a, b } = twoTabs(t);
    await a.login('alice', 'pw');
    await until(() => b.tokens() != null, 'b sees the login');
    server.revoked = true;
    expire(clk, a);
    await assert.rejects(a(`${BASE}/api/me`), (e) => isReauthRequired(e) && e.reason === 'revoked');
    await until(() => b.reauth.length === 1, 'b told');
    assert.equal(b.reauth[0].reason, 'revoked');
    assert.equal(a.reauth.length, 1);
    assert.equal(server.calls.refresh, 1);
  });

  it('falls back to the storage event without BroadcastChannel', async (t) => {
    const win = new EventTarget();
    const { a, b, shared } = twoTabs(t, { BroadcastChannel: null, b: { window: win } });
    await a.login('alice', 'pw');
    assert.equal(b.tokens(), null);
    const ev = new Event('storage');
    Object.assign(ev, { key: `silentrefresh:${shared.key}`, newValue: shared.storage.getItem(`silentrefresh:${shared.key}`) });
    win.dispatchEvent(ev);
    await until(() => b.tokens()?.accessToken === 'at-1', 'b adopts from storage');
    const gone = new Event('storage');
    Object.assign(gone, { key: `silentrefresh:${shared.key}`, newValue: null });
    await a.logout();
    win.dispatchEvent(gone);
    await until(() => b.reauth.length === 1, 'b told of the logout');
  });

  it('shares tokens through the channel when storage is memory', async (t) => {
    const { server, clk, a, b } = twoTabs(t, { client: { storage: 'memory', crossTab: true } });
    await a.login('alice', 'pw');
    await until(() => b.tokens()?.accessToken === 'at-1', 'b gets the tokens');
    expire(clk, b);
    assert.equal((await b(`${BASE}/api/me`)).status, 200);
    await until(() => a.tokens()?.accessToken === 'at-2', 'a gets the new tokens');
    assert.equal((await a(`${BASE}/api/me`)).status, 200);
    assert.equal(server.calls.refresh, 1);
  });
});

describe('re-checks', () => {
  for (const ev of ['visibilitychange', 'online']) {
    it(`refreshes a stale token on ${ev}`, async (t) => {
      const server = new FakeServer();
      const clk = clock();
      const doc = Object.assign(new EventTarget(), { visibilityState: 'visible' });
      const win = new EventTarget();
      const c = tab(t, server, clk, { document: doc, window: win });
      await c.login('alice', 'pw');
      expire(clk, c);
      (ev === 'online' ? win : doc).dispatchEvent(new Event(ev));
      await until(() => c.tokens()?.accessToken === 'at-2', 'refreshed');
      assert.equal(server.calls.refresh, 1);
    });
  }

  it('does nothing on visibilitychange while the token is fresh', async (t) => {
    const server = new FakeServer();
    const doc = Object.assign(new EventTarget(), { visibilityState: 'visible' });
    const c = tab(t, server, clock(), { document: doc });
    await c.login('alice', 'pw');
    doc.dispatchEvent(new Event('visibilitychange'));
    await c.check();
    assert.equal(server.calls.refresh, 0);
  });
});

describe('heartbeat', () => {
  it('beats from one tab for all, only while visible, and ends a revoked session', async (t) => {
    mock.timers.enable({ apis: ['setTimeout'] });
    t.after(() => mock.timers.reset());
    const server = new FakeServer();
    const clk = clock();
    const doc = Object.assign(new EventTarget(), { visibilityState: 'visible' });
    const shared = {
      storage: new MemoryStorage(),
      locks: new LockManager(),
      BroadcastChannel,
      key: `k${++keys}`,
      heartbeat: 1000,
      document: doc,
    };
    const a = tab(t, server, clk, shared);
    const b = tab(t, server, clk, shared);
    await a.login('alice', 'pw');
    await until(() => b.tokens() != null, 'b sees the login');

    const round = async (want) => {
      clk.advance(1000);
      mock.timers.tick(1000);
      await until(() => server.calls.heartbeat === want, `heartbeat ${want}`);
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      assert.equal(server.calls.heartbeat, want);
    };
    await round(1);
    await round(2);

    doc.visibilityState = 'hidden';
    clk.advance(1000);
    mock.timers.tick(1000);
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(server.calls.heartbeat, 2);

    doc.visibilityState = 'visible';
    server.revoked = true;
    await round(3);
    await until(() => a.reauth.length === 1 && b.reauth.length === 1, 'both tabs told');
    assert.equal(a.tokens(), null);
    assert.equal(b.tokens(), null);
  });
});

describe('cookie mode', () => {
  it('never holds the refresh token and refreshes with the cookie', async (t) => {
    const storage = new MemoryStorage();
    const server = new FakeServer({ cookieMode: true });
    const clk = clock();
    const c = tab(t, server, clk, { mode: 'cookie', storage });
    const got = await c.login('alice', 'pw');
    assert.equal(got.refreshToken, undefined);
    assert.deepEqual(server.log[0].body, { username: 'alice', password: 'pw', cookie: true });
    assert.equal(server.log[0].credentials, 'same-origin');
    assert.doesNotMatch(storage.getItem('silentrefresh:default'), /rt-/);
    expire(clk, c);
    assert.equal((await c(`${BASE}/api/me`)).status, 200);
    const refresh = server.log.find((l) => l.path === '/api/auth/refresh');
    assert.deepEqual(refresh.body, {});
    assert.equal(refresh.credentials, 'same-origin');
    assert.doesNotMatch(storage.getItem('silentrefresh:default'), /rt-/);
    await c.logout();
    assert.deepEqual(server.log.at(-1).body, {});
    assert.equal(server.cookie, null);
  });

  it('restores a session from the cookie alone, quietly when there is none', async (t) => {
    const server = new FakeServer({ cookieMode: true });
    const clk = clock();
    const first = tab(t, server, clk, { mode: 'cookie', storage: 'memory' });
    await first.login('alice', 'pw');
    const fresh = tab(t, server, clk, { mode: 'cookie', storage: 'memory' });
    assert.equal((await fresh.restore()).accessToken, 'at-2');
    server.cookie = null;
    const none = tab(t, server, clk, { mode: 'cookie', storage: 'memory' });
    assert.equal(await none.restore(), null);
    assert.equal(none.reauth.length, 0);
  });
});

describe('events', () => {
  it('reports requests and refreshes for a timeline', async (t) => {
    const server = new FakeServer();
    const clk = clock();
    const c = tab(t, server, clk);
    const seen = [];
    c.on('request', (e) => seen.push(`request:${e.phase}:${e.status ?? ''}`));
    c.on('refresh', (e) => seen.push(`refresh:${e.phase}`));
    const off = c.on('tokens', (e) => seen.push(`tokens:${e.source}`));
    await c.login('alice', 'pw');
    expire(clk, c);
    await c(`${BASE}/api/me`);
    off();
    assert.deepEqual(seen, [
      'tokens:login',
      'request:start:',
      'refresh:wait',
      'refresh:start',
      'tokens:refresh',
      'refresh:done',
      'request:end:200',
    ]);
  });
});
