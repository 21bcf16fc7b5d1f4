#!/usr/bin/python3
"""An orpc server's legacy side, driven the way old Python services call.

Starts the legacy fixture (legacy_server.py: what the FastAPI services
answer) and legacy_proxy_server (an orpc server whose handlers forward each
call to that fixture through routed clients, with orpc's gateway serving
legacy JSON on the same port), then sends the same requests to both and
compares: every legacy route of the five services, errors, authentication,
keep-alive and pipelining, hostile input, the Connect protocol, and gRPC
and legacy callers on one port at once.  The legacy caller uses only the
standard library (http.client, socket), as today's services do; the gRPC
caller uses python3-grpcio with raw bytes.

Usage (run with /usr/bin/python3):
  serve_check.py --proxy=BUILD/bin/legacy_proxy_server [--orpc=BUILD/bin/orpc]
                 [--interop=BUILD/bin/orpc-interop-server]

Prints one line per failed check and "N passed, M failed"; exits 1 if any
check failed.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from http_check import (TIMEOUT, UA, Reply, Tally, masked,  # noqa: E402,F401
                        request, strict_equal)
USER, PASSWORD = "scheduler-service", "scheduler-secret"

check = Tally()


def start(cmd, marker):
    """Starts |cmd| and waits for its "<marker> <port>" line."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=sys.stderr,
                         text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        if line.startswith(marker):
            return p, int(line.split()[-1])
    p.kill()
    raise RuntimeError("%s did not start" % cmd[0])


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return -9


def same(name, fx, orpc, exact=True):
    """|orpc| answers as the fixture did: status, JSON, and (for answers
    without volatile fields) the very bytes."""
    check(name + ": status", fx.status == orpc.status,
          "fixture %r, orpc %r" % (fx, orpc))
    check(name + ": content type", (orpc.header("Content-Type") or "")
          .startswith("application/json"), orpc.header("Content-Type"))
    a, b = fx.json(), orpc.json()
    check(name + ": JSON", a is not None and b is not None and
          strict_equal(masked(a), masked(b)),
          "fixture %r\n     orpc %r" % (fx.data[:400], orpc.data[:400]))
    if exact:
        check(name + ": bytes", fx.data == orpc.data,
              "fixture %r\n     orpc %r" % (fx.data[:400], orpc.data[:400]))


def login(port, user=USER, password=PASSWORD):
    r = request(port, "POST", "/login", {"username": user, "password": password})
    return (r.json() or {}).get("access_token"), r


# ---------------------------------------------------------------------------

def check_routes(fx, px, token):
    """Every legacy route of the five services, found and not found."""
    gets = ["/jobs/7", "/jobs/7/status", "/jobs/100", "/credentials/1",
            "/credentials/2", "/credentials/3", "/targets/2/credentials",
            "/users/1", "/users/2", "/users/10", "/users/4/preferences",
            "/users/3/preferences", "/verify"]
    for path in gets:
        same("GET " + path, request(fx, "GET", path, token=token),
             request(px, "GET", path, token=token))
    for path in ["/jobs/1000", "/credentials/99", "/targets/9/credentials",
                 "/users/999", "/users/999/preferences"]:
        a = request(fx, "GET", path, token=token)
        b = request(px, "GET", path, token=token)
        same("GET %s (not found)" % path, a, b)
    posts = [("/jobs/3/run", {"scheduled": True, "n": 2, "tags": ["a"]}),
             ("/jobs/3/run", None),
             ("/notifications", {"type": "email", "destination": "a@b.c",
                                 "payload": {"subject": "s", "body": "b"}}),
             ("/notifications", {"type": "slack", "destination": "#ops",
                                 "payload": {"message": "m", "x": 1},
                                 "template_id": 3})]
    for path, body in posts:
        same("POST %s %s" % (path, json.dumps(body)),
             request(fx, "POST", path, body, token=token),
             request(px, "POST", path, body, token=token), exact=False)
    a = request(fx, "POST", "/notifications",
                {"type": "email", "destination": "x", "payload": {},
                 "template_id": 77}, token=token)
    b = request(px, "POST", "/notifications",
                {"type": "email", "destination": "x", "payload": {},
                 "template_id": 77}, token=token)
    check("POST /notifications unknown template: both refuse",
          a.status >= 400 and b.status >= 400, "%r %r" % (a, b))
    # wrong verb, unknown route (FastAPI's texts)
    for method, path in [("DELETE", "/jobs/7"), ("GET", "/nothing/here"),
                         ("GET", "/jobs/7/run")]:
        same("%s %s" % (method, path), request(fx, method, path, token=token),
             request(px, method, path, token=token), exact=False)


