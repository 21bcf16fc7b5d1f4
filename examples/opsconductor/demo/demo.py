#!/usr/bin/python3
"""OpsConductor's migration to orpc, end to end, on loopback (`make demo`).

Usage: demo.py [--build=DIR (build)] [--out=DIR (DIR/demo)] [--quick]
               [--results=FILE]

Mints a development PKI, starts the five legacy FastAPI services and the
five orpc services (mutual TLS, authorization policies, each also serving
its legacy JSON routes), the scheduler and the executor under steady load,
and walks the migration while they keep calling:

  1. everything legacy: the FastAPI services answer (and the old Python
     caller, as today);
  2. jobs: shadow -> shadow-grpc -> grpc; a seeded difference shows what a
     mismatch looks like, an `ignore` line fixes it, then none is expected;
  3. notification (with credentials and user) in fallback: its gRPC server
     stopped, calls go on over legacy; restarted, they come back to gRPC;
  4. the jobs service restarted mid-run: no job lost (SQLite), the callers
     ride it out through retries;
  5. a caller the policy does not allow gets PERMISSION_DENIED;
  6. the FastAPI jobs service stopped: the old Python caller goes on against
     the orpc jobs service's legacy route.

Each step prints a table (method, side, status, count, p50/p99) and what it
checked.  Exits 0 only if every step behaved as described, with no failed
call across every switch; 1 otherwise; 2 when it cannot start.  Every
process it starts listens on 127.0.0.1 (ephemeral ports) and is stopped
before it exits.  --results writes what was checked as JSON (the
end-to-end test reads that, not the tables).  Standard library only.
"""

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
LEGACY = os.path.join(ROOT, "examples", "opsconductor", "legacy")
SERVICES_DIR = os.path.join(ROOT, "examples", "opsconductor", "services")
PY = "/usr/bin/python3"
SERVICES = ("auth", "jobs", "notification", "credentials", "user")
JOBS = "opsconductor.jobs.v1.JobsService"
NOTIFICATION = "opsconductor.notification.v1.NotificationService"
CREDENTIALS = "opsconductor.credentials.v1.CredentialsService"
USER = "opsconductor.user.v1.UserService"
PROGRAMS = ("scheduler", "executor")
# The accounts of the platform's callers (the FastAPI auth service and the
# orpc auth service get the same ones, with fresh passwords each run).
ACCOUNTS = ("scheduler-service", "executor-service", "jobs-service",
            "notification-service", "credentials-service", "user-service")


