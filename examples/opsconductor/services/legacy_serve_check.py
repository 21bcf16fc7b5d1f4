#!/usr/bin/python3
"""legacy_serve_check.py — the orpc OpsConductor services' legacy JSON routes,
held against the legacy fixture byte for byte, and the old Python caller
against the orpc jobs service.

Starts a development PKI (scripts/orpc-certs.sh), the legacy fixture
(tests/legacy/legacy_server.py: what the FastAPI services answer) and the
five orpc services (opsconductor-service) with --legacy-listen on 127.0.0.1
ephemeral ports: auth with its accounts, the other four with
--auth-target=auth (their bearer tokens verified by auth's Verify over
mutual TLS) and the example policies.  Then, in the mode asked for:

  --mode=routes  every legacy route of the five services, over plain
                 HTTP/1.1 with only the standard library (http.client), as
                 today's Python services call: found and not-found ids, no
                 token, a bad token and a valid one, login (good, bad
                 password, unknown account), wrong verb and unknown path.
                 Each answer is compared with the fixture's for the same
                 request: status, Content-Type, WWW-Authenticate on 401s,
                 the JSON with exact types (1 is not 1.0 is not "1"), and
                 the very bytes wherever no field is volatile (timestamps,
                 execution and notification ids, tokens: masked).
                 Also: a legacy identity the policy does not allow (the
                 executor's token on jobs, the scheduler's on credentials)
                 is 403 before the handler.
  --mode=caller  examples/opsconductor/legacy/caller.py (httpx, the old
                 Python caller) with JOBS_SERVICE_URL and AUTH_SERVICE_URL on
                 the orpc jobs and auth services' legacy ports: single calls
                 and a --loop over the jobs routes with missing ids; every
                 call must have its expected outcome.

Usage (run with /usr/bin/python3):
  legacy_serve_check.py --mode=routes|caller --svc=BUILD/bin/opsconductor-service
      --certs-sh=scripts/orpc-certs.sh --fixture=tests/legacy/legacy_server.py
      --caller=examples/opsconductor/legacy/caller.py

Prints one line per failed check and "N passed, M failed"; exits 1 if any
check failed.  OPSC_TEST_KEEP=1 keeps the temporary directory (logs).
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tests", "legacy"))
from http_check import (TIMEOUT, UA, Reply, Tally, masked,  # noqa: E402,F401
                        request, strict_equal)
ACCOUNTS = {"scheduler-service": "scheduler-secret",
            "executor-service": "executor-secret"}

check = Tally()


def same(name, fx, orpc, exact=True):
    """|orpc| answers as the fixture did: status, content type, the
    challenge of a 401, the JSON, and (when |exact|) the very bytes."""
    check(name + ": status", fx.status == orpc.status,
          "fixture %r, orpc %r" % (fx, orpc))
    check(name + ": content type", (orpc.header("Content-Type") or "")
          .startswith("application/json"), orpc.header("Content-Type"))
    if fx.status == 401:
        check(name + ": WWW-Authenticate", orpc.header("WWW-Authenticate") ==
              fx.header("WWW-Authenticate"), orpc.headers)
    a, b = fx.json(), orpc.json()
    check(name + ": JSON", a is not None and b is not None and
          strict_equal(masked(a), masked(b)),
          "fixture %r\n     orpc %r" % (fx.data[:400], orpc.data[:400]))
    if exact:
        check(name + ": bytes", fx.data == orpc.data,
              "fixture %r\n     orpc %r" % (fx.data[:400], orpc.data[:400]))


# --- processes --------------------------------------------------------------

class Platform(object):
    """The fixture and the five orpc services, in a temporary directory."""

    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="opsc-legacy-")
        self.procs = []
        self.ports = {}    # name -> (grpc port, legacy port)
        self.fixture = None

    def start_proc(self, name, cmd, marker):
        """Starts |cmd| (stderr to NAME.log) and reads its stdout until the
        line starting with |marker|; returns {first word pair: port}."""
        log = open(os.path.join(self.dir, name + ".log"), "w")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                             text=True)
        log.close()
        self.procs.append((name, p))
        seen = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            words = line.split()
            if len(words) >= 3 and words[-1].isdigit():
                seen[words[0]] = int(words[-1])
            if line.startswith(marker):
                return seen
        raise RuntimeError("%s did not start (see %s.log)" % (name, name))

    def start(self):
        a = self.args
        certs = os.path.join(self.dir, "certs")
        subprocess.run(["/bin/sh", a.certs_sh, "all", "--out", certs],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        acc = os.path.join(self.dir, "accounts")
        with open(os.open(acc, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            for user, pw in ACCOUNTS.items():
                f.write("%s:%s\n" % (user, pw))
        fx_acc = os.path.join(self.dir, "fixture-accounts.json")
        with open(fx_acc, "w") as f:
            json.dump(ACCOUNTS, f)
        self.fixture = self.start_proc(
            "fixture", ["/usr/bin/python3", a.fixture, "--port=0",
                        "--accounts=" + fx_acc], "listening on")["listening"]
        pol = os.path.join(HERE, "policies")
        ids = os.path.join(HERE, "identities.conf")

        def svc(name, *extra):
            cmd = [a.svc, "--service=" + name, "--listen=127.0.0.1:0",
                   "--legacy-listen=127.0.0.1:0",
                   "--tls-cert=%s/%s.pem" % (certs, name),
                   "--tls-key=%s/%s.key" % (certs, name),
                   "--tls-ca=%s/ca.pem" % certs,
                   "--policy=%s/%s.json" % (pol, name),
                   "--die-with-parent"] + list(extra)
            seen = self.start_proc(name, cmd, "listening on")
            self.ports[name] = (seen["listening"], seen["legacy"])

        svc("auth", "--accounts=" + acc, "--identities=" + ids)
        target = "--auth-target=127.0.0.1:%d" % self.ports["auth"][0]
        svc("jobs", target, "--identities=" + ids,
            "--db=" + os.path.join(self.dir, "jobs.db"))
        svc("notification", target)
        svc("credentials", target)
        svc("user", target)

    def legacy(self, name):
        return self.ports[name][1]

    def stop(self):
        """SIGTERM to every process; each orpc service must exit 0."""
        codes = {}
        for name, p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
        for name, p in reversed(self.procs):
            try:
                codes[name] = p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
        for name, code in codes.items():
            if name != "fixture":
                check("%s exits 0 on SIGTERM" % name, code == 0, code)
        if os.environ.get("OPSC_TEST_KEEP") == "1" or check.failed:
            print("logs in %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def login(port, user):
    r = request(port, "POST", "/login",
                {"username": user, "password": ACCOUNTS[user]})
    return (r.json() or {}).get("access_token"), r


# --- mode routes -------------------------------------------------------------

def check_auth_routes(fx, au):
    good = {"username": "scheduler-service", "password": "scheduler-secret"}
    a = request(fx, "POST", "/login", good)
    b = request(au, "POST", "/login", good)
    same("POST /login", a, b, exact=False)
    check("POST /login: a token", isinstance((b.json() or {})
                                             .get("access_token"), str), b)
    for name, body in [("bad password", {"username": "scheduler-service",
                                         "password": "wrong"}),
                       ("unknown account", {"username": "nobody",
                                            "password": "x"})]:
        same("POST /login (%s)" % name, request(fx, "POST", "/login", body),
             request(au, "POST", "/login", body))
    tfx, _ = login(fx, "scheduler-service")
    tau, _ = login(au, "scheduler-service")
    same("GET /verify", request(fx, "GET", "/verify", token=tfx),
         request(au, "GET", "/verify", token=tau))
    same("GET /verify (executor)",
         request(fx, "GET", "/verify", token=login(fx, "executor-service")[0]),
         request(au, "GET", "/verify", token=login(au, "executor-service")[0]))
    check_auth_cases("auth", fx, au, "GET", "/verify")


def check_auth_cases(svc, fx, port, method, path, body=None):
    """No token, a bad one, another scheme: the fixture's 401s."""
    for name, kw in [("no token", {}), ("bad token", {"token": "not-a-token"}),
                     ("empty bearer", {"raw_auth": "Bearer "}),
                     ("basic scheme", {"raw_auth": "Basic dXNlcjpwdw=="})]:
        same("%s %s %s (%s)" % (svc, method, path, name),
             request(fx, method, path, body, **kw),
             request(port, method, path, body, **kw))


