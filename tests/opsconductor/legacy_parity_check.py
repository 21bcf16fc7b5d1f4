#!/usr/bin/python3
"""The legacy fixture and the five FastAPI apps answer the same requests
the same way.  Starts tests/legacy/legacy_server.py and the apps of
examples/opsconductor/legacy/ (127.0.0.1, ephemeral ports), sends each
request of a fixed list (every route, every id in range and just outside
it, bad ids, bad bodies, bad tokens, wrong methods, unknown paths) to both,
and compares status, content type, WWW-Authenticate/Allow/Location and the
JSON body.  Only what must differ is normalized: tokens and timestamps
(compared by type), the /health "service" name, and 422 items, compared by
"loc" with the pydantic-v1 wording of each error type accepted (FastAPI 0.92
on Debian's pydantic 1.10; the fixture imitates pydantic v2).
Prints one line per difference and "N requests, M differences"; exits 1 on
any difference."""

import json
import os
import sys
import urllib.error
import urllib.request

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import legacy_apps  # noqa: E402

UA = "OpsConductor-scheduler/1.0.0"
OWNERS = (("/login", "auth"), ("/verify", "auth"), ("/jobs", "jobs"),
          ("/notifications", "notification"), ("/credentials", "credentials"),
          ("/targets", "credentials"), ("/users", "user"))
# fixture (pydantic v2) type -> what FastAPI 0.92 + pydantic 1.10 may say
V1 = {
    "json_invalid": {"value_error.jsondecode"},
    "missing": {"value_error.missing"},
    "string_type": {"type_error.str", "type_error.none.not_allowed"},
    "int_parsing": {"type_error.integer"},
    "int_type": {"type_error.integer"},
    "int_from_float": {"type_error.integer"},
    "dict_type": {"type_error.dict", "type_error.none.not_allowed"},
    "model_attributes_type": {"type_error.dict"},
    "literal_error": {"value_error.const", "type_error.none.not_allowed"},
}
VOLATILE = {"access_token", "queued_at", "sent_at", "timestamp"}
DIFFS = []


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def owner(path):
    p = path.split("?")[0]
    for prefix, svc in OWNERS:
        if p == prefix or p.startswith(prefix + "/"):
            return svc
    return "jobs"


