#!/usr/bin/python3
"""The FastAPI jobs service on the orpc jobs service's database (JOBS_DB).

Usage: legacy_shared_db_test.py OPSCONDUCTOR_SERVICE ORPC_CLI ORPC_CERTS_SH

Starts the orpc jobs service (mutual TLS, its own SQLite file, short run
delays) and the five FastAPI apps with the jobs app on the same file, then
holds that:
  - before any run, both generations answer every job and status alike
    (and as the fixture's deterministic data);
  - a run started on the FastAPI side is moved on by the orpc service's
    runner (queued -> running -> succeeded, or failed for {"fail": true}),
    and both sides see every step identically;
  - a run started over gRPC is seen by the FastAPI side, and execution ids
    count up across both sides without a collision;
  - a JOBS_DB that does not exist stops the FastAPI app with a message.
Every process listens on 127.0.0.1, port 0.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import legacy_apps  # noqa: E402

sys.path.insert(0, legacy_apps.LEGACY)
import legacy_data  # noqa: E402

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        sys.stderr.write("FAIL: %s\n" % what)


def http(method, url, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Grpc(object):
    """`orpc call --mode grpc` as the scheduler (its certificate)."""

    def __init__(self, cli, port, certs):
        self.argv = [cli, "call", "--mode", "grpc",
                     "--target", "127.0.0.1:%d" % port,
                     "--ca", os.path.join(certs, "ca.pem"),
                     "--cert", os.path.join(certs, "scheduler.pem"),
                     "--key", os.path.join(certs, "scheduler.key"),
                     "--timeout", "5000"]
        self.env = dict(os.environ)

    def call(self, method, req):
        p = subprocess.run(self.argv + ["-d", json.dumps(req),
                                        "opsconductor.jobs.v1.JobsService/"
                                        + method],
                           capture_output=True, text=True, timeout=30,
                           env=self.env)
        if p.returncode != 0:
            return p.returncode, p.stderr.strip()
        return 0, json.loads(p.stdout)


def wait_final(status_of, deadline_s=15):
    """Polls status_of() until succeeded or failed; the statuses seen."""
    seen = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        s = status_of()
        if not seen or seen[-1] != s:
            seen.append(s)
        if s in ("succeeded", "failed"):
            break
        time.sleep(0.02)
    return seen


def main(argv):
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    service_bin, cli, certs_sh = argv[1:]
    tmp = tempfile.mkdtemp(prefix="opsc-shared-db-")
    certs = os.path.join(tmp, "certs")
    subprocess.run(["sh", certs_sh, "all", "--out", certs], check=True,
                   capture_output=True, timeout=120)
    db = os.path.join(tmp, "jobs.db")
    policies = os.path.join(legacy_apps.ROOT, "examples", "opsconductor",
                            "services", "policies")
    ids = os.path.join(legacy_apps.ROOT, "examples", "opsconductor",
                       "services", "identities.conf")

    # 1. A JOBS_DB that is not there: the app refuses to start, saying why.
    p = subprocess.run([legacy_apps.PY,
                        os.path.join(legacy_apps.LEGACY, "run.py"), "jobs",
                        "--port=0", "--jobs_db=" + db],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, AUTH_SERVICE_URL="http://"
                                "127.0.0.1:9"))
    check(p.returncode != 0 and "does not exist" in p.stderr,
          "a missing JOBS_DB stops the app (rc %d, %r)"
          % (p.returncode, p.stderr[-300:]))

    jobs = legacy_apps.Proc("orpc-jobs", [
        service_bin, "--service=jobs", "--listen=127.0.0.1:0",
        "--tls-cert=" + os.path.join(certs, "jobs.pem"),
        "--tls-key=" + os.path.join(certs, "jobs.key"),
        "--tls-ca=" + os.path.join(certs, "ca.pem"),
        "--policy=" + os.path.join(policies, "jobs.json"),
        "--identities=" + ids, "--db=" + db,
        "--run-delay-ms=150", "--finish-delay-ms=150"], None, tmp)
    apps = None
    try:
        apps = legacy_apps.LegacyApps(
            log_dir=tmp, extra_env={"JOBS_DB": db,
                                    "JOBS_RUN_DELAY_MS": "150"})
        grpc = Grpc(cli, jobs.port, certs)
        url = apps.urls["jobs"]
        st, body = http("POST", apps.urls["auth"] + "/login",
                        body={"username": "scheduler-service",
                              "password": "scheduler-secret"})
        check(st == 200, "login: %d %r" % (st, body))
        token = body["access_token"]

        # 2. Seeded: both sides and the fixture's data agree, job by job.
        for jid in range(1, legacy_data.N_JOBS + 1):
            st, job = http("GET", "%s/jobs/%d" % (url, jid), token)
            check(st == 200 and job == legacy_data.job_obj(jid),
                  "GET /jobs/%d on the shared db: %d %r" % (jid, st, job))
            st, status = http("GET", "%s/jobs/%d/status" % (url, jid), token)
            check(st == 200 and status == legacy_data.job_status_obj(jid),
                  "GET /jobs/%d/status: %d %r" % (jid, st, status))
        for jid in (1, 7, 50):
            rc, g = grpc.call("GetJob", {"job_id": jid})
            check(rc == 0 and g.get("job") == legacy_data.job_obj(jid),
                  "GetJob %d over gRPC: %r" % (jid, g))
        st, body = http("GET", url + "/jobs/101", token)
        check(st == 404 and body == {"detail": "Job 101 not found"},
              "job 101: %d %r" % (st, body))
        st, body = http("POST", url + "/jobs/101/run", token, {})
        check(st == 404 and body == {"detail": "Job 101 not found"},
              "run job 101: %d %r" % (st, body))

        # 3. A run from the FastAPI side, finished by the orpc runner; both
        #    sides see the same status at every step.
        st, run1 = http("POST", url + "/jobs/5/run", token, {"n": 1})
        check(st == 200 and run1.get("status") == "queued" and
              run1.get("triggered_by") == "scheduler-service" and
              run1.get("payload") == {"n": 1} and run1.get("job_id") == 5,
              "run on FastAPI: %d %r" % (st, run1))
        seen = wait_final(lambda: http("GET", url + "/jobs/5/status",
                                       token)[1]["status"])
        check(seen[-1] == "succeeded" and "running" in seen,
              "the FastAPI run moves on: %r" % seen)
        _, fa = http("GET", url + "/jobs/5/status", token)
        rc, g = grpc.call("GetJobStatus", {"job_id": 5})
        check(rc == 0 and g.get("status") == fa,
              "both sides' status of job 5: %r vs %r" % (g, fa))
        _, fa = http("GET", url + "/jobs/5", token)
        rc, g = grpc.call("GetJob", {"job_id": 5})
        check(rc == 0 and g.get("job") == fa and fa["status"] == "succeeded",
              "both sides' job 5: %r vs %r" % (g, fa))
        st, run2 = http("POST", url + "/jobs/6/run", token, {"fail": True})
        seen = wait_final(lambda: http("GET", url + "/jobs/6/status",
                                       token)[1]["status"])
        check(st == 200 and seen[-1] == "failed",
              "a failing FastAPI run: %r" % seen)

        # 4. A run over gRPC is seen by the FastAPI side; ids interleave.
        rc, g = grpc.call("RunJob", {"job_id": 8, "payload": {"n": 3}})
        run3 = g.get("result", {}) if rc == 0 else {}
        check(rc == 0 and run3.get("execution_id") ==
              run2["execution_id"] + 1,
              "gRPC run gets the next execution id: %r after %r"
              % (g, run2.get("execution_id")))
        st, status = http("GET", url + "/jobs/8/status", token)
        check(st == 200 and status["status"] in ("queued", "running",
                                                 "succeeded"),
              "FastAPI sees the gRPC run: %r" % status)
        st, run4 = http("POST", url + "/jobs/8/run", token, None)
        check(st == 200 and run4.get("execution_id") ==
              run3.get("execution_id", 0) + 1 and run4["payload"] is None,
              "FastAPI run after the gRPC one: %r" % run4)
        seen = wait_final(lambda: http("GET", url + "/jobs/8/status",
                                       token)[1]["status"])
        check(seen[-1] == "succeeded", "job 8 finishes: %r" % seen)
        st, dbg = http("GET", url + "/_debug/executions")
        check(st == 200 and dbg["count"] == run4["execution_id"] and
              dbg["by_job"] == {"5": 1, "6": 1, "8": 2},
              "debug executions from the database: %r" % dbg)
    finally:
        rcs = apps.stop() if apps else {}
        jrc = jobs.stop()
    check(all(rc == 0 for rc in rcs.values()), "apps exit 0: %r" % rcs)
    check(jrc == 0, "orpc jobs exits 0: %r" % jrc)
    if FAILS:
        sys.stderr.write("%d failed; logs in %s\n" % (len(FAILS), tmp))
        return 1
    print("legacy_shared_db: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
