#!/usr/bin/python3
"""Legacy OpsConductor JSON/HTTP services, as a test fixture for orpc's compat layer.

One process serves the five FastAPI services of /work/shared/LEGACY_API.md
(auth, jobs, notification, credentials, user) on one loopback port, route
for route, and answers the way FastAPI/uvicorn would: {"detail": "..."}
errors, pydantic-v2 shaped 422 validation lists, 404 {"detail": "Not Found"}
for unknown paths, 405 for a known path with the wrong method.  It records
every request (for assertions) and can be told at run time, through
/_fixture/..., to misbehave (forced statuses, delays, non-JSON, oversized,
wrong-shaped or missing replies, expired tokens).  See README.md.

Usage (Python 3 standard library only; run with /usr/bin/python3):
  legacy_server.py [--port=N (0: ephemeral)] [--host=127.0.0.1]
                   [--accounts=FILE] [--token_ttl=SECONDS (3600)]
                   [--keepalive_timeout=SECONDS (5)] [--max_connections=N (256)]
                   [--verbose]

Prints "listening on <port>" on stdout once it serves; runs until SIGTERM or
SIGINT, then exits 0.
"""

import argparse
import collections
import datetime
import json
import os
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True

MAX_BODY = 1 << 20                 # request bodies over 1 MiB: 413
MAX_DRAIN = 16 << 20               # bytes read and dropped before a 413
MAX_LOG = 10000                    # recorded requests kept (oldest dropped)
MAX_LOGGED_BODY = 64 << 10         # body bytes kept per recorded request
MAX_TOKENS = 100000                # live tokens kept
MAX_RULES = 1000
MAX_DELAY_MS = 600000
MAX_REPLY_SIZE = 1 << 30           # "size" replies up to 1 GiB
MAX_CHUNK_LINE = 4096
MAX_CHUNKS = 1 << 16

BUILTIN_ACCOUNTS = {
    "scheduler-service": "scheduler-secret",
    "jobs-service": "jobs-secret",
    "notification-service": "notification-secret",
    "credentials-service": "credentials-secret",
    "user-service": "user-secret",
    "auth-service": "auth-secret",
    "test-user": "test-password",
}

UA_RE = re.compile(r"^OpsConductor-[A-Za-z0-9][A-Za-z0-9_.-]*/1\.0\.0$")
INT_RE = re.compile(r"^[+-]?[0-9]+$")

# The data (jobs, credentials, users, preferences), deterministic per id,
# is one module shared with the FastAPI services of
# examples/opsconductor/legacy/, so the two stand-ins cannot drift apart.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "examples", "opsconductor",
                                "legacy"))
from legacy_data import (CRED_TYPES, EPOCH, JOB_STATUSES,  # noqa: E402,F401
                         JOB_TYPES, N_CREDENTIALS, N_JOBS, N_TARGETS,
                         N_TEMPLATES, N_USERS, ROLES, credential_obj, iso,
                         job_obj, job_status_obj, now_iso, preferences_obj,
                         user_obj)


def dumps(obj):
    """JSON the way FastAPI's JSONResponse renders it."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


def log(text):
    sys.stderr.write("legacy_server: %s\n" % text)
    sys.stderr.flush()


# ---------------------------------------------------------------------------
# Errors and pydantic-v2 shaped validation errors
# ---------------------------------------------------------------------------

class HTTPError(Exception):
    """An HTTPException: reply `status` {"detail": detail}."""

    def __init__(self, status, detail, headers=None):
        Exception.__init__(self, status, detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def err_missing(loc, inp):
    return {"type": "missing", "loc": loc, "msg": "Field required",
            "input": inp}


def err_string(loc, inp):
    return {"type": "string_type", "loc": loc,
            "msg": "Input should be a valid string", "input": inp}


def err_dict(loc, inp):
    return {"type": "dict_type", "loc": loc,
            "msg": "Input should be a valid dictionary", "input": inp}


def err_model(loc, inp):
    return {"type": "model_attributes_type", "loc": loc,
            "msg": "Input should be a valid dictionary or object to extract "
                   "fields from", "input": inp}


def err_int(loc, inp):
    if isinstance(inp, str):
        return {"type": "int_parsing", "loc": loc,
                "msg": "Input should be a valid integer, unable to parse "
                       "string as an integer", "input": inp}
    if isinstance(inp, float):
        return {"type": "int_from_float", "loc": loc,
                "msg": "Input should be a valid integer, got a number with a "
                       "fractional part", "input": inp}
    return {"type": "int_type", "loc": loc,
            "msg": "Input should be a valid integer", "input": inp}


def err_literal(loc, inp, choices):
    expected = " or ".join("'%s'" % c for c in choices)
    return {"type": "literal_error", "loc": loc,
            "msg": "Input should be %s" % expected, "input": inp,
            "ctx": {"expected": expected}}


def as_int(value):
    """pydantic lax int: ints, integral floats, integer strings; not bools."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and INT_RE.match(value.strip()):
        return int(value.strip())
    return None


