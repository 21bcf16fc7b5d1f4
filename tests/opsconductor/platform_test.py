#!/usr/bin/python3
"""Tests of opsconductor-scheduler and opsconductor-executor
(examples/opsconductor/platform/), read from their JSON stats files.

  platform_test.py CASE --bin=DIR --svc=opsconductor-service

CASE:
  scheduler_legacy  executor_legacy   every route legacy, against the legacy
                                      fixture (tests/legacy/legacy_server.py)
  scheduler_grpc    executor_grpc     every route grpc, against the orpc
                                      services over mutual TLS (a PKI minted
                                      by scripts/orpc-certs.sh)
  reset             SIGUSR1 zeroes the scheduler's counters mid-run
  switch            both programs, both sides up: routes legacy, then the
                    routes file says grpc and SIGHUP moves them mid-run
  shutdown          SIGTERM while jobs are followed: exit 0 within the
                    drain, final stats written, nothing lost

Each case runs the programs for about two seconds on 127.0.0.1 ephemeral
ports and asserts: exit code 0, every method the program uses called with
status OK on the expected side, failed == 0, jobs_lost == 0, counts > 0.
Standard library only; every wait is bounded.  OPSC_TEST_KEEP=1 keeps the
temporary directory (stats files, logs, certificates).
"""

import argparse
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
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from legacy_apps import PY, Proc, start_fixture  # noqa: E402

SVC_DIR = os.path.join(ROOT, "examples", "opsconductor", "services")
CERTS_SH = os.path.join(ROOT, "scripts", "orpc-certs.sh")
TD = "spiffe://opsconductor.local/service/"

JOBS = "opsconductor.jobs.v1.JobsService/"
CRED = "opsconductor.credentials.v1.CredentialsService/"
USER = "opsconductor.user.v1.UserService/"
NOTE = "opsconductor.notification.v1.NotificationService/"

# The legacy stand-in never changes a job's status: a run of a job whose
# seeded status is not final (running, pending) never finishes there.
# These jobs' seeds are final (completed, failed, cancelled).
FINAL_JOBS = "2,4,5,7,9,10,12,14,15"

SCHED_LEGACY = [JOBS + "RunJob", JOBS + "GetJob", JOBS + "GetJobStatus"]
SCHED_GRPC = [JOBS + "RunJob", JOBS + "GetJob", JOBS + "WatchJob"]
EXEC_LEGACY = [CRED + "ListTargetCredentials", CRED + "GetCredential",
               USER + "GetUser", USER + "GetUserPreferences",
               NOTE + "SendNotification"]
EXEC_GRPC = EXEC_LEGACY + [NOTE + "SendBatch"]
SERVICE_OF = {"scheduler": ["jobs"],
              "executor": ["credentials", "user", "notification"]}


class Failure(Exception):
    pass


def check(cond, what, *ctx):
    if not cond:
        raise Failure(what + "".join("\n  " + str(c) for c in ctx))


def wait_for(pred, seconds, what):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise Failure("timed out (%.0f s) waiting for %s" % (seconds, what))


