#!/usr/bin/python3
"""Self-test of legacy_server.py (the legacy OpsConductor JSON/HTTP fixture).

Usage (run with /usr/bin/python3):
  client_check.py [--server=PATH/legacy_server.py] [--url=http://127.0.0.1:N]
  client_check.py --urls=auth=URL,jobs=URL,notification=URL,credentials=URL,user=URL
                  [--short_ttl_account=USER:PASSWORD]

Without --url it starts legacy_server.py --port=0 itself, runs every check,
then stops the server with SIGTERM and checks that it exits 0.

--urls runs the same checks against five separate services (the FastAPI
apps of examples/opsconductor/legacy/, started by the caller: see
tests/opsconductor/legacy_fastapi_check.py), each request going to the
service that owns its path.  Those apps have no /_fixture/... control API,
so the checks that need it (forced replies, delays, broken replies, the
request log and its header-contract problems, counters, run-time settings)
are skipped and listed at the end; every check of the legacy API itself runs
on both.  FastAPI 0.92 with Debian's pydantic 1.10 words its 422 items the
pydantic-v1 way ("type_error.integer" for "int_parsing", no "input"): in
this mode either wording is accepted, with the same "loc".
--short_ttl_account names an account whose tokens live 1 s (the token
expiry checks); the apps' auth service is expected to run with
LEGACY_DEBUG_ROUTES=1 for POST /_debug/expire_tokens.  Uses urllib
(http.client where one connection must carry several requests, or a reply
is deliberately broken).  Prints one line per failed check and
"N passed, M failed"; exits 1 if any check failed.
"""

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True

UA = "OpsConductor-scheduler/1.0.0"
USER, PASSWORD = "scheduler-service", "scheduler-secret"

BASE = None
URLS = None             # --urls: {"auth": base URL, ...}
SHORT_TTL = None        # --short_ttl_account: (user, password)
SKIPPED = []            # fixture-only checks not run in --urls mode
PASSED = 0
FAILED = 0

# Which service owns a path (--urls mode); others (/health, unknown paths)
# go to the jobs service.
OWNERS = (("/login", "auth"), ("/verify", "auth"), ("/jobs", "jobs"),
          ("/notifications", "notification"), ("/credentials", "credentials"),
          ("/targets", "credentials"), ("/users", "user"))

# pydantic-v1 wording (FastAPI 0.92 on Debian 12) of the v2 error types.
V1_TYPES = {"json_invalid": "value_error.jsondecode",
            "missing": "value_error.missing", "string_type": "type_error.str",
            "int_parsing": "type_error.integer", "dict_type": "type_error.dict",
            "literal_error": "value_error.const"}


def base_for(path):
    if URLS is None:
        return BASE
    p = path.split("?")[0]
    for prefix, svc in OWNERS:
        if p == prefix or p.startswith(prefix + "/"):
            return URLS[svc]
    return URLS["jobs"]


def fixture_only(what):
    """True with the fixture; in --urls mode notes `what` as skipped."""
    if URLS is None:
        return True
    SKIPPED.append(what)
    return False


def recorded(what, cond):
    """cond() with the fixture (it reads the request log); in --urls mode
    True, noting `what` as skipped."""
    if URLS is None:
        return cond()
    SKIPPED.append(what)
    return True


def vtype(item, v2):
    """A 422 item's type is `v2` (or, in --urls mode, its v1 wording)."""
    t = item.get("type") if isinstance(item, dict) else None
    return t == v2 or (URLS is not None and t == V1_TYPES.get(v2))


def vinput(item, value):
    return item.get("input") == value or (URLS is not None and "input" not in item)


