#!/usr/bin/python3
"""The demo's scenario as a test: demo_e2e_test.py BUILD_DIR

Runs examples/opsconductor/demo/demo.py --quick against BUILD_DIR with
--results, and holds its outcome from that structured record (never from
the printed tables):
  - every step ran, and every one of its checks held;
  - every client operation of the scheduler and the executor was answered
    OK on both sides, legacy and gRPC, somewhere in the run;
  - across every switch (shadow, fallback, the kills and restarts) no call
    of the scheduler or the executor failed and no job was lost;
  - every process the demo started exited 0 (the killed one excepted: it
    was restarted, and the restarted one exited 0).
"""

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEMO = os.path.join(ROOT, "examples", "opsconductor", "demo", "demo.py")
# What each program calls through the clients (examples/opsconductor/
# platform/), and must have seen answered OK on each side.
OPERATIONS = {
    "scheduler": ("RunJob", "GetJob", "GetJobStatus"),
    "executor": ("GetCredential", "ListTargetCredentials",
                 "GetUser", "GetUserPreferences", "SendNotification"),
}


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    out = tempfile.mkdtemp(prefix="orpc-demo-e2e-")
    results = os.path.join(out, "results.json")
    p = subprocess.run([sys.executable, DEMO, "--build", argv[1], "--out",
                        os.path.join(out, "demo"), "--quick", "--results",
                        results], timeout=600)
    with open(results) as f:
        r = json.load(f)
    fails = []
    steps = [s["step"] for s in r["steps"]]
    if steps != [1, 2, 3, 4, 5, 6]:
        fails.append("steps run: %r" % steps)
    for s in r["steps"]:
        for c in s["checks"]:
            if not c["ok"]:
                fails.append("step %d: %s" % (s["step"], c["what"]))
    seen = {}
    for s in r["steps"]:
        for table in s["tables"]:
            for caller, method, side, status, count, _, _ in table:
                if status == "OK" and count > 0:
                    side = "legacy" if side == "fallback" else side
                    seen.setdefault((caller, method.split("/")[-1]),
                                    set()).add(side)
    for prog, methods in OPERATIONS.items():
        for m in methods:
            sides = seen.get((prog, m), set())
            if not {"legacy", "grpc"} <= sides:
                fails.append("%s %s answered OK on %s, not on both sides"
                             % (prog, m, sorted(sides) or "no side"))
    if r["failed_total"] != 0:
        fails.append("%d failed calls in all" % r["failed_total"])
    for prog in ("scheduler", "executor"):
        st = r["final_stats"].get(prog, {})
        if st.get("failed_total", 1) != 0:
            fails.append("%s: failed_total %r" % (prog, st.get("failed_total")))
    lost = r["final_stats"].get("scheduler", {}).get("jobs_lost_total", 1)
    if lost != 0:
        fails.append("jobs lost: %r" % lost)
    bad = {k: v for k, v in r["exit_codes"].items() if v != 0}
    if bad:
        fails.append("exit codes: %r" % bad)
    if p.returncode != 0 or not r["passed"]:
        fails.append("demo.py exit %d, passed %r" % (p.returncode,
                                                      r["passed"]))
    for f in fails:
        sys.stderr.write("FAIL: %s\n" % f)
    if fails:
        sys.stderr.write("logs: %s\n" % os.path.join(out, "demo", "logs"))
        return 1
    print("demo_e2e: 6 steps, every check held, every operation on both "
          "sides, no failed call (%.0f s)" % r["elapsed_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