def read_stats(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def by_key(stats):
    """{(method, side, status): count}."""
    return {(c["method"], c["side"], c["status"]): c["count"]
            for c in stats["calls"]}


def total(stats):
    return sum(c["count"] for c in stats["calls"])


def side_counts(stats, side):
    return sum(c["count"] for c in stats["calls"] if c["side"] == side)


class World(object):
    """The temporary directory, the processes, the environment."""

    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="opsc-platform-")
        self.procs = []
        self.fixture = None
        self.grpc = {}
        self.certs = None
        self.started = {}

    def close(self):
        rcs = {}
        for name, p in reversed(self.procs):
            rcs[name] = p.stop()
        if os.environ.get("OPSC_TEST_KEEP") == "1":
            sys.stderr.write("kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return rcs

    def log(self, name):
        return os.path.join(self.tmp, name + ".log")

    def tail(self, name):
        try:
            with open(self.log(name)) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def start_fixture(self):
        acc = os.path.join(self.tmp, "accounts.json")
        with open(acc, "w") as f:
            json.dump({"scheduler-service": "scheduler-pw",
                       "executor-service": "executor-pw"}, f)
        fixture = os.path.join(ROOT, "tests", "legacy", "legacy_server.py")
        self.fixture = Proc("fixture", [PY, fixture, "--port=0",
                                        "--accounts=" + acc], None, self.tmp)
        self.procs.append(("fixture", self.fixture))

    def start_services(self, names, run_ms=50, finish_ms=100):
        self.certs = os.path.join(self.tmp, "certs")
        subprocess.run(["/bin/sh", CERTS_SH, "all", "--out", self.certs],
                       check=True, stdout=subprocess.DEVNULL, timeout=120)
        ids = os.path.join(SVC_DIR, "identities.conf")
        for name in names:
            argv = [self.args.svc, "--service=" + name,
                    "--listen=127.0.0.1:0",
                    "--tls-cert=%s/%s.pem" % (self.certs, name),
                    "--tls-key=%s/%s.key" % (self.certs, name),
                    "--tls-ca=%s/ca.pem" % self.certs,
                    "--policy=%s/policies/%s.json" % (SVC_DIR, name),
                    "--die-with-parent"]
            if name == "jobs":
                argv += ["--db=" + os.path.join(self.tmp, "jobs.db"),
                         "--identities=" + ids,
                         "--run-delay-ms=%d" % run_ms,
                         "--finish-delay-ms=%d" % finish_ms]
            env = base_env()
            env["SERVICE_COMM_LOG_ENABLED"] = "false"
            p = Proc("svc-" + name, argv, env, self.tmp)
            self.procs.append(("svc-" + name, p))
            self.grpc[name] = "127.0.0.1:%d" % p.port
            self.started[name] = (argv, env, p)

    def restart_service(self, name):
        """SIGTERM (the service drains), then the same flags on the same
        port; returns the old one's exit code."""
        argv, env, old = self.started[name]
        rc = old.stop()
        self.procs.remove(("svc-" + name, old))
        argv = [a if not a.startswith("--listen=") else
                "--listen=127.0.0.1:%d" % old.port for a in argv]
        p = Proc("svc-" + name, argv, env, self.tmp)
        self.procs.append(("svc-" + name, p))
        self.started[name] = (argv, env, p)
        return rc

    def routes(self, mode):
        path = os.path.join(self.tmp, "routes.conf")
        tmp = path + ".new"
        with open(tmp, "w") as f:
            f.write("# written by platform_test.py\n* = %s\n" % mode)
        os.rename(tmp, path)
        return path

    def env_for(self, prog, mode):
        env = base_env()
        ident = prog + "-service"
        env["ORPC_IDENTITY"] = ident
        env["ORPC_ROUTES_FILE"] = self.routes(mode)
        if self.fixture is not None:
            url = self.fixture.url
            env["AUTH_SERVICE_URL"] = url
            for svc in SERVICE_OF[prog]:
                env[svc.upper() + "_SERVICE_URL"] = url
            env[prog.upper() + "_SERVICE_USERNAME"] = ident
            env[prog.upper() + "_SERVICE_PASSWORD"] = prog + "-pw"
        if self.grpc:
            env["ORPC_TLS_CA"] = os.path.join(self.certs, "ca.pem")
            env["ORPC_TLS_CERT"] = os.path.join(self.certs, prog + ".pem")
            env["ORPC_TLS_KEY"] = os.path.join(self.certs, prog + ".key")
            for svc in SERVICE_OF[prog]:
                pre = svc.upper() + "_SERVICE_GRPC_"
                env[pre + "TARGET"] = self.grpc[svc]
                env[pre + "SPIFFE_ID"] = TD + svc
        return env

    def run(self, prog, mode, extra, extra_env=None):
        """Starts opsconductor-PROG; returns (Popen, stats path)."""
        stats = os.path.join(self.tmp, prog + ".json")
        argv = [os.path.join(self.args.bin, "opsconductor-" + prog),
                "--stats=" + stats, "--stats-interval-ms=100"] + extra
        if prog == "scheduler" and not any(
                a.startswith("--job-ids") for a in extra):
            argv.append("--job-ids=" + FINAL_JOBS)
        log = open(self.log(prog), "w")
        env = self.env_for(prog, mode)
        env.update(extra_env or {})
        p = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        log.close()
        return p, stats

    def finish(self, p, name, seconds=60):
        try:
            rc = p.wait(seconds)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failure("%s did not exit within %d s\n%s" % (
                name, seconds, self.tail(name)))
        check(rc == 0, "%s exited %s" % (name, rc), self.tail(name))


def base_env():
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "LOG_LEVEL": "WARNING"}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
              "TSAN_OPTIONS", "TMPDIR"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def assert_ok(stats, methods, side, name):
    calls = by_key(stats)
    for m in methods:
        check(calls.get((m, side, "OK"), 0) > 0,
              "%s: %s has no OK call on the %s side" % (name, m, side),
              json.dumps(stats))
    check(stats["failed"] == 0, "%s: failed calls" % name, json.dumps(stats))
    check(stats["final"] is True, "%s: the last snapshot is not final" % name)
    check(total(stats) > 0, "%s: no calls" % name)


