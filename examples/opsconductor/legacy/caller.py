#!/usr/bin/python3
"""The legacy Python caller: OpsConductor's service clients as they are today.

One calling service (e.g. the scheduler) reaching the five legacy services
over JSON/HTTP with httpx, the way the platform's standardized clients do
(the legacy API; tests/legacy/README.md lists it route by route):

- base URLs from AUTH_SERVICE_URL, JOBS_SERVICE_URL, NOTIFICATION_SERVICE_URL,
  CREDENTIALS_SERVICE_URL, USER_SERVICE_URL (defaults: the platform's);
- every call sends Content-Type: application/json,
  User-Agent: OpsConductor-<caller>/1.0.0 and, except POST /login,
  Authorization: Bearer <service token>;
- the token comes from POST /login with <CALLER>_SERVICE_USERNAME and
  <CALLER>_SERVICE_PASSWORD, is cached until 60 s before its expires_in runs
  out, and a 401 forces one refresh and one retry.  Unlike today's clients
  it refuses to start without those two variables (no shared default
  account), never logs a token or password, and refreshes once for all
  concurrent callers (single flight);
- SERVICE_HTTP_TIMEOUT (30), SERVICE_HTTP_CONNECT_TIMEOUT (10),
  SERVICE_HTTP_MAX_RETRIES (3), SERVICE_HTTP_RETRY_DELAY (1),
  SERVICE_HTTP_MAX_CONNECTIONS (100), SERVICE_HTTP_MAX_KEEPALIVE_CONNECTIONS
  (20), LOG_LEVEL (INFO), SERVICE_COMM_LOG_ENABLED (true).  Retried: a call
  that could not be sent or got no reply (connect error, timeout, dropped
  connection) and a 502/503/504, after SERVICE_HTTP_RETRY_DELAY seconds, at
  most SERVICE_HTTP_MAX_RETRIES times (POSTs too, as today);
- errors by status: AuthError (401, 403), ValidationError (400, 422),
  NotFoundError (404), DatabaseError (500), ServiceCommunicationError
  (unreachable, other 5xx, any other status); all are ServiceError.

As a library:  async with LegacyClient("scheduler") as c: await c.get_job(7)

As a program (run with /usr/bin/python3):
  caller.py [--caller=scheduler] --call=ROUTE [--id=N]
      one call; prints the reply (exit 0) or the error (exit 1)
  caller.py [--caller=scheduler] --loop --seconds=N --rate=R
            [--routes=all|jobs|notification|credentials|user|auth|ROUTE,...]
            [--concurrency=C (16)] [--missing_every=K (0: never)]
            [--summary=FILE]
      calls at R per second for N seconds (routes in turn; every K-th call
      asks for an id that does not exist and expects NotFoundError), counts
      every call by route and outcome, and prints a JSON summary on stdout
      (also to FILE).  SIGTERM or SIGINT ends the loop early, with the
      summary.  Exits 0 if every call had its expected outcome, else 1.
  Exit 2: bad usage or no credentials.
ROUTE: verify, run_job, get_job, job_status, notify, credential,
target_credentials, user, preferences.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time

import httpx

sys.dont_write_bytecode = True

VERSION = "1.0.0"
SERVICES = {
    "auth": ("AUTH_SERVICE_URL", "http://auth-service:3001"),
    "jobs": ("JOBS_SERVICE_URL", "http://jobs-service:3006"),
    "notification": ("NOTIFICATION_SERVICE_URL", "http://notification-service:3009"),
    "credentials": ("CREDENTIALS_SERVICE_URL", "http://credentials-service:3004"),
    "user": ("USER_SERVICE_URL", "http://user-service:3002"),
}
REFRESH_MARGIN = 60         # seconds before expiry a cached token is replaced
DEFAULT_EXPIRES_IN = 3600   # a login reply without expires_in
RETRY_STATUSES = (502, 503, 504)
NOBODY = object()
log = logging.getLogger("opsconductor.caller")


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

class ServiceError(Exception):
    """A failed call: `status` (None: no reply), `detail`, and where."""

    def __init__(self, message, status=None, detail=None, service=None,
                 method=None, path=None):
        Exception.__init__(self, message)
        self.status, self.detail = status, detail
        self.service, self.method, self.path = service, method, path


class AuthError(ServiceError):
    """401 or 403, or a refused login."""


class ValidationError(ServiceError):
    """400 or 422."""


class NotFoundError(ServiceError):
    """404."""


class ServiceCommunicationError(ServiceError):
    """Unreachable, no reply in time, a 5xx, or an unexpected reply."""


class DatabaseError(ServiceCommunicationError):
    """500."""


class ConfigError(Exception):
    """The caller cannot start (no credentials, bad setting)."""


def error_class(status):
    if status in (401, 403):
        return AuthError
    if status in (400, 422):
        return ValidationError
    if status == 404:
        return NotFoundError
    if status == 500:
        return DatabaseError
    return ServiceCommunicationError


def error_for(reply, service, method, path):
    try:
        detail = reply.json().get("detail")
    except (ValueError, AttributeError):
        detail = reply.text[:200]
    return error_class(reply.status_code)(
        "%s %s %s: %d %s" % (service, method, path, reply.status_code, detail),
        reply.status_code, detail, service, method, path)


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------

class Settings(object):
    """The SERVICE_HTTP_* settings, from the environment."""

    def __init__(self, env=None):
        env = os.environ if env is None else env

        def num(name, default, kind=float, low=0):
            raw = env.get(name)
            if raw is None or not raw.strip():
                return default
            try:
                v = kind(raw)
            except ValueError:
                raise ConfigError("%s=%r is not a number" % (name, raw))
            if v < low:
                raise ConfigError("%s=%r is below %s" % (name, raw, low))
            return v
        self.timeout = num("SERVICE_HTTP_TIMEOUT", 30.0, low=0.001)
        self.connect_timeout = num("SERVICE_HTTP_CONNECT_TIMEOUT", 10.0, low=0.001)
        self.max_retries = num("SERVICE_HTTP_MAX_RETRIES", 3, int)
        self.retry_delay = num("SERVICE_HTTP_RETRY_DELAY", 1.0)
        self.max_connections = num("SERVICE_HTTP_MAX_CONNECTIONS", 100, int, 1)
        self.max_keepalive = num("SERVICE_HTTP_MAX_KEEPALIVE_CONNECTIONS", 20, int)
        self.log_level = env.get("LOG_LEVEL", "INFO").upper()
        self.comm_log = env.get("SERVICE_COMM_LOG_ENABLED", "true").strip().lower() \
            in ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------

class ServiceToken(object):
    """The "service authentication utility": one calling identity's token,
    cached until REFRESH_MARGIN seconds before it expires.  One login at a
    time (an asyncio lock): concurrent callers share its result."""

    def __init__(self, client, username, password):
        self.client = client
        self.username, self._password = username, password
        self.token, self.expires_at = None, 0.0
        self.lock = asyncio.Lock()
        self.logins = 0         # POST /login sent and answered with a token
        self.refreshes = 0      # of them, forced by a 401

    def _fresh(self):
        return self.token is not None and \
            time.monotonic() < self.expires_at - REFRESH_MARGIN

    async def get(self):
        if self._fresh():
            return self.token
        async with self.lock:
            if not self._fresh():
                await self._login()
            return self.token

    async def refresh(self, rejected):
        """After a 401 with `rejected`: a new token, unless another caller
        already got one meanwhile."""
        async with self.lock:
            if self.token is None or self.token == rejected:
                self.refreshes += 1
                await self._login()
            return self.token

    async def _login(self):
        reply = await self.client.send(
            "auth", "POST", "/login",
            {"username": self.username, "password": self._password}, None)
        if reply.status_code != 200:
            raise error_for(reply, "auth", "POST", "/login")
        try:
            doc = reply.json()
            token = doc.get("access_token")
        except (ValueError, AttributeError):
            doc, token = {}, None
        if not isinstance(token, str) or not token:
            raise AuthError("auth POST /login: the reply has no access_token "
                            "(credentials of %s refused)" % self.username,
                            reply.status_code, None, "auth", "POST", "/login")
        ttl = doc.get("expires_in", DEFAULT_EXPIRES_IN)
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
            ttl = DEFAULT_EXPIRES_IN
        self.token, self.expires_at = token, time.monotonic() + ttl
        self.logins += 1


class LegacyClient(object):
    """The five legacy services as seen by one calling service.

    `caller` names it: User-Agent OpsConductor-<caller>/1.0.0, credentials
    from <CALLER>_SERVICE_USERNAME / _PASSWORD (ConfigError without them).
    Use from one asyncio event loop."""

    def __init__(self, caller="scheduler", env=None, settings=None):
        env = os.environ if env is None else env
        prefix = caller.upper().replace("-", "_") + "_SERVICE"
        username = env.get(prefix + "_USERNAME")
        password = env.get(prefix + "_PASSWORD")
        if not username or not password:
            raise ConfigError("%s_USERNAME and %s_PASSWORD must be set: the "
                              "caller has no default account" % (prefix, prefix))
        self.settings = settings or Settings(env)
        self.caller = caller
        self.user_agent = "OpsConductor-%s/%s" % (caller, VERSION)
        self.urls = {s: env.get(var, default).rstrip("/")
                     for s, (var, default) in SERVICES.items()}
        s = self.settings
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(s.timeout, connect=s.connect_timeout),
            limits=httpx.Limits(max_connections=s.max_connections,
                                max_keepalive_connections=s.max_keepalive))
        self.auth = ServiceToken(self, username, password)
        self.retries = 0

    async def aclose(self):
        await self.http.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    async def send(self, service, method, path, body, token):
        """One call with retries; the reply (any status but 502/503/504
        after the last retry), or ServiceCommunicationError."""
        url = self.urls[service] + path
        headers = {"Content-Type": "application/json",
                   "User-Agent": self.user_agent}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        content = None if body is NOBODY else json.dumps(body).encode("utf-8")
        s = self.settings
        failure = None
        for attempt in range(s.max_retries + 1):
            if attempt:
                self.retries += 1
                await asyncio.sleep(s.retry_delay)
            t0 = time.monotonic()
            try:
                reply = await self.http.request(method, url, content=content,
                                                headers=headers)
            except httpx.TransportError as e:
                failure = ServiceCommunicationError(
                    "%s %s %s: %s: %s" % (service, method, path,
                                          type(e).__name__, e),
                    None, None, service, method, path)
                if s.comm_log:
                    log.info("%s %s %s -> %s (attempt %d)", service, method,
                             path, type(e).__name__, attempt + 1)
                continue
            if s.comm_log:
                log.info("%s %s %s -> %d in %.1f ms", service, method, path,
                         reply.status_code, (time.monotonic() - t0) * 1000)
            if reply.status_code in RETRY_STATUSES:
                failure = error_for(reply, service, method, path)
                continue
            return reply
        raise failure

    async def request(self, service, method, path, body=NOBODY):
        """An authenticated call; the reply's JSON or a ServiceError."""
        token = await self.auth.get()
        reply = await self.send(service, method, path, body, token)
        if reply.status_code == 401:
            token = await self.auth.refresh(token)
            reply = await self.send(service, method, path, body, token)
        if not 200 <= reply.status_code < 300:
            raise error_for(reply, service, method, path)
        try:
            return reply.json()
        except ValueError:
            raise ServiceCommunicationError(
                "%s %s %s: the reply is not JSON" % (service, method, path),
                reply.status_code, None, service, method, path)

    # The legacy endpoints -------------------------------------------------
    async def verify(self):
        return await self.request("auth", "GET", "/verify")

    async def run_job(self, job_id, payload=None):
        return await self.request("jobs", "POST", "/jobs/%s/run" % job_id,
                                  NOBODY if payload is None else payload)

    async def get_job(self, job_id):
        return await self.request("jobs", "GET", "/jobs/%s" % job_id)

    async def get_job_status(self, job_id):
        return await self.request("jobs", "GET", "/jobs/%s/status" % job_id)

    async def send_notification(self, type, destination, payload,
                                template_id=None):
        body = {"type": type, "destination": destination, "payload": payload}
        if template_id is not None:
            body["template_id"] = template_id
        return await self.request("notification", "POST", "/notifications", body)

    async def get_credential(self, credential_id):
        return await self.request("credentials", "GET",
                                  "/credentials/%s" % credential_id)

    async def get_target_credentials(self, target_id):
        return await self.request("credentials", "GET",
                                  "/targets/%s/credentials" % target_id)

    async def get_user(self, user_id):
        return await self.request("user", "GET", "/users/%s" % user_id)

    async def get_user_preferences(self, user_id):
        return await self.request("user", "GET", "/users/%s/preferences" % user_id)