def check_jobs(fx, jl, tfx, tor):
    r = request(jl, "GET", "/health")
    check("jobs legacy port: GET /health 200 without a token",
          r.status == 200 and r.json() == {"status": "healthy"}, repr(r))
    for path in ["/jobs/1", "/jobs/7", "/jobs/100", "/jobs/1/status",
                 "/jobs/7/status", "/jobs/100/status", "/jobs/0", "/jobs/101",
                 "/jobs/1000", "/jobs/0/status", "/jobs/1000/status"]:
        same("GET " + path, request(fx, "GET", path, token=tfx),
             request(jl, "GET", path, token=tor))
    for body in [{"scheduled": True, "n": 2, "tags": ["a"], "x": None,
                  "f": 1.5}, None, {}]:
        name = "POST /jobs/3/run %s" % json.dumps(body)
        a = request(fx, "POST", "/jobs/3/run", body, token=tfx)
        b = request(jl, "POST", "/jobs/3/run", body, token=tor)
        same(name, a, b, exact=False)
        check(name + ": execution_id an integer",
              type((b.json() or {}).get("execution_id")) is int, b)
    same("POST /jobs/1000/run (not found)",
         request(fx, "POST", "/jobs/1000/run", {}, token=tfx),
         request(jl, "POST", "/jobs/1000/run", {}, token=tor))
    for method, path in [("DELETE", "/jobs/7"), ("GET", "/jobs/7/run"),
                         ("GET", "/nothing/here")]:
        same("%s %s" % (method, path), request(fx, method, path, token=tfx),
             request(jl, method, path, token=tor))
    for method, path in [("GET", "/jobs/7"), ("GET", "/jobs/7/status"),
                         ("POST", "/jobs/3/run")]:
        check_auth_cases("jobs", fx, jl, method, path,
                         {} if method == "POST" else None)


