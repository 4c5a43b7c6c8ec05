// The demo page: sign in, watch the access token run out, fire concurrent
// requests and see them wait for one refresh on a live timeline.
import { createClient, isReauthRequired } from '/silentrefresh.js';

const $ = (id) => document.getElementById(id);
const PREFS = 'silentrefresh-demo:';
const WINDOW_MS = 20_000;
const ROWS = 24;

const reasons = {
  logout: 'You signed out in another tab.',
  revoked: 'Your session was revoked.',
  reused: 'A refresh token was used twice, so the session was closed to be safe.',
  expired: 'Your session expired.',
  superseded: 'A refresh token had two holders, so the session was closed to be safe; sign in again.',
  invalid_grant: 'The server ended your session.',
  no_refresh_token: 'Sign in again.',
  unknown: 'The server does not know this session.',
  no_session: 'Sign in to start a session.',
  dpop_proof_missing: 'Your refresh token was used without this browser\'s key, so the session was closed to be safe.',
  dpop_key_mismatch: 'Your refresh token was used with another key, so the session was closed to be safe.',
  no_dpop_key: 'This browser no longer holds the key of your session; sign in again.',
};

const stats = { ok: 0, failed: 0, refreshes: 0, adopted: 0, reauth: 0 };
const pending = new Set();
const requestBars = new Map(); // request id -> its timeline bar
const bars = []; // timeline items: {el, start, end, lane}
const rowsBusyUntil = new Array(ROWS).fill(0);
let client = null;
let unsubscribe = [];

function pref(name, fallback) {
  try {
    return localStorage.getItem(PREFS + name) ?? fallback;
  } catch {
    return fallback;
  }
}

function setPref(name, value) {
  try {
    localStorage.setItem(PREFS + name, value);
  } catch {
    // Private mode: the preference lasts for this page only.
  }
}

function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')));
  } catch {
    return {};
  }
}

function short(s) {
  return s ? String(s).slice(0, 8) + '…' : '–';
}