def die_with_parent():
    """In a child: SIGKILL when the demo dies, so nothing is left behind."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Proc(object):
    """A started process: its stdout lines `<what> on <port>` are collected
    (listening, legacy, admin), stderr goes to LOGS/<name>.log."""

    def __init__(self, name, argv, env, logs, expect=("listening",)):
        self.name, self.argv, self.env, self.logs = name, argv, env, logs
        self.expect = expect
        self.ports = {}
        self.start()

    def start(self):
        self.ports = {}
        self.log = open(os.path.join(self.logs, self.name + ".log"), "a")
        self.p = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                  stderr=self.log, env=self.env, text=True,
                                  preexec_fn=die_with_parent, cwd=ROOT)
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            m = re.match(r"^(\w+) on (\d+)$", line.strip())
            if m:
                self.ports[m.group(1)] = int(m.group(2))
                if all(k in self.ports for k in self.expect):
                    self.ready.set()
        self.ready.set()

    def wait_ready(self, timeout=30):
        self.ready.wait(timeout)
        if not all(k in self.ports for k in self.expect):
            raise RuntimeError("%s did not start (see %s)" % (
                self.name, os.path.join(self.logs, self.name + ".log")))
        return self

    def port(self, what="listening"):
        return self.ports[what]

    def send(self, sig):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Signals, waits; the exit code, or None when it had to be killed."""
        self.send(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            rc = None
        self.log.close()
        return rc

    def alive(self):
        return self.p.poll() is None


class Demo(object):
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.bin = os.path.join(self.build, "bin")
        self.out = os.path.abspath(args.out or os.path.join(self.build,
                                                            "demo"))
        self.logs = os.path.join(self.out, "logs")
        self.certs = os.path.join(self.out, "certs")
        self.procs = []
        self.orpc = {}      # service -> Proc
        self.legacy = {}    # service -> Proc
        self.programs = {}  # scheduler, executor -> Proc
        self.steps = []     # results
        self.scale = 0.6 if args.quick else 1.0
        self.t0 = time.monotonic()

    # ---- setting up ------------------------------------------------------

    def say(self, text):
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def path(self, *parts):
        return os.path.join(self.out, *parts)

    def setup(self):
        if os.path.isdir(self.out):
            shutil.rmtree(self.out)
        os.makedirs(self.logs)
        self.say("orpc demo: OpsConductor's migration, on 127.0.0.1")
        self.say("  output: %s" % self.out)
        # a development PKI: a CA and one certificate per service, plus one
        # for a service the policies have never heard of
        certs_sh = os.path.join(ROOT, "scripts", "orpc-certs.sh")
        subprocess.run(["sh", certs_sh, "all", "--out", self.certs],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        subprocess.run(["sh", certs_sh, "service", "--out", self.certs,
                        "--name", "reporting"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=60)
        self.passwords = {a: secrets.token_hex(12) for a in ACCOUNTS}
        with open(self.path("accounts.json"), "w") as f:
            json.dump(self.passwords, f)
        with open(self.path("accounts"), "w") as f:
            for a in ACCOUNTS:
                f.write("%s:%s\n" % (a, self.passwords[a]))
        os.chmod(self.path("accounts"), 0o600)
        os.chmod(self.path("accounts.json"), 0o600)
        # the callers' channel settings for the jobs service: a call made
        # while it restarts waits for the channel to be ready again (rather
        # than failing fast while the channel backs off between connection
        # attempts), and one the closing server refused is retried
        retry = {"methodConfig": [{
            "name": [{"service": JOBS}],
            "timeout": "10s",
            "waitForReady": True,
            "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.1s",
                            "maxBackoff": "1s", "backoffMultiplier": 2,
                            "retryableStatusCodes": ["UNAVAILABLE"]}}]}
        with open(self.path("service-config.json"), "w") as f:
            json.dump(retry, f, indent=1)
        self.routes = []
        self.write_routes()
        self.say("  a development PKI, accounts and the routes file: %.1f s"
                 % (time.monotonic() - self.t0))

    def write_routes(self, *lines):
        """The routing table both programs read (reloaded on SIGHUP)."""
        self.routes = list(lines)
        with open(self.path("routes.conf.tmp"), "w") as f:
            f.write("# the demo's routing table (docs/compat.md)\n")
            f.write("stats_file = %s\n" % self.path("routes-{pid}.json"))
            f.write("* = legacy\n")
            for line in lines:
                f.write(line + "\n")
        os.rename(self.path("routes.conf.tmp"), self.path("routes.conf"))

    def start_orpc(self, svc, port=0, legacy_port=0, admin_port=0):
        c = self.certs
        argv = [os.path.join(self.bin, "opsconductor-service"),
                "--service=" + svc, "--listen=127.0.0.1:%d" % port,
                "--tls-cert=%s/%s.pem" % (c, svc),
                "--tls-key=%s/%s.key" % (c, svc),
                "--tls-ca=%s/ca.pem" % c,
                "--policy=%s/policies/%s.json" % (SERVICES_DIR, svc),
                "--identities=%s/identities.conf" % SERVICES_DIR,
                "--legacy-listen=127.0.0.1:%d" % legacy_port,
                "--admin=127.0.0.1:%d" % admin_port]
        if svc == "auth":
            argv.append("--accounts=" + self.path("accounts"))
        else:
            argv.append("--auth-target=127.0.0.1:%d"
                        % self.orpc["auth"].port())
        if svc == "jobs":
            argv += ["--db=" + self.path("jobs.db"), "--run-delay-ms=300",
                     "--finish-delay-ms=700"]
        p = Proc("orpc-" + svc, argv, dict(os.environ), self.logs,
                 expect=("listening", "legacy", "admin"))
        self.procs.append(p)
        self.orpc[svc] = p
        return p

    def restart_orpc(self, svc, sig=signal.SIGTERM):
        old = self.orpc[svc]
        rc = old.stop(sig)
        self.procs.remove(old)
        p = self.start_orpc(svc, old.port(), old.port("legacy"),
                            old.port("admin"))
        p.wait_ready()
        return rc

    def start_legacy(self, svc):
        argv = [PY, os.path.join(LEGACY, "run.py"), svc, "--port=0",
                "--debug_routes"]
        env = dict(os.environ)
        if svc == "auth":
            argv.append("--accounts=" + self.path("accounts.json"))
        else:
            argv.append("--auth_url=http://127.0.0.1:%d"
                        % self.legacy["auth"].port())
        if svc == "jobs":
            argv.append("--jobs_db=" + self.path("jobs.db"))
            env.update(JOBS_RUN_DELAY_MS="300", JOBS_UTC_OFFSET="1")
        p = Proc("fastapi-" + svc, argv, env, self.logs)
        self.procs.append(p)
        self.legacy[svc] = p
        return p

    def program_env(self, identity, cert):
        env = dict(os.environ)
        env.update(ORPC_IDENTITY=identity,
                   ORPC_TLS_CA=os.path.join(self.certs, "ca.pem"),
                   ORPC_TLS_CERT=os.path.join(self.certs, cert + ".pem"),
                   ORPC_TLS_KEY=os.path.join(self.certs, cert + ".key"),
                   ORPC_ROUTES_FILE=self.path("routes.conf"))
        ident = identity.upper().replace("-", "_")
        env[ident + "_USERNAME"] = identity
        env[ident + "_PASSWORD"] = self.passwords[identity]
        for svc in SERVICES:
            up = svc.upper()
            env[up + "_SERVICE_URL"] = "http://127.0.0.1:%d" % \
                self.legacy[svc].port()
            env[up + "_SERVICE_GRPC_TARGET"] = "127.0.0.1:%d" % \
                self.orpc[svc].port()
            env[up + "_SERVICE_GRPC_SPIFFE_ID"] = \
                "spiffe://opsconductor.local/service/" + svc
            if svc in ("jobs", "notification"):
                env[up + "_SERVICE_GRPC_SERVICE_CONFIG"] = \
                    self.path("service-config.json")
        return env

    def start_programs(self):
        s = self.args
        for prog, rate in (("scheduler", s.scheduler_rate),
                           ("executor", s.executor_rate)):
            argv = [os.path.join(self.bin, "opsconductor-" + prog),
                    "--rate=%d" % rate, "--concurrency=8",
                    "--stats=" + self.path(prog + "-stats.json"),
                    "--stats-interval-ms=250"]
            if prog == "scheduler":
                # the two generations share the jobs database: every run
                # can be watched, whichever side started it
                argv.append("--follow=watch")
            p = Proc(prog, argv, self.program_env(prog + "-service", prog),
                     self.logs, expect=())
            self.procs.append(p)
            self.programs[prog] = p

    def start_all(self):
        t = time.monotonic()
        self.start_orpc("auth").wait_ready()
        for svc in SERVICES[1:]:
            self.start_orpc(svc)   # jobs creates the shared database
        for svc in SERVICES[1:]:
            self.orpc[svc].wait_ready()
        self.start_legacy("auth").wait_ready()
        for svc in SERVICES[1:]:
            self.start_legacy(svc)
        for svc in SERVICES[1:]:
            self.legacy[svc].wait_ready()
        self.say("  five orpc services (mTLS, policies, legacy routes) and "
                 "five FastAPI services: %.1f s" % (time.monotonic() - t))
        self.start_programs()
        self.wait_stats(lambda st: True, 15)
        time.sleep(2 * self.scale)   # warm up (first connections, logins)
        self.say("  the scheduler (%d calls/s) and the executor (%d calls/s)"
                 " are calling" % (self.args.scheduler_rate,
                                   self.args.executor_rate))

    # ---- observing -------------------------------------------------------

    def read_stats(self, prog):
        try:
            with open(self.path(prog + "-stats.json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def wait_stats(self, pred, timeout):
        """Waits for both programs' stats files to satisfy pred."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            sts = [self.read_stats(p) for p in PROGRAMS]
            if all(st is not None and pred(st) for st in sts):
                return sts
            time.sleep(0.05)
        raise RuntimeError("the scheduler and executor write no stats "
                           "(see %s)" % self.logs)

    def fresh_stats(self):
        """Both programs' stats, written after now."""
        now = time.time()
        time.sleep(0.3)
        return dict(zip(PROGRAMS, self.wait_stats(
            lambda st: st.get("written_at_unix_ms", 0) / 1000.0 > now, 10)))

    def reset_stats(self):
        for p in self.programs.values():
            p.send(signal.SIGUSR1)
        now = time.time()
        time.sleep(0.05)
        self.wait_stats(lambda st: st.get("reset_at_unix_ms", 0) / 1000.0
                        >= now - 0.05, 10)

    def route_stats(self):
        """{method: counters} summed over both programs' routes files."""
        total = {}
        for p in self.programs.values():
            try:
                with open(self.path("routes-%d.json" % p.p.pid)) as f:
                    st = json.load(f)
            except (OSError, ValueError):
                continue
            for m, c in st.get("methods", {}).items():
                t = total.setdefault(m, {})
                for k, v in c.items():
                    t[k] = t.get(k, 0) + v
        return total

    def route_delta(self, before, after, method, key):
        return after.get(method, {}).get(key, 0) - \
            before.get(method, {}).get(key, 0)

    def reload_routes(self, *lines):
        self.write_routes(*lines)
        for p in self.programs.values():
            p.send(signal.SIGHUP)
        time.sleep(0.3)

    def run_for(self, seconds):
        time.sleep(seconds * self.scale)

    # ---- steps -----------------------------------------------------------

    def step(self, n, title):
        self.cur = {"step": n, "title": title, "checks": [], "tables": []}
        self.steps.append(self.cur)
        self.say("")
        self.say("== %d. %s" % (n, title))
        self.reset_stats()

    def check(self, ok, text):
        self.cur["checks"].append({"ok": bool(ok), "what": text})
        self.say("   %s %s" % ("ok  " if ok else "FAIL", text))
        return ok

    def table(self, stats, extra_rows=()):
        rows = []
        for prog in PROGRAMS:
            for c in stats[prog].get("calls", []):
                status = c["status"] + (" resumed" if c.get("resumed")
                                        else "")
                rows.append((prog, c["method"].split(".")[-1], c["side"],
                             status, c["count"], c["p50_ms"], c["p99_ms"]))
        rows += list(extra_rows)
        rows.sort(key=lambda r: (r[0], r[1], r[2], r[3]))
        self.cur["tables"].append(rows)
        self.say("   %-9s %-41s %-8s %-20s %6s %8s %8s" % (
            "caller", "method", "side", "status", "count", "p50 ms",
            "p99 ms"))
        for r in rows:
            self.say("   %-9s %-41s %-8s %-20s %6d %8.1f %8.1f" % r)
        return sum(r[4] for r in rows if r[0] in PROGRAMS and
                   r[3] != "OK" and not r[3].endswith(" resumed"))

    def calls(self, stats, prog, method, side=None, status="OK"):
        return sum(c["count"] for c in stats[prog].get("calls", [])
                   if c["method"].endswith("/" + method) and
                   (side is None or c["side"] == side) and
                   (status is None or c["status"] == status))

    def no_failures(self, stats):
        bad = {p: stats[p].get("failed", 0) for p in PROGRAMS}
        lost = stats["scheduler"].get("jobs_lost", 0)
        resumed = sum(c["count"] for c in stats["scheduler"].get("calls", [])
                      if c.get("resumed"))
        if resumed:
            self.say("     %d WatchJob streams cut by the restart were "
                     "watched again" % resumed)
        self.check(sum(bad.values()) == 0,
                   "no failed call (scheduler %d, executor %d)"
                   % (bad["scheduler"], bad["executor"]))
        self.check(lost == 0, "no job lost (%d)" % lost)

    def old_caller(self, auth_url, jobs_url, seconds, tag):
        """caller.py, today's Python client, calling the jobs routes."""
        env = dict(os.environ)
        env.update(AUTH_SERVICE_URL=auth_url, JOBS_SERVICE_URL=jobs_url,
                   SCHEDULER_SERVICE_USERNAME="scheduler-service",
                   SCHEDULER_SERVICE_PASSWORD=self.passwords[
                       "scheduler-service"],
                   LOG_LEVEL="WARNING")
        summary = self.path("old-caller-%s.json" % tag)
        with open(os.path.join(self.logs, "old-caller-%s.log" % tag),
                  "w") as log:
            p = subprocess.Popen(
                [PY, os.path.join(LEGACY, "caller.py"), "--caller=scheduler",
                 "--loop", "--seconds=%.1f" % seconds, "--rate=20",
                 "--routes=jobs", "--summary=" + summary],
                stdout=subprocess.DEVNULL, stderr=log, env=env,
                preexec_fn=die_with_parent)
        return p, summary

    def old_caller_result(self, p, summary):
        try:
            rc = p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = None
        try:
            with open(summary) as f:
                s = json.load(f)
        except (OSError, ValueError):
            s = {}
        return rc, s

    def old_caller_rows(self, s, side):
        rows = []
        for route, r in sorted(s.get("by_route", {}).items()):
            for outcome, n in sorted(r["outcomes"].items()):
                rows.append(("old-py", route, side,
                             "OK" if outcome == "ok" else outcome, n,
                             r["p50_ms"] or 0.0, r["p99_ms"] or 0.0))
        return rows

    def step1(self):
        self.step(1, "everything legacy: the FastAPI services answer")
        old, summary = self.old_caller(
            "http://127.0.0.1:%d" % self.legacy["auth"].port(),
            "http://127.0.0.1:%d" % self.legacy["jobs"].port(), 4, "fastapi")
        self.run_for(5)
        st = self.fresh_stats()
        rc, s = self.old_caller_result(old, summary)
        self.table(st, self.old_caller_rows(s, "fastapi"))
        for prog, method in (("scheduler", "RunJob"), ("scheduler", "GetJob"),
                             ("scheduler", "GetJobStatus"),
                             ("executor", "SendNotification"),
                             ("executor", "GetCredential"),
                             ("executor", "GetUserPreferences")):
            n = self.calls(st, prog, method, "legacy")
            g = self.calls(st, prog, method, "grpc", None)
            self.check(n > 0 and g == 0, "%s %s: %d calls, all legacy"
                       % (prog, method, n))
        self.check(rc == 0 and s.get("failed", 1) == 0,
                   "the old Python caller against FastAPI: exit %r, %d calls"
                   % (rc, s.get("calls", 0)))
        self.no_failures(st)

    def step2(self):
        self.step(2, "jobs: shadow -> shadow-grpc -> grpc, over mTLS")
        getjob = JOBS + "/GetJob"
        r0 = self.route_stats()
        self.reload_routes(JOBS + " = shadow")
        self.run_for(4)
        r1 = self.route_stats()
        mism = self.route_delta(r0, r1, getjob, "mismatches")
        self.check(mism > 0, "shadow: the seeded difference shows, %d "
                   "GetJob mismatches" % mism)
        sample = ""
        with open(os.path.join(self.logs, "scheduler.log")) as f:
            for line in f:
                if "shadow mismatch" in line:
                    sample = line.strip()
                    break
        self.check("updated_at" in sample, "a mismatch names its field")
        self.say("     " + sample[:160])
        fix = "ignore %s = job.updated_at" % getjob
        self.say("     fixed with: %s" % fix)
        self.reload_routes(JOBS + " = shadow", fix)
        time.sleep(1.2)
        r1 = self.route_stats()
        self.run_for(4)
        r2 = self.route_stats()
        m = {k: sum(self.route_delta(r1, r2, JOBS + "/" + x, k)
                    for x in ("GetJob", "GetJobStatus"))
             for k in ("matches", "mismatches", "dropped")}
        self.check(m["mismatches"] == 0 and m["matches"] > 0,
                   "shadow with the ignore line: %d matches, %d mismatches"
                   % (m["matches"], m["mismatches"]))
        self.reload_routes(JOBS + " = shadow-grpc", fix)
        time.sleep(1.2)
        r2 = self.route_stats()
        self.run_for(4)
        r3 = self.route_stats()
        m = {k: sum(self.route_delta(r2, r3, JOBS + "/" + x, k)
                    for x in ("GetJob", "GetJobStatus"))
             for k in ("matches", "mismatches")}
        self.check(m["mismatches"] == 0 and m["matches"] > 0,
                   "shadow-grpc: gRPC answers, %d matches, %d mismatches"
                   % (m["matches"], m["mismatches"]))
        self.reload_routes(JOBS + " = grpc", fix)
        self.reset_stats()
        self.run_for(4)
        st = self.fresh_stats()
        self.table(st)
        for method in ("RunJob", "GetJob", "GetJobStatus", "WatchJob"):
            n = self.calls(st, "scheduler", method, "grpc")
            leg = self.calls(st, "scheduler", method, "legacy", None)
            self.check(n > 0 and leg == 0, "grpc: %s %d calls, all over gRPC"
                       % (method, n))
        self.no_failures(st)

    def step3(self):
        self.step(3, "notification, credentials, user in fallback: "
                  "notification's gRPC server stopped, then restarted")
        self.reload_routes(JOBS + " = grpc",
                           "ignore %s/GetJob = job.updated_at" % JOBS,
                           NOTIFICATION + " = fallback",
                           CREDENTIALS + " = fallback", USER + " = fallback")
        self.run_for(2)
        self.reset_stats()
        # SIGTERM: the server says GOAWAY, lets the calls in flight finish
        # and exits; every call after that finds no server and falls back.
        # (A SIGKILL would also cut the SendNotification calls in flight:
        # whether those were performed is unknown, and orpc does not replay
        # a call with side effects on the other side, so they would fail.)
        rc = self.orpc["notification"].stop(signal.SIGTERM)
        self.say("     stopped orpc-notification (SIGTERM, exit %r)" % rc)
        self.run_for(3)
        st = self.fresh_stats()
        self.table(st)
        n = self.calls(st, "executor", "SendNotification", "fallback")
        self.check(n > 0, "while it is down: %d SendNotification calls "
                   "fell back to legacy" % n)
        for method in ("GetCredential", "GetUserPreferences"):
            g = self.calls(st, "executor", method, "grpc")
            self.check(g > 0, "%s: %d calls answered by gRPC" % (method, g))
        self.no_failures(st)
        p = self.orpc["notification"]
        self.procs.remove(p)
        self.start_orpc("notification", p.port(), p.port("legacy"),
                        p.port("admin")).wait_ready()
        self.say("     restarted orpc-notification on its port")
        self.reset_stats()
        ok = False
        end = time.monotonic() + 15
        while time.monotonic() < end and not ok:
            time.sleep(0.5)
            st = self.fresh_stats()
            ok = self.calls(st, "executor", "SendNotification", "grpc") > 0
        self.run_for(2)
        st = self.fresh_stats()
        self.table(st)
        self.check(ok, "restarted: SendNotification back on gRPC (%d calls)"
                   % self.calls(st, "executor", "SendNotification", "grpc"))
        self.no_failures(st)

    def unfinished_runs(self, older_than_s):
        db = sqlite3.connect(self.path("jobs.db"), timeout=5)
        try:
            cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(
                time.time() - older_than_s))
            return db.execute(
                "SELECT COUNT(*) FROM executions WHERE status NOT IN"
                " ('succeeded', 'failed') AND queued_at < ?",
                (cutoff,)).fetchone()[0]
        finally:
            db.close()

    def step4(self):
        self.step(4, "the jobs service restarted mid-run")
        self.run_for(2)
        before = self.unfinished_runs(0)
        t = time.monotonic()
        rc = self.restart_orpc("jobs")
        self.say("     restarted orpc-jobs (SIGTERM: drained, exit %r) in "
                 "%.2f s with %d runs under way" % (rc, time.monotonic() - t,
                                                  before))
        self.check(rc == 0, "the jobs service drained and exited 0")
        self.run_for(4)
        time.sleep(2.0)   # the last runs started before the restart finish
        st = self.fresh_stats()
        self.table(st)
        left = self.unfinished_runs(3)
        self.check(left == 0, "every run queued more than 3 s ago finished "
                   "(%d did not)" % left)
        self.check(self.calls(st, "scheduler", "RunJob", "grpc") > 0,
                   "RunJob went on over gRPC")
        self.no_failures(st)

    def step5(self):
        self.step(5, "a caller the policy does not allow")
        argv = [os.path.join(self.bin, "orpc"), "call", "--mode", "grpc",
                "--target", "127.0.0.1:%d" % self.orpc["jobs"].port(),
                "--ca", os.path.join(self.certs, "ca.pem"),
                "--cert", os.path.join(self.certs, "reporting.pem"),
                "--key", os.path.join(self.certs, "reporting.key"),
                "-d", '{"job_id": 7}', JOBS + "/GetJob"]
        env = dict(os.environ)
        p = subprocess.run(argv, capture_output=True, text=True, env=env,
                           timeout=30)
        self.say("     orpc call (as spiffe://opsconductor.local/service/"
                 "reporting) %s/GetJob -> exit %d: %s"
                 % (JOBS, p.returncode, p.stderr.strip()[:100]))
        self.check(p.returncode == 7 and "PERMISSION_DENIED" in p.stderr,
                   "the reporting service gets PERMISSION_DENIED")
        argv[argv.index("--cert") + 1] = os.path.join(self.certs,
                                                      "scheduler.pem")
        argv[argv.index("--key") + 1] = os.path.join(self.certs,
                                                     "scheduler.key")
        p = subprocess.run(argv, capture_output=True, text=True, env=env,
                           timeout=30)
        self.check(p.returncode == 0, "the scheduler's certificate, same "
                   "call: OK")
        st = self.fresh_stats()
        self.table(st)
        self.no_failures(st)

    def step6(self):
        self.step(6, "the FastAPI jobs service stopped: the old Python "
                  "caller moves to orpc")
        rc = self.legacy["jobs"].stop()
        self.check(rc == 0, "FastAPI jobs stopped (exit %r)" % rc)
        old, summary = self.old_caller(
            "http://127.0.0.1:%d" % self.orpc["auth"].port("legacy"),
            "http://127.0.0.1:%d" % self.orpc["jobs"].port("legacy"), 4,
            "orpc")
        self.run_for(5)
        st = self.fresh_stats()
        rc, s = self.old_caller_result(old, summary)
        self.table(st, self.old_caller_rows(s, "orpc"))
        self.check(rc == 0 and s.get("calls", 0) > 0 and
                   s.get("failed", 1) == 0,
                   "the old Python caller against orpc's legacy routes: "
                   "exit %r, %d calls, %r failed"
                   % (rc, s.get("calls", 0), s.get("failed")))
        self.no_failures(st)

    # ---- the end ---------------------------------------------------------

    def snapshot(self):
        mdir = self.path("metrics")
        os.makedirs(mdir, exist_ok=True)
        for svc, p in self.orpc.items():
            if not p.alive():
                continue
            url = "http://127.0.0.1:%d/metrics" % p.port("admin")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    data = r.read()
                with open(os.path.join(mdir, svc + ".prom"), "wb") as f:
                    f.write(data)
            except OSError as e:
                self.say("   (no metrics from %s: %s)" % (svc, e))

    def stop_all(self):
        rcs = {}
        for name in PROGRAMS:
            p = self.programs.get(name)
            if p:
                rcs[name] = p.stop()
        for p in reversed(self.procs):
            if p.name not in rcs and p.alive():
                rcs[p.name] = p.stop()
        return rcs

    def run(self):
        ok = False
        try:
            self.setup()
            self.start_all()
            for s in (self.step1, self.step2, self.step3, self.step4,
                      self.step5, self.step6):
                s()
            self.snapshot()
            ok = True
        finally:
            rcs = self.stop_all()
        final = {p: self.read_stats(p) or {} for p in PROGRAMS}
        bad_exit = {k: v for k, v in rcs.items() if v != 0}
        total_failed = sum(final[p].get("failed_total", 1) for p in PROGRAMS)
        checks = [c for s in self.steps for c in s["checks"]]
        passed = ok and all(c["ok"] for c in checks) and not bad_exit and \
            total_failed == 0
        elapsed = time.monotonic() - self.t0
        self.say("")
        self.say("== %s: %d of %d checks passed, %d failed calls in all, "
                 "%.0f s" % ("PASSED" if passed else "FAILED",
                             sum(c["ok"] for c in checks), len(checks),
                             total_failed, elapsed))
        if bad_exit:
            self.say("   processes that did not exit 0: %r" % bad_exit)
        self.say("   logs: %s" % self.logs)
        self.say("   metrics: %s (each orpc service's /metrics), "
                 "%s/*-stats.json, %s/routes-*.json"
                 % (self.path("metrics"), self.out, self.out))
        if self.args.results:
            with open(self.args.results, "w") as f:
                json.dump({"passed": passed, "steps": self.steps,
                           "exit_codes": rcs, "failed_total": total_failed,
                           "final_stats": final, "elapsed_s": elapsed}, f,
                          indent=1)
        return 0 if passed else 1


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true",
                    help="shorter steps (the end-to-end test)")
    ap.add_argument("--results", default=None)
    ap.add_argument("--scheduler-rate", type=int, default=20)
    ap.add_argument("--executor-rate", type=int, default=30)
    args = ap.parse_args(argv)
    for b in ("opsconductor-service", "opsconductor-scheduler",
              "opsconductor-executor", "orpc"):
        if not os.access(os.path.join(args.build, "bin", b), os.X_OK):
            sys.stderr.write("demo.py: %s/bin/%s is missing: build first "
                             "(make demo does)\n" % (args.build, b))
            return 2
    return Demo(args).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
