"""What the standard-library HTTP checks share (tests/legacy/serve_check.py,
examples/opsconductor/services/legacy_serve_check.py): a pass/fail tally,
one request on a connection of its own or a kept-alive one, its reply, and
the comparison of two answers (volatile fields masked, types strict).
Standard library only: old services call this way."""

import http.client
import json
import sys

UA = "OpsConductor-scheduler/1.0.0"
TIMEOUT = 15


class Tally(object):
    """Counts checks; prints each failure with what it saw."""

    def __init__(self):
        self.passed = self.failed = 0

    def __call__(self, name, cond, info=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL %s%s" % (name, (": " + str(info)[:700]) if info
                                 else ""))
            sys.stdout.flush()

    def summary(self):
        """Prints the totals; the exit status (1 if any failed)."""
        print("%d passed, %d failed" % (self.passed, self.failed))
        return 1 if self.failed else 0


class Reply(object):
    def __init__(self, status, headers, data):
        self.status, self.headers, self.data = status, headers, data

    def json(self):
        try:
            return json.loads(self.data)
        except ValueError:
            return None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "Reply(%s, %r)" % (self.status, self.data[:300])


def request(port, method, path, body=None, token=None, headers=None,
            raw=None, conn=None, raw_auth=None):
    """One request on |conn| (or a new connection to 127.0.0.1:|port|): a
    JSON |body| or |raw| bytes, a bearer |token| or a whole |raw_auth|
    Authorization value; returns a Reply."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    h = {"User-Agent": UA}
    data = raw
    if body is not None:
        data = json.dumps(body).encode("utf-8")
    if data is not None:
        h["Content-Type"] = "application/json"
    if token is not None:
        h["Authorization"] = "Bearer " + token
    if raw_auth is not None:
        h["Authorization"] = raw_auth
    h.update(headers or {})
    try:
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return Reply(r.status, r.getheaders(), r.read())
    finally:
        if own:
            conn.close()


# Fields whose values differ between two calls of the same request.
VOLATILE = {"queued_at", "sent_at", "execution_id", "notification_id",
            "access_token", "timestamp"}


def masked(v):
    if isinstance(v, dict):
        return {k: ("*" if k in VOLATILE else masked(x)) for k, x in v.items()}
    if isinstance(v, list):
        return [masked(x) for x in v]
    return v


def strict_equal(a, b):
    """Equality that tells 1 from 1.0 from "1" and True from 1."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    return a == b