function clock(t) {
  const d = new Date(t);
  return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

function log(text, kind = '') {
  const li = document.createElement('li');
  li.className = kind;
  const time = document.createElement('time');
  time.textContent = clock(Date.now());
  li.append(time, document.createTextNode(' ' + text));
  const list = $('log');
  list.prepend(li);
  while (list.children.length > 60) list.lastChild.remove();
}

function renderStats() {
  $('stat-ok').textContent = stats.ok;
  $('stat-failed').textContent = stats.failed;
  $('stat-refreshes').textContent = stats.refreshes;
  $('stat-adopted').textContent = stats.adopted;
}

// --- timeline -------------------------------------------------------------

function addBar(lane, cls, start, end = null) {
  const el = document.createElement('div');
  el.className = 'bar-item ' + cls;
  const item = { el, start, end, lane, row: 0 };
  if (lane === 'requests') {
    let row = rowsBusyUntil.findIndex((until) => until <= start);
    if (row < 0) row = rowsBusyUntil.indexOf(Math.min(...rowsBusyUntil));
    rowsBusyUntil[row] = Infinity;
    item.row = row;
    el.style.top = `${row * 7 + 4}px`;
  }
  $(lane === 'requests' ? 'lane-requests' : 'lane-refresh').append(el);
  bars.push(item);
  return item;
}

function finishBar(item, cls, end) {
  item.end = end;
  item.el.className = 'bar-item ' + cls;
  if (item.lane === 'requests') rowsBusyUntil[item.row] = end + 150;
}

function drawTimeline(now) {
  const from = now - WINDOW_MS;
  for (let i = bars.length - 1; i >= 0; i--) {
    const b = bars[i];
    const end = b.end ?? now;
    if (end < from) {
      b.el.remove();
      bars.splice(i, 1);
      continue;
    }
    const left = ((Math.max(b.start, from) - from) / WINDOW_MS) * 100;
    const width = Math.max(((end - Math.max(b.start, from)) / WINDOW_MS) * 100, 0.35);
    b.el.style.left = `${left}%`;
    b.el.style.width = `${width}%`;
  }
}

// --- token card -----------------------------------------------------------

function drawToken(now) {
  const t = client?.tokens();
  if (!t) return;
  const left = t.expiresAt - now;
  const life = Math.max(1, t.expiresAt - t.obtainedAt);
  const ttl = $('ttl');
  if (left <= 0) {
    ttl.textContent = 'expired';
    $('ttl-unit').textContent = '';
    ttl.dataset.state = 'expired';
  } else if (left > 120_000) {
    const s = Math.ceil(left / 1000);
    ttl.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
    $('ttl-unit').textContent = 'min left';
    ttl.dataset.state = 'fresh';
  } else {
    ttl.textContent = (left / 1000).toFixed(1);
    $('ttl-unit').textContent = 's left';
    ttl.dataset.state = left < life / 4 ? 'stale' : 'fresh';
  }
  const bar = $('ttl-bar');
  bar.style.width = `${Math.max(0, Math.min(1, left / life)) * 100}%`;
  bar.dataset.state = ttl.dataset.state;
}

function showTokenFacts() {
  const t = client?.tokens();
  if (!t) return;
  const c = claims(t.accessToken);
  $('sid').textContent = short(c.sid);
  $('jti').textContent = short(c.jti);
  $('who').textContent = c.sub ? `signed in · ${short(c.sub)}` : 'signed in';
}

function frame() {
  const now = Date.now();
  if (document.body.dataset.state === 'app') {
    drawToken(now);
    drawTimeline(now);
  }
  requestAnimationFrame(frame);
}

// --- views ----------------------------------------------------------------

function showLogin(message) {
  document.body.dataset.state = 'login';
  $('app-view').hidden = true;
  $('login-view').hidden = false;
  $('who').hidden = true;
  const note = $('login-reason');
  note.hidden = !message;
  note.textContent = message || '';
  $('cookie-mode').checked = pref('mode', 'bearer') === 'cookie';
  $('dpop-mode').checked = pref('dpop', 'off') === 'on';
  $('username').focus();
}

function showApp() {
  document.body.dataset.state = 'app';
  $('login-view').hidden = true;
  $('app-view').hidden = false;
  $('who').hidden = false;
  $('mode').textContent =
    (client.info.mode === 'cookie' ? 'access token in localStorage, refresh token in an HttpOnly cookie' : 'both tokens in localStorage') +
    (client.tokens()?.tokenType === 'DPoP' ? ', bound to a DPoP key in IndexedDB' : '');
  $('tab').textContent = short(client.info.tabId);
  showTokenFacts();
}

// --- the client -----------------------------------------------------------

function makeClient() {
  for (const off of unsubscribe) off();
  client?.close();
  const mode = pref('mode', 'bearer');
  const heartbeat = pref('heartbeat', 'off') === 'on' ? 5000 : 0;
  client = createClient({
    mode,
    dpop: pref('dpop', 'off') === 'on',
    key: 'demo',
    heartbeat,
    onReauthRequired(err) {
      stats.reauth++;
      log(`Session ended: ${err.reason}`, 'bad');
      showLogin(reasons[err.reason] ?? 'Sign in again.');
    },
  });
  window.silentrefreshDemo = { client, stats };
  const refreshBars = new Map();
  unsubscribe = [
    client.on('request', (e) => {
      if (e.phase === 'start') {
        pending.add(e.id);
        requestBars.set(e.id, addBar('requests', 'pending', e.startedAt));
        return;
      }
      pending.delete(e.id);
      const bar = requestBars.get(e.id);
      requestBars.delete(e.id);
      const ok = e.status >= 200 && e.status < 400;
      if (ok) stats.ok++;
      else stats.failed++;
      if (bar) finishBar(bar, ok ? 'ok' : 'bad', e.endedAt);
      renderStats();
    }),
    client.on('refresh', (e) => {
      if (e.phase === 'start') {
        refreshBars.set(e.id, { bar: addBar('refresh', 'refresh', e.at), at: e.at });
      } else if (e.phase === 'done') {
        stats.refreshes++;
        const r = refreshBars.get(e.id);
        refreshBars.delete(e.id);
        if (r) finishBar(r.bar, 'refresh', e.at);
        const waited = pending.size;
        log(`Refreshed the token in ${Math.round(e.at - (r?.at ?? e.at))} ms: one call for ${waited} waiting request${waited === 1 ? '' : 's'}`, 'refresh');
        renderStats();
        showTokenFacts();
      } else if (e.phase === 'retry') {
        log(`Refresh call ${e.attempt} failed (${e.reason}); trying again in ${Math.round(e.delay)} ms`, 'bad');
      } else if (e.phase === 'adopted') {
        log('Another tab had just refreshed: took its token, no call to the server', 'peer');
      } else if (e.phase === 'failed') {
        const r = refreshBars.get(e.id);
        refreshBars.delete(e.id);
        if (r) finishBar(r.bar, 'bad', e.at);
        log(`Refresh failed: ${e.reason}`, 'bad');
      }
    }),
    client.on('tokens', (e) => {
      if (e.source !== 'peer') return;
      stats.adopted++;
      const at = Date.now();
      finishBar(addBar('refresh', 'peer', at), 'peer', at + 120);
      renderStats();
      if (document.body.dataset.state === 'login') {
        log('Signed in from another tab');
        showApp();
      } else {
        showTokenFacts();
      }
    }),
    client.on('peer', (e) => {
      if (e.type === 'tokens') log('Another tab refreshed: its new token is used here too', 'peer');
    }),
    client.on('heartbeat', (e) => {
      if (e.phase === 'end') log(`Heartbeat: ${e.active ? 'session active' : 'session over'} (${e.status || e.error})`, e.active ? '' : 'bad');
    }),
  ];
  return client;
}

async function fire() {
  const n = Math.max(1, Math.min(200, Number($('count').value) || 20));
  const button = $('fire');
  button.disabled = true;
  try {
    const results = await Promise.allSettled(Array.from({ length: n }, () => client('/api/me', { cache: 'no-store' })));
    const codes = new Map();
    let reauth = false;
    for (const r of results) {
      const k = r.status === 'fulfilled' ? String(r.value.status) : r.reason?.name ?? 'error';
      if (r.status === 'rejected' && isReauthRequired(r.reason)) reauth = true;
      codes.set(k, (codes.get(k) ?? 0) + 1);
    }
    const summary = [...codes].map(([k, v]) => `${v} × ${k}`).join(', ');
    log(`${n} request${n === 1 ? '' : 's'}: ${summary}`, codes.size === 1 && codes.has('200') ? 'ok' : 'bad');
    if (reauth) log('Every waiting request got the same answer: sign in again', 'bad');
  } finally {
    button.disabled = false;
  }
}

function wire() {
  $('count').addEventListener('input', () => {
    $('fire').textContent = `Fire ${Math.max(1, Math.min(200, Number($('count').value) || 20))} requests`;
  });
  $('fire').addEventListener('click', fire);
  $('refresh-now').addEventListener('click', async () => {
    try {
      await client.refresh();
    } catch (e) {
      if (!isReauthRequired(e)) log(`Refresh failed: ${e.message}`, 'bad');
    }
  });
  $('logout').addEventListener('click', async () => {
    await client.logout();
    log('Signed out');
    showLogin('You signed out.');
  });
  $('logout-all').addEventListener('click', async () => {
    const told = await client.logout({ everywhere: true });
    log(told ? 'Signed out on every device' : 'Signed out here; the server was not reached', told ? '' : 'bad');
    showLogin(told ? 'You signed out on every device.' : 'You signed out here.');
  });
  $('heartbeat').checked = pref('heartbeat', 'off') === 'on';
  $('heartbeat').addEventListener('change', () => {
    setPref('heartbeat', $('heartbeat').checked ? 'on' : 'off');
    makeClient();
    log($('heartbeat').checked ? 'Heartbeat on: one tab checks the session every 5 s' : 'Heartbeat off');
  });
  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const err = $('login-error');
    err.hidden = true;
    const mode = $('cookie-mode').checked ? 'cookie' : 'bearer';
    const dpop = $('dpop-mode').checked;
    if (mode !== client.info.mode || dpop !== client.info.dpop) {
      setPref('mode', mode);
      setPref('dpop', dpop ? 'on' : 'off');
      makeClient();
    }
    $('login-button').disabled = true;
    try {
      await client.login($('username').value, $('password').value);
      $('password').value = '';
      log(`Signed in (${mode === 'cookie' ? 'cookie mode' : 'bearer mode'}${dpop ? ', DPoP' : ''})`, 'ok');
      showApp();
    } catch (e) {
      err.textContent =
        e.code === 'invalid_credentials'
          ? 'Wrong username or password.'
          : e.code === 'rate_limited'
            ? `Too many attempts; try again in ${e.retryAfter || 'a few'} s.`
            : `Could not sign in (${e.code || e.message}).`;
      err.hidden = false;
    } finally {
      $('login-button').disabled = false;
    }
  });
}

async function start() {
  wire();
  makeClient();
  requestAnimationFrame(frame);
  let tokens = null;
  try {
    tokens = await client.restore();
  } catch (e) {
    log(`Could not reach the server: ${e.message}`, 'bad');
  }
  if (tokens) {
    log('Session restored');
    showApp();
  } else {
    showLogin();
  }
}

start();