def check_str_field(obj, name, errors, loc_prefix):
    loc = loc_prefix + [name]
    if name not in obj:
        errors.append(err_missing(loc, obj))
    elif not isinstance(obj[name], str):
        errors.append(err_string(loc, obj[name]))


# ---------------------------------------------------------------------------
# Fixture state
# ---------------------------------------------------------------------------

class Rule(object):
    """A run-time behaviour for requests matching `route`."""

    REPLY_KEYS = ("json", "raw", "size", "close", "reset")

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("a rule must be an object")
        known = {"route", "times", "delay_ms", "status", "detail", "json",
                 "raw", "content_type", "size", "close", "reset", "headers",
                 "chunked", "truncate", "merge", "omit"}
        extra = set(spec) - known
        if extra:
            raise ValueError("unknown rule keys: %s" % ", ".join(sorted(extra)))
        route = spec.get("route")
        if not isinstance(route, str):
            raise ValueError('rule needs "route": "METHOD PATH" or "*"')
        route = route.strip()
        if route == "*":
            self.method, self.path = "*", "*"
        else:
            parts = route.split()
            if len(parts) != 2 or not (parts[1] == "*" or parts[1].startswith("/")):
                raise ValueError('bad route %r: want "METHOD PATH"' % route)
            self.method, self.path = parts[0].upper(), parts[1]
        self.route = route
        self.spec = dict(spec)
        self.times = self._int(spec, "times", 1, 1 << 31, None)
        self.delay_ms = self._int(spec, "delay_ms", 0, MAX_DELAY_MS, 0)
        kinds = [k for k in self.REPLY_KEYS if k in spec
                 and not (k in ("close", "reset") and spec[k] is False)]
        if len(kinds) > 1:
            raise ValueError("rule has more than one of %s" % ", ".join(kinds))
        self.kind = kinds[0] if kinds else ("status" if "status" in spec else None)
        self.status = self._int(spec, "status", 100, 599, None)
        if "detail" in spec and self.kind != "status":
            raise ValueError('"detail" needs "status" (and no json/raw/size)')
        if self.kind == "raw" and not isinstance(spec["raw"], str):
            raise ValueError('"raw" must be a string')
        if "content_type" in spec and not isinstance(spec["content_type"], str):
            raise ValueError('"content_type" must be a string')
        self.size = self._int(spec, "size", 0, MAX_REPLY_SIZE, None)
        for key in ("close", "reset", "chunked", "truncate"):
            if key in spec and not isinstance(spec[key], bool):
                raise ValueError('"%s" must be true or false' % key)
        headers = spec.get("headers", {})
        if not isinstance(headers, dict) or not all(
                isinstance(k, str) and re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", k)
                and isinstance(v, str) and "\r" not in v and "\n" not in v
                for k, v in headers.items()):
            raise ValueError('"headers" must map header names to strings')
        self.headers = headers
        merge = spec.get("merge", {})
        omit = spec.get("omit", [])
        if not isinstance(merge, dict):
            raise ValueError('"merge" must be an object')
        if not isinstance(omit, list) or not all(isinstance(k, str) for k in omit):
            raise ValueError('"omit" must be a list of key names')
        if (merge or omit) and self.kind is not None:
            raise ValueError('"merge"/"omit" change the normal reply; they '
                             'cannot go with a replacement reply')
        self.merge, self.omit = merge, omit
        self.hits = 0

    @staticmethod
    def _int(spec, key, lo, hi, default):
        if key not in spec:
            return default
        v = spec[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError('"%s" must be an integer in %d..%d' % (key, lo, hi))
        return v

    def matches(self, method, path, template):
        if self.method not in ("*", method):
            return False
        return self.path in ("*", path) or (template is not None
                                            and self.path == template)

    def describe(self):
        d = dict(self.spec)
        d["hits"] = self.hits
        d["remaining"] = (None if self.times is None
                          else max(0, self.times - self.hits))
        return d


class State(object):
    def __init__(self, accounts, token_ttl):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.initial_accounts = dict(accounts)
        self.initial_ttl = token_ttl
        self.tokens = {}          # token -> {"username", "expires_at"}
        self.seq = 0
        self.conn_seq = 0
        self.active_conns = 0
        self.defaults()

    def defaults(self):
        """Everything /_fixture/reset puts back (not the tokens)."""
        self.accounts = dict(self.initial_accounts)
        self.token_ttl = self.initial_ttl
        self.rules = []
        self.requests = collections.deque(maxlen=MAX_LOG)
        self.dropped = 0
        self.unknown_404 = "json"
        self.disabled = set()
        self.expect_ua = None
        self.counters = {"requests": 0, "problems": 0, "login_requests": 0,
                         "logins_issued": 0, "logins_rejected": 0,
                         "connections": 0, "by_route": {}, "by_status": {}}
        self.execution_id = 0
        self.notification_id = 0

    # tokens ----------------------------------------------------------
    def issue_token(self, username):
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self.lock:
            ttl = self.token_ttl
            if len(self.tokens) >= MAX_TOKENS:
                for t in [t for t, v in self.tokens.items()
                          if v["expires_at"] <= now]:
                    del self.tokens[t]
                while len(self.tokens) >= MAX_TOKENS:
                    del self.tokens[next(iter(self.tokens))]
            self.tokens[token] = {"username": username,
                                  "expires_at": now + ttl}
            self.counters["logins_issued"] += 1
        return token, ttl

    def token_user(self, token):
        with self.lock:
            rec = self.tokens.get(token)
            if rec is None or rec["expires_at"] <= time.monotonic():
                return None
            return rec["username"]

    def expire_tokens(self):
        with self.lock:
            for rec in self.tokens.values():
                rec["expires_at"] = 0.0

    def live_tokens(self):
        now = time.monotonic()
        with self.lock:
            return sum(1 for v in self.tokens.values() if v["expires_at"] > now)

    # rules -----------------------------------------------------------
    def take_rule(self, method, path, template):
        with self.lock:
            for i, rule in enumerate(self.rules):
                if rule.matches(method, path, template):
                    rule.hits += 1
                    if rule.times is not None and rule.hits >= rule.times:
                        del self.rules[i]
                    return rule
        return None

    # recording -------------------------------------------------------
    def record(self, entry):
        with self.lock:
            self.seq += 1
            entry["seq"] = self.seq
            if len(self.requests) == self.requests.maxlen:
                self.dropped += 1
            self.requests.append(entry)
            c = self.counters
            c["requests"] += 1
            if entry["problems"]:
                c["problems"] += 1
            key = entry["route"] or "(unknown)"
            c["by_route"][key] = c["by_route"].get(key, 0) + 1
            if key == "POST /login":
                c["login_requests"] += 1

    def set_status(self, entry, status):
        with self.lock:
            entry["status"] = status
            if status is not None:
                k = str(status)
                self.counters["by_status"][k] = self.counters["by_status"].get(k, 0) + 1


STATE = None   # set in main()


# ---------------------------------------------------------------------------
# Route handlers: (handler, ctx) -> (status, json_obj)
# ctx: {"params": {name: int}, "body": parsed JSON or None, "body_present",
#       "user": username or None}
# ---------------------------------------------------------------------------

BODY_MISSING = object()


class Validation(Exception):
    def __init__(self, errors):
        Exception.__init__(self, errors)
        self.errors = errors


def model_errors(body):
    """Errors of a required pydantic-model body, or None if it is an object."""
    if body is BODY_MISSING or body is None:
        return [err_missing(["body"], None)]
    if not isinstance(body, dict):
        return [err_model(["body"], body)]
    return None


def v_login(body):
    errors = model_errors(body)
    if errors is not None:
        return errors
    errors = []
    check_str_field(body, "username", errors, ["body"])
    check_str_field(body, "password", errors, ["body"])
    return errors


def v_run_job(body):
    if body is BODY_MISSING or body is None or isinstance(body, dict):
        return []
    return [err_dict(["body"], body)]


def v_notify(body):
    errors = model_errors(body)
    if errors is not None:
        return errors
    errors = []
    ntype = body.get("type")
    if "type" not in body:
        errors.append(err_missing(["body", "type"], body))
    elif ntype not in ("email", "slack"):
        errors.append(err_literal(["body", "type"], ntype, ("email", "slack")))
    check_str_field(body, "destination", errors, ["body"])
    payload = body.get("payload")
    if "payload" not in body:
        errors.append(err_missing(["body", "payload"], body))
    elif not isinstance(payload, dict):
        errors.append(err_dict(["body", "payload"], payload))
    elif ntype == "email":
        check_str_field(payload, "subject", errors, ["body", "payload"])
        check_str_field(payload, "body", errors, ["body", "payload"])
    elif ntype == "slack":
        check_str_field(payload, "message", errors, ["body", "payload"])
    if body.get("template_id") is not None and as_int(body["template_id"]) is None:
        errors.append(err_int(["body", "template_id"], body["template_id"]))
    return errors


def h_login(ctx):
    body = ctx["body"]
    with STATE.lock:
        expected = STATE.accounts.get(body["username"])
    if expected is None or not secrets.compare_digest(
            expected.encode("utf-8"), body["password"].encode("utf-8")):
        with STATE.lock:
            STATE.counters["logins_rejected"] += 1
        raise HTTPError(401, "Invalid credentials",
                        {"WWW-Authenticate": "Bearer"})
    token, ttl = STATE.issue_token(body["username"])
    return 200, {"access_token": token, "token_type": "bearer",
                 "expires_in": ttl}


def h_verify(ctx):
    return 200, {"user": {"username": ctx["user"], "service": True}}


def need(pid, limit, what):
    if not 1 <= pid <= limit:
        raise HTTPError(404, "%s %d not found" % (what, pid))


def h_run_job(ctx):
    jid = ctx["params"]["job_id"]
    body = ctx["body"]
    if body is BODY_MISSING:
        body = None
    need(jid, N_JOBS, "Job")
    with STATE.lock:
        STATE.execution_id += 1
        eid = STATE.execution_id
    return 200, {"execution_id": eid, "job_id": jid, "status": "queued",
                 "payload": body, "triggered_by": ctx["user"],
                 "queued_at": now_iso()}


def h_get_job(ctx):
    jid = ctx["params"]["job_id"]
    need(jid, N_JOBS, "Job")
    return 200, job_obj(jid)


def h_job_status(ctx):
    jid = ctx["params"]["job_id"]
    need(jid, N_JOBS, "Job")
    return 200, job_status_obj(jid)


def h_notify(ctx):
    body = ctx["body"]
    template_id = None
    if body.get("template_id") is not None:
        template_id = as_int(body["template_id"])
        need(template_id, N_TEMPLATES, "Template")
    with STATE.lock:
        STATE.notification_id += 1
        nid = STATE.notification_id
    return 200, {"notification_id": nid, "status": "sent",
                 "type": body["type"], "destination": body["destination"],
                 "template_id": template_id, "sent_at": now_iso()}


def h_credential(ctx):
    cid = ctx["params"]["credential_id"]
    need(cid, N_CREDENTIALS, "Credential")
    return 200, credential_obj(cid)


def h_target_credentials(ctx):
    tid = ctx["params"]["target_id"]
    need(tid, N_TARGETS, "Target")
    return 200, {"credentials": [credential_obj(c)
                                 for c in range(1, N_CREDENTIALS + 1)
                                 if (c - 1) % N_TARGETS + 1 == tid]}


def h_user(ctx):
    uid = ctx["params"]["user_id"]
    need(uid, N_USERS, "User")
    return 200, user_obj(uid)


def h_preferences(ctx):
    uid = ctx["params"]["user_id"]
    need(uid, N_USERS, "User")
    return 200, preferences_obj(uid)


def h_health(ctx):
    return 200, {"status": "healthy", "service": "opsconductor-legacy-fixture",
                 "timestamp": now_iso()}


class Route(object):
    def __init__(self, method, template, service, handler, auth, body):
        self.method, self.template, self.service = method, template, service
        self.handler, self.auth = handler, auth
        self.body = body            # None (no body) or a validator
        self.params = re.findall(r"{(\w+)}", template)
        self.regex = re.compile("^" + re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)",
                                             template) + "$")
        self.key = "%s %s" % (method, template)


