"""What the five legacy OpsConductor FastAPI services share.

The data (job_obj, credential_obj, user_obj, preferences_obj, ...) mirrors
tests/legacy/legacy_server.py, the one-process fixture the compat tests use,
object for object: tests/opsconductor/legacy_parity_check.py sends the same
requests to both and fails on any difference, so the two cannot drift.

Also here: the bearer-token dependency (FastAPI's order: the body is parsed,
then this runs, then path and body are validated), the pydantic-v1 field
types that give FastAPI 0.92 the fixture's strictness (no int -> str, no
[[k, v]] -> dict, no True -> 1), the 1 MiB request-body limit, GET /health,
and the settings every service reads from the environment.
"""

import datetime
import os
import re
import sys

import httpx
import pydantic
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

MAX_BODY = 1 << 20          # request bodies over 1 MiB: 413
MAX_DRAIN = 16 << 20        # bytes read and dropped before a 413
from legacy_data import (EPOCH, N_CREDENTIALS, N_JOBS,  # noqa: F401
                         N_TARGETS, N_TEMPLATES, N_USERS)
INT_RE = re.compile(r"^[+-]?[0-9]+$")
CHALLENGE = {"WWW-Authenticate": "Bearer"}

# ---------------------------------------------------------------------------
# Settings (environment)
# ---------------------------------------------------------------------------


def env_flag(name, default=False):
    v = os.environ.get(name)
    if v is None:
        return default
    return v.strip().lower() in ("1", "true", "yes", "on")


def env_float(name, default):
    v = os.environ.get(name)
    if v is None or not v.strip():
        return default
    try:
        return float(v)
    except ValueError:
        sys.exit("%s=%r is not a number" % (name, v))


def debug_routes_enabled():
    """The /_debug/... routes (not part of the legacy API) are off unless
    LEGACY_DEBUG_ROUTES=1 (run.py --debug_routes)."""
    return env_flag("LEGACY_DEBUG_ROUTES")


# ---------------------------------------------------------------------------
# Data, deterministic per id: legacy_data.py, shared with the fixture
# ---------------------------------------------------------------------------

from legacy_data import (CRED_TYPES, JOB_STATUSES, JOB_TYPES,  # noqa: E402,F401
                         ROLES, credential_obj, iso, job_obj, job_status_obj,
                         now_iso, preferences_obj, user_obj)


def need(pid, limit, what):
    """404 {"detail": "<What> N not found"} unless 1 <= pid <= limit."""
    if not 1 <= pid <= limit:
        raise HTTPException(404, "%s %d not found" % (what, pid))


# ---------------------------------------------------------------------------
# pydantic (v1, Debian's 1.10) field types as strict as the fixture
# ---------------------------------------------------------------------------

class PathId(int):
    """A path id: an optionally signed decimal integer, nothing else
    (plain `int` would also take "1_000" and "7 ")."""

    @classmethod
    def __get_validators__(cls):
        yield cls.validate

    @classmethod
    def __modify_schema__(cls, schema):
        schema.update(type="integer")

    @classmethod
    def validate(cls, v):
        if isinstance(v, str) and INT_RE.match(v):
            return int(v)
        if isinstance(v, int) and not isinstance(v, bool):
            return int(v)
        raise pydantic.errors.IntegerError()


class LaxInt(int):
    """An id in a body, as pydantic v2's lax int: ints, integral floats,
    integer strings; not bools or 1.5 (pydantic v1 takes both)."""

    @classmethod
    def __get_validators__(cls):
        yield cls.validate

    @classmethod
    def __modify_schema__(cls, schema):
        schema.update(type="integer")

    @classmethod
    def validate(cls, v):
        if isinstance(v, bool):
            raise pydantic.errors.IntegerError()
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, str) and INT_RE.match(v.strip()):
            return int(v.strip())
        raise pydantic.errors.IntegerError()


class StrictDict(dict):
    """A JSON object and nothing else (pydantic v1's Dict would turn
    [["a", 1]] into {"a": 1})."""

    @classmethod
    def __get_validators__(cls):
        yield cls.validate

    @classmethod
    def __modify_schema__(cls, schema):
        schema.update(type="object")

    @classmethod
    def validate(cls, v):
        if not isinstance(v, dict):
            raise pydantic.errors.DictError()
        return v


# ---------------------------------------------------------------------------
# The bearer token
# ---------------------------------------------------------------------------

