#!/usr/bin/python3
"""examples/opsconductor/legacy/caller.py, the legacy Python caller.

Against the five FastAPI apps (127.0.0.1, ephemeral ports): it refuses to
start without credentials; the token is cached, kept until 60 s before it
expires, refreshed once after a 401 and never twice; errors come out as the
class their status names; the --loop summary counts every call, matching
what the jobs and notification services recorded; SIGTERM ends a loop with
its summary.  Against the legacy fixture (which can force any status and
records headers): the headers of every call, 400/403/500/502/503/409 and
non-JSON replies, retries, a login reply without access_token or
expires_in, and one login for many concurrent callers.
Prints one line per failed check and "N passed, M failed"; exits 1 on any
failure."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import legacy_apps  # noqa: E402

sys.path.insert(0, legacy_apps.LEGACY)
import caller as C  # noqa: E402

CALLER = os.path.join(legacy_apps.LEGACY, "caller.py")
PASSED = FAILED = 0


def check(name, cond, info=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL %s%s" % (name, (": " + str(info)[:600]) if info else ""))
        sys.stdout.flush()


def http(method, url, doc=None):
    data = json.dumps(doc).encode() if doc is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json", "User-Agent": "OpsConductor-test/1.0.0"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def env_for(urls, user="scheduler-service", password="scheduler-secret",
            **extra):
    env = {"SCHEDULER_SERVICE_USERNAME": user,
           "SCHEDULER_SERVICE_PASSWORD": password,
           "SERVICE_COMM_LOG_ENABLED": "false", "LOG_LEVEL": "WARNING",
           "SERVICE_HTTP_TIMEOUT": "10", "SERVICE_HTTP_CONNECT_TIMEOUT": "5",
           "SERVICE_HTTP_RETRY_DELAY": "0.05"}
    for svc, url in urls.items():
        env[svc.upper() + "_SERVICE_URL"] = url
    env.update(extra)
    return env


async def raises(name, cls, coro, status=None, detail=None):
    try:
        got = await coro
    except C.ServiceError as e:
        check(name, type(e) is cls and (status is None or e.status == status)
              and (detail is None or e.detail == detail),
              "%s %s %r" % (type(e).__name__, e.status, e.detail))
        return e
    check(name, False, "no error: %r" % (got,))
    return None


# ---------------------------------------------------------------------------
# Against the FastAPI apps
# ---------------------------------------------------------------------------

async def apps_client_checks(apps):
    auth = apps.urls["auth"]

    def logins():
        return http("GET", auth + "/_debug/stats")["login_requests"]

    # caching, and one refresh after the tokens expire
    n0 = logins()
    async with C.LegacyClient("scheduler", env_for(apps.urls)) as c:
        for jid in range(1, 11):
            j = await c.get_job(jid)
            check("get_job %d" % jid, j.get("id") == jid, j)
        check("one login for 10 calls", c.auth.logins == 1 and
              logins() - n0 == 1, (c.auth.logins, logins() - n0))
        http("POST", auth + "/_debug/expire_tokens", {})
        j = await c.get_job_status(3)
        check("call after expiry succeeds", j.get("job_id") == 3, j)
        check("one refresh after expiry", c.auth.logins == 2 and
              c.auth.refreshes == 1 and logins() - n0 == 2,
              (c.auth.logins, c.auth.refreshes, logins() - n0))
        await c.get_user(2)
        check("new token cached", c.auth.logins == 2 and logins() - n0 == 2)
        # many concurrent callers after an expiry: one refresh between them
        http("POST", auth + "/_debug/expire_tokens", {})
        got = await asyncio.gather(*[c.get_credential(i % 20 + 1)
                                     for i in range(20)])
        check("20 concurrent calls after expiry", all(
            g.get("id") == i % 20 + 1 for i, g in enumerate(got)))
        check("single-flight refresh", c.auth.refreshes == 2 and
              logins() - n0 == 3, (c.auth.refreshes, logins() - n0))

        # errors by status
        await raises("404 NotFoundError", C.NotFoundError, c.get_job(101),
                     404, "Job 101 not found")
        await raises("404 template", C.NotFoundError, c.send_notification(
            "email", "a@b", {"subject": "s", "body": "b"}, 99), 404,
            "Template 99 not found")
        e = await raises("422 ValidationError (path)", C.ValidationError,
                         c.get_job("abc"), 422)
        check("422 detail is the validation list", e is not None and
              isinstance(e.detail, list) and
              e.detail[0]["loc"] == ["path", "job_id"], e and e.detail)
        await raises("422 ValidationError (body)", C.ValidationError,
                     c.send_notification("sms", "x", {}), 422)
        r = await c.send_notification("slack", "#ops", {"message": "hi"}, 2)
        check("notification sent", r.get("status") == "sent" and
              r.get("template_id") == 2, r)
        r = await c.run_job(5, {"scheduled": True})
        check("run_job", r.get("status") == "queued" and
              r.get("payload") == {"scheduled": True} and
              r.get("triggered_by") == "scheduler-service", r)
        r = await c.verify()
        check("verify", r == {"user": {"username": "scheduler-service",
                                       "service": True}}, r)

    # bad credentials: AuthError from the login, no retry
    n0 = logins()
    async with C.LegacyClient("scheduler", env_for(
            apps.urls, password="wrong")) as c:
        await raises("bad password AuthError", C.AuthError, c.get_job(1), 401,
                     "Invalid credentials")
        check("bad password: one login request", logins() - n0 == 1,
              logins() - n0)

    # the token kept until 60 s before expiry: a 64 s token, 4 s
    async with C.LegacyClient("scheduler", env_for(
            apps.urls, user="ttl64-service", password="ttl64-secret")) as c:
        await c.get_job(1)
        await c.get_job(2)
        check("64 s token cached", c.auth.logins == 1, c.auth.logins)
        await asyncio.sleep(4.2)
        await c.get_job(3)
        check("64 s token replaced after 4 s, before any 401",
              c.auth.logins == 2 and c.auth.refreshes == 0,
              (c.auth.logins, c.auth.refreshes))

    # a token rejected even when new: one refresh, then AuthError (no loop)
    n0 = logins()
    async with C.LegacyClient("scheduler", env_for(
            apps.urls, user="zero-ttl-service", password="zero-secret")) as c:
        await raises("always-401 AuthError", C.AuthError, c.get_job(1), 401,
                     "Invalid or expired token")
        check("always-401: login, one refresh, no more",
              c.auth.logins == 2 and c.auth.refreshes == 1 and
              logins() - n0 == 2, (c.auth.logins, c.auth.refreshes,
                                   logins() - n0))

    # unreachable: ServiceCommunicationError after the retries
    dead = dict(apps.urls, jobs="http://127.0.0.1:9")
    async with C.LegacyClient("scheduler", env_for(
            dead, SERVICE_HTTP_MAX_RETRIES="2")) as c:
        t0 = time.monotonic()
        await raises("unreachable ServiceCommunicationError",
                     C.ServiceCommunicationError, c.get_job(1), None)
        check("unreachable: 2 retries", c.retries == 2 and
              time.monotonic() - t0 >= 0.1, c.retries)


# ---------------------------------------------------------------------------
# Against the fixture
# ---------------------------------------------------------------------------

async def fixture_client_checks(fx):
    base = fx.url
    urls = {s: base for s in legacy_apps.SERVICES}

    def config(**doc):
        http("POST", base + "/_fixture/config", doc)

    def stats():
        return http("GET", base + "/_fixture/stats")

    http("POST", base + "/_fixture/reset", {"tokens": True})
    async with C.LegacyClient("scheduler", env_for(
            urls, SERVICE_HTTP_MAX_RETRIES="3")) as c:
        await c.get_job(1)
        await c.run_job(2, {"scheduled": True})
        await c.run_job(3)
        await c.send_notification("email", "a@b", {"subject": "s", "body": "b"})
        await c.get_target_credentials(1)
        await c.get_user_preferences(4)
        log = http("GET", base + "/_fixture/requests")
        check("headers: every request clean", log and all(
            e["problems"] == [] for e in log), [e["problems"] for e in log])
        check("headers: User-Agent", all(
            e["headers"].get("user-agent") == "OpsConductor-scheduler/1.0.0"
            for e in log))
        check("headers: Content-Type on every call", all(
            e["headers"].get("content-type") == "application/json" for e in log))
        check("headers: no Authorization on /login, Bearer elsewhere", all(
            ("authorization" in e["headers"]) == (e["path"] != "/login")
            for e in log) and all(e["headers"]["authorization"].startswith(
                "Bearer ") for e in log if e["path"] != "/login"))
        check("run_job without payload sends no body",
              log[3]["path"] == "/jobs/3/run" and log[3]["body_len"] == 0,
              log[3:4])

        for status, cls in ((400, C.ValidationError), (403, C.AuthError),
                            (422, C.ValidationError), (404, C.NotFoundError),
                            (500, C.DatabaseError),
                            (409, C.ServiceCommunicationError),
                            (501, C.ServiceCommunicationError)):
            n = stats()["requests"]
            config(rules=[{"route": "GET /jobs/7", "status": status,
                           "detail": "forced", "times": 1}])
            await raises("forced %d %s" % (status, cls.__name__), cls,
                         c.get_job(7), status, "forced")
            check("forced %d not retried" % status, stats()["requests"] == n + 1)
        for status in (502, 503, 504):
            r0 = c.retries
            config(rules=[{"route": "GET /jobs/8", "status": status, "times": 2}])
            j = await c.get_job(8)
            check("%d twice, then served" % status, j.get("id") == 8 and
                  c.retries - r0 == 2, (j, c.retries - r0))
        n, r0 = stats()["requests"], c.retries
        config(rules=[{"route": "GET /jobs/9", "status": 503}])
        await raises("503 always ServiceCommunicationError",
                     C.ServiceCommunicationError, c.get_job(9), 503)
        check("503 always: 1 + 3 attempts", stats()["requests"] == n + 4 and
              c.retries - r0 == 3, (stats()["requests"] - n, c.retries - r0))
        config(clear_rules=True, rules=[
            {"route": "GET /jobs/10", "close": True, "times": 1}])
        j = await c.get_job(10)
        check("dropped connection retried", j.get("id") == 10, j)
        config(rules=[{"route": "GET /jobs/11", "raw": "<html>", "times": 1}])
        await raises("non-JSON 200 ServiceCommunicationError",
                     C.ServiceCommunicationError, c.get_job(11), 200)
        n = stats()["login_requests"]
        config(rules=[{"route": "GET /jobs/12", "status": 401, "times": 1}])
        j = await c.get_job(12)
        check("forced 401: one refresh, retried", j.get("id") == 12 and
              stats()["login_requests"] == n + 1, stats()["login_requests"] - n)
        n = stats()["login_requests"]
        config(rules=[{"route": "GET /jobs/12", "status": 401, "times": 2}])
        await raises("401 twice AuthError", C.AuthError, c.get_job(12), 401)
        check("401 twice: one refresh only", stats()["login_requests"] == n + 1,
              stats()["login_requests"] - n)

    # concurrent first calls: one login
    http("POST", base + "/_fixture/reset", {"tokens": True})
    async with C.LegacyClient("scheduler", env_for(urls)) as c:
        got = await asyncio.gather(*[c.get_user(i + 1) for i in range(20)])
        check("20 concurrent first calls", all(
            g.get("id") == i + 1 for i, g in enumerate(got)))
        check("20 concurrent first calls: one login",
              stats()["login_requests"] == 1, stats()["login_requests"])
    # login replies: no access_token; no expires_in (3600 assumed)
    async with C.LegacyClient("scheduler", env_for(urls)) as c:
        config(rules=[{"route": "POST /login", "json": {"detail": "no"},
                       "times": 1}])
        await raises("login without access_token AuthError", C.AuthError,
                     c.get_job(1))
        config(rules=[{"route": "POST /login", "omit": ["expires_in"],
                       "times": 1}])
        await c.get_job(1)
        await c.get_job(2)
        check("no expires_in: cached", c.auth.logins == 1, c.auth.logins)
    http("POST", base + "/_fixture/reset", {"tokens": True})


# ---------------------------------------------------------------------------
# The program
# ---------------------------------------------------------------------------

def run_caller(args, env, timeout=60):
    return subprocess.run([legacy_apps.PY, CALLER] + args, env=env,
                          capture_output=True, text=True, timeout=timeout)


def cli_checks(apps):
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith("SCHEDULER_SERVICE_")}
    stats0 = http("GET", apps.urls["auth"] + "/_debug/stats")
    r = run_caller(["--loop", "--seconds=1", "--rate=10"],
                   dict(base_env, AUTH_SERVICE_URL=apps.urls["auth"],
                        JOBS_SERVICE_URL=apps.urls["jobs"]))
    check("no credentials: exit 2", r.returncode == 2 and
          "SCHEDULER_SERVICE_USERNAME" in r.stderr and r.stdout == "", r)
    r = run_caller(["--loop", "--seconds=1", "--rate=10"],
                   dict(base_env, SCHEDULER_SERVICE_USERNAME="scheduler-service",
                        AUTH_SERVICE_URL=apps.urls["auth"]))
    check("no password: exit 2", r.returncode == 2, r)
    check("no credentials: nothing sent", http(
        "GET", apps.urls["auth"] + "/_debug/stats")["login_requests"] ==
        stats0["login_requests"])

    # a bounded loop over every route
    env = dict(os.environ, **env_for(apps.urls))
    ex0 = http("GET", apps.urls["jobs"] + "/_debug/executions")["count"]
    sent0 = http("GET", apps.urls["notification"] + "/_debug/sent")["count"]
    seconds, rate, every = 2, 40, 5
    r = run_caller(["--loop", "--seconds=%d" % seconds, "--rate=%d" % rate,
                    "--missing_every=%d" % every, "--concurrency=8"], env)
    try:
        s = json.loads(r.stdout)
    except ValueError:
        s = {}
    check("loop exit 0", r.returncode == 0, r)
    routes = C.GROUPS["all"]
    n = seconds * rate
    missing = sum(1 for i in range(n)
                  if routes[i % len(routes)] != "verify" and i % every == every - 1)
    check("loop: every scheduled call made", s.get("calls") == n, s.get("calls"))
    check("loop: ok and expected NotFoundError", s.get("ok") == n - missing and
          s.get("expected_errors") == missing and s.get("failed") == 0 and
          s.get("by_outcome") == {"ok": n - missing, "NotFoundError": missing},
          {k: s.get(k) for k in ("ok", "expected_errors", "failed", "by_outcome")})
    br = s.get("by_route", {})
    check("loop: by route adds up", sum(v["calls"] for v in br.values()) == n
          and all(sum(v["outcomes"].values()) == v["calls"] for v in br.values())
          and len(br) == 9, br)
    check("loop: routes", set(br) == {C.ROUTES[x][0] for x in routes}, sorted(br))
    check("loop: p50/p99", all(isinstance(v["p50_ms"], float) and
                               v["p99_ms"] >= v["p50_ms"] for v in br.values()))
    check("loop: one login", s.get("logins") == 1 and
          s.get("token_refreshes") == 0, s.get("logins"))
    ex = http("GET", apps.urls["jobs"] + "/_debug/executions")["count"] - ex0
    sent = http("GET", apps.urls["notification"] + "/_debug/sent")["count"] - sent0
    check("loop: jobs run as counted",
          ex == br.get("POST /jobs/{job_id}/run", {}).get("outcomes", {}).get("ok"),
          (ex, br.get("POST /jobs/{job_id}/run")))
    check("loop: notifications sent as counted",
          sent == br.get("POST /notifications", {}).get("outcomes", {}).get("ok"),
          (sent, br.get("POST /notifications")))

    # jobs only, ended by SIGTERM: the summary still comes
    jenv = dict(os.environ, **env_for({"auth": apps.urls["auth"],
                                       "jobs": apps.urls["jobs"]}))
    p = subprocess.Popen([legacy_apps.PY, CALLER, "--loop", "--seconds=60",
                          "--rate=20", "--routes=jobs"], env=jenv,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    try:
        s = json.loads(out)
    except ValueError:
        s = {}
    check("SIGTERM: summary, exit 0", p.returncode == 0 and
          0 < s.get("calls", 0) < 60 * 20 and s.get("failed") == 0 and
          time.monotonic() - t0 < 15, (p.returncode, out[:300], err[-300:]))
    check("SIGTERM: jobs routes only", set(s.get("by_route", {})) <=
          {"POST /jobs/{job_id}/run", "GET /jobs/{job_id}",
           "GET /jobs/{job_id}/status"} and s.get("calls") == s.get("ok"), s)
    r = run_caller(["--call=get_job", "--id=7"], env)
    check("--call get_job", r.returncode == 0 and json.loads(r.stdout)["id"] == 7, r)
    r = run_caller(["--call=get_job", "--id=700"], env)
    check("--call 404", r.returncode == 1 and
          json.loads(r.stdout)["error"] == "NotFoundError", r)


def main():
    apps = fx = None
    codes = {}
    try:
        apps = legacy_apps.LegacyApps()
        fx = legacy_apps.start_fixture()
        asyncio.run(apps_client_checks(apps))
        asyncio.run(fixture_client_checks(fx))
        cli_checks(apps)
    except Exception as e:      # noqa: BLE001
        import traceback
        traceback.print_exc()
        check("no exception", False, e)
    finally:
        if apps is not None:
            codes.update(apps.stop())
        if fx is not None:
            codes["fixture"] = fx.stop()
    check("every server exits 0 on SIGTERM",
          all(c == 0 for c in codes.values()), codes)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