def check_errors(px, token):
    """Bad input: 400 with a detail, never a crash."""
    cases = [
        ("malformed JSON", "POST", "/jobs/3/run", b"{not json"),
        ("wrong type", "POST", "/jobs/3/run", b"[1,2]"),
        ("invalid UTF-8", "POST", "/jobs/3/run", b'{"a": "\xff\xfe"}'),
        ("10k-deep JSON", "POST", "/jobs/3/run", b"[" * 10000 + b"]" * 10000),
        ("bad path integer", "GET", "/jobs/abc", None),
        ("dot segment", "GET", "/jobs/../users/1", None),
        ("encoded dot segment", "GET", "/jobs/%2e%2e/status", None),
        ("encoded slash", "GET", "/jobs/7%2Fstatus", None),
    ]
    for name, method, path, raw in cases:
        r = request(px, method, path, raw=raw, token=token,
                    headers={"Content-Type": "application/json"} if raw else None)
        j = r.json()
        check("%s: 4xx" % name, 400 <= r.status < 500, r)
        check("%s: detail" % name, isinstance(j, dict) and "detail" in j, r)


def check_auth(fx, px):
    for name, tok in [("no token", None), ("bad token", "not-a-token")]:
        a = request(fx, "GET", "/jobs/7", token=tok)
        b = request(px, "GET", "/jobs/7", token=tok)
        check("%s: 401" % name, b.status == 401, b)
        check("%s: same status as the fixture" % name, a.status == b.status,
              "%r %r" % (a, b))
        check("%s: detail" % name, "detail" in (b.json() or {}), b)
    # a token that expired before orpc ever saw it
    tok, _ = login(fx)
    r = request(fx, "POST", "/_fixture/config", {"expire_tokens": True})
    check("fixture expires tokens", r.status == 200, r)
    b = request(px, "GET", "/jobs/7", token=tok)
    check("expired token: 401", b.status == 401, b)
    # legacy_no_auth: login needs no token, through orpc too
    tok2, r = login(px)
    check("login through orpc (no token needed)", r.status == 200 and tok2, r)
    b = request(px, "POST", "/login", {"username": USER, "password": "wrong"})
    check("bad credentials through orpc: 401", b.status == 401, b)
    return tok2