# ---------------------------------------------------------------------------
# The command line: one call, or a loop of calls
# ---------------------------------------------------------------------------

MISSING_ID = 100000     # no job, credential, target or user has it


def _email(i):
    return {"subject": "Job report %d" % i, "body": "All good."}


# name: (route key as in the fixture's by_route, ids in range, call(c, id, i))
ROUTES = {
    "verify": ("GET /verify", None, lambda c, n, i: c.verify()),
    "run_job": ("POST /jobs/{job_id}/run", 100,
                lambda c, n, i: c.run_job(n, {"scheduled": True, "seq": i})),
    "get_job": ("GET /jobs/{job_id}", 100, lambda c, n, i: c.get_job(n)),
    "job_status": ("GET /jobs/{job_id}/status", 100,
                   lambda c, n, i: c.get_job_status(n)),
    # the "id" of a notification is its template (1..10)
    "notify": ("POST /notifications", 10, lambda c, n, i: c.send_notification(
        "email", "ops@example.com", _email(i), n) if i % 2 else
        c.send_notification("slack", "#ops", {"message": "run %d" % i}, n)),
    "credential": ("GET /credentials/{credential_id}", 20,
                   lambda c, n, i: c.get_credential(n)),
    "target_credentials": ("GET /targets/{target_id}/credentials", 5,
                           lambda c, n, i: c.get_target_credentials(n)),
    "user": ("GET /users/{user_id}", 50, lambda c, n, i: c.get_user(n)),
    "preferences": ("GET /users/{user_id}/preferences", 50,
                    lambda c, n, i: c.get_user_preferences(n)),
}
GROUPS = {
    "auth": ["verify"],
    "jobs": ["run_job", "get_job", "job_status"],
    "notification": ["notify"],
    "credentials": ["credential", "target_credentials"],
    "user": ["user", "preferences"],
}
GROUPS["all"] = [r for g in ("auth", "jobs", "notification", "credentials",
                             "user") for r in GROUPS[g]]