def check_notification(fx, nl, tfx, tor):
    email = {"type": "email", "destination": "ops@example.com",
             "payload": {"subject": "s", "body": "b"}}
    slack = {"type": "slack", "destination": "#ops",
             "payload": {"message": "m", "x": 1}, "template_id": 3}
    for body in [email, slack, dict(email, template_id=10),
                 dict(email, template_id=None)]:
        name = "POST /notifications %s" % json.dumps(body)
        a = request(fx, "POST", "/notifications", body, token=tfx)
        b = request(nl, "POST", "/notifications", body, token=tor)
        same(name, a, b, exact=False)
        check(name + ": notification_id an integer",
              type((b.json() or {}).get("notification_id")) is int, b)
    for tid in (0, 11, 77):
        body = dict(email, template_id=tid)
        same("POST /notifications template %d (not found)" % tid,
             request(fx, "POST", "/notifications", body, token=tfx),
             request(nl, "POST", "/notifications", body, token=tor))
    # invalid notifications: FastAPI answers 422 with pydantic's list, orpc
    # 400 with one detail naming every fault; both refuse, with a detail
    for body in [{"type": "fax", "destination": "x", "payload": {}},
                 {"type": "email", "destination": "x", "payload": {}}]:
        a = request(fx, "POST", "/notifications", body, token=tfx)
        b = request(nl, "POST", "/notifications", body, token=tor)
        check("POST /notifications %s: both refuse" % json.dumps(body),
              400 <= a.status < 500 and 400 <= b.status < 500 and
              "detail" in (b.json() or {}), "%r %r" % (a, b))
    same("GET /notifications (wrong verb)",
         request(fx, "GET", "/notifications", token=tfx),
         request(nl, "GET", "/notifications", token=tor))
    check_auth_cases("notification", fx, nl, "POST", "/notifications", email)


def check_credentials(fx, cl, tfx, tor):
    paths = ["/credentials/%d" % c for c in list(range(0, 22)) + [99]]
    paths += ["/targets/%d/credentials" % t for t in range(0, 7)]
    for path in paths:
        same("GET " + path, request(fx, "GET", path, token=tfx),
             request(cl, "GET", path, token=tor))
    for path in ["/credentials/1", "/targets/2/credentials"]:
        check_auth_cases("credentials", fx, cl, "GET", path)


def check_user(fx, ul, tfx, tor):
    paths = []
    for u in list(range(0, 52)) + [999]:
        paths += ["/users/%d" % u, "/users/%d/preferences" % u]
    for path in paths:
        same("GET " + path, request(fx, "GET", path, token=tfx),
             request(ul, "GET", path, token=tor))
    for path in ["/users/1", "/users/1/preferences"]:
        check_auth_cases("user", fx, ul, "GET", path)


def check_policy(pf, au):
    """A legacy identity the policy does not allow: 403 with the reason."""
    sched, _ = login(au, "scheduler-service")
    execu, _ = login(au, "executor-service")
    for svc, path, tok, who in [
            ("jobs", "/jobs/7", execu, "executor-service"),
            ("credentials", "/credentials/1", sched, "scheduler-service"),
            ("user", "/users/1", sched, "scheduler-service")]:
        r = request(pf.legacy(svc), "GET", path, token=tok)
        check("%s %s as %s: 403" % (svc, path, who), r.status == 403 and
              "legacy-service:%s is not allowed" % who in
              (r.json() or {}).get("detail", ""), r)
    r = request(pf.legacy("notification"), "POST", "/notifications",
                {"type": "slack", "destination": "#x",
                 "payload": {"message": "m"}}, token=sched)
    check("notification as scheduler-service: 403", r.status == 403, r)


