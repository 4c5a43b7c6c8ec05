// A Node API that accepts silentrefresh access tokens, verified with the
// jose package through the issuer's JWKS: signature (EdDSA only), iss, aud,
// exp, typ at+jwt, and the roles claim for its admin route.
//
//   npm ci && ISSUER=http://localhost:8080 node server.mjs
//
// Environment: ISSUER (required), AUDIENCE (default ISSUER), JWKS_URL
// (default ISSUER/.well-known/jwks.json), PORT (default 0: any free port),
// REQUIRED_ROLE (default admin). It prints "listening on URL" when ready.
//
//   GET /api/hello   any valid token: 200 {"sub","roles"}
//   GET /api/admin   a valid token whose roles hold REQUIRED_ROLE: 200, else 403
import http from 'node:http';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const issuer = process.env.ISSUER;
if (!issuer) {
  console.error('ISSUER is required: the base URL of the silentrefresh server');
  process.exit(2);
}
const audience = process.env.AUDIENCE || issuer;
const requiredRole = process.env.REQUIRED_ROLE || 'admin';
const jwks = createRemoteJWKSet(new URL(process.env.JWKS_URL || `${issuer}/.well-known/jwks.json`));

function reply(res, status, body, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function refuse(res, description) {
  reply(res, 401, { error: 'invalid_token', error_description: description },
    { 'WWW-Authenticate': `Bearer error="invalid_token", error_description="${description}"` });
}

// roles is the "roles" claim (RFC 9068 section 2.2.3.1) as a list.
function roles(payload) {
  const r = payload.roles;
  if (typeof r === 'string') return [r];
  return Array.isArray(r) ? r.filter((x) => typeof x === 'string') : [];
}

async function verify(req) {
  const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i.exec(req.headers.authorization || '');
  if (!m) throw new Error('an Authorization: Bearer header is required');
  const { payload } = await jwtVerify(m[1], jwks, {
    issuer,
    audience,
    typ: 'at+jwt', // RFC 9068: an ID token or another JWT is not an access token
    algorithms: ['EdDSA'],
    requiredClaims: ['exp', 'sub'],
    clockTolerance: 5,
  });
  return payload;
}

const server = http.createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (req.method !== 'GET' || (path !== '/api/hello' && path !== '/api/admin')) {
    reply(res, 404, { error: 'not_found' });
    return;
  }
  let payload;
  try {
    payload = await verify(req);
  } catch (err) {
    refuse(res, err.code === 'ERR_JWT_EXPIRED' ? 'the access token has expired' : 'the access token is invalid');
    return;
  }
  if (path === '/api/admin' && !roles(payload).includes(requiredRole)) {
    reply(res, 403, { error: 'insufficient_scope', error_description: `the roles claim lacks ${requiredRole}` },
      { 'WWW-Authenticate': 'Bearer error="insufficient_scope"' });
    return;
  }
  reply(res, 200, path === '/api/admin' ? { sub: payload.sub, role: requiredRole } : { sub: payload.sub, roles: roles(payload) });
});

server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