def bearer(request):
    """The token of `Authorization: Bearer <token>`, or 401 (the fixture's
    texts; FastAPI 0.92's own HTTPBearer would answer 403)."""
    auth = request.headers.get("authorization", "")
    scheme, _, cred = auth.strip().partition(" ")
    cred = cred.strip()
    if not auth.strip() or not cred:
        raise HTTPException(401, "Not authenticated", headers=CHALLENGE)
    if scheme.lower() != "bearer":
        raise HTTPException(401, "Invalid authentication credentials",
                            headers=CHALLENGE)
    return cred


class RemoteVerifier(object):
    """Checks tokens with the auth service's GET /verify (AUTH_SERVICE_URL),
    once per request, as the platform's services do."""

    def __init__(self, service):
        self.service = service
        self.url = os.environ.get("AUTH_SERVICE_URL",
                                  "http://auth-service:3001").rstrip("/")
        self.client = None

    async def start(self):
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(env_float("SERVICE_HTTP_TIMEOUT", 30),
                                  connect=env_float("SERVICE_HTTP_CONNECT_TIMEOUT", 10)),
            limits=httpx.Limits(max_connections=100,
                                max_keepalive_connections=20))

    async def stop(self):
        if self.client is not None:
            await self.client.aclose()

    async def __call__(self, token):
        try:
            r = await self.client.get(self.url + "/verify", headers={
                "User-Agent": "OpsConductor-%s/1.0.0" % self.service,
                "Authorization": "Bearer " + token})
        except httpx.HTTPError:
            raise HTTPException(503, "Auth service unavailable")
        if r.status_code == 401:
            return None
        try:
            user = r.json()["user"]["username"] if r.status_code == 200 else None
        except (ValueError, KeyError, TypeError):
            user = None
        if r.status_code != 200 or not isinstance(user, str):
            raise HTTPException(503, "Auth service unavailable")
        return user


def user_dependency(app):
    """FastAPI dependency: the caller's username, or 401."""
    async def current_user(request: Request) -> str:
        user = await app.state.verify(bearer(request))
        if user is None:
            raise HTTPException(401, "Invalid or expired token",
                                headers=CHALLENGE)
        return user
    return current_user


# ---------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------

class BodyLimit(object):
    """ASGI middleware: a request body over 1 MiB gets 413 and the
    connection is closed; with `Expect: 100-continue` before the body is
    sent (uvicorn sends 100 only when the app first reads the body)."""

    def __init__(self, app, limit=MAX_BODY):
        self.app, self.limit = app, limit

    async def reply_413(self, send):
        body = b'{"detail":"Request body too large (limit %d bytes)"}' % self.limit
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length, chunked, expect = None, False, False
        for k, v in scope["headers"]:
            if k == b"content-length" and v.strip().isdigit():
                length = int(v)
            elif k == b"transfer-encoding" and b"chunked" in v.lower():
                chunked = True
            elif k == b"expect" and v.strip().lower() == b"100-continue":
                expect = True
        if length is not None and length > self.limit:
            if not expect:          # read and drop it: closing on unread data resets
                seen, more = 0, True
                while more and seen < MAX_DRAIN:
                    msg = await receive()
                    if msg["type"] != "http.request":
                        return
                    seen += len(msg.get("body", b""))
                    more = msg.get("more_body", False)
            return await self.reply_413(send)
        if not chunked:
            return await self.app(scope, receive, send)
        # chunked: read it all (at most the limit), then hand it on
        parts, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            parts.append(msg.get("body", b""))
            size += len(parts[-1])
            more = msg.get("more_body", False)
            if size > self.limit:
                return await self.reply_413(send)
        body, done = b"".join(parts), [False]

        async def replay():
            if not done[0]:
                done[0] = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()
        return await self.app(scope, replay, send)


def make_app(service, title):
    """A FastAPI app with GET /health, the body limit, and (for every
    service but auth) token checks against the auth service."""
    app = FastAPI(title=title, version="1.0.0")
    app.add_middleware(BodyLimit)
    app.state.service = service
    if service != "auth":
        verifier = RemoteVerifier(service)
        app.state.verify = verifier
        app.add_event_handler("startup", verifier.start)
        app.add_event_handler("shutdown", verifier.stop)

    @app.get("/health")
    async def health():
        return JSONResponse({"status": "healthy",
                             "service": "%s-service" % service,
                             "timestamp": now_iso()})
    return app
