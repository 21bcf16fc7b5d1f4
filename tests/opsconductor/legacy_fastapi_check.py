#!/usr/bin/python3
"""The five FastAPI apps of examples/opsconductor/legacy/ held against the
legacy fixture's own checks: starts them (127.0.0.1, ephemeral ports), runs
tests/legacy/client_check.py --urls=... against them, stops them with
SIGTERM and checks that each exits 0.  Exits 1 if anything failed."""

import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import legacy_apps  # noqa: E402


def main():
    apps = legacy_apps.LegacyApps()
    rc = 1
    try:
        r = subprocess.run(
            [legacy_apps.PY, os.path.join(legacy_apps.ROOT, "tests", "legacy",
                                          "client_check.py"),
             "--urls=" + apps.urls_arg(),
             "--short_ttl_account=short-ttl-service:short-secret"],
            timeout=180)
        rc = r.returncode
    finally:
        rcs = apps.stop()
    bad = {s: c for s, c in rcs.items() if c != 0}
    if bad:
        print("FAIL services did not exit 0 on SIGTERM: %r" % bad)
        for s in bad:
            print(apps.procs[s].tail())
        rc = 1
    if rc != 0:
        for s, p in apps.procs.items():
            print("--- %s log:%s" % (s, p.tail()))
    print("legacy_fastapi_check: %s" % ("ok" if rc == 0 else "FAILED"))
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