def assert_jobs(stats, name):
    check(stats["jobs_run"] > 0, "%s: no job ran" % name, json.dumps(stats))
    check(stats["jobs_lost"] == 0, "%s: jobs lost" % name, json.dumps(stats))
    check(stats["jobs_finished"] > 0, "%s: no job finished" % name,
          json.dumps(stats))
    check(stats["jobs_abandoned"] == 0 and stats["jobs_in_flight"] == 0,
          "%s: jobs left unfollowed" % name, json.dumps(stats))
    check(stats["jobs_finished"] == stats["jobs_run"],
          "%s: runs and finished runs differ" % name, json.dumps(stats))


def assert_only_side(stats, side, name):
    other = [c for c in stats["calls"] if c["side"] != side]
    check(not other, "%s: calls on another side than %s" % (name, side),
          json.dumps(other))


# --- cases ---------------------------------------------------------------

def one(w, prog, mode):
    if mode == "legacy":
        w.start_fixture()
    else:
        w.start_services(SERVICE_OF[prog])
    p, path = w.run(prog, mode, ["--rate=40", "--concurrency=4",
                                 "--duration-ms=2000"])
    w.finish(p, prog)
    stats = read_stats(path)
    check(stats is not None, "no stats file", w.tail(prog))
    check(stats["program"] == prog and stats["pid"] == p.pid,
          "program and pid", json.dumps(stats))
    expect = {("scheduler", "legacy"): SCHED_LEGACY,
              ("scheduler", "grpc"): SCHED_GRPC,
              ("executor", "legacy"): EXEC_LEGACY,
              ("executor", "grpc"): EXEC_GRPC}[(prog, mode)]
    assert_ok(stats, expect, mode, prog)
    assert_only_side(stats, mode, prog)
    for c in stats["calls"]:
        check(0 <= c["p50_ms"] <= c["p99_ms"], "p50 <= p99", c)
    if prog == "scheduler":
        assert_jobs(stats, prog)
    else:
        check(stats["tasks"] > 0 and stats["notifications_sent"] > 0,
              "executor: no task or notification", json.dumps(stats))