def check(name, cond, info=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL %s%s" % (name, (": " + str(info)[:400]) if info else ""))
        sys.stdout.flush()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


class Reply(object):
    def __init__(self, status, headers, data):
        self.status, self.headers, self.data = status, headers, data

    def json(self):
        try:
            return json.loads(self.data)
        except ValueError:
            return None

    def detail(self):
        j = self.json()
        return j.get("detail") if isinstance(j, dict) else None

    def __repr__(self):
        return "Reply(%s, %r)" % (self.status, self.data[:300])


def call(method, path, body=None, token=None, raw=None, headers=None,
         timeout=10, ua=UA, ctype="application/json", base=None):
    """One request; returns a Reply (HTTP errors too)."""
    h = {}
    if ua is not None:
        h["User-Agent"] = ua
    data = None
    if raw is not None:
        data = raw
    elif body is not None:
        data = json.dumps(body).encode("utf-8")
    if data is not None and ctype is not None:
        h["Content-Type"] = ctype
    if token is not None:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    r = urllib.request.Request((base or base_for(path)) + path, data=data,
                               method=method, headers=h)
    try:
        with OPENER.open(r, timeout=timeout) as resp:
            return Reply(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        with e:
            return Reply(e.code, e.headers, e.read())


def fixture(method, path, doc=None):
    r = call(method, "/_fixture/" + path, doc if doc is not None else
             ({} if method == "POST" else None))
    return r


def config(**doc):
    r = fixture("POST", "config", doc)
    if r.status != 200:
        raise RuntimeError("config %r failed: %r" % (doc, r))
    return r.json()


def login(user=USER, password=PASSWORD):
    r = call("POST", "/login", {"username": user, "password": password})
    j = r.json() or {}
    return j.get("access_token"), r


def requests_log():
    return fixture("GET", "requests").json()


def last_request():
    log = requests_log()
    return log[-1] if log else {}


def stats():
    return fixture("GET", "stats").json()


def is_validation_list(detail):
    return isinstance(detail, list) and detail and all(
        isinstance(d, dict) and isinstance(d.get("loc"), list)
        and isinstance(d.get("msg"), str) and isinstance(d.get("type"), str)
        for d in detail)


# ---------------------------------------------------------------------------

def t_health_and_unknown():
    for base in sorted(URLS.values()) if URLS else [BASE]:
        r = call("GET", "/health", base=base)
        check("health 200", r.status == 200 and r.json()["status"] == "healthy", r)
        check("health content-type",
              r.headers.get("Content-Type") == "application/json", r.headers)
    r = call("GET", "/no/such/path")
    check("unknown path 404 Not Found",
          r.status == 404 and r.json() == {"detail": "Not Found"}, r)
    r = call("DELETE", "/jobs/1")
    check("wrong method 405", r.status == 405 and
          r.detail() == "Method Not Allowed" and
          "GET" in r.headers.get("Allow", ""), r)
    r = call("GET", "/jobs/1/")
    check("trailing slash 307", r.status == 307 and
          r.headers.get("Location", "").endswith("/jobs/1"), r)


def t_login():
    token, r = login()
    j = r.json()
    check("login 200", r.status == 200, r)
    check("login shape", isinstance(token, str) and len(token) > 20
          and j.get("token_type") == "bearer" and j.get("expires_in") == 3600, j)
    if fixture_only("login recorded"):
        rec = last_request()
        check("login recorded", rec.get("path") == "/login" and
              rec.get("json") == {"username": USER, "password": PASSWORD} and
              rec.get("problems") == [] and rec.get("status") == 200, rec)
    token2, _ = login()
    check("tokens differ", token2 and token2 != token)
    r = call("POST", "/login", {"username": USER, "password": "wrong"})
    check("bad password 401", r.status == 401 and
          r.json() == {"detail": "Invalid credentials"}, r)
    r = call("POST", "/login", {"username": "nobody", "password": "x"})
    check("unknown user 401", r.status == 401 and
          r.detail() == "Invalid credentials", r)
    r = call("POST", "/login", raw=b'{"username": "a", ')
    d = r.detail()
    check("malformed JSON 422", r.status == 422 and is_validation_list(d)
          and vtype(d[0], "json_invalid") and d[0]["loc"][0] == "body", r)
    r = call("POST", "/login", {"username": USER})
    d = r.detail()
    check("missing field 422", r.status == 422 and is_validation_list(d) and
          d[0]["loc"] == ["body", "password"] and vtype(d[0], "missing"), r)
    r = call("POST", "/login", {"username": 5, "password": "x"})
    d = r.detail()
    check("non-string 422", r.status == 422 and is_validation_list(d) and
          vtype(d[0], "string_type"), r)
    r = call("POST", "/login", raw=b"", ctype="application/json")
    d = r.detail()
    check("empty body 422", r.status == 422 and is_validation_list(d) and
          d[0]["loc"] == ["body"] and vtype(d[0], "missing"), r)
    r = call("POST", "/login", [1, 2])
    check("array body 422", r.status == 422 and is_validation_list(r.detail()), r)
    r = call("POST", "/login", raw=b'"\xff\xfe\xfd', ctype="application/json")
    check("non-UTF-8 body 400", r.status == 400 and
          r.detail() == "There was an error parsing the body", r)
    r = call("POST", "/login", raw=b"username=a", ctype="text/plain")
    check("text/plain body 422", r.status == 422 and
          is_validation_list(r.detail()), r)
    check("text/plain body flagged", recorded(
        "text/plain body flagged", lambda: any(
            "Content-Type" in p for p in last_request().get("problems", []))))
    r = call("POST", "/login", {"username": USER, "password": PASSWORD},
             token="abc")
    check("login with Authorization still works", r.status == 200, r)
    check("login with Authorization flagged", recorded(
        "login with Authorization flagged", lambda: any(
            "Authorization" in p for p in last_request().get("problems", []))))


def t_auth(token):
    r = call("GET", "/jobs/1")
    check("no token 401", r.status == 401 and
          r.json() == {"detail": "Not authenticated"} and
          r.headers.get("WWW-Authenticate") == "Bearer", r)
    check("no token flagged", recorded("no token flagged", lambda:
          "no Authorization" in last_request()["problems"]))
    r = call("GET", "/jobs/1", token="not-a-token")
    check("bad token 401", r.status == 401 and
          r.json() == {"detail": "Invalid or expired token"}, r)
    r = call("GET", "/jobs/1", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    check("basic scheme 401", r.status == 401, r)
    r = call("GET", "/verify", token=token)
    check("verify 200", r.status == 200 and r.json() ==
          {"user": {"username": USER, "service": True}}, r)
    r = call("GET", "/verify", token=token + "x")
    check("verify bad 401", r.status == 401 and
          r.detail() == "Invalid or expired token", r)
    r = call("GET", "/verify")
    check("verify none 401", r.status == 401 and
          r.detail() == "Not authenticated", r)
    r = call("GET", "/jobs/abc")
    check("auth before path validation", r.status == 401, r)


def t_routes(token):
    r = call("POST", "/jobs/7/run", {"scheduled": True, "n": [1, 2]},
             token=token)
    j = r.json() or {}
    check("run job 200", r.status == 200 and j.get("job_id") == 7 and
          j.get("status") == "queued" and
          j.get("payload") == {"scheduled": True, "n": [1, 2]} and
          isinstance(j.get("execution_id"), int), r)
    rec = last_request() if URLS is None else {}
    check("run job recorded", recorded("run job recorded", lambda:
          rec.get("method") == "POST" and
          rec.get("route") == "POST /jobs/{job_id}/run" and
          rec.get("service") == "jobs" and
          rec["headers"].get("content-type") == "application/json" and
          rec["headers"].get("user-agent") == UA and
          rec["headers"].get("authorization") == "Bearer " + token and
          rec.get("problems") == []), rec)
    r2 = call("POST", "/jobs/7/run", token=token)
    j2 = r2.json() or {}
    check("run job no body", r2.status == 200 and "payload" in j2 and
          j2["payload"] is None and
          j2.get("execution_id") == j.get("execution_id", 0) + 1, r2)
    r = call("POST", "/jobs/7/run", [1], token=token)
    check("run job array 422", r.status == 422 and
          vtype(r.detail()[0], "dict_type"), r)
    r = call("POST", "/jobs/101/run", {}, token=token)
    check("run job 404", r.status == 404 and
          r.detail() == "Job 101 not found", r)
    for jid in (1, 50, 100):
        r = call("GET", "/jobs/%d" % jid, token=token)
        j = r.json() or {}
        check("job %d" % jid, r.status == 200 and j.get("id") == jid and
              isinstance(j.get("name"), str) and isinstance(j.get("status"), str), r)
        r = call("GET", "/jobs/%d/status" % jid, token=token)
        j = r.json() or {}
        check("job %d status" % jid, r.status == 200 and
              set(j) == {"job_id", "status", "updated_at"} and j["job_id"] == jid, r)
    for jid in (0, 101, -1):
        r = call("GET", "/jobs/%d" % jid, token=token)
        check("job %d 404" % jid, r.status == 404 and
              r.detail() == "Job %d not found" % jid, r)
    r = call("GET", "/jobs/abc", token=token)
    d = r.detail()
    check("job abc 422", r.status == 422 and is_validation_list(d) and
          d[0]["loc"] == ["path", "job_id"] and vtype(d[0], "int_parsing")
          and vinput(d[0], "abc"), r)
    r = call("GET", "/jobs/1.5/status", token=token)
    check("job 1.5 422", r.status == 422, r)
    r = call("GET", "/jobs/1?x=1", token=token)
    check("query flagged", r.status == 200 and recorded(
          "query flagged (the request log part)", lambda:
          last_request().get("query") == "x=1" and
          any("query" in p for p in last_request()["problems"])), r)

    email = {"type": "email", "destination": "ops@example.com",
             "payload": {"subject": "s", "body": "b"}}
    r = call("POST", "/notifications", email, token=token)
    j = r.json() or {}
    check("email 200", r.status == 200 and j.get("type") == "email" and
          j.get("destination") == "ops@example.com" and
          j.get("template_id") is None, r)
    r = call("POST", "/notifications", dict(email, template_id=3), token=token)
    check("email template 200", r.status == 200 and
          r.json().get("template_id") == 3, r)
    r = call("POST", "/notifications", dict(email, template_id=99), token=token)
    check("template 404", r.status == 404 and
          r.detail() == "Template 99 not found", r)
    r = call("POST", "/notifications", dict(email, template_id="x"), token=token)
    check("template_id type 422", r.status == 422, r)
    r = call("POST", "/notifications", dict(email, payload={"subject": "s"}),
             token=token)
    d = r.detail()
    check("email no body 422", r.status == 422 and is_validation_list(d) and
          d[0]["loc"] == ["body", "payload", "body"], r)
    slack = {"type": "slack", "destination": "#ops",
             "payload": {"message": "hi", "channel_extra": {"a": 1}}}
    r = call("POST", "/notifications", slack, token=token)
    check("slack 200", r.status == 200 and r.json()["type"] == "slack", r)
    r = call("POST", "/notifications", dict(slack, payload={}), token=token)
    check("slack no message 422", r.status == 422, r)
    r = call("POST", "/notifications", dict(slack, type="sms"), token=token)
    d = r.detail()
    check("bad type 422", r.status == 422 and vtype(d[0], "literal_error"), r)
    r = call("POST", "/notifications", {}, token=token)
    check("empty notification 422", r.status == 422 and
          len(r.detail()) == 3, r)
    r = call("POST", "/notifications", email)
    check("notification no token 401", r.status == 401, r)

    for cid in (1, 20):
        r = call("GET", "/credentials/%d" % cid, token=token)
        j = r.json() or {}
        check("credential %d" % cid, r.status == 200 and j.get("id") == cid, r)
    r = call("GET", "/credentials/21", token=token)
    check("credential 404", r.status == 404 and
          r.detail() == "Credential 21 not found", r)
    seen = set()
    for tid in range(1, 6):
        r = call("GET", "/targets/%d/credentials" % tid, token=token)
        j = r.json() or {}
        creds = j.get("credentials")
        ok = r.status == 200 and isinstance(creds, list) and creds and \
            all(c["target_id"] == tid for c in creds)
        check("target %d credentials" % tid, ok, r)
        if ok:
            seen.update(c["id"] for c in creds)
    check("targets cover credentials", seen == set(range(1, 21)), seen)
    r = call("GET", "/targets/6/credentials", token=token)
    check("target 404", r.status == 404 and
          r.detail() == "Target 6 not found", r)

    for uid in (1, 50):
        r = call("GET", "/users/%d" % uid, token=token)
        j = r.json() or {}
        check("user %d" % uid, r.status == 200 and j.get("id") == uid and
              j.get("username") == "user%d" % uid, r)
        r = call("GET", "/users/%d/preferences" % uid, token=token)
        j = r.json() or {}
        check("user %d preferences" % uid, r.status == 200 and
              j.get("user_id") == uid, r)
    r = call("GET", "/users/51", token=token)
    check("user 404", r.status == 404 and r.detail() == "User 51 not found", r)
    r = call("GET", "/users/51/preferences", token=token)
    check("preferences 404", r.status == 404, r)
    r = call("GET", "/users/x/preferences", token=token)
    check("user id 422", r.status == 422 and
          r.detail()[0]["loc"] == ["path", "user_id"], r)
    r = call("GET", "/users/1", token=token)
    check("UTF-8 reply", "Zo\u00eb" in r.data.decode("utf-8"), r)
    r = call("GET", "/users/%31", token=token)
    check("percent-decoded path", r.status == 200 and r.json()["id"] == 1, r)


def t_forced(token):
    config(rules=[{"route": "GET /jobs/7", "status": 404,
                   "detail": "Job 7 not found"}])
    r = call("GET", "/jobs/7", token=token)
    check("forced 404", r.status == 404 and
          r.json() == {"detail": "Job 7 not found"}, r)
    r = call("GET", "/jobs/8", token=token)
    check("other job unaffected", r.status == 200, r)
    r = call("GET", "/jobs/7", token=token)
    check("forced 404 persists", r.status == 404, r)
    config(clear_rules=True)
    r = call("GET", "/jobs/7", token=token)
    check("clear_rules", r.status == 200, r)

    routes = ["GET /jobs/{job_id}", "GET /jobs/{job_id}/status",
              "POST /jobs/{job_id}/run", "POST /notifications",
              "GET /credentials/{credential_id}",
              "GET /targets/{target_id}/credentials", "GET /users/{user_id}",
              "GET /users/{user_id}/preferences", "GET /verify", "POST /login"]
    paths = {"GET /jobs/{job_id}": "/jobs/3",
             "GET /jobs/{job_id}/status": "/jobs/3/status",
             "POST /jobs/{job_id}/run": "/jobs/3/run",
             "POST /notifications": "/notifications",
             "GET /credentials/{credential_id}": "/credentials/3",
             "GET /targets/{target_id}/credentials": "/targets/3/credentials",
             "GET /users/{user_id}": "/users/3",
             "GET /users/{user_id}/preferences": "/users/3/preferences",
             "GET /verify": "/verify", "POST /login": "/login"}
    statuses = [400, 401, 403, 404, 409, 422, 429, 500, 501, 503]
    for i, status in enumerate(statuses):
        route = routes[i % len(routes)]
        config(rules=[{"route": route, "status": status,
                       "detail": "forced %d" % status, "times": 1,
                       "headers": {"Retry-After": "1"} if status == 429 else {}}])
        method = route.split()[0]
        body = {} if method == "POST" else None
        r = call(method, paths[route], body, token=token)
        check("forced %d on %s" % (status, route), r.status == status and
              r.json() == {"detail": "forced %d" % status} and
              r.headers.get("Content-Type") == "application/json", r)
        if status == 429:
            check("Retry-After header", r.headers.get("Retry-After") == "1")
        r = call(method, paths[route], body, token=token)
        check("times=1 used up (%d)" % status, r.status != status or
              status == 422, r)
    config(rules=[{"route": "GET /jobs/{job_id}", "status": 503}])
    r = call("GET", "/jobs/99", token=token)
    check("default detail", r.status == 503 and
          r.detail() == "Service Unavailable", r)
    config(clear_rules=True, rules=[
        {"route": "GET /jobs/5", "status": 503, "times": 2},
        {"route": "GET /jobs/5", "status": 500, "times": 1}])
    got = [call("GET", "/jobs/5", token=token).status for _ in range(4)]
    check("rule sequence", got == [503, 503, 500, 200], got)
    config(rules=[{"route": "GET /jobs/5", "status": 500,
                   "raw": "Internal Server Error"}])
    r = call("GET", "/jobs/5", token=token)
    check("plain-text 500", r.status == 500 and
          r.data == b"Internal Server Error" and
          r.headers.get("Content-Type", "").startswith("text/plain"), r)
    config(clear_rules=True, rules=[{"route": "*", "status": 503,
                                     "times": 1}])
    r = call("GET", "/users/2", token=token)
    check("wildcard rule", r.status == 503, r)
    config(clear_rules=True)
    r = fixture("POST", "config", {"rules": [{"route": "GET /x", "bogus": 1}]})
    check("bad config 400", r.status == 400 and "bogus" in str(r.detail()), r)
    r = fixture("POST", "config", {"rules": [{"route": "GET /x", "status": 404,
                                              "json": {}, "raw": "x"}]})
    check("two reply kinds 400", r.status == 400, r)
    check("rejected config applies nothing", fixture("GET", "config").json()
          ["rules"] == [])


def t_shapes(token):
    config(rules=[{"route": "GET /targets/{target_id}/credentials",
                   "json": {"credentials": "not-a-list"}, "times": 1}])
    r = call("GET", "/targets/1/credentials", token=token)
    check("wrong-shaped reply", r.status == 200 and
          r.json() == {"credentials": "not-a-list"}, r)
    config(rules=[{"route": "GET /users/{user_id}", "raw": "<html>oops</html>",
                   "content_type": "text/html", "times": 1}])
    r = call("GET", "/users/1", token=token)
    check("non-JSON reply", r.status == 200 and r.data == b"<html>oops</html>"
          and r.headers.get("Content-Type") == "text/html", r)
    config(rules=[{"route": "GET /users/{user_id}", "raw": "{\"id\": ",
                   "content_type": "application/json", "times": 1}])
    r = call("GET", "/users/1", token=token)
    check("invalid JSON reply", r.status == 200 and r.json() is None, r)
    config(rules=[{"route": "POST /login", "omit": ["expires_in"],
                   "merge": {"refresh_token": "r"}, "times": 1}])
    t, r = login()
    j = r.json()
    check("login merge/omit", r.status == 200 and "expires_in" not in j and
          j.get("refresh_token") == "r" and
          call("GET", "/verify", token=t).status == 200, j)
    n = 5 * 1024 * 1024 + 3
    config(rules=[{"route": "GET /jobs/{job_id}", "size": n, "times": 1}])
    r = call("GET", "/jobs/1", token=token)
    check("oversized reply", r.status == 200 and len(r.data) == n and
          r.headers.get("Content-Length") == str(n) and
          isinstance(r.json(), dict), (r.status, len(r.data)))
    config(rules=[{"route": "GET /jobs/{job_id}", "size": 100000,
                   "chunked": True, "times": 1}])
    r = call("GET", "/jobs/1", token=token)
    check("chunked oversized reply", r.status == 200 and len(r.data) == 100000
          and r.headers.get("Content-Length") is None and
          r.headers.get("Transfer-Encoding") == "chunked", (r.status, len(r.data)))
    config(rules=[{"route": "GET /jobs/{job_id}", "size": 10}])
    r = call("GET", "/jobs/1", token=token)
    check("tiny size reply", len(r.data) == 10, r)
    config(clear_rules=True)


def t_broken(token):
    config(rules=[{"route": "GET /jobs/2", "close": True, "times": 1}])
    try:
        r = call("GET", "/jobs/2", token=token)
        check("close without reply", False, r)
    except (urllib.error.URLError, http.client.HTTPException,
            ConnectionError) as e:
        check("close without reply", True, e)
    rec = [e for e in requests_log() if e["path"] == "/jobs/2"]
    check("closed request recorded", rec and rec[-1]["status"] is None and
          rec[-1].get("closed") == "close", rec[-1:])
    config(rules=[{"route": "GET /jobs/2", "reset": True, "times": 1}])
    try:
        r = call("GET", "/jobs/2", token=token)
        check("reset without reply", False, r)
    except (urllib.error.URLError, http.client.HTTPException,
            ConnectionError) as e:
        check("reset without reply", True, e)
    config(rules=[{"route": "GET /jobs/2", "json": {"a": "b" * 1000},
                   "truncate": True, "times": 1}])
    try:
        r = call("GET", "/jobs/2", token=token)
        check("truncated reply", False, r)
    except (http.client.IncompleteRead, urllib.error.URLError,
            http.client.HTTPException, ConnectionError) as e:
        check("truncated reply", True, e)
    r = call("GET", "/jobs/2", token=token)
    check("after broken replies", r.status == 200, r)


def t_slow(token):
    config(rules=[{"route": "GET /jobs/{job_id}/status", "delay_ms": 1500,
                   "times": 1}])
    try:
        r = call("GET", "/jobs/4/status", token=token, timeout=0.5)
        check("slow reply times out", False, r)
    except (OSError, urllib.error.URLError) as e:
        check("slow reply times out", True, e)
    rec = [e for e in requests_log() if e["path"] == "/jobs/4/status"]
    check("slow request recorded on arrival", rec and rec[-1]["status"] is None,
          rec[-1:])
    config(rules=[{"route": "GET /jobs/{job_id}/status", "delay_ms": 600,
                   "times": 1}])
    t0 = time.monotonic()
    r = call("GET", "/jobs/4/status", token=token, timeout=5)
    dt = time.monotonic() - t0
    # a lower bound only: the delay is a floor; how late is not tested
    check("slow reply arrives", r.status == 200 and dt >= 0.55, (r, dt))
    config(rules=[{"route": "GET /jobs/4", "delay_ms": 400, "status": 504,
                   "times": 1}])
    t0 = time.monotonic()
    r = call("GET", "/jobs/4", token=token)
    check("delay + status", r.status == 504 and
          time.monotonic() - t0 >= 0.35, r)


def t_tokens_urls():
    """t_tokens for the FastAPI apps: an account whose tokens live 1 s
    instead of "token_ttl", POST /_debug/expire_tokens instead of
    "expire_tokens" (neither is legacy API; what they test is)."""
    if SHORT_TTL is None:
        fixture_only("token expiry (no --short_ttl_account)")
    else:
        token, r = login(*SHORT_TTL)
        check("ttl login", r.json().get("expires_in") == 1, r)
        check("fresh token works",
              call("GET", "/jobs/1", token=token).status == 200)
        time.sleep(1.2)
        r = call("GET", "/jobs/1", token=token)
        check("expired token 401", r.status == 401 and
              r.detail() == "Invalid or expired token", r)
        r = call("GET", "/verify", token=token)
        check("verify expired 401", r.status == 401, r)
    token, r = login()
    check("ttl back", r.json().get("expires_in") == 3600, r)
    check("token works", call("GET", "/users/3", token=token).status == 200)
    r = call("POST", "/_debug/expire_tokens", {}, base=URLS["auth"])
    if r.status != 200:
        fixture_only("expire_tokens (auth has no /_debug/expire_tokens)")
    else:
        r = call("GET", "/users/3", token=token)
        check("expire_tokens", r.status == 401 and
              r.detail() == "Invalid or expired token", r)
    token, _ = login()
    check("new token after expire_tokens",
          call("GET", "/users/3", token=token).status == 200)
    fixture_only("runtime account (/_fixture/config accounts)")
    return token


def t_tokens():
    if URLS is not None:
        return t_tokens_urls()
    config(token_ttl=1)
    token, r = login()
    check("ttl login", r.json().get("expires_in") == 1, r)
    check("fresh token works", call("GET", "/jobs/1", token=token).status == 200)
    time.sleep(1.2)
    r = call("GET", "/jobs/1", token=token)
    check("expired token 401", r.status == 401 and
          r.detail() == "Invalid or expired token", r)
    r = call("GET", "/verify", token=token)
    check("verify expired 401", r.status == 401, r)
    config(token_ttl=3600)
    token, r = login()
    check("ttl back", r.json().get("expires_in") == 3600, r)
    check("token works", call("GET", "/users/3", token=token).status == 200)
    config(expire_tokens=True)
    r = call("GET", "/users/3", token=token)
    check("expire_tokens", r.status == 401 and
          r.detail() == "Invalid or expired token", r)
    token, _ = login()
    check("new token after expire_tokens",
          call("GET", "/users/3", token=token).status == 200)
    config(accounts={"extra-service": "extra-pw"})
    t, r = login("extra-service", "extra-pw")
    check("runtime account", r.status == 200 and t, r)
    return token


def t_counting(token):
    if fixture_only("reset, login counts, by_route (/_fixture/stats)"):
        fixture("POST", "reset")
        check("reset empties log", requests_log() == [])
        for _ in range(3):
            login()
        login(password="nope")
        s = stats()
        check("login counts", s["login_requests"] == 4 and
              s["logins_issued"] == 3 and s["logins_rejected"] == 1, s)
        check("by_route", s["by_route"].get("POST /login") == 4, s)
        check("token kept by reset",
              call("GET", "/jobs/1", token=token).status == 200)
    # concurrent callers: all served, all counted
    results = []
    lock = threading.Lock()

    def worker(i):
        st = call("GET", "/jobs/%d" % (i + 1), token=token).status
        with lock:
            results.append(st)

    ths = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(30)
    check("concurrent", results == [200] * 20, results)
    if not fixture_only("request count, reset tokens (/_fixture/...)"):
        return
    s = stats()
    check("request count", s["requests"] == 25, s)
    fixture("POST", "reset", {"tokens": True})
    check("reset tokens", call("GET", "/jobs/1", token=token).status == 401)


def t_keepalive():
    token, _ = login()
    host = base_for("/jobs").split("//")[1]
    conn = http.client.HTTPConnection(host, timeout=10)
    statuses = []
    # one connection reaches one service in --urls mode
    for path in ("/jobs/1", "/jobs/1/status",
                 "/users/1" if URLS is None else "/jobs/2", "/no/such"):
        conn.request("GET", path, headers={"User-Agent": UA,
                                           "Authorization": "Bearer " + token})
        resp = conn.getresponse()
        resp.read()
        statuses.append(resp.status)
    conn.request("POST", "/jobs/9/run", body=b'{"x": 1}',
                 headers={"User-Agent": UA, "Content-Type": "application/json",
                          "Authorization": "Bearer " + token})
    resp = conn.getresponse()
    resp.read()
    statuses.append(resp.status)
    conn.close()
    check("keep-alive statuses", statuses == [200, 200, 200, 404, 200],
          statuses)
    if fixture_only("one connection (the request log)"):
        log = requests_log()[-5:]
        check("one connection", len(set(e["conn"] for e in log)) == 1 and
              [e["conn_request"] for e in log] == [1, 2, 3, 4, 5], log)
    # chunked request body
    conn = http.client.HTTPConnection(host, timeout=10)
    conn.request("POST", "/jobs/9/run", body=iter([b'{"chun', b'ked": 1}']),
                 headers={"User-Agent": UA, "Content-Type": "application/json",
                          "Authorization": "Bearer " + token},
                 encode_chunked=True)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    check("chunked request", resp.status == 200 and
          json.loads(data)["payload"] == {"chunked": 1}, data)
    check("chunked recorded", recorded("chunked recorded", lambda:
          last_request().get("chunked") is True))


def t_limits(token):
    big = b'{"x": "' + b"a" * (1 << 20) + b'"}'
    r = call("POST", "/jobs/1/run", raw=big, token=token)
    check("413 over 1 MiB", r.status == 413, r)
    ok = b'{"x": "' + b"a" * ((1 << 20) - 20) + b'"}'
    r = call("POST", "/jobs/1/run", raw=ok, token=token)
    check("just under 1 MiB", r.status == 200, r.status)
    # Expect: 100-continue with a too-large body: refused before it is sent
    conn = http.client.HTTPConnection(base_for("/jobs").split("//")[1],
                                      timeout=10)
    conn.putrequest("POST", "/jobs/1/run")
    for k, v in (("User-Agent", UA), ("Content-Type", "application/json"),
                 ("Authorization", "Bearer " + token),
                 ("Content-Length", str(5 << 20)),
                 ("Expect", "100-continue")):
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    resp.read()
    conn.close()
    check("413 on Expect", resp.status == 413, resp.status)


def t_missing_headers(token):
    if URLS is not None:
        r = call("GET", "/jobs/1", token=token, ua=None)
        check("no UA still served", r.status == 200, r)
        fixture_only("header-contract problems (the request log, "
                     "expect_user_agent)")
        return
    r = call("GET", "/jobs/1", token=token, ua=None)
    rec = last_request()
    check("no UA flagged", r.status == 200 and
          any("User-Agent" in p for p in rec["problems"]), rec)
    r = call("GET", "/jobs/1", token=token, ua="curl/8.0")
    check("wrong UA flagged", any("User-Agent" in p for p in
                                  last_request()["problems"]))
    config(expect_user_agent="OpsConductor-jobs-service/1.0.0")
    call("GET", "/jobs/1", token=token)
    check("expect_user_agent", any("expected" in p for p in
                                   last_request()["problems"]))
    config(expect_user_agent=None)
    call("POST", "/jobs/1/run", raw=b'{}', token=token, ctype=None)
    check("body without Content-Type flagged", any(
        "Content-Type" in p for p in last_request()["problems"]),
        last_request())
    call("GET", "/jobs/1", token=token)
    check("clean request", last_request()["problems"] == [], last_request())


def t_unimplemented(token):
    config(unknown_404="plain")
    r = call("GET", "/no/such/service", token=token)
    check("plain 404", r.status == 404 and r.data == b"404 page not found" and
          r.headers.get("Content-Type", "").startswith("text/plain"), r)
    config(disabled_services=["user"])
    r = call("GET", "/users/1", token=token)
    check("disabled service plain 404", r.status == 404 and
          r.data == b"404 page not found", r)
    r = call("GET", "/jobs/1", token=token)
    check("other services still up", r.status == 200, r)
    config(unknown_404="json")
    r = call("GET", "/users/1", token=token)
    check("disabled service json 404", r.status == 404 and
          r.json() == {"detail": "Not Found"}, r)
    config(disabled_services=[])
    check("service back", call("GET", "/users/1", token=token).status == 200)
    config(rules=[{"route": "GET /users/{user_id}/preferences", "status": 404,
                   "raw": "404 page not found", "times": 1}])
    r = call("GET", "/users/1/preferences", token=token)
    check("rule plain 404", r.status == 404 and r.data == b"404 page not found"
          and r.headers.get("Content-Type", "").startswith("text/plain"), r)


def main():
    global BASE
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default=os.path.join(here, "legacy_server.py"))
    ap.add_argument("--url", default=None)
    ap.add_argument("--urls", default=None)
    ap.add_argument("--short_ttl_account", default=None)
    args = ap.parse_args()
    proc = None
    global URLS, SHORT_TTL
    if args.urls:
        URLS = dict(kv.split("=", 1) for kv in args.urls.split(",") if kv)
        URLS = {k: v.rstrip("/") for k, v in URLS.items()}
        want = {"auth", "jobs", "notification", "credentials", "user"}
        if set(URLS) != want:
            ap.error("--urls needs exactly %s" % ", ".join(sorted(want)))
        if args.short_ttl_account:
            SHORT_TTL = tuple(args.short_ttl_account.split(":", 1))
        BASE = URLS["jobs"]
    elif args.url:
        BASE = args.url.rstrip("/")
    else:
        proc = subprocess.Popen(["/usr/bin/python3", args.server, "--port=0"],
                                stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        if not line.startswith("listening on "):
            print("server did not start: %r" % line)
            proc.kill()
            return 1
        BASE = "http://127.0.0.1:%d" % int(line.split()[2])
    try:
        if URLS is None:
            fixture("POST", "reset", {"tokens": True})
        t_health_and_unknown()
        t_login()
        token, _ = login()
        t_auth(token)
        t_routes(token)
        if fixture_only("t_forced: forced statuses and details (rules)"):
            t_forced(token)
        if fixture_only("t_shapes: wrong-shaped, non-JSON, oversized replies "
                        "(rules)"):
            t_shapes(token)
        if fixture_only("t_broken: closed, reset, truncated replies (rules)"):
            t_broken(token)
        if fixture_only("t_slow: delayed replies (rules)"):
            t_slow(token)
        token = t_tokens()
        t_counting(token)
        t_keepalive()
        token, _ = login()
        t_limits(token)
        t_missing_headers(token)
        if fixture_only("t_unimplemented: plain 404s, disabled services "
                        "(/_fixture/config)"):
            t_unimplemented(token)
        if URLS is None:
            fixture("POST", "reset")
    except Exception as e:   # noqa: BLE001
        import traceback
        traceback.print_exc()
        check("no exception", False, e)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = "timeout"
            check("clean exit on SIGTERM", rc == 0, rc)
    if SKIPPED:
        print("skipped, fixture control API only (%d): %s"
              % (len(SKIPPED), "; ".join(SKIPPED)))
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
