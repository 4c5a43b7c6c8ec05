"""A Python API that accepts silentrefresh access tokens, verified with
PyJWT through the issuer's JWKS: signature (EdDSA only), iss, aud, exp,
typ at+jwt, and the roles claim for its admin route.

    ISSUER=http://localhost:8080 /usr/bin/python3 server.py

Needs PyJWT with cryptography (Debian: python3-jwt, python3-cryptography).
Environment: ISSUER (required), AUDIENCE (default ISSUER), JWKS_URL (default
ISSUER/.well-known/jwks.json), PORT (default 0: any free port),
REQUIRED_ROLE (default admin). It prints "listening on URL" when ready.

    GET /api/hello   any valid token: 200 {"sub","roles"}
    GET /api/admin   a valid token whose roles hold REQUIRED_ROLE: 200, else 403
"""
import json
import os
import re
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

ISSUER = os.environ.get("ISSUER")
if not ISSUER:
    sys.exit("ISSUER is required: the base URL of the silentrefresh server")
AUDIENCE = os.environ.get("AUDIENCE") or ISSUER
REQUIRED_ROLE = os.environ.get("REQUIRED_ROLE") or "admin"
JWKS = jwt.PyJWKClient(os.environ.get("JWKS_URL") or ISSUER + "/.well-known/jwks.json", cache_keys=True)
BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*)$", re.IGNORECASE)


def verify(header):
    m = BEARER.match(header or "")
    if not m:
        raise jwt.InvalidTokenError("an Authorization: Bearer header is required")
    raw = m.group(1)
    # RFC 9068: only a token typed at+jwt is an access token.
    typ = jwt.get_unverified_header(raw).get("typ", "")
    if typ.lower() not in ("at+jwt", "application/at+jwt"):
        raise jwt.InvalidTokenError("typ is not at+jwt")
    key = JWKS.get_signing_key_from_jwt(raw)
    return jwt.decode(
        raw,
        key.key,
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer=ISSUER,
        leeway=5,
        options={"require": ["exp", "iss", "aud", "sub"]},
    )


def roles(claims):
    r = claims.get("roles")
    if isinstance(r, str):
        return [r]
    return [x for x in r if isinstance(x, str)] if isinstance(r, list) else []


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path not in ("/api/hello", "/api/admin"):
            self.reply(404, {"error": "not_found"})
            return
        try:
            claims = verify(self.headers.get("Authorization"))
        except (jwt.PyJWTError, jwt.PyJWKClientError) as err:
            desc = "the access token has expired" if isinstance(err, jwt.ExpiredSignatureError) else "the access token is invalid"
            self.reply(401, {"error": "invalid_token", "error_description": desc},
                       {"WWW-Authenticate": 'Bearer error="invalid_token", error_description="%s"' % desc})
            return
        if self.path == "/api/admin":
            if REQUIRED_ROLE not in roles(claims):
                self.reply(403, {"error": "insufficient_scope", "error_description": "the roles claim lacks " + REQUIRED_ROLE},
                           {"WWW-Authenticate": 'Bearer error="insufficient_scope"'})
                return
            self.reply(200, {"sub": claims["sub"], "role": REQUIRED_ROLE})
            return
        self.reply(200, {"sub": claims["sub"], "roles": roles(claims)})

    def log_message(self, fmt, *args):  # no request lines on stderr: tokens travel in headers
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT") or 0)), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("listening on http://127.0.0.1:%d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