# The last field validates the body (None: the route takes no body).
ROUTES = [
    Route("POST", "/login", "auth", h_login, False, v_login),
    Route("GET", "/verify", "auth", h_verify, True, None),
    Route("POST", "/jobs/{job_id}/run", "jobs", h_run_job, True, v_run_job),
    Route("GET", "/jobs/{job_id}", "jobs", h_get_job, True, None),
    Route("GET", "/jobs/{job_id}/status", "jobs", h_job_status, True, None),
    Route("POST", "/notifications", "notification", h_notify, True, v_notify),
    Route("GET", "/credentials/{credential_id}", "credentials", h_credential,
          True, None),
    Route("GET", "/targets/{target_id}/credentials", "credentials",
          h_target_credentials, True, None),
    Route("GET", "/users/{user_id}", "user", h_user, True, None),
    Route("GET", "/users/{user_id}/preferences", "user", h_preferences, True,
          None),
    Route("GET", "/health", "health", h_health, False, None),
]
SERVICES = sorted(set(r.service for r in ROUTES))


def match_route(method, path, disabled):
    """Starlette's matching: (route, params) | ("405", allow) | (None, None)."""
    allow = []
    for r in ROUTES:
        if r.service in disabled:
            continue
        m = r.regex.match(path)
        if not m:
            continue
        if r.method == method:
            return r, m.groupdict()
        allow.append(r.method)
    if allow:
        return "405", sorted(set(allow))
    return None, None


