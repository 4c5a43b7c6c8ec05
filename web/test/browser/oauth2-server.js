// A second, independent OAuth2 server for the browser tests, written on
// Node's http module and sharing no code with silentrefresh: an RFC 6749
// token endpoint (refresh_token grant, form-encoded, snake_case replies,
// section 5.2 errors), RFC 7009 revocation, and a protected resource. Its
// refresh tokens rotate strictly: each is good once, with no grace window,
// and presenting a used one revokes the whole session, as strict servers
// do. So a double refresh from the browser shows up as a lost session.
//
// One listener answers two origins: pages load from http://localhost:PORT
// (a secure context: Web Locks), and the token endpoint is called at
// http://127.0.0.1:PORT, another origin, with CORS as a real identity
// provider on its own host would answer.
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { repoRoot } from './harness.js';

const tok = () => randomBytes(24).toString('base64url');

export async function startTokenServer({ ttl = 2, clientId = 'spa' } = {}) {
  const moduleSource = readFileSync(join(repoRoot, 'web/silentrefresh.js'));
  const sessions = new Map(); // id -> {revoked}
  const refreshTokens = new Map(); // token -> {sid, used}
  const accessTokens = new Map(); // token -> {sid, exp}
  const stats = { refresh: 0, rotated: 0, reused: 0, refused: 0, revoked: 0, me: 0, meRefused: 0 };
  let failNext = []; // forced answers to the next refresh calls: {status, body}
  let origin = ''; // the pages' origin, set once listening

  function issue(sid) {
    const at = tok();
    const rt = tok();
    accessTokens.set(at, { sid, exp: Date.now() + ttl * 1000 });
    refreshTokens.set(rt, { sid, used: false });
    return { access_token: at, token_type: 'bearer', expires_in: ttl, refresh_token: rt, scope: 'api' };
  }

  function revoke(sid) {
    const s = sessions.get(sid);
    if (s) s.revoked = true;
  }

  const send = (res, status, body, headers = {}) => {
    res.writeHead(status, { 'Cache-Control': 'no-store', ...headers, ...(body == null ? {} : { 'Content-Type': 'application/json' }) });
    res.end(body == null ? undefined : JSON.stringify(body));
  };
  const oauthError = (res, status, error, description, headers) =>
    send(res, status, { error, error_description: description }, headers);

  async function readBody(req) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    return Buffer.concat(chunks).toString('utf8');
  }

  function cors(req, res) {
    if (req.headers.origin === origin) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
    }
  }

  async function token(req, res) {
    stats.refresh++;
    const forced = failNext.shift();
    if (forced) return send(res, forced.status, forced.body);
    if (!String(req.headers['content-type'] || '').startsWith('application/x-www-form-urlencoded')) {
      return oauthError(res, 400, 'invalid_request', 'the body must be application/x-www-form-urlencoded');
    }
    const form = new URLSearchParams(await readBody(req));
    for (const k of new Set(form.keys())) {
      if (form.getAll(k).length > 1) return oauthError(res, 400, 'invalid_request', `parameter ${k} is repeated`);
    }
    if (form.get('client_id') !== clientId) return oauthError(res, 401, 'invalid_client', 'unknown client', { 'WWW-Authenticate': 'Basic' });
    if (form.get('grant_type') !== 'refresh_token') return oauthError(res, 400, 'unsupported_grant_type', 'only refresh_token here');
    const rt = form.get('refresh_token');
    if (!rt) return oauthError(res, 400, 'invalid_request', 'refresh_token is required');
    const entry = refreshTokens.get(rt);
    if (!entry || sessions.get(entry.sid)?.revoked) {
      stats.refused++;
      return oauthError(res, 400, 'invalid_grant', 'Token is not active');
    }
    if (entry.used) {
      stats.reused++;
      revoke(entry.sid);
      return oauthError(res, 400, 'invalid_grant', 'Refresh token was already used');
    }
    entry.used = true;
    stats.rotated++;
    return send(res, 200, issue(entry.sid));
  }

  async function revocation(req, res) {
    const form = new URLSearchParams(await readBody(req));
    if (form.get('client_id') !== clientId) return oauthError(res, 401, 'invalid_client', 'unknown client');
    const t = form.get('token') || '';
    const entry = refreshTokens.get(t) ?? accessTokens.get(t);
    if (entry) {
      stats.revoked++;
      revoke(entry.sid);
    }
    return send(res, 200, null); // RFC 7009: 200 for unknown tokens too
  }

  async function me(req, res) {
    stats.me++;
    const body = req.method === 'POST' ? await readBody(req) : '';
    const m = /^Bearer (\S+)$/i.exec(req.headers.authorization || '');
    const a = m && accessTokens.get(m[1]);
    if (!a || a.exp <= Date.now() || sessions.get(a.sid)?.revoked) {
      stats.meRefused++;
      return send(res, 401, { error: 'invalid_token' }, { 'WWW-Authenticate': 'Bearer error="invalid_token"' });
    }
    return send(res, 200, { sid: a.sid, echo: body });
  }

  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://x');
      cors(req, res);
      if (req.method === 'OPTIONS') {
        res.setHeader('Access-Control-Allow-Methods', 'POST');
        res.setHeader('Access-Control-Allow-Headers', 'Content-Type, Accept');
        return send(res, 204, null);
      }
      switch (`${req.method} ${url.pathname}`) {
        case 'GET /__blank':
          res.writeHead(200, { 'Content-Type': 'text/html' });
          return res.end('<!doctype html><title>another OAuth2 server</title>');
        case 'GET /silentrefresh.js':
          res.writeHead(200, { 'Content-Type': 'text/javascript' });
          return res.end(moduleSource);
        case 'POST /token':
          return await token(req, res);
        case 'POST /revoke':
          return await revocation(req, res);
        case 'GET /api/me':
        case 'POST /api/me':
          return await me(req, res);
        default:
          return oauthError(res, 404, 'not_found', url.pathname);
      }
    } catch (e) {
      if (!res.headersSent) oauthError(res, 500, 'server_error', String(e));
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  origin = `http://localhost:${port}`;
  return {
    /** Where pages load from. */
    url: origin,
    /** The token endpoint and revocation endpoint, on another origin. */
    tokenEndpoint: `http://127.0.0.1:${port}/token`,
    revocationEndpoint: `http://127.0.0.1:${port}/revoke`,
    clientId,
    stats,
    /** Begins a session as an authorization-code login elsewhere would; returns its RFC 6749 reply. */
    login() {
      const sid = tok();
      sessions.set(sid, { revoked: false });
      return { sid, ...issue(sid) };
    },
    revoked: (sid) => sessions.get(sid)?.revoked === true,
    /** Ends the session at the server, as an administrator would. */
    revoke,
    /** Refuses every access token issued so far (as a key rotation would); refresh tokens stay good. */
    dropAccessTokens: () => accessTokens.clear(),
    /** The next refresh calls get these answers instead. */
    failNext(...answers) {
      failNext = answers;
    },
    stop() {
      server.closeAllConnections();
      return new Promise((r) => server.close(r));
    },
  };
}