def case_reset(w):
    w.start_fixture()
    p, path = w.run("scheduler", "legacy", ["--rate=50", "--concurrency=4"])
    before = wait_for(lambda: (lambda s: s if s and total(s) >= 30 else None)(
        read_stats(path)), 20, "30 calls")
    check(before["resets"] == 0 and before["jobs_run"] > 0, "before",
          json.dumps(before))
    sent = time.time()
    p.send_signal(signal.SIGUSR1)
    after = wait_for(lambda: (lambda s: s if s and s["resets"] == 1 else None)(
        read_stats(path)), 10, "the reset snapshot")
    check(total(after) < total(before) and after["jobs_run"] <
          before["jobs_run"] and after["window_ms"] < after["uptime_ms"],
          "SIGUSR1 did not reset the counters", json.dumps(before),
          json.dumps(after))
    check(after["reset_at_unix_ms"] >= sent * 1000 - 50 and
          after["written_at_unix_ms"] >= after["reset_at_unix_ms"],
          "reset_at_unix_ms, written_at_unix_ms", json.dumps(after))
    # counting goes on from zero
    wait_for(lambda: (lambda s: s if s and total(s) >= 10 and s["jobs_run"] > 0
                      else None)(read_stats(path)), 20, "calls after reset")
    p.send_signal(signal.SIGTERM)
    w.finish(p, "scheduler")
    final = read_stats(path)
    check(final["resets"] == 1, "one reset", json.dumps(final))
    assert_ok(final, SCHED_LEGACY, "legacy", "scheduler")
    check(final["jobs_lost"] == 0, "jobs lost", json.dumps(final))


def case_switch(w):
    w.start_fixture()
    w.start_services(["jobs", "credentials", "user", "notification"])
    runs = {}
    for prog in ("scheduler", "executor"):
        runs[prog] = w.run(prog, "legacy", ["--rate=40", "--concurrency=4"])
    for prog, (p, path) in runs.items():
        s = wait_for(lambda: (lambda s: s if s and total(s) >= 15 else None)(
            read_stats(path)), 20, prog + " legacy calls")
        assert_only_side(s, "legacy", prog + " before the switch")
        check(s["failed"] == 0, prog + ": failed before the switch",
              json.dumps(s))
    w.routes("grpc")
    for prog, (p, path) in runs.items():
        p.send_signal(signal.SIGHUP)
    for prog, (p, path) in runs.items():
        wait_for(lambda: (lambda s: s if s and side_counts(s, "grpc") >= 10
                          else None)(read_stats(path)),
                 20, prog + " gRPC calls after SIGHUP")
    # after the switch, new calls go to gRPC only: the legacy counts stop
    for prog, (p, path) in runs.items():
        s1 = read_stats(path)
        time.sleep(1.0)
        s2 = read_stats(path)
        check(side_counts(s2, "legacy") - side_counts(s1, "legacy") <= 2 and
              side_counts(s2, "grpc") > side_counts(s1, "grpc"),
              prog + ": calls still go to the legacy side after the switch",
              json.dumps(s1), json.dumps(s2))
    for prog, (p, path) in runs.items():
        p.send_signal(signal.SIGTERM)
    for prog, (p, path) in runs.items():
        w.finish(p, prog)
        final = read_stats(path)
        legacy = SCHED_LEGACY if prog == "scheduler" else EXEC_LEGACY
        grpc = SCHED_GRPC if prog == "scheduler" else EXEC_GRPC
        assert_ok(final, legacy, "legacy", prog)
        assert_ok(final, grpc, "grpc", prog)
        if prog == "scheduler":
            assert_jobs(final, prog)


def case_shutdown(w):
    w.start_services(["jobs"])
    # jobs finish about 150 ms after their run: SIGTERM always finds some
    # being watched, and the drain lets them end.
    p, path = w.run("scheduler", "grpc", ["--rate=100", "--concurrency=8",
                                          "--drain-ms=5000"])
    wait_for(lambda: (lambda s: s if s and s["jobs_in_flight"] > 0 and
                      s["jobs_finished"] > 0 else None)(read_stats(path)),
             20, "jobs in flight")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    w.finish(p, "scheduler", 30)
    took = time.monotonic() - t0
    check(took < 5.0, "the drain took %.1f s" % took)
    final = read_stats(path)
    assert_ok(final, SCHED_GRPC, "grpc", "scheduler")
    assert_jobs(final, "scheduler")