def parse_routes(text):
    out = []
    for part in text.split(","):
        part = part.strip()
        if part in GROUPS:
            out += GROUPS[part]
        elif part in ROUTES:
            out.append(part)
        else:
            raise ConfigError("unknown route or group %r (routes: %s; groups: "
                              "%s)" % (part, ", ".join(ROUTES),
                                       ", ".join(GROUPS)))
    return out


def percentile(sorted_ms, q):
    if not sorted_ms:
        return None
    k = min(len(sorted_ms) - 1, max(0, int(round(q * (len(sorted_ms) - 1)))))
    return round(sorted_ms[k], 3)


class Tally(object):
    """Every call by route and outcome ("ok" or the error class name)."""

    def __init__(self):
        self.by_route = {}
        self.calls = self.ok = self.expected = self.failed = self.cancelled = 0

    def add(self, key, outcome, ms, expected):
        r = self.by_route.setdefault(key, {"calls": 0, "outcomes": {}, "ms": []})
        r["calls"] += 1
        r["outcomes"][outcome] = r["outcomes"].get(outcome, 0) + 1
        r["ms"].append(ms)
        self.calls += 1
        if outcome == "cancelled":
            self.cancelled += 1
        if outcome == "ok" and expected == "ok":
            self.ok += 1
        elif outcome == expected:
            self.expected += 1
        else:
            self.failed += 1

    def summary(self, client, seconds, rate, routes):
        by_route, by_outcome = {}, {}
        for key, r in sorted(self.by_route.items()):
            ms = sorted(r["ms"])
            by_route[key] = {"calls": r["calls"], "outcomes": r["outcomes"],
                             "p50_ms": percentile(ms, 0.5),
                             "p99_ms": percentile(ms, 0.99)}
            for o, n in r["outcomes"].items():
                by_outcome[o] = by_outcome.get(o, 0) + n
        return {"caller": client.caller, "seconds": round(seconds, 3),
                "rate": rate, "routes": routes, "calls": self.calls,
                "ok": self.ok, "expected_errors": self.expected,
                "failed": self.failed, "cancelled": self.cancelled,
                "logins": client.auth.logins,
                "token_refreshes": client.auth.refreshes,
                "retries": client.retries, "by_outcome": by_outcome,
                "by_route": by_route}