def send(base, method, path, raw=None, token=None, ctype="application/json",
         headers=None):
    h = {"User-Agent": UA}
    if raw is not None and ctype:
        h["Content-Type"] = ctype
    if token:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    req = urllib.request.Request(base + path, data=raw, method=method, headers=h)
    try:
        with OPENER.open(req, timeout=20) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def norm(obj, path=()):
    """Volatile values -> their type; the /health service name dropped."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in VOLATILE:
                out[k] = "<%s>" % type(v).__name__
            elif k == "service" and path == () and isinstance(v, str):
                out[k] = "<service name>"
            else:
                out[k] = norm(v, path + (k,))
        return out
    if isinstance(obj, list):
        return [norm(v, path) for v in obj]
    return obj


def same_422(fx, app):
    """Both 422 lists: same length, same locs, equivalent types."""
    if not (isinstance(fx, list) and isinstance(app, list)) or len(fx) != len(app):
        return False
    for a, b in zip(fx, app):
        if not isinstance(a, dict) or not isinstance(b, dict):
            return False
        loc_a, loc_b = a.get("loc"), b.get("loc")
        if a.get("type") == "json_invalid":
            loc_a, loc_b = loc_a[:1], (loc_b or [])[:1]    # char offsets
        if loc_a != loc_b:
            return False
        if b.get("type") != a.get("type") and \
                b.get("type") not in V1.get(a.get("type"), ()):
            return False
    return True


def compare(label, fixture, apps, method, path, raw=None, token_pair=None,
            ctype="application/json", headers=None):
    tf, ta = token_pair or (None, None)
    f = send(fixture, method, path, raw, tf, ctype, headers)
    a = send(apps[owner(path)], method, path, raw, ta, ctype, headers)
    why = []
    if f[0] != a[0]:
        why.append("status %s vs %s" % (f[0], a[0]))
    for hname in ("Content-Type", "WWW-Authenticate"):
        if f[1].get(hname) != a[1].get(hname):
            why.append("%s %r vs %r" % (hname, f[1].get(hname), a[1].get(hname)))
    if f[0] == 405 and set(f[1].get("Allow", "").split(", ")) - \
            set(a[1].get("Allow", "").split(", ")):
        why.append("Allow %r vs %r" % (f[1].get("Allow"), a[1].get("Allow")))
    if f[0] == 307:
        lf, la = f[1].get("Location", ""), a[1].get("Location", "")
        if lf.split("/", 3)[-1] != la.split("/", 3)[-1]:
            why.append("Location %r vs %r" % (lf, la))
    try:
        jf, ja = json.loads(f[2] or b"null"), json.loads(a[2] or b"null")
    except ValueError:
        jf, ja = f[2], a[2]
    if f[0] == 422 and a[0] == 422 and isinstance(jf, dict) and isinstance(ja, dict):
        if not same_422(jf.get("detail"), ja.get("detail")):
            why.append("422 %s vs %s" % (json.dumps(jf)[:300], json.dumps(ja)[:300]))
    elif norm(jf) != norm(ja):
        why.append("body %s vs %s" % (json.dumps(norm(jf))[:400],
                                      json.dumps(norm(ja))[:400]))
    if why:
        DIFFS.append(label)
        print("DIFF %s %s %s: %s" % (label, method, path, "; ".join(why)))
        sys.stdout.flush()


def login(base, user="scheduler-service", password="scheduler-secret"):
    s, _, body = send(base, "POST", "/login", json.dumps(
        {"username": user, "password": password}).encode())
    assert s == 200, (base, s, body)
    return json.loads(body)["access_token"]


def requests_list():
    """(label, method, path, raw body or None, ctype, auth) -- auth: "ok",
    None (no header), "bad" (unknown token), "basic"."""
    out = []
    js = lambda o: json.dumps(o).encode()   # noqa: E731
    out.append(("health", "GET", "/health", None, None, None))
    for p in ("/", "/no/such/path", "/jobs", "/jobs/1/run/x", "/userss/1"):
        out.append(("unknown", "GET", p, None, None, "ok"))
    for m, p in (("DELETE", "/jobs/1"), ("GET", "/notifications"),
                 ("GET", "/login"), ("POST", "/verify"), ("POST", "/users/1"),
                 ("PUT", "/credentials/1"), ("GET", "/jobs/1/run"),
                 ("POST", "/health")):
        out.append(("405", m, p, None, None, "ok"))
    for p in ("/jobs/1/", "/users/2/preferences/", "/health/", "/verify/"):
        out.append(("307", "GET", p, None, None, "ok"))
    # login
    for body in ({"username": "scheduler-service", "password": "wrong"},
                 {"username": "nobody", "password": "x"},
                 {"username": "scheduler-service"}, {"password": "x"}, {},
                 {"username": 5, "password": "x"},
                 {"username": None, "password": None},
                 {"username": "a", "password": ["x"]}, [1, 2], "s", 5, None):
        out.append(("login", "POST", "/login", js(body), "application/json", None))
    for raw, ct in ((b'{"username": "a", ', "application/json"),
                    (b"", "application/json"), (b'"\xff\xfe\xfd', "application/json"),
                    (b"username=a", "text/plain"),
                    (b'{"username":"x","password":"y"}', None)):
        out.append(("login raw", "POST", "/login", raw, ct, None))
    # auth on every route
    routes = [("GET", "/verify"), ("GET", "/jobs/1"), ("GET", "/jobs/1/status"),
              ("POST", "/jobs/1/run"), ("POST", "/notifications"),
              ("GET", "/credentials/1"), ("GET", "/targets/1/credentials"),
              ("GET", "/users/1"), ("GET", "/users/1/preferences"),
              ("GET", "/jobs/abc"), ("GET", "/jobs/101")]
    for m, p in routes:
        for how in (None, "bad", "basic", "empty"):
            out.append(("auth %s" % how, m, p, None, None, how))
    out.append(("verify", "GET", "/verify", None, None, "ok"))
    # ids in and around range, and not ids
    for jid in list(range(0, 102)) + [-1, 100000]:
        out.append(("job", "GET", "/jobs/%d" % jid, None, None, "ok"))
        out.append(("job status", "GET", "/jobs/%d/status" % jid, None, None, "ok"))
    for bad in ("abc", "1.5", "1_0", "+5", "%31", "1e3", "0x10", "%20"):
        out.append(("job id", "GET", "/jobs/%s" % bad, None, None, "ok"))
        out.append(("user id", "GET", "/users/%s/preferences" % bad, None, None, "ok"))
    for cid in range(0, 22):
        out.append(("credential", "GET", "/credentials/%d" % cid, None, None, "ok"))
    for tid in range(0, 7):
        out.append(("target", "GET", "/targets/%d/credentials" % tid, None, None, "ok"))
    for uid in list(range(0, 52)) + [-3]:
        out.append(("user", "GET", "/users/%d" % uid, None, None, "ok"))
        out.append(("prefs", "GET", "/users/%d/preferences" % uid, None, None, "ok"))
    # run a job
    for body in ({"scheduled": True}, {}, {"n": [1, 2], "s": "\u00e9\u2014"},
                 [1], [["a", 1]], "s", 5, None, True):
        out.append(("run", "POST", "/jobs/7/run", js(body), "application/json", "ok"))
    for raw, ct in ((None, None), (b"", "application/json"),
                    (b'{"a": ', "application/json"),
                    (b'\xff\xfe{', "application/json"),
                    (b'{"a": 1}', "text/plain"), (b'{"a": 1}', None)):
        out.append(("run raw", "POST", "/jobs/8/run", raw, ct, "ok"))
    out.append(("run 404", "POST", "/jobs/101/run", js({}), "application/json", "ok"))
    out.append(("run bad id", "POST", "/jobs/x/run", js([1]), "application/json", "ok"))
    # notifications
    email = {"type": "email", "destination": "ops@example.com",
             "payload": {"subject": "s", "body": "b"}}
    slack = {"type": "slack", "destination": "#ops",
             "payload": {"message": "hi", "extra": {"a": 1}}}
    bodies = [email, slack]
    for t in (1, 10, 0, 11, -1, "3", " 4 ", 3.0, 3.5, True, "x", None, [1], "3.0"):
        bodies.append(dict(email, template_id=t))
    bodies += [dict(email, payload={"subject": "s"}),
               dict(email, payload={"subject": 1, "body": None}),
               dict(email, payload={}), dict(slack, payload={}),
               dict(slack, payload={"message": 5}),
               dict(slack, type="sms"), dict(slack, type=None),
               dict(slack, destination=5), dict(slack, destination=None),
               dict(email, payload=[1]), dict(email, payload="x"),
               dict(email, payload=None), {"type": "email"}, {}, [email], "x",
               dict(email, payload={"subject": "s"}, template_id="x"),
               dict(slack, type="sms", payload=[])]
    for b in bodies:
        out.append(("notify", "POST", "/notifications", js(b), "application/json", "ok"))
    out.append(("notify raw", "POST", "/notifications", b'{"type": "em',
                "application/json", "ok"))
    out.append(("notify empty", "POST", "/notifications", None, None, "ok"))
    out.append(("notify bad id and body", "POST", "/notifications", b"[1]",
                "application/json", "bad"))
    # a body over 1 MiB
    big = b'{"x": "' + b"a" * (1 << 20) + b'"}'
    out.append(("413", "POST", "/jobs/1/run", big, "application/json", "ok"))
    out.append(("413 unknown path", "POST", "/nowhere", big, "application/json", None))
    return out


def main():
    fixture = apps = None
    try:
        fixture = legacy_apps.start_fixture()
        apps = legacy_apps.LegacyApps()
        tf, ta = login(fixture.url), login(apps.urls["auth"])
        reqs = requests_list()
        for label, method, path, raw, ctype, how in reqs:
            headers, pair = None, None
            if how == "ok":
                pair = (tf, ta)
            elif how == "bad":
                pair = ("not-a-token", "not-a-token")
            elif how == "basic":
                headers = {"Authorization": "Basic Zm9vOmJhcg=="}
            elif how == "empty":
                headers = {"Authorization": "Bearer "}
            compare(label, fixture.url, apps.urls, method, path, raw, pair,
                    ctype, headers)
        print("%d requests, %d differences" % (len(reqs), len(DIFFS)))
    finally:
        codes = {}
        if apps is not None:
            codes.update(apps.stop())
        if fixture is not None:
            codes["fixture"] = fixture.stop()
    bad = {k: v for k, v in codes.items() if v != 0}
    if bad:
        print("FAIL did not exit 0 on SIGTERM: %r" % bad)
    return 1 if DIFFS or bad else 0


if __name__ == "__main__":
    sys.exit(main())