# ---------------------------------------------------------------------------
# The request handler
# ---------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    sys_version = ""
    timeout = 5                     # idle keep-alive timeout (set in main)
    verbose = False

    def version_string(self):
        return self.server_version

    def setup(self):
        BaseHTTPRequestHandler.setup(self)
        with STATE.lock:
            STATE.conn_seq += 1
            STATE.counters["connections"] += 1
            self.conn_id = STATE.conn_seq
        self.conn_requests = 0

    def log_message(self, fmt, *args):
        if self.verbose:
            log("%s %s" % (self.address_string(), fmt % args))

    def do_any(self):
        try:
            self.handle_request()
        except (ConnectionError, socket.timeout, BrokenPipeError):
            self.close_connection = True
        except Exception:   # noqa: BLE001 - mirror Starlette's 500
            log("handler error:\n" + traceback.format_exc())
            self.close_connection = True
            try:
                self.send_bytes(500, b"Internal Server Error",
                                "text/plain; charset=utf-8")
            except OSError:
                pass

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_any
    do_OPTIONS = do_any

    def handle_expect_100(self):
        length = self.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and \
                int(length) > MAX_BODY:
            # Refuse before the client sends the body.
            self.close_connection = True
            self.early_413 = True
            return True
        return BaseHTTPRequestHandler.handle_expect_100(self)

    # ----- sending ---------------------------------------------------------
    def send_bytes(self, status, data, ctype, headers=None, chunked=False,
                   truncate=False, length=None):
        """Send a reply.  `data` is bytes, or an iterator of bytes when
        `length` gives its total size."""
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        total = len(data) if length is None else length
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(total))
        if truncate:
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        pieces = [data] if length is None else data
        limit = total // 2 if truncate else total
        sent = 0
        for piece in pieces:
            if sent >= limit:
                break
            piece = piece[:limit - sent]
            sent += len(piece)
            if chunked:
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                self.wfile.write(piece)
        if chunked and not truncate:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def send_json(self, status, obj, headers=None):
        self.send_bytes(status, dumps(obj), "application/json", headers)

    # ----- reading ---------------------------------------------------------
    def read_body(self):
        """Returns (bytes, chunked) or raises HTTPError (400/413)."""
        te = self.headers.get("Transfer-Encoding", "")
        if te:
            if te.strip().lower() != "chunked":
                self.close_connection = True
                raise HTTPError(400, "Unsupported Transfer-Encoding")
            return self.read_chunked(), True
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            return b"", False
        if len(set(v.strip() for v in lengths)) != 1 or \
                not lengths[0].strip().isdigit():
            self.close_connection = True
            raise HTTPError(400, "Invalid Content-Length")
        n = int(lengths[0])
        if n > MAX_BODY:
            self.close_connection = True
            if not getattr(self, "early_413", False):
                self.drain(n)
            raise HTTPError(413, "Request body too large (limit %d bytes)"
                            % MAX_BODY)
        data = self.rfile.read(n)
        if len(data) != n:
            self.close_connection = True
            raise ConnectionError("short body")
        return data, False

    def drain(self, n):
        left = min(n, MAX_DRAIN)
        try:
            while left > 0:
                got = self.rfile.read(min(left, 65536))
                if not got:
                    break
                left -= len(got)
        except OSError:
            pass

    def read_chunked(self):
        out = bytearray()
        for _ in range(MAX_CHUNKS):
            line = self.rfile.readline(MAX_CHUNK_LINE)
            if not line.endswith(b"\n"):
                self.close_connection = True
                raise HTTPError(400, "Invalid chunked body")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                self.close_connection = True
                raise HTTPError(400, "Invalid chunked body")
            if size == 0:
                for _ in range(100):       # trailers, then the blank line
                    t = self.rfile.readline(MAX_CHUNK_LINE)
                    if t in (b"\r\n", b"\n", b""):
                        return bytes(out)
                self.close_connection = True
                raise HTTPError(400, "Invalid chunked body")
            if len(out) + size > MAX_BODY:
                self.close_connection = True
                raise HTTPError(413, "Request body too large (limit %d bytes)"
                                % MAX_BODY)
            piece = self.rfile.read(size)
            if len(piece) != size or self.rfile.read(2) not in (b"\r\n",):
                self.close_connection = True
                raise HTTPError(400, "Invalid chunked body")
            out += piece
        self.close_connection = True
        raise HTTPError(400, "Too many chunks")

    # ----- the request -----------------------------------------------------
    def handle_request(self):
        self.conn_requests += 1
        method = self.command
        target = self.path
        if not target.startswith("/"):         # absolute-form request target
            parts = urllib.parse.urlsplit(target)
            target = (parts.path or "/") + ("?" + parts.query if parts.query
                                             else "")
        raw_path, _, query = target.partition("?")
        path = urllib.parse.unquote(raw_path)
        if path.startswith("/_fixture/"):
            return self.handle_fixture(method, path, query)

        entry = {
            "time": time.time(), "conn": self.conn_id,
            "conn_request": self.conn_requests, "method": method,
            "path": path, "raw_path": raw_path, "query": query,
            "http_version": self.request_version,
            "headers": {}, "raw_headers": [[k, v] for k, v in self.headers.items()],
            "body": "", "body_len": 0, "body_truncated": False,
            "chunked": False, "json": None, "route": None, "service": None,
            "problems": [], "status": None,
        }
        for k, v in self.headers.items():
            lk = k.lower()
            if lk in entry["headers"]:
                entry["headers"][lk] += ", " + v
            else:
                entry["headers"][lk] = v

        body_error = None
        body = b""
        try:
            body, entry["chunked"] = self.read_body()
        except HTTPError as e:
            body_error = e
        entry["body_len"] = len(body)
        entry["body_truncated"] = len(body) > MAX_LOGGED_BODY
        entry["body"] = body[:MAX_LOGGED_BODY].decode("utf-8", "replace")

        with STATE.lock:
            disabled = set(STATE.disabled)
            unknown_404 = STATE.unknown_404
            expect_ua = STATE.expect_ua
        route, params = match_route(method, path, disabled)
        template = route.template if isinstance(route, Route) else None
        if isinstance(route, Route):
            entry["route"] = route.key
            entry["service"] = route.service
        self.check(entry, route, expect_ua, body)
        if body:
            try:
                entry["json"] = json.loads(body)
            except ValueError:
                entry["json"] = None
        STATE.record(entry)

        if body_error is not None:
            STATE.set_status(entry, body_error.status)
            return self.send_json(body_error.status,
                                  {"detail": body_error.detail})

        rule = STATE.take_rule(method, path, template)
        if rule is not None and rule.delay_ms:
            if STATE.stop.wait(rule.delay_ms / 1000.0):
                self.close_connection = True
                return
        if rule is not None and rule.kind is not None:
            return self.send_rule(entry, rule)

        if route is None:
            return self.send_not_found(entry, unknown_404)
        if route == "405":
            STATE.set_status(entry, 405)
            return self.send_json(405, {"detail": "Method Not Allowed"},
                                  {"Allow": ", ".join(params)})
        try:
            status, obj = self.run_route(route, params, body)
            headers = {}
            if rule is not None and 200 <= status < 300 and isinstance(obj, dict):
                for k in rule.omit:
                    obj.pop(k, None)
                obj.update(rule.merge)
        except HTTPError as e:
            status, obj, headers = e.status, {"detail": e.detail}, e.headers
        except Validation as e:
            status, obj, headers = 422, {"detail": e.errors}, {}
        STATE.set_status(entry, status)
        self.send_json(status, obj, headers)

    def send_not_found(self, entry, unknown_404):
        path = entry["path"]
        # Starlette's redirect_slashes: try the path with/without a final "/".
        if path != "/":
            other = path[:-1] if path.endswith("/") else path + "/"
            with STATE.lock:
                disabled = set(STATE.disabled)
            r, _ = match_route(entry["method"], other, disabled)
            if isinstance(r, Route):
                host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
                loc = "http://%s%s" % (host, urllib.parse.quote(other))
                if entry["query"]:
                    loc += "?" + entry["query"]
                STATE.set_status(entry, 307)
                return self.send_bytes(307, b"", None, {"Location": loc})
        STATE.set_status(entry, 404)
        if unknown_404 == "plain":
            return self.send_bytes(404, b"404 page not found",
                                   "text/plain; charset=utf-8")
        return self.send_json(404, {"detail": "Not Found"})

    def check(self, entry, route, expect_ua, body):
        """The headers every legacy call sends (LEGACY_API.md)."""
        problems = entry["problems"]
        h = self.headers
        for name in ("Content-Type", "User-Agent", "Authorization", "Host",
                     "Content-Length"):
            if len(h.get_all(name) or []) > 1:
                problems.append("duplicate %s header" % name)
        ua = h.get("User-Agent")
        if ua is None:
            problems.append("no User-Agent")
        elif expect_ua is not None and ua != expect_ua:
            problems.append("User-Agent %r, expected %r" % (ua, expect_ua))
        elif expect_ua is None and not UA_RE.match(ua):
            problems.append("User-Agent %r is not OpsConductor-<service>/1.0.0"
                            % ua)
        ctype = h.get("Content-Type")
        if body or entry["chunked"]:
            if ctype is None:
                problems.append("body without Content-Type")
            elif ctype.split(";")[0].strip().lower() != "application/json":
                problems.append("Content-Type %r, expected application/json"
                                % ctype)
        if body and self.command in ("GET", "HEAD", "DELETE"):
            problems.append("body on %s" % self.command)
        if entry["query"] and isinstance(route, Route) and route.service != "health":
            problems.append("unexpected query string %r" % entry["query"])
        auth = h.get("Authorization")
        if isinstance(route, Route):
            if not route.auth and route.service == "auth" and auth is not None:
                problems.append("Authorization sent to %s" % route.template)
            elif route.auth:
                if auth is None:
                    problems.append("no Authorization")
                elif not re.match(r"^Bearer [!-~]+$", auth):
                    problems.append("Authorization is not 'Bearer <token>'")

    def run_route(self, route, params, body):
        """FastAPI's order: parse the body, run the security dependency,
        validate path parameters and body (errors collected together), then
        the endpoint."""
        ctx = {"params": {}, "body": BODY_MISSING, "user": None}
        # 1. the body is read and parsed before anything else
        if route.body is not None and body:
            ctype = self.headers.get("Content-Type")
            is_json = True
            if ctype:
                main = ctype.split(";")[0].strip().lower()
                is_json = main == "application/json" or (
                    main.startswith("application/") and main.endswith("+json"))
            if not is_json:
                ctx["body"] = body.decode("latin-1")
            else:
                try:
                    ctx["body"] = json.loads(body)
                except json.JSONDecodeError as e:
                    raise Validation([{"type": "json_invalid",
                                       "loc": ["body", e.pos],
                                       "msg": "JSON decode error", "input": {},
                                       "ctx": {"error": e.msg}}])
                except ValueError:      # not UTF-8/16/32
                    raise HTTPError(400, "There was an error parsing the body")
        # 2. the security dependency
        if route.auth:
            auth = self.headers.get("Authorization", "")
            scheme, _, cred = auth.strip().partition(" ")
            cred = cred.strip()
            challenge = {"WWW-Authenticate": "Bearer"}
            if not auth.strip() or not cred:
                raise HTTPError(401, "Not authenticated", challenge)
            if scheme.lower() != "bearer":
                raise HTTPError(401, "Invalid authentication credentials",
                                challenge)
            ctx["user"] = STATE.token_user(cred)
            if ctx["user"] is None:
                raise HTTPError(401, "Invalid or expired token", challenge)
        # 3. path parameters, then the body
        errors = []
        for name in route.params:
            raw = params[name]
            if INT_RE.match(raw):
                ctx["params"][name] = int(raw)
            else:
                errors.append(err_int(["path", name], raw))
        if route.body is not None:
            errors.extend(route.body(ctx["body"]))
        if errors:
            raise Validation(errors)
        return route.handler(ctx)

    def send_rule(self, entry, rule):
        spec = rule.spec
        if rule.kind in ("close", "reset"):
            STATE.set_status(entry, None)
            entry["closed"] = rule.kind
            self.close_connection = True
            if rule.kind == "reset":
                try:
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
                    self.connection.close()
                except OSError:
                    pass
            return None
        status = rule.status
        headers = dict(rule.headers)
        chunked, truncate = spec.get("chunked", False), spec.get("truncate", False)
        if rule.kind == "status":
            if status == 401 and "WWW-Authenticate" not in headers:
                headers["WWW-Authenticate"] = "Bearer"
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Error"
            detail = spec.get("detail", phrase)
            data, ctype = dumps({"detail": detail}), "application/json"
        elif rule.kind == "json":
            data, ctype = dumps(spec["json"]), "application/json"
        elif rule.kind == "raw":
            data = spec["raw"].encode("utf-8")
            ctype = "text/plain; charset=utf-8"
        else:   # size
            n = rule.size
            ctype = "application/json"
            STATE.set_status(entry, status or 200)
            return self.send_bytes(status or 200, padded_json(n), ctype,
                                   headers, chunked, truncate, length=n)
        ctype = spec.get("content_type", ctype)
        STATE.set_status(entry, status or 200)
        return self.send_bytes(status or 200, data, ctype, headers, chunked,
                               truncate)

    # ----- the control API -------------------------------------------------
    def handle_fixture(self, method, path, query):
        try:
            body, _ = self.read_body()
        except HTTPError as e:
            return self.send_json(e.status, {"detail": e.detail})
        try:
            doc = json.loads(body) if body.strip() else {}
        except ValueError:
            return self.send_json(400, {"detail": "body is not JSON"})
        q = urllib.parse.parse_qs(query)
        if method == "GET" and path == "/_fixture/requests":
            since = int(q.get("since", ["0"])[0]) if \
                q.get("since", ["0"])[0].isdigit() else 0
            with STATE.lock:
                out = [dict(e) for e in STATE.requests if e["seq"] > since
                       and ("path" not in q or e["path"] == q["path"][0])]
            return self.send_json(200, out)
        if method == "GET" and path == "/_fixture/stats":
            with STATE.lock:
                c = json.loads(json.dumps(STATE.counters))
                c["active_connections"] = STATE.active_conns
                c["dropped_requests"] = STATE.dropped
            c["live_tokens"] = STATE.live_tokens()
            return self.send_json(200, c)
        if method == "GET" and path == "/_fixture/config":
            return self.send_json(200, config_view())
        if method == "POST" and path == "/_fixture/reset":
            if not isinstance(doc, dict):
                return self.send_json(400, {"detail": "body must be an object"})
            with STATE.lock:
                STATE.defaults()
                if doc.get("tokens"):
                    STATE.tokens.clear()
            return self.send_json(200, {"ok": True})
        if method == "POST" and path == "/_fixture/config":
            try:
                apply_config(doc)
            except ValueError as e:
                return self.send_json(400, {"detail": str(e)})
            return self.send_json(200, dict(config_view(), ok=True))
        if path in ("/_fixture/requests", "/_fixture/stats", "/_fixture/config",
                    "/_fixture/reset"):
            return self.send_json(405, {"detail": "Method Not Allowed"})
        return self.send_json(404, {"detail": "Not Found"})