async def run_loop(client, routes, seconds, rate, concurrency, missing_every,
                   stop):
    """Starts call i at i/rate seconds (at most `concurrency` at once) until
    `seconds` have passed or `stop` is set, then waits for the calls under
    way (at most the time one call may take, retries included)."""
    loop = asyncio.get_running_loop()
    tally, tasks = Tally(), set()
    sem = asyncio.Semaphore(concurrency)

    async def one(i):
        name = routes[i % len(routes)]
        key, limit, fn = ROUTES[name]
        missing = bool(limit and missing_every and
                       i % missing_every == missing_every - 1)
        n = MISSING_ID if missing else (i % limit + 1 if limit else None)
        expected = "NotFoundError" if missing else "ok"
        t0 = time.monotonic()
        try:
            await fn(client, n, i)
            outcome = "ok"
        except ServiceError as e:
            outcome = type(e).__name__
        except asyncio.CancelledError:
            outcome = "cancelled"
        except Exception as e:      # noqa: BLE001 - counted, never lost
            outcome = "unexpected:%s" % type(e).__name__
        finally:
            sem.release()
        tally.add(key, outcome, (time.monotonic() - t0) * 1000, expected)

    t_start = loop.time()
    i = 0
    while not stop.is_set():
        due = t_start + i / rate
        if due >= t_start + seconds:
            break
        wait = due - loop.time()
        if wait > 0:
            try:
                await asyncio.wait_for(stop.wait(), wait)
                break
            except asyncio.TimeoutError:
                pass
        await sem.acquire()
        task = loop.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
    s = client.settings
    drain = (s.timeout + s.retry_delay) * (s.max_retries + 1) * 2 + 1
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=drain)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
    return tally, loop.time() - t_start