def mode_routes(pf):
    fx, au = pf.fixture, pf.legacy("auth")
    check_auth_routes(fx, au)
    # the scheduler reads jobs; the executor the rest (the policies)
    sfx, _ = login(fx, "scheduler-service")
    sor, r = login(au, "scheduler-service")
    check("login at orpc auth's legacy port", sor is not None, r)
    efx, _ = login(fx, "executor-service")
    eor, _ = login(au, "executor-service")
    check_jobs(fx, pf.legacy("jobs"), sfx, sor)
    check_notification(fx, pf.legacy("notification"), efx, eor)
    check_credentials(fx, pf.legacy("credentials"), efx, eor)
    check_user(fx, pf.legacy("user"), efx, eor)
    check_policy(pf, au)
    # the auth service gone: tokens it issued cannot be judged (503)
    for name, p in pf.procs:
        if name == "auth":
            p.send_signal(signal.SIGTERM)
            check("auth exits 0 on SIGTERM", p.wait(timeout=15) == 0)
    r = request(pf.legacy("credentials"), "GET", "/credentials/1",
                token="a-token-never-seen")
    check("auth down: 503 Auth service unavailable", r.status == 503 and
          r.json() == {"detail": "Auth service unavailable"}, r)
    pf.procs = [(n, p) for n, p in pf.procs if n != "auth"]


# --- mode caller ---------------------------------------------------------------

def mode_caller(pf, caller):
    env = dict(os.environ)
    env.update({
        "AUTH_SERVICE_URL": "http://127.0.0.1:%d" % pf.legacy("auth"),
        "JOBS_SERVICE_URL": "http://127.0.0.1:%d" % pf.legacy("jobs"),
        "SCHEDULER_SERVICE_USERNAME": "scheduler-service",
        "SCHEDULER_SERVICE_PASSWORD": ACCOUNTS["scheduler-service"],
        "SERVICE_COMM_LOG_ENABLED": "false", "LOG_LEVEL": "WARNING",
        "SERVICE_HTTP_TIMEOUT": "10", "SERVICE_HTTP_CONNECT_TIMEOUT": "5",
        "SERVICE_HTTP_RETRY_DELAY": "0.2"})

    def run(*flags):
        return subprocess.run(["/usr/bin/python3", caller,
                               "--caller=scheduler"] + list(flags), env=env,
                              capture_output=True, text=True, timeout=120)

    r = run("--call=get_job", "--id=7")
    check("caller get_job 7: exit 0", r.returncode == 0, r.stderr)
    try:
        job = json.loads(r.stdout)
    except ValueError:
        job = None
    check("caller get_job 7: the job", isinstance(job, dict) and
          job.get("id") == 7 and job.get("name") == "job-7", r.stdout)
    r = run("--call=run_job", "--id=5")
    check("caller run_job 5: exit 0", r.returncode == 0, r.stderr)
    try:
        ex = json.loads(r.stdout)
    except ValueError:
        ex = None
    check("caller run_job 5: queued by the scheduler", isinstance(ex, dict)
          and ex.get("status") == "queued" and
          ex.get("triggered_by") == "scheduler-service", r.stdout)
    r = run("--call=get_job", "--id=1000")
    check("caller get_job 1000: NotFoundError, exit 1", r.returncode == 1 and
          "NotFound" in (r.stdout + r.stderr), r.stdout + r.stderr)
    summary = os.path.join(pf.dir, "summary.json")
    r = run("--loop", "--seconds=3", "--rate=30", "--routes=jobs",
            "--concurrency=8", "--missing_every=5", "--summary=" + summary)
    check("caller --loop over the jobs routes: exit 0", r.returncode == 0,
          r.stdout[-600:] + r.stderr[-600:])
    try:
        with open(summary) as f:
            s = json.load(f)
    except (OSError, ValueError):
        s = {}
    check("caller --loop: calls made, none failed",
          s.get("failed") == 0 and s.get("calls", s.get("total", 0)) > 20,
          json.dumps(s)[:600])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["routes", "caller"], required=True)
    ap.add_argument("--svc", required=True)
    ap.add_argument("--certs-sh", required=True)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--caller")
    args = ap.parse_args()
    pf = Platform(args)
    try:
        pf.start()
        if args.mode == "routes":
            mode_routes(pf)
        else:
            mode_caller(pf, args.caller)
    except Exception as e:  # noqa: BLE001 — one failed check, then stop all
        check("no exception", False, repr(e))
    finally:
        pf.stop()
    sys.exit(check.summary())


if __name__ == "__main__":
    main()