def padded_json(n):
    """Yields exactly n bytes: {"padding":"xxxx..."} (just x's below 14)."""
    head, tail = b'{"padding":"', b'"}'
    if n < len(head) + len(tail):
        yield b"x" * n
        return
    yield head
    left = n - len(head) - len(tail)
    block = b"x" * 65536
    while left > 0:
        piece = block[:min(left, len(block))]
        left -= len(piece)
        yield piece
    yield tail


def config_view():
    with STATE.lock:
        return {
            "rules": [r.describe() for r in STATE.rules],
            "token_ttl": STATE.token_ttl,
            "unknown_404": STATE.unknown_404,
            "disabled_services": sorted(STATE.disabled),
            "expect_user_agent": STATE.expect_ua,
            "accounts": sorted(STATE.accounts),
            "services": SERVICES,
            "routes": [r.key for r in ROUTES],
        }


def apply_config(doc):
    """Validate everything first, then apply atomically."""
    if not isinstance(doc, dict):
        raise ValueError("config must be a JSON object")
    known = {"rules", "clear_rules", "token_ttl", "expire_tokens",
             "unknown_404", "disabled_services", "expect_user_agent",
             "accounts"}
    extra = set(doc) - known
    if extra:
        raise ValueError("unknown config keys: %s" % ", ".join(sorted(extra)))
    rules = doc.get("rules", [])
    if not isinstance(rules, list):
        raise ValueError('"rules" must be a list')
    rules = [Rule(r) for r in rules]
    ttl = doc.get("token_ttl")
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int)
                            or not 0 <= ttl <= 10 ** 9):
        raise ValueError('"token_ttl" must be an integer >= 0')
    u404 = doc.get("unknown_404")
    if u404 is not None and u404 not in ("json", "plain"):
        raise ValueError('"unknown_404" must be "json" or "plain"')
    disabled = doc.get("disabled_services")
    if disabled is not None and (not isinstance(disabled, list) or
                                 not all(s in SERVICES for s in disabled)):
        raise ValueError('"disabled_services" must list services among %s'
                         % ", ".join(SERVICES))
    ua = doc.get("expect_user_agent", False)
    if ua is not False and ua is not None and not isinstance(ua, str):
        raise ValueError('"expect_user_agent" must be a string or null')
    accounts = doc.get("accounts")
    if accounts is not None and (not isinstance(accounts, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in accounts.items())):
        raise ValueError('"accounts" must map usernames to passwords')
    for key in ("clear_rules", "expire_tokens"):
        if key in doc and not isinstance(doc[key], bool):
            raise ValueError('"%s" must be true or false' % key)
    with STATE.lock:
        kept = [] if doc.get("clear_rules") else STATE.rules
        if len(kept) + len(rules) > MAX_RULES:
            raise ValueError("too many rules (limit %d)" % MAX_RULES)
        STATE.rules = kept + rules
        if ttl is not None:
            STATE.token_ttl = ttl
        if u404 is not None:
            STATE.unknown_404 = u404
        if disabled is not None:
            STATE.disabled = set(disabled)
        if ua is not False:
            STATE.expect_ua = ua
        if accounts is not None:
            STATE.accounts.update(accounts)
    if doc.get("expire_tokens"):
        STATE.expire_tokens()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    max_connections = 256
    request_queue_size = 128

    def process_request(self, request, client_address):
        with STATE.lock:
            if STATE.active_conns >= self.max_connections:
                full = True
            else:
                full = False
                STATE.active_conns += 1
        if full:
            self.shutdown_request(request)
            return
        try:
            ThreadingHTTPServer.process_request(self, request, client_address)
        except Exception:
            with STATE.lock:
                STATE.active_conns -= 1
            raise

    def process_request_thread(self, request, client_address):
        try:
            ThreadingHTTPServer.process_request_thread(self, request,
                                                       client_address)
        finally:
            with STATE.lock:
                STATE.active_conns -= 1