async def amain(args):
    client = LegacyClient(args.caller)
    try:
        if args.call:
            if args.call not in ROUTES:
                raise ConfigError("unknown route %r" % args.call)
            _, limit, fn = ROUTES[args.call]
            try:
                reply = await fn(client, args.id if limit else None, 1)
            except ServiceError as e:
                print(json.dumps({"error": type(e).__name__, "status": e.status,
                                  "detail": e.detail, "message": str(e)}))
                return 1
            print(json.dumps(reply, ensure_ascii=False, indent=2))
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        routes = parse_routes(args.routes)
        tally, elapsed = await run_loop(client, routes, args.seconds, args.rate,
                                        args.concurrency, args.missing_every,
                                        stop)
        summary = tally.summary(client, elapsed, args.rate, routes)
        text = json.dumps(summary, indent=2, sort_keys=False)
        if args.summary:
            with open(args.summary, "w") as f:
                f.write(text + "\n")
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return 0 if summary["failed"] == 0 else 1
    finally:
        await client.aclose()


def main(argv):
    ap = argparse.ArgumentParser(
        description="The legacy OpsConductor Python caller (httpx).")
    ap.add_argument("--caller", default="scheduler",
                    help="the calling service: User-Agent and credentials")
    ap.add_argument("--call", default=None, help="one call of this route")
    ap.add_argument("--id", type=int, default=1)
    ap.add_argument("--loop", action="store_true")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--routes", default="all")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--missing_every", type=int, default=0)
    ap.add_argument("--summary", default=None)
    args = ap.parse_args(argv)
    if bool(args.call) == bool(args.loop):
        ap.error("give either --call=ROUTE or --loop")
    if args.loop and not (0 < args.seconds <= 86400 and 0 < args.rate <= 100000
                          and 1 <= args.concurrency <= 10000
                          and args.missing_every >= 0):
        ap.error("bad --seconds, --rate, --concurrency or --missing_every")
    try:
        settings = Settings()
        logging.basicConfig(stream=sys.stderr,
                            level=getattr(logging, settings.log_level, logging.INFO),
                            format="caller: %(levelname)s %(message)s")
        if args.loop:
            parse_routes(args.routes)
        return asyncio.run(amain(args))
    except ConfigError as e:
        sys.stderr.write("caller.py: %s\n" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
