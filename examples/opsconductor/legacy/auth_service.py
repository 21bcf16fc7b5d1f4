"""The legacy auth service: POST /login issues bearer
tokens, GET /verify checks them, GET /health.

Accounts come from AUTH_ACCOUNTS_FILE (a JSON file) or AUTH_ACCOUNTS (the
same JSON inline): {"username": "password", ...}, or per account
{"password": "...", "token_ttl": seconds} to give that account's tokens
another lifetime.  There is no default account: without either variable the
service refuses to start.  AUTH_TOKEN_TTL (default 3600) is the lifetime of
the other tokens, returned as `expires_in`.  Tokens live in memory.

Run: /usr/bin/python3 -m uvicorn --app-dir examples/opsconductor/legacy \
         auth_service:app --port 3001     (or run.py auth --port=N)
"""

import json
import os
import secrets
import sys
import threading
import time

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, StrictStr

import legacy_common as lc

MAX_TOKENS = 100000


class Login(BaseModel):
    username: StrictStr
    password: StrictStr


def load_accounts():
    """{"username": (password, ttl or None)} from the environment."""
    path = os.environ.get("AUTH_ACCOUNTS_FILE")
    inline = os.environ.get("AUTH_ACCOUNTS")
    if not path and not inline:
        sys.exit("auth_service: no accounts: set AUTH_ACCOUNTS_FILE or "
                 "AUTH_ACCOUNTS (there is no default account)")
    try:
        if path:
            with open(path, "r", encoding="utf-8") as f:
                doc = json.load(f)
        else:
            doc = json.loads(inline)
    except (OSError, ValueError) as e:
        sys.exit("auth_service: cannot read accounts: %s" % e)
    out = {}
    if isinstance(doc, dict):
        for user, v in doc.items():
            if isinstance(v, str):
                out[user] = (v, None)
            elif isinstance(v, dict) and isinstance(v.get("password"), str) \
                    and (v.get("token_ttl") is None or (
                        isinstance(v["token_ttl"], int)
                        and not isinstance(v["token_ttl"], bool)
                        and v["token_ttl"] >= 0)):
                out[user] = (v["password"], v.get("token_ttl"))
            else:
                out = None
                break
    if not out:
        sys.exit('auth_service: accounts: want a non-empty JSON object '
                 '{"username": "password" | {"password": "...", '
                 '"token_ttl": seconds}}')
    return out


class Tokens(object):
    """Issued tokens: token -> (username, monotonic expiry)."""

    def __init__(self, accounts, ttl):
        self.lock = threading.Lock()
        self.accounts, self.ttl = accounts, ttl
        self.tokens = {}
        self.stats = {"login_requests": 0, "logins_issued": 0,
                      "logins_rejected": 0, "verify_requests": 0,
                      "verify_rejected": 0}

    def login(self, username, password):
        with self.lock:
            self.stats["login_requests"] += 1
            acct = self.accounts.get(username)
        if acct is None or not secrets.compare_digest(
                acct[0].encode("utf-8"), password.encode("utf-8")):
            with self.lock:
                self.stats["logins_rejected"] += 1
            return None, None
        ttl = self.ttl if acct[1] is None else acct[1]
        token, now = secrets.token_urlsafe(32), time.monotonic()
        with self.lock:
            if len(self.tokens) >= MAX_TOKENS:
                for t in [t for t, v in self.tokens.items() if v[1] <= now]:
                    del self.tokens[t]
                while len(self.tokens) >= MAX_TOKENS:
                    del self.tokens[next(iter(self.tokens))]
            self.tokens[token] = (username, now + ttl)
            self.stats["logins_issued"] += 1
        return token, ttl

    def user(self, token):
        with self.lock:
            self.stats["verify_requests"] += 1
            rec = self.tokens.get(token)
            if rec is None or rec[1] <= time.monotonic():
                self.stats["verify_rejected"] += 1
                return None
            return rec[0]

    def expire_all(self):
        with self.lock:
            n = len(self.tokens)
            self.tokens = {t: (v[0], 0.0) for t, v in self.tokens.items()}
        return n

    def live(self):
        now = time.monotonic()
        with self.lock:
            return sum(1 for v in self.tokens.values() if v[1] > now)


def create_app():
    app = lc.make_app("auth", "OpsConductor auth service (legacy)")
    ttl = int(lc.env_float("AUTH_TOKEN_TTL", 3600))
    tokens = Tokens(load_accounts(), ttl)
    app.state.tokens = tokens

    async def verify_local(token):
        return tokens.user(token)
    app.state.verify = verify_local
    current_user = lc.user_dependency(app)

    @app.post("/login")
    async def login(body: Login):
        token, ttl = tokens.login(body.username, body.password)
        if token is None:
            raise HTTPException(401, "Invalid credentials", headers=lc.CHALLENGE)
        return JSONResponse({"access_token": token, "token_type": "bearer",
                             "expires_in": ttl})

    @app.get("/verify")
    async def verify(user: str = Depends(current_user)):
        return JSONResponse({"user": {"username": user, "service": True}})

    if lc.debug_routes_enabled():
        # Not part of the legacy API: for tests and the demo (LEGACY_DEBUG_ROUTES=1).
        @app.get("/_debug/stats")
        async def debug_stats():
            with tokens.lock:
                s = dict(tokens.stats)
            s["live_tokens"] = tokens.live()
            return JSONResponse(s)

        @app.post("/_debug/expire_tokens")
        async def debug_expire(request: Request):
            return JSONResponse({"expired": tokens.expire_all()})
    return app


app = create_app()