def load_accounts(path):
    with open(path, "r", encoding="utf-8") as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in doc.items()):
        raise ValueError("%s: want a JSON object {\"username\": \"password\"}"
                         % path)
    return doc


def main(argv):
    global STATE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--accounts", default=None)
    ap.add_argument("--token_ttl", type=int, default=3600)
    ap.add_argument("--keepalive_timeout", type=float, default=5.0)
    ap.add_argument("--max_connections", type=int, default=256)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.token_ttl < 0 or not 0 <= args.port <= 65535 or \
            args.keepalive_timeout <= 0 or args.max_connections < 1:
        ap.error("bad --token_ttl, --port, --keepalive_timeout or "
                 "--max_connections")
    try:
        accounts = load_accounts(args.accounts) if args.accounts \
            else BUILTIN_ACCOUNTS
    except (OSError, ValueError) as e:
        log("cannot load accounts: %s" % e)
        return 2
    STATE = State(accounts, args.token_ttl)
    Handler.timeout = args.keepalive_timeout
    Handler.verbose = args.verbose
    Server.max_connections = args.max_connections
    if ":" in args.host:
        Server.address_family = socket.AF_INET6
    server = Server((args.host, args.port), Handler)

    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever,
                              kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    sys.stdout.write("listening on %d\n" % server.server_address[1])
    sys.stdout.flush()
    while not stop.wait(1.0):
        pass
    STATE.stop.set()          # wake delayed replies
    server.shutdown()
    server.server_close()
    thread.join(5)
    if args.verbose:
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
