"""Starts and stops the five legacy FastAPI apps (and the fixture) for the
tests in this directory.  Every process listens on 127.0.0.1, port 0; each
is stopped with SIGTERM and waited for (killed after 10 s, which fails)."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LEGACY = os.path.join(ROOT, "examples", "opsconductor", "legacy")
FIXTURE = os.path.join(ROOT, "tests", "legacy", "legacy_server.py")
PY = "/usr/bin/python3"
SERVICES = ("auth", "jobs", "notification", "credentials", "user")

# The fixture's built-in accounts, plus three whose tokens live 64 s (a
# caller keeps them 4 s), 1 s and 0 s.
ACCOUNTS = {
    "scheduler-service": "scheduler-secret",
    "jobs-service": "jobs-secret",
    "notification-service": "notification-secret",
    "credentials-service": "credentials-secret",
    "user-service": "user-secret",
    "auth-service": "auth-secret",
    "test-user": "test-password",
    "ttl64-service": {"password": "ttl64-secret", "token_ttl": 64},
    "short-ttl-service": {"password": "short-secret", "token_ttl": 1},
    "zero-ttl-service": {"password": "zero-secret", "token_ttl": 0},
}


def _die_with_parent():
    """In the child: SIGTERM when the test process dies (a ctest timeout
    must not leave servers behind).  Linux's PR_SET_PDEATHSIG."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Proc(object):
    def __init__(self, name, argv, env=None, log_dir=None):
        self.name = name
        self.log = open(os.path.join(log_dir, name + ".log"), "w+") \
            if log_dir else subprocess.DEVNULL
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                  stderr=self.log, text=True, env=env,
                                  preexec_fn=_die_with_parent)
        line = [None]

        def first():
            line[0] = self.p.stdout.readline()
        t = threading.Thread(target=first, daemon=True)
        t.start()
        t.join(30)
        if not (line[0] or "").startswith("listening on "):
            self.p.kill()
            self.p.wait()
            raise RuntimeError("%s did not start: %r%s" % (
                name, line[0], self.tail()))
        self.port = int(line[0].split()[2])
        self.url = "http://127.0.0.1:%d" % self.port
        # nothing more is written to stdout, but never let it block
        threading.Thread(target=self.p.stdout.read, daemon=True).start()

    def tail(self):
        if self.log is subprocess.DEVNULL:
            return ""
        self.log.flush()
        self.log.seek(0)
        return "\n" + self.log.read()[-2000:]

    def stop(self):
        """SIGTERM, then wait; returns the exit code (None: had to kill)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None


class LegacyApps(object):
    """The five apps: .urls {"auth": URL, ...}, .procs {...}, .stop()."""

    def __init__(self, log_dir=None, extra_env=None):
        self.tmp = tempfile.mkdtemp(prefix="opsc-legacy-")
        self.accounts = os.path.join(self.tmp, "accounts.json")
        with open(self.accounts, "w") as f:
            json.dump(ACCOUNTS, f)
        self.procs, self.urls = {}, {}
        env = dict(os.environ, LEGACY_DEBUG_ROUTES="1", **(extra_env or {}))
        env.pop("AUTH_ACCOUNTS", None)
        env.pop("AUTH_TOKEN_TTL", None)
        try:
            for svc in SERVICES:
                argv = [PY, os.path.join(LEGACY, "run.py"), svc, "--port=0"]
                if svc == "auth":
                    argv.append("--accounts=" + self.accounts)
                else:
                    argv.append("--auth_url=" + self.urls["auth"])
                self.procs[svc] = Proc(svc, argv, env, log_dir or self.tmp)
                self.urls[svc] = self.procs[svc].url
        except Exception:
            self.stop()
            raise

    def urls_arg(self):
        return ",".join("%s=%s" % (s, self.urls[s]) for s in SERVICES)

    def stop(self):
        """Stops every app (the auth service last); {service: exit code}."""
        rcs = {}
        for svc in reversed(SERVICES):
            if svc in self.procs:
                rcs[svc] = self.procs[svc].stop()
        return rcs


def start_fixture(log_dir=None):
    return Proc("fixture", [PY, FIXTURE, "--port=0"], None, log_dir)