def case_resume(w):
    """The jobs service restarted under the scheduler (--follow=watch): the
    WatchJob streams its drain cuts are watched again and counted as
    resumed, calls made meanwhile wait for the channel (waitForReady), and
    no call fails and no job is lost."""
    # runs of 1.5 s: with 8 workers, watches are open whenever the
    # service restarts (with the short runs of the other cases, a slow
    # build could find none open, and there would be nothing to resume)
    w.start_services(["jobs"], run_ms=500, finish_ms=1000)
    conf = os.path.join(w.tmp, "jobs-service-config.json")
    with open(conf, "w") as f:
        json.dump({"methodConfig": [{
            "name": [{"service": "opsconductor.jobs.v1.JobsService"}],
            "timeout": "10s", "waitForReady": True}]}, f)
    p, path = w.run("scheduler", "grpc",
                    ["--rate=60", "--concurrency=8", "--follow=watch",
                     "--drain-ms=10000"],
                    {"JOBS_SERVICE_GRPC_SERVICE_CONFIG": conf})
    # Restarts until one cuts a watch (at most 5): on a loaded machine
    # (TSan, tests in parallel) a restart has found no watch open although
    # runs were being followed; each restart must cost nothing either way.
    def n_resumed(st):
        return sum(c["count"] for c in st["calls"] if c.get("resumed"))
    for attempt in range(5):
        wait_for(lambda: (lambda s: s if s and s["jobs_in_flight"] >= 4 and
                          s["jobs_finished"] > 0 else None)(read_stats(path)),
                 30, "jobs in flight")
        time.sleep(0.3)   # their watches open
        check(w.restart_service("jobs") == 0, "the jobs service drained",
              w.tail("svc-jobs"))
        time.sleep(1.0)
        if n_resumed(read_stats(path)) > 0:
            break
    before = read_stats(path)["jobs_run"]
    wait_for(lambda: (lambda s: s if s and s["jobs_finished"] > before + 8
                      else None)(read_stats(path)), 30, "runs after restart")
    p.send_signal(signal.SIGTERM)
    w.finish(p, "scheduler", 30)
    final = read_stats(path)
    resumed = [c for c in final["calls"] if c.get("resumed")]
    check(resumed and all(c["method"].endswith("/WatchJob") and
                          c["status"] == "UNAVAILABLE" for c in resumed),
          "cut watches counted as resumed", json.dumps(final))
    check(final["failed"] == 0 and final["failed_total"] == 0,
          "no failed call", json.dumps(final))
    check(final["jobs_lost_total"] == 0, "no job lost", json.dumps(final))
    assert_ok(final, SCHED_GRPC, "grpc", "scheduler")
    assert_jobs(final, "scheduler")


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--svc", required=True)
    args = ap.parse_args(argv)
    w = World(args)
    ok = False
    try:
        c = args.case
        if c in ("scheduler_legacy", "scheduler_grpc", "executor_legacy",
                 "executor_grpc"):
            prog, mode = c.split("_")
            one(w, prog, mode)
        elif c == "reset":
            case_reset(w)
        elif c == "switch":
            case_switch(w)
        elif c == "shutdown":
            case_shutdown(w)
        elif c == "resume":
            case_resume(w)
        else:
            ap.error("unknown case " + c)
        ok = True
    except Failure as e:
        sys.stderr.write("FAIL: %s\n" % e)
    finally:
        rcs = w.close()
    bad = {n: rc for n, rc in rcs.items() if rc != 0}
    if bad:
        sys.stderr.write("FAIL: servers did not exit 0: %s\n" % bad)
        ok = False
    if ok:
        print("ok: " + args.case)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