def read_responses(sock, n):
    """Reads |n| HTTP/1.1 responses with Content-Length; [(status, body)]."""
    buf = b""
    out = []
    deadline = time.monotonic() + TIMEOUT
    while len(out) < n and time.monotonic() < deadline:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buf[:head_end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            if len(buf) >= head_end + 4 + length:
                out.append((int(head[0].split()[1]),
                            buf[head_end + 4:head_end + 4 + length]))
                buf = buf[head_end + 4 + length:]
                continue
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    return out


def check_connections(px, token):
    conn = http.client.HTTPConnection("127.0.0.1", px, timeout=TIMEOUT)
    ids = []
    for jid in (1, 2, 3):
        r = request(px, "GET", "/jobs/%d" % jid, token=token, conn=conn)
        ids.append((r.json() or {}).get("id"))
    check("keep-alive: three requests on one connection", ids == [1, 2, 3], ids)
    conn.close()
    s = socket.create_connection(("127.0.0.1", px), timeout=TIMEOUT)
    reqs = b"".join(
        b"GET /jobs/%d HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
        % (jid, token.encode()) for jid in (4, 5, 6))
    s.sendall(reqs)
    got = read_responses(s, 3)
    s.close()
    check("pipelining: three answers in order",
          [json.loads(b).get("id") for st, b in got if st == 200] == [4, 5, 6],
          got)
    # chunked request body
    s = socket.create_connection(("127.0.0.1", px), timeout=TIMEOUT)
    body = json.dumps({"scheduled": True}).encode()
    s.sendall(b"POST /jobs/2/run HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              + token.encode() + b"\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n" +
              b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    got = read_responses(s, 1)
    s.close()
    check("chunked request body", got and got[0][0] == 200 and
          json.loads(got[0][1]).get("payload") == {"scheduled": True}, got)


def raw_exchange(port, data, wait=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=wait)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not d:
                break
            out += d
        return out
    finally:
        s.close()


def status_of(raw):
    try:
        return int(raw.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def check_hostile(px, token):
    """Hostile input is answered and closed; others keep being served."""
    cases = [
        ("bad request line", b"GET  HTTP/1.1\r\n\r\n", 400),
        ("bad HTTP version", b"GET / HTTP/9.1\r\n\r\n", 400),
        ("header line without a colon",
         b"GET /jobs/1 HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        ("long request line", b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n",
         414),
        ("header flood", b"GET /jobs/1 HTTP/1.1\r\n" +
         b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n", 431),
        ("huge Content-Length", b"POST /jobs/1/run HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: 99999999999\r\n\r\n", 413),
        ("negative Content-Length", b"POST /jobs/1/run HTTP/1.1\r\nHost: x\r\n"
         b"Content-Length: -5\r\n\r\n", 400),
        ("bad chunk size", b"POST /jobs/1/run HTTP/1.1\r\nHost: x\r\n"
         b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ]
    for name, data, want in cases:
        raw = raw_exchange(px, data)
        check("%s: %d" % (name, want), status_of(raw) == want, raw[:200])
    # a slowloris trickle does not block others
    s = socket.create_connection(("127.0.0.1", px), timeout=TIMEOUT)
    s.sendall(b"GET /jobs/1 HTTP/1.1\r\n")
    r = request(px, "GET", "/jobs/8", token=token)
    check("served while a head trickles in", r.status == 200, r)
    s.close()


def check_connect(px, token):
    base = "/opsconductor.jobs.v1.JobsService/"
    r = request(px, "POST", base + "GetJob", {"jobId": "7"},
                headers={"Connect-Protocol-Version": "1"})
    j = r.json() or {}
    check("Connect JSON unary: 200", r.status == 200, r)
    check("Connect JSON unary: the job", (j.get("job") or {}).get("id") == 7, r)
    r = request(px, "POST", base + "GetJob", {"jobId": "100000"},
                headers={"Connect-Protocol-Version": "1"})
    j = r.json() or {}
    check("Connect error: 404 not_found",
          r.status == 404 and j.get("code") == "not_found" and "message" in j,
          r)
    # binary: GetJobRequest{job_id: 7} is 08 07
    r = request(px, "POST", base + "GetJob", raw=b"\x08\x07",
                headers={"Content-Type": "application/proto",
                         "Connect-Protocol-Version": "1"})
    check("Connect proto unary", r.status == 200 and
          (r.header("Content-Type") or "").startswith("application/proto") and
          r.data[:1] == b"\x0a", r)
    msg = urllib.parse.quote(json.dumps({"jobId": "5"}))
    r = request(px, "GET", base + "GetJob?encoding=json&message=" + msg)
    check("Connect GET for a NO_SIDE_EFFECTS method",
          r.status == 200 and ((r.json() or {}).get("job") or {}).get("id") == 5,
          r)
    r = request(px, "GET", base + "RunJob?encoding=json&message=" +
                urllib.parse.quote('{"jobId": "5"}'))
    check("Connect GET refused for a method with side effects",
          r.status == 405, r)
    r = request(px, "POST", base + "NoSuchMethod", {},
                headers={"Connect-Protocol-Version": "1"})
    check("Connect unknown method: 404 or 501 with a Connect error",
          r.status in (404, 501) and "code" in (r.json() or {}), r)
    # Connect-Timeout-Ms: the fixture is told to be slow
    request(px_fixture_port[0], "POST", "/_fixture/config",
            {"rules": [{"route": "GET /jobs/{job_id}", "delay_ms": 2000,
                        "times": 1}]})
    t0 = time.monotonic()
    r = request(px, "POST", base + "GetJob", {"jobId": "9"},
                headers={"Connect-Protocol-Version": "1",
                         "Connect-Timeout-Ms": "200"})
    took = time.monotonic() - t0
    check("Connect-Timeout-Ms: deadline_exceeded",
          (r.json() or {}).get("code") == "deadline_exceeded", r)
    check("Connect-Timeout-Ms: answered before the slow reply", took < 1.9,
          took)
    request(px_fixture_port[0], "POST", "/_fixture/reset", {})


px_fixture_port = [0]


def check_streams(fx, px, token):
    """WatchJob over HTTP/1.1: newline-delimited JSON, chunked."""
    status = (request(fx, "GET", "/jobs/7/status", token=token).json()
              or {}).get("status")
    r = request(px, "GET", "/jobs/7/events", token=token)
    check("WatchJob NDJSON: 200", r.status == 200, r)
    check("WatchJob NDJSON: content type",
          (r.header("Content-Type") or "").startswith("application/x-ndjson"),
          r.header("Content-Type"))
    check("WatchJob NDJSON: chunked",
          (r.header("Transfer-Encoding") or "").lower() == "chunked",
          r.headers)
    lines = [l for l in r.data.split(b"\n") if l]
    try:
        events = [json.loads(l) for l in lines]
    except ValueError:
        events = []
    check("WatchJob NDJSON: one event per line",
          [e.get("status") for e in events] == ["queued", "running", status]
          and all(e.get("job_id") in (7, "7") for e in events), r.data[:400])
    check("WatchJob NDJSON: timestamps as RFC 3339",
          events and events[0].get("changed_at") == "2024-01-01T00:00:00Z",
          events[:1])
    r = request(px, "GET", "/jobs/1000/events", token=token)
    check("WatchJob of an unknown job: 404 before any event",
          r.status == 404 and "detail" in (r.json() or {}), r)
    r = request(px, "POST",
                "/opsconductor.notification.v1.NotificationService/SendBatch",
                {}, headers={"Connect-Protocol-Version": "1"})
    check("client streaming over Connect unary: refused with a Connect error",
          r.status >= 400 and "code" in (r.json() or {}), r)


def check_both_worlds(px, token):
    """gRPC (python3-grpcio, raw bytes) and legacy callers on one port."""
    try:
        import grpc
    except ImportError:
        check("python3-grpcio importable", False)
        return
    ch = grpc.insecure_channel("127.0.0.1:%d" % px)
    get_job = ch.unary_unary("/opsconductor.jobs.v1.JobsService/GetJob")
    errors = []

    def grpc_calls():
        for _ in range(30):
            out = get_job(b"\x08\x07", timeout=TIMEOUT)
            if not out.startswith(b"\x0a"):
                errors.append("grpc %r" % out[:40])

    def legacy_calls():
        conn = http.client.HTTPConnection("127.0.0.1", px, timeout=TIMEOUT)
        for _ in range(30):
            r = request(px, "GET", "/jobs/7", token=token, conn=conn)
            if r.status != 200:
                errors.append("legacy %r" % r)
        conn.close()

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        futs = [ex.submit(f) for f in (grpc_calls, legacy_calls,
                                       grpc_calls, legacy_calls)]
        for f in futs:
            try:
                f.result(timeout=60)
            except Exception as e:  # a failed call is the check's failure
                errors.append(repr(e))
    ch.close()
    check("gRPC and legacy callers on one port at once", not errors, errors[:3])


def check_orpc_cli(orpc, fx, px):
    """orpc's routed client in legacy mode against orpc's legacy side."""
    if not orpc:
        return
    env = dict(os.environ, ORPC_CLI_USERNAME=USER, ORPC_CLI_PASSWORD=PASSWORD,
               AUTH_SERVICE_URL="http://127.0.0.1:%d" % fx)
    p = subprocess.run([orpc, "call", "--legacy-url",
                        "http://127.0.0.1:%d" % px, "-d", '{"job_id": 7}',
                        "opsconductor.jobs.v1.JobsService/GetJob"],
                       env=env, capture_output=True, text=True, timeout=30)
    out = p.stdout.strip()
    check("orpc call --legacy-url against orpc: GetJob", p.returncode == 0 and
          '"job"' in out, (p.returncode, out[:200], p.stderr[:300]))
    p = subprocess.run([orpc, "call", "--legacy-url",
                        "http://127.0.0.1:%d" % px, "-d", '{"job_id": 100000}',
                        "opsconductor.jobs.v1.JobsService/GetJob"],
                       env=env, capture_output=True, text=True, timeout=30)
    check("orpc call --legacy-url against orpc: NOT_FOUND comes back",
          p.returncode == 5 and "NOT_FOUND" in p.stderr,
          (p.returncode, p.stderr[:300]))


def check_interop_connect(interop):
    """Connect's unary form reaches any orpc method: TestService on
    orpc-interop-server, which has no HttpRules at all."""
    if not interop:
        return
    p, port = start([interop, "--port=0"], "listening on")
    try:
        base = "/grpc.testing.TestService/"
        r = request(port, "POST", base + "UnaryCall",
                    {"responseSize": 4, "fillUsername": False})
        j = r.json() or {}
        check("interop UnaryCall over Connect JSON: 200 and the payload",
              r.status == 200 and
              (j.get("payload") or {}).get("body") == "AAAAAA==", r)
        r = request(port, "POST", base + "EmptyCall", {})
        check("interop EmptyCall over Connect JSON: {}",
              r.status == 200 and r.json() == {}, r)
        # metadata both ways: the server echoes these two as a response
        # header and a trailer (-bin values are base64 on the wire)
        r = request(port, "POST", base + "UnaryCall", {"responseSize": 1},
                    headers={"x-grpc-test-echo-initial": "hello",
                             "x-grpc-test-echo-trailing-bin": "AQI"})
        check("Connect: response metadata as headers, trailers prefixed",
              r.status == 200 and
              r.header("x-grpc-test-echo-initial") == "hello" and
              r.header("trailer-x-grpc-test-echo-trailing-bin") == "AQI",
              r.headers)
        r = request(port, "POST", base + "UnaryCall",
                    {"responseStatus": {"code": 5, "message": "no such"}})
        j = r.json() or {}
        check("interop UnaryCall echoing NOT_FOUND: Connect error",
              r.status == 404 and j.get("code") == "not_found" and
              j.get("message") == "no such", r)
        r = request(port, "POST", base + "UnimplementedCall", {})
        check("interop UnimplementedCall: unimplemented",
              (r.json() or {}).get("code") == "unimplemented", r)
        # SimpleRequest{response_size: 3} in binary: 10 03
        r = request(port, "POST", base + "UnaryCall", raw=b"\x10\x03",
                    headers={"Content-Type": "application/proto"})
        check("interop UnaryCall over Connect proto",
              r.status == 200 and r.data.startswith(b"\x0a"), r)
    finally:
        check("orpc-interop-server exits 0 on SIGTERM", stop(p) == 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--orpc")
    ap.add_argument("--interop")
    args = ap.parse_args()
    fixture, fx = start(["/usr/bin/python3", os.path.join(HERE,
                                                          "legacy_server.py"),
                         "--port=0"], "listening on")
    px_fixture_port[0] = fx
    proxy = None
    try:
        proxy, px = start([args.proxy, "--fixture", "http://127.0.0.1:%d" % fx],
                          "PORT")
        token, r = login(fx)
        if not token:
            raise RuntimeError("cannot log in at the fixture: %r" % r)
        check_routes(fx, px, token)
        check_errors(px, token)
        check_connections(px, token)
        check_hostile(px, token)
        check_connect(px, token)
        check_streams(fx, px, token)
        check_both_worlds(px, token)
        check_orpc_cli(args.orpc, fx, px)
        check_interop_connect(args.interop)
        token = check_auth(fx, px)  # expires the fixture's tokens: last
        check("proxy still serving after all of it",
              request(px, "GET", "/health").status == 200)
    finally:
        if proxy is not None:
            check("orpc server exits 0 on SIGTERM", stop(proxy) == 0)
        stop(fixture)
    sys.exit(check.summary())


if __name__ == "__main__":
    main()
