#!/bin/sh
# orpc_cli_test.sh BUILD_DIR SOURCE_DIR — the `orpc` command end to end:
# `list` (text and --json; through server reflection, --protoset and
# --proto against cli_echo_server, whose service is not compiled in),
# `routes` under environment overrides,
# `call` on the legacy path (against tests/legacy/legacy_server.py) and on
# the gRPC path (against orpc-interop-server), and `health` (plaintext, TLS
# and mutual TLS against orpc-interop-server; NOT_SERVING and UNKNOWN
# against health_server), `call` of methods not compiled in (every field
# kind, the four call kinds), TLS unless --plaintext, with exit codes equal
# to the gRPC status.
# Loopback only; servers stopped on exit.
set -u
build=$1
src=$2
orpc=$build/bin/orpc
work=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok    $1"; }
bad() { failed=$((failed + 1)); echo "FAIL  $1: $2"; }

wait_port() {
    i=0
    while [ $i -lt 100 ]; do
        p=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$1")
        [ -n "$p" ] && { echo "$p"; return 0; }
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

/usr/bin/python3 "$src/tests/legacy/legacy_server.py" --port=0 \
    >"$work/legacy.out" 2>"$work/legacy.err" &
pids="$pids $!"
lport=$(wait_port "$work/legacy.out") || { echo "legacy fixture did not start"; exit 1; }
"$build/bin/orpc-interop-server" --port=0 >"$work/grpc.out" 2>"$work/grpc.err" &
pids="$pids $!"
gport=$(wait_port "$work/grpc.out") || { echo "interop server did not start"; exit 1; }
url=http://127.0.0.1:$lport

# list
"$orpc" list >"$work/list.txt"
if grep -q "^opsconductor.jobs.v1.JobsService/RunJob	unary	POST /jobs/{job_id}/run$" "$work/list.txt" &&
    grep -q "^opsconductor.jobs.v1.JobsService/WatchJob	server_streaming	GET /jobs/{job_id}/events$" "$work/list.txt"; then
    ok "list"
else
    bad "list" "$(head -3 "$work/list.txt")"
fi
"$orpc" list --json >"$work/list.json"
if /usr/bin/python3 - "$work/list.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
svcs = {r["service"] for r in rows}
assert {"opsconductor.auth.v1.AuthService", "opsconductor.jobs.v1.JobsService",
        "opsconductor.notification.v1.NotificationService",
        "opsconductor.credentials.v1.CredentialsService",
        "opsconductor.user.v1.UserService"} <= svcs, svcs
run = [r for r in rows if r["method"] == "RunJob"][0]
assert run["kind"] == "unary"
assert run["http"] == [{"verb": "POST", "path": "/jobs/{job_id}/run",
                        "body": "payload", "response_body": "result"}], run
batch = [r for r in rows if r["method"] == "SendBatch"][0]
assert batch["kind"] == "client_streaming" and batch["http"] == []
PY
then ok "list --json"; else bad "list --json" "shape"; fi

# routes
ORPC_ROUTE_JOBS=grpc ORPC_ROUTE_JOBS_GET_JOB=fallback "$orpc" routes >"$work/routes.txt"
if grep -q "^opsconductor.jobs.v1.JobsService/RunJob	grpc$" "$work/routes.txt" &&
    grep -q "^opsconductor.jobs.v1.JobsService/GetJob	fallback$" "$work/routes.txt" &&
    grep -q "^opsconductor.user.v1.UserService/GetUser	legacy$" "$work/routes.txt"; then
    ok "routes"
else
    bad "routes" "$(grep Jobs "$work/routes.txt" | head -3)"
fi
ORPC_ROUTE_JOBS=sideways "$orpc" routes >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -ne 0 ] && grep -q "unknown mode" "$work/err.txt"; then ok "routes: bad mode refused"; else bad "routes: bad mode" "exit $rc"; fi

# call, legacy path
export ORPC_CLI_USERNAME=test-user ORPC_CLI_PASSWORD=test-password
export AUTH_SERVICE_URL=$url
"$orpc" call --legacy-url "$url" -d '{"job_id": 7}' \
    opsconductor.jobs.v1.JobsService/GetJob >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && grep -q '"job"' "$work/out.json"; then ok "call legacy GetJob"; else bad "call legacy GetJob" "exit $rc $(cat "$work/err.txt")"; fi
"$orpc" call --legacy-url "$url" -d '{"job_id": 100000}' \
    opsconductor.jobs.v1.JobsService/GetJob >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 5 ] && grep -q "NOT_FOUND" "$work/err.txt"; then ok "call legacy NOT_FOUND exit 5"; else bad "call legacy NOT_FOUND" "exit $rc $(cat "$work/err.txt")"; fi
echo '{"job_id": 3, "payload": {"scheduled": true}}' >"$work/req.json"
"$orpc" call --legacy-url "$url" -d "@$work/req.json" \
    opsconductor.jobs.v1.JobsService/RunJob >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && grep -q '"result"' "$work/out.json"; then ok "call legacy RunJob -d @file"; else bad "call legacy RunJob" "exit $rc $(cat "$work/err.txt")"; fi
env -u ORPC_CLI_USERNAME "$orpc" call --legacy-url "$url" -d '{"job_id": 7}' \
    opsconductor.jobs.v1.JobsService/GetJob >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 16 ] && grep -q "no credentials" "$work/err.txt"; then ok "call without credentials: UNAUTHENTICATED exit 16"; else bad "call without credentials" "exit $rc"; fi
"$orpc" call --legacy-url "ftp://127.0.0.1:1" -d '{"job_id": 7}' \
    opsconductor.jobs.v1.JobsService/GetJob >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 3 ] && grep -q -- "--legacy-url" "$work/err.txt"; then ok "call with a bad --legacy-url: INVALID_ARGUMENT exit 3, naming the flag"; else bad "call bad --legacy-url" "exit $rc $(cat "$work/err.txt")"; fi
"$orpc" call --legacy-url "$url" -d '{"job_id": "x"}' \
    opsconductor.jobs.v1.JobsService/GetJob >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 3 ] && grep -q 'request: \$\.job_id: ' "$work/err.txt"; then ok "call with a bad request: INVALID_ARGUMENT exit 3, the path named"; else bad "call bad request" "exit $rc $(cat "$work/err.txt")"; fi

# call, gRPC path
"$orpc" call --mode grpc --target "127.0.0.1:$gport" --plaintext -d '{"response_size": 3}' \
    grpc.testing.TestService/UnaryCall >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && grep -q '"body":"AAAA"' "$work/out.json"; then ok "call grpc UnaryCall"; else bad "call grpc UnaryCall" "exit $rc $(cat "$work/out.json" "$work/err.txt")"; fi
"$orpc" call --mode grpc --target "127.0.0.1:$gport" --plaintext \
    -d '{"response_status": {"code": 9, "message": "nope"}}' \
    grpc.testing.TestService/UnaryCall >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 9 ] && grep -q "FAILED_PRECONDITION: nope" "$work/err.txt"; then ok "call grpc status → exit 9"; else bad "call grpc status" "exit $rc $(cat "$work/err.txt")"; fi
"$orpc" call --mode grpc --target "127.0.0.1:$gport" --plaintext \
    -d '{"response_parameters": [{"size": 1}, {"size": 2}]}' \
    grpc.testing.TestService/StreamingOutputCall >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && [ "$(wc -l <"$work/out.json")" -eq 2 ]; then ok "call grpc server streaming"; else bad "call grpc server streaming" "exit $rc"; fi
"$orpc" call --mode grpc --target "127.0.0.1:$gport" --plaintext -H 'x-grpc-test-echo-initial: hi' \
    grpc.testing.TestService/EmptyCall >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ]; then ok "call grpc with -H"; else bad "call grpc -H" "exit $rc $(cat "$work/err.txt")"; fi
"$orpc" call nosuch.Service/Nope >/dev/null 2>&1
rc=$?
if [ $rc -eq 12 ]; then ok "unknown method: exit 12"; else bad "unknown method" "exit $rc"; fi

# shadow from the command line: the legacy side answers, the gRPC side
# (which has no JobsService) is compared and disagrees
"$orpc" call --mode shadow -v --legacy-url "$url" --target "127.0.0.1:$gport" --plaintext \
    -d '{"job_id": 7}' opsconductor.jobs.v1.JobsService/GetJob \
    >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && grep -q '"job"' "$work/out.json" &&
    grep -q "^served-by: legacy$" "$work/err.txt" &&
    grep -q "status: legacy OK, gRPC UNIMPLEMENTED" "$work/err.txt" &&
    grep -q "^shadow: MISMATCH" "$work/err.txt"; then
    ok "call --mode shadow reports the mismatch"
else
    bad "call --mode shadow" "exit $rc $(cat "$work/err.txt")"
fi
"$orpc" call --mode shadow --legacy-url "$url" --target "127.0.0.1:$gport" --plaintext \
    -d '{"job_id": 3}' opsconductor.jobs.v1.JobsService/RunJob \
    >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && grep -q "^shadow: not mirrored (the method has side effects)" "$work/err.txt"; then
    ok "call --mode shadow does not mirror a write"
else
    bad "call --mode shadow write" "exit $rc $(cat "$work/err.txt")"
fi
"$orpc" call -v --target "127.0.0.1:$gport" --plaintext grpc.testing.TestService/EmptyCall \
    >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && grep -q "^served-by: grpc$" "$work/err.txt"; then ok "a method without a legacy endpoint goes over gRPC"; else bad "no-legacy method" "exit $rc $(cat "$work/err.txt")"; fi

# counters: each process using the table writes its stats file; `routes`
# sums them
printf 'opsconductor.jobs.v1.JobsService/GetJob = fallback\nstats_file = %s/stats-{pid}.json\n' \
    "$work" >"$work/routes.conf"
for i in 1 2; do
    ORPC_ROUTES_FILE=$work/routes.conf "$orpc" call --legacy-url "$url" \
        --target "127.0.0.1:$gport" --plaintext -d '{"job_id": 7}' \
        opsconductor.jobs.v1.JobsService/GetJob >/dev/null 2>>"$work/err.txt"
done
ORPC_ROUTES_FILE=$work/routes.conf "$orpc" routes >"$work/routes.txt" 2>>"$work/err.txt"
if grep -q "^# counters summed over 2 stats files$" "$work/routes.txt" &&
    grep -q "^opsconductor.jobs.v1.JobsService/GetJob	fallback	grpc=0 legacy=2 fallbacks=2 " "$work/routes.txt"; then
    ok "routes shows the counters of every process"
else
    bad "routes counters" "$(grep -e '^#' -e GetJob "$work/routes.txt") $(cat "$work/err.txt")"
fi
ORPC_ROUTES_FILE=$work/routes.conf "$orpc" routes --json >"$work/routes.json"
if /usr/bin/python3 - "$work/routes.json" <<'PY'
import json, sys
rows = {r["method"]: r for r in json.load(open(sys.argv[1]))}
g = rows["opsconductor.jobs.v1.JobsService/GetJob"]
assert g["mode"] == "fallback" and g["legacy_endpoint"] is True, g
assert g["stats"]["legacy"] == 2 and g["stats"]["fallbacks"] == 2, g
w = rows["opsconductor.jobs.v1.JobsService/WatchJob"]
assert w["mode"] == "grpc" and w["legacy_endpoint"] is False and "stats" not in w, w
PY
then ok "routes --json"; else bad "routes --json" "shape"; fi
echo '{}' >"$work/not-stats.json"
"$orpc" routes --stats "$work/not-stats.json" >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 9 ] && grep -q "not a stats file" "$work/err.txt"; then ok "routes --stats refuses a foreign file: exit 9"; else bad "routes --stats" "exit $rc"; fi

# --env: the call a service configured by its environment would make
JOBS_SERVICE_URL=$url ORPC_IDENTITY=orpc-cli "$orpc" call --env -v \
    -d '{"job_id": 7}' opsconductor.jobs.v1.JobsService/GetJob \
    >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && grep -q '"job"' "$work/out.json" && grep -q "^served-by: legacy$" "$work/err.txt"; then
    ok "call --env: legacy from the service's variables"
else
    bad "call --env legacy" "exit $rc $(cat "$work/err.txt")"
fi
TEST_SERVICE_GRPC_TARGET=127.0.0.1:$gport ORPC_PLAINTEXT=1 "$orpc" call --env -v \
    grpc.testing.TestService/EmptyCall >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && grep -q "^served-by: grpc$" "$work/err.txt"; then ok "call --env: gRPC target from <SERVICE>_GRPC_TARGET"; else bad "call --env grpc" "exit $rc $(cat "$work/err.txt")"; fi
TEST_SERVICE_GRPC_TARGET=127.0.0.1:$gport "$orpc" call --env \
    grpc.testing.TestService/EmptyCall >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 9 ] && grep -q "no TLS is configured" "$work/err.txt"; then ok "call --env: a target without TLS refused: FAILED_PRECONDITION exit 9"; else bad "call --env without TLS" "exit $rc $(cat "$work/err.txt")"; fi
"$orpc" call --env --target "127.0.0.1:$gport" --plaintext grpc.testing.TestService/EmptyCall \
    >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 3 ] && grep -q "takes every setting from the environment" "$work/err.txt"; then ok "call --env refuses connection flags: exit 3"; else bad "call --env with flags" "exit $rc"; fi

# exit codes of local problems, one case each (orpc --help lists them)
"$orpc" --help >"$work/out.txt" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "^exit status" "$work/out.txt" && grep -q "UNAUTHENTICATED" "$work/out.txt"; then ok "--help: exit 0, lists the exit codes"; else bad "--help" "exit $rc"; fi
"$orpc" --version >"$work/out.txt" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "^orpc [0-9]" "$work/out.txt"; then ok "--version: exit 0"; else bad "--version" "exit $rc $(cat "$work/out.txt")"; fi
"$orpc" call --no-such-flag grpc.testing.TestService/EmptyCall >/dev/null 2>&1
rc=$?
if [ $rc -eq 3 ]; then ok "bad flag: INVALID_ARGUMENT exit 3"; else bad "bad flag" "exit $rc"; fi
"$orpc" call --mode grpc --target "127.0.0.1:$gport" --plaintext -d '{not json' \
    grpc.testing.TestService/EmptyCall >/dev/null 2>&1
rc=$?
if [ $rc -eq 3 ]; then ok "bad JSON: INVALID_ARGUMENT exit 3"; else bad "bad JSON" "exit $rc"; fi
"$orpc" call --mode grpc --target "127.0.0.1:$gport" --plaintext -d @"$work/does-not-exist.json" \
    grpc.testing.TestService/EmptyCall >/dev/null 2>&1
rc=$?
if [ $rc -eq 3 ]; then ok "unreadable -d file: INVALID_ARGUMENT exit 3"; else bad "unreadable -d file" "exit $rc"; fi
echo 'this is not a routing table' >"$work/bad-routes"
ORPC_ROUTES_FILE=$work/bad-routes "$orpc" call --target "127.0.0.1:$gport" --plaintext \
    grpc.testing.TestService/EmptyCall >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 9 ]; then ok "bad routing table: FAILED_PRECONDITION exit 9"; else bad "bad routing table" "exit $rc $(cat "$work/err.txt")"; fi
# a port that was just free: nobody answers
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
"$orpc" call --mode grpc --target "127.0.0.1:$dead" --plaintext --timeout 5000 \
    grpc.testing.TestService/EmptyCall >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 14 ] && grep -q "UNAVAILABLE" "$work/err.txt"; then ok "unreachable target: UNAVAILABLE exit 14"; else bad "unreachable target" "exit $rc $(cat "$work/err.txt")"; fi
# --mode grpc wants no legacy credentials, even for a method with a legacy
# route: it is the gRPC call that fails here (exit 14), not the setup (16)
env -u ORPC_CLI_USERNAME -u ORPC_CLI_PASSWORD "$orpc" call --mode grpc \
    --target "127.0.0.1:$dead" --plaintext --timeout 5000 -d '{"job_id": 7}' \
    opsconductor.jobs.v1.JobsService/GetJob >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 14 ] && ! grep -q "credentials" "$work/err.txt"; then ok "--mode grpc needs no legacy credentials"; else bad "--mode grpc without credentials" "exit $rc $(cat "$work/err.txt")"; fi
"$orpc" call --mode grpc --target "127.0.0.1:$gport" --plaintext --timeout soon \
    grpc.testing.TestService/EmptyCall >/dev/null 2>&1
rc=$?
if [ $rc -eq 3 ]; then ok "bad --timeout: exit 3"; else bad "bad --timeout" "exit $rc"; fi

# health: the built-in health service of every orpc server
"$orpc" health --target "127.0.0.1:$gport" --plaintext >"$work/out.txt" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && [ "$(cat "$work/out.txt")" = SERVING ]; then ok "health: SERVING, exit 0"; else bad "health" "exit $rc $(cat "$work/out.txt" "$work/err.txt")"; fi
"$orpc" health --target "127.0.0.1:$gport" --plaintext --service grpc.testing.TestService \
    >"$work/out.txt" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && [ "$(cat "$work/out.txt")" = SERVING ]; then ok "health --service: a registered service is SERVING"; else bad "health --service" "exit $rc $(cat "$work/out.txt" "$work/err.txt")"; fi
"$orpc" health --target "127.0.0.1:$gport" --plaintext --service no.such.Service \
    >"$work/out.txt" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 5 ] && grep -q "^NOT_FOUND" "$work/err.txt"; then ok "health: unknown service, NOT_FOUND exit 5"; else bad "health unknown service" "exit $rc $(cat "$work/err.txt")"; fi
# (before this test starts servers of its own, which might take $dead)
"$orpc" health --target "127.0.0.1:$dead" --plaintext >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 14 ] && grep -q "UNAVAILABLE" "$work/err.txt"; then ok "health: unreachable target, UNAVAILABLE exit 14"; else bad "health unreachable" "exit $rc $(cat "$work/err.txt")"; fi
"$build/bin/health_server" =NOT_SERVING app.Ready=SERVING app.Odd=UNKNOWN \
    >"$work/health.out" 2>"$work/health.err" &
pids="$pids $!"
hport=$(wait_port "$work/health.out") || { echo "health_server did not start"; exit 1; }
"$orpc" health --target "127.0.0.1:$hport" --plaintext >"$work/out.txt" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 14 ] && [ "$(cat "$work/out.txt")" = NOT_SERVING ]; then ok "health: NOT_SERVING, exit 14"; else bad "health NOT_SERVING" "exit $rc $(cat "$work/out.txt" "$work/err.txt")"; fi
"$orpc" health --target "127.0.0.1:$hport" --plaintext --service app.Odd >"$work/out.txt" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 14 ] && [ "$(cat "$work/out.txt")" = UNKNOWN ]; then ok "health: UNKNOWN, exit 14"; else bad "health UNKNOWN" "exit $rc $(cat "$work/out.txt" "$work/err.txt")"; fi
"$orpc" health --target "127.0.0.1:$hport" --plaintext --service app.Ready --timeout 3000 \
    >"$work/out.txt" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && [ "$(cat "$work/out.txt")" = SERVING ]; then ok "health: one service SERVING while the server is not"; else bad "health app.Ready" "exit $rc $(cat "$work/out.txt" "$work/err.txt")"; fi
for args in "--plaintext" \
    "--target 127.0.0.1:$gport --plaintext --ca $work/ca.pem" \
    "--target 127.0.0.1:$gport --cert $work/client.pem" \
    "--target 127.0.0.1:$gport --plaintext --timeout soon" \
    "--target 127.0.0.1:$gport --plaintext --bogus"; do
    # shellcheck disable=SC2086
    "$orpc" health $args >/dev/null 2>&1
    rc=$?
    if [ $rc -eq 3 ]; then ok "health $args: exit 3"; else bad "health $args" "exit $rc"; fi
done
# over TLS (and mutual TLS) against the interop server
if sh "$src/scripts/gen-test-certs.sh" "$work/certs" >"$work/certs.log" 2>&1; then
    c=$work/certs
    "$build/bin/orpc-interop-server" --port=0 --use_tls=true --tls_cert="$c/server.pem" \
        --tls_key="$c/server.key" >"$work/tls.out" 2>"$work/tls.err" &
    pids="$pids $!"
    tport=$(wait_port "$work/tls.out") || { echo "TLS interop server did not start"; exit 1; }
    "$build/bin/orpc-interop-server" --port=0 --use_tls=true --tls_cert="$c/server.pem" \
        --tls_key="$c/server.key" --tls_ca="$c/ca.pem" >"$work/mtls.out" 2>"$work/mtls.err" &
    pids="$pids $!"
    mport=$(wait_port "$work/mtls.out") || { echo "mTLS interop server did not start"; exit 1; }
    "$orpc" health --target "127.0.0.1:$tport" --ca "$c/ca.pem" >"$work/out.txt" 2>"$work/err.txt"
    rc=$?
    if [ $rc -eq 0 ] && [ "$(cat "$work/out.txt")" = SERVING ]; then ok "health --ca: SERVING over TLS"; else bad "health --ca" "exit $rc $(cat "$work/err.txt")"; fi
    "$orpc" health --target "127.0.0.1:$tport" >/dev/null 2>"$work/err.txt"
    rc=$?
    if [ $rc -eq 14 ]; then ok "health over TLS without --ca: the test CA is not trusted, exit 14"; else bad "health TLS system trust" "exit $rc $(cat "$work/err.txt")"; fi
    "$orpc" health --target "127.0.0.1:$mport" --ca "$c/ca.pem" --cert "$c/client.pem" \
        --key "$c/client.key" >"$work/out.txt" 2>"$work/err.txt"
    rc=$?
    if [ $rc -eq 0 ] && [ "$(cat "$work/out.txt")" = SERVING ]; then ok "health --cert --key: SERVING over mutual TLS"; else bad "health mTLS" "exit $rc $(cat "$work/err.txt")"; fi
    "$orpc" health --target "127.0.0.1:$mport" --ca "$c/ca.pem" >/dev/null 2>"$work/err.txt"
    rc=$?
    if [ $rc -ne 0 ]; then ok "health without a client certificate where one is required: exit $rc"; else bad "health mTLS without cert" "exit 0"; fi
    "$orpc" health --target "127.0.0.1:$tport" --plaintext >/dev/null 2>"$work/err.txt"
    rc=$?
    if [ $rc -eq 14 ]; then ok "health --plaintext against TLS: exit 14"; else bad "health plaintext vs TLS" "exit $rc $(cat "$work/err.txt")"; fi
else
    bad "health over TLS" "gen-test-certs.sh: $(cat "$work/certs.log")"
fi
"$orpc" --help 2>&1 | grep -q "orpc health --target" && ok "--help shows orpc health" || bad "--help" "no orpc health"

# TLS by default: without --plaintext a call to a cleartext server fails
# with a TLS error that names --plaintext; it is never sent in cleartext
"$orpc" call --mode grpc --target "127.0.0.1:$gport" --timeout 5000 \
    grpc.testing.TestService/EmptyCall >"$work/out.txt" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 14 ] && grep -q "TLS handshake" "$work/err.txt" && grep -q -- "--plaintext" "$work/err.txt" &&
    [ ! -s "$work/out.txt" ]; then
    ok "call without --plaintext to a cleartext server: TLS error, exit 14"
else
    bad "call TLS by default" "exit $rc $(cat "$work/out.txt" "$work/err.txt")"
fi

# a service the command does not compile in (cli_echo_server), through
# server reflection
"$build/bin/cli_echo_server" >"$work/echo.out" 2>"$work/echo.err" &
pids="$pids $!"
eport=$(wait_port "$work/echo.out") || { echo "cli_echo_server did not start"; exit 1; }
et="127.0.0.1:$eport"
if ! grep -q "orpc.test.cli" "$work/list.txt"; then ok "orpc.test.cli.Echo is not compiled in"; else bad "Echo compiled in" "$(grep orpc.test.cli "$work/list.txt")"; fi
"$orpc" call orpc.test.cli.Echo/Echo >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 12 ] && grep -q -- "--target, --protoset or" "$work/err.txt"; then ok "call of a method not compiled in without --target: exit 12"; else bad "call not compiled in" "exit $rc $(cat "$work/err.txt")"; fi
"$orpc" list --target "$et" --plaintext >"$work/out.txt" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && grep -q "^orpc.test.cli.Echo/Echo	unary$" "$work/out.txt" &&
    grep -q "^orpc.test.cli.Echo/Expand	server_streaming$" "$work/out.txt" &&
    grep -q "^orpc.test.cli.Echo/Collect	client_streaming$" "$work/out.txt" &&
    grep -q "^orpc.test.cli.Echo/Chat	bidi_streaming$" "$work/out.txt" &&
    grep -q "^grpc.health.v1.Health/Check	unary$" "$work/out.txt"; then
    ok "list --target: services and methods through reflection"
else
    bad "list --target" "exit $rc $(cat "$work/out.txt" "$work/err.txt")"
fi
"$orpc" list --target "$et" --plaintext orpc.test.cli.Echo >"$work/out.txt" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && [ "$(wc -l <"$work/out.txt")" -eq 5 ] &&
    grep -q "^orpc.test.cli.Echo/Collect	client_streaming	orpc.test.json.AllTypes	orpc.test.json.AllTypes$" "$work/out.txt"; then
    ok "list --target SERVICE: methods with types and kinds"
else
    bad "list --target SERVICE" "exit $rc $(cat "$work/out.txt" "$work/err.txt")"
fi
"$orpc" list --target "$et" --plaintext --json >"$work/out.json" 2>"$work/err.txt"
if /usr/bin/python3 - "$work/out.json" <<'PY'
import json, sys
rows = {r["service"] + "/" + r["method"]: r for r in json.load(open(sys.argv[1]))}
c = rows["orpc.test.cli.Echo/Chat"]
assert c["kind"] == "bidi_streaming" and c["request"] == "orpc.test.json.AllTypes", c
assert rows["grpc.health.v1.Health/Watch"]["kind"] == "server_streaming"
PY
then ok "list --target --json"; else bad "list --target --json" "$(cat "$work/err.txt")"; fi
"$orpc" list --target "$et" --plaintext no.such.Service >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 5 ]; then ok "list --target unknown SERVICE: exit 5"; else bad "list unknown service" "exit $rc"; fi
"$orpc" list --target "$et" >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 14 ] && grep -q -- "--plaintext" "$work/err.txt"; then ok "list --target without --plaintext: TLS error, exit 14"; else bad "list TLS default" "exit $rc $(cat "$work/err.txt")"; fi

# every field kind through the dynamic encoder, the server's protobuf-c
# and the dynamic decoder: the echo must equal the request
cat >"$work/all.json" <<'JSON'
{"fInt32": -5, "fInt64": "-9000000000", "fUint32": 4000000000,
 "fUint64": "18446744073709551615", "fSint32": -7, "fSint64": "-9",
 "fFixed32": 7, "fFixed64": "8", "fSfixed32": -3, "fSfixed64": "-4",
 "fFloat": 0.1, "fDouble": 1e+100, "fBool": true, "fString": "h\u00e9llo \"q\"",
 "fBytes": "AQID/w==", "fEnum": "COLOR_GREEN",
 "fNested": {"a": 1, "child": {"b": "deep", "child": {"a": 3}}},
 "rInt32": [1, -2, 3], "rInt64": ["5", "-6"], "rUint64": ["1"],
 "rSint32": [-1, 1], "rFixed32": [1, 2], "rDouble": [1.5, "NaN", "-Infinity"],
 "rBool": [true, false], "rString": ["a", ""], "rBytes": ["", "AA=="],
 "rEnum": ["COLOR_RED", "COLOR_BLUE"], "rNested": [{"a": 1}, {}],
 "mStringInt32": {"k": 3, "l": 0}, "mInt32String": {"-1": "neg"},
 "mInt64Nested": {"5": {"a": 7}}, "mUint64Enum": {"2": "COLOR_RED"},
 "mBoolString": {"true": "yes"}, "mSfixed64String": {"-8": "x"},
 "oNested": {"b": "one"}, "optInt32": 0, "customName": 4}
JSON
"$orpc" call --target "$et" --plaintext -d "@$work/all.json" orpc.test.cli.Echo/Echo \
    >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && /usr/bin/python3 - "$work/all.json" "$work/out.json" <<'PY'
import json, math, sys
want = json.load(open(sys.argv[1]))
got = json.loads(open(sys.argv[2]).read())
# the decoder prints fields in declaration order, one line of JSON
assert open(sys.argv[2]).read().count("\n") == 1
assert list(got)[:3] == ["fInt32", "fInt64", "fUint32"], list(got)
assert got == want, (sorted(set(got.items()) ^ set(want.items()), key=str) if False else
                     {k: (want.get(k), got.get(k)) for k in set(want) | set(got) if want.get(k) != got.get(k)})
PY
then ok "call --target: every field kind echoes through reflection"; else bad "call --target all types" "exit $rc $(cat "$work/out.json" "$work/err.txt")"; fi
"$orpc" call --target "$et" --plaintext -d '{"fInt64": 12, "fUint64": 34, "fBytes": "-_8", "fEnum": 2, "fFloat": "1.5", "fInt32": 0, "fString": ""}' \
    orpc.test.cli.Echo/Echo >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && [ "$(cat "$work/out.json")" = '{"fInt64":"12","fUint64":"34","fFloat":1.5,"fBytes":"+/8=","fEnum":"COLOR_GREEN"}' ]; then
    ok "call --target: numbers for 64-bit, URL-safe base64, enum numbers in; canonical JSON out, defaults left out"
else
    bad "call --target canonical" "exit $rc $(cat "$work/out.json" "$work/err.txt")"
fi
cat >"$work/wk.json" <<'JSON'
{"ts": "2024-02-29T23:59:59.500Z", "dur": "-1.000000001s",
 "wDouble": 1.5, "wFloat": 0, "wInt64": "-5", "wUint64": "18446744073709551615",
 "wInt32": 7, "wUint32": 0, "wBool": false, "wString": "s", "wBytes": "AQ==",
 "st": {"a": 1, "b": [true, null, "x", {"c": {}}], "d": null},
 "val": [1, "two"], "lv": [{}, []], "fm": "fooBar,a.bC", "empty": {},
 "rTs": ["1970-01-01T00:00:00Z", "0001-01-01T00:00:00.000001Z"],
 "rWInt32": [1, 0], "rVal": [null, 2.5, {"k": "v"}],
 "mDur": {"x": "3s", "y": "0.250s"}, "mWString": {"k": ""},
 "any": {"@type": "type.googleapis.com/orpc.test.json.Nested", "a": 2},
 "rAny": [{"@type": "type.googleapis.com/google.protobuf.Timestamp",
           "value": "2000-01-01T00:00:00Z"}]}
JSON
"$orpc" call --target "$et" --plaintext -d "@$work/wk.json" orpc.test.cli.Echo/EchoWellKnown \
    >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && /usr/bin/python3 - "$work/wk.json" "$work/out.json" <<'PY'
import json, sys
want = json.load(open(sys.argv[1]))
got = json.load(open(sys.argv[2]))
want["mDur"]["y"] = "0.250s"  # canonical: 3, 6 or 9 digits
assert got == want, {k: (want.get(k), got.get(k)) for k in set(want) | set(got) if want.get(k) != got.get(k)}
PY
then ok "call --target: well-known types in their JSON forms (Timestamp, Duration, wrappers, Struct, Value, ListValue, FieldMask, Any)"; else bad "call --target well-known types" "exit $rc $(cat "$work/out.json" "$work/err.txt")"; fi
"$orpc" call --target "$et" --plaintext -d '{"fInt32": 3, "fString": "s"}' \
    orpc.test.cli.Echo/Expand >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && [ "$(wc -l <"$work/out.json")" -eq 3 ] && [ "$(sort -u "$work/out.json")" = '{"fInt32":3,"fString":"s"}' ]; then
    ok "call --target server streaming: one JSON per line"
else
    bad "call --target server streaming" "exit $rc $(cat "$work/out.json" "$work/err.txt")"
fi
printf '{"fString": "a"} {"fString": "b"}\n{"fString": "c"}\n' >"$work/reqs.json"
"$orpc" call --target "$et" --plaintext -d "@$work/reqs.json" \
    orpc.test.cli.Echo/Collect >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && [ "$(cat "$work/out.json")" = '{"fInt32":3,"fString":"c"}' ]; then ok "call --target client streaming: three requests from -d"; else bad "call --target client streaming" "exit $rc $(cat "$work/out.json" "$work/err.txt")"; fi
"$orpc" call --target "$et" --plaintext -d '{"fString":"a"}{"fString":"b"}' \
    orpc.test.cli.Echo/Chat >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && [ "$(tr -d '\n' <"$work/out.json")" = '{"fString":"a"}{"fString":"b"}' ]; then ok "call --target bidi streaming"; else bad "call --target bidi" "exit $rc $(cat "$work/out.json" "$work/err.txt")"; fi
"$orpc" call --target "$et" --plaintext -d '{"fString":"a"}{"fString":"b"}' \
    orpc.test.cli.Echo/Echo >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 3 ] && grep -q "takes one request" "$work/err.txt"; then ok "call --target unary with two requests: exit 3"; else bad "unary two requests" "exit $rc $(cat "$work/err.txt")"; fi
# bad requests: METHOD|REQUEST|what stderr says
for case in 'Echo|{"nope": 1}|\$\.nope: no such field' \
    'Echo|{"rNested": [{"a": "x"}]}|\$\.rNested\[0\]\.a: not an integer' \
    'Echo|{"oInt64": "1", "oString": "x"}|same oneof' \
    'Echo|{"fInt32": 3000000000}|out of range' \
    'Echo|{"fBytes": "***"}|not base64' \
    'Echo|{"fEnum": "COLOR_PINK"}|no enum value' \
    'Echo|{"fInt32": 1, "fInt32": 2}|duplicate object key' \
    'EchoWellKnown|{"ts": "yesterday"}|not a timestamp' \
    'EchoWellKnown|{"dur": "5m"}|not a duration' \
    'EchoWellKnown|{"ts": "10000-01-01T00:00:00Z"}|not a timestamp' \
    'EchoWellKnown|{"st": [1]}|not an object (a Struct)' \
    'EchoWellKnown|{"any": {"@type": "x/no.Such"}}|no.Such: the type is not in the descriptors' \
    'EchoWellKnown|{"any": {"a": 1}}|an Any without'; do
    method=${case%%|*}
    rest=${case#*|}
    req=${rest%%|*}
    want=${rest#*|}
    "$orpc" call --target "$et" --plaintext -d "$req" "orpc.test.cli.Echo/$method" >/dev/null 2>"$work/err.txt"
    rc=$?
    if [ $rc -eq 3 ] && grep -q "request: .*$want" "$work/err.txt"; then ok "call --target bad request $req: exit 3"; else bad "bad request $req" "exit $rc $(cat "$work/err.txt")"; fi
done
"$orpc" call --target "$et" --plaintext orpc.test.cli.Echo/Nope >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 12 ]; then ok "call --target unknown method of a known service: exit 12"; else bad "unknown dyn method" "exit $rc"; fi
"$orpc" call --target "$et" --plaintext orpc.test.cli.Nope/Nope >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 5 ] && grep -q "server reflection" "$work/err.txt"; then ok "call --target unknown service: NOT_FOUND exit 5"; else bad "unknown dyn service" "exit $rc $(cat "$work/err.txt")"; fi

# offline descriptors: --protoset and --proto -I (protoc run for the user,
# its temporary file removed)
mkdir -p "$work/tmp"
protoc=${PROTOC:-protoc}
pi="-I $src/tests/protos -I $src/proto"
# shellcheck disable=SC2086
if "$protoc" --include_imports --descriptor_set_out="$work/echo.protoset" $pi cli_echo.proto 2>"$work/err.txt"; then
    "$orpc" list --protoset "$work/echo.protoset" >"$work/out.txt" 2>"$work/err.txt"
    rc=$?
    if [ $rc -eq 0 ] && grep -q "^orpc.test.cli.Echo/Expand	server_streaming$" "$work/out.txt" &&
        ! grep -q "grpc.health" "$work/out.txt"; then ok "list --protoset"; else bad "list --protoset" "exit $rc $(cat "$work/out.txt" "$work/err.txt")"; fi
    "$orpc" call --target "$et" --plaintext --protoset "$work/echo.protoset" -d "@$work/all.json" \
        orpc.test.cli.Echo/Echo >"$work/out.json" 2>"$work/err.txt"
    rc=$?
    if [ $rc -eq 0 ] && /usr/bin/python3 -c 'import json,sys; assert json.load(open(sys.argv[1])) == json.load(open(sys.argv[2]))' "$work/all.json" "$work/out.json"; then
        ok "call --protoset: the same echo without reflection"
    else
        bad "call --protoset" "exit $rc $(cat "$work/out.json" "$work/err.txt")"
    fi
else
    bad "protoc --descriptor_set_out" "$(cat "$work/err.txt")"
fi
# shellcheck disable=SC2086
TMPDIR=$work/tmp "$orpc" list --proto cli_echo.proto $pi orpc.test.cli.Echo >"$work/out.txt" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && [ "$(wc -l <"$work/out.txt")" -eq 5 ] && [ -z "$(ls "$work/tmp")" ]; then ok "list --proto -I (temporary file removed)"; else bad "list --proto" "exit $rc $(cat "$work/out.txt" "$work/err.txt") $(ls "$work/tmp")"; fi
# shellcheck disable=SC2086
TMPDIR=$work/tmp "$orpc" call --target "$et" --plaintext --proto cli_echo.proto $pi \
    -d '{"fInt32": 2, "rEnum": ["COLOR_BLUE"]}' orpc.test.cli.Echo/Expand >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && [ "$(sort -u "$work/out.json")" = '{"fInt32":2,"rEnum":["COLOR_BLUE"]}' ] && [ -z "$(ls "$work/tmp")" ]; then ok "call --proto -I"; else bad "call --proto" "exit $rc $(cat "$work/out.json" "$work/err.txt")"; fi
"$orpc" list --proto no-such.proto -I "$work" >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 3 ] && grep -q "protoc failed" "$work/err.txt"; then ok "list --proto of a missing file: exit 3"; else bad "list --proto missing" "exit $rc $(cat "$work/err.txt")"; fi
echo 'not a descriptor set' >"$work/bad.protoset"
"$orpc" list --protoset "$work/bad.protoset" >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 3 ] && grep -q "not a FileDescriptorSet" "$work/err.txt"; then ok "list --protoset of a foreign file: exit 3"; else bad "bad protoset" "exit $rc $(cat "$work/err.txt")"; fi
head -c 5000000 /dev/zero >"$work/big.protoset"
"$orpc" list --protoset "$work/big.protoset" >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 3 ] && grep -q "over 4194304 bytes" "$work/err.txt"; then ok "list --protoset over 4 MiB refused: exit 3"; else bad "big protoset" "exit $rc $(cat "$work/err.txt")"; fi
# a descriptor nested 5000 deep (protobuf-c's unpack would recurse that
# deep): refused before it is unpacked
/usr/bin/python3 - "$work/deep.protoset" <<'PY'
import sys
def v(n):
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7f | 0x80]); n >>= 7
    return out + bytes([n])
def ld(field, body):
    return v(field << 3 | 2) + v(len(body)) + body
m = ld(1, b"M")
for _ in range(5000):
    m = ld(1, b"M") + ld(3, m)   # DescriptorProto.nested_type
f = ld(1, b"deep.proto") + ld(4, m)  # FileDescriptorProto.message_type
open(sys.argv[1], "wb").write(ld(1, f))  # FileDescriptorSet.file
PY
"$orpc" list --protoset "$work/deep.protoset" >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 3 ] && grep -q "nested over 100 deep" "$work/err.txt"; then ok "list --protoset nested 5000 deep refused: exit 3"; else bad "deep protoset" "exit $rc $(cat "$work/err.txt")"; fi
"$orpc" list --plaintext >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 3 ]; then ok "list --plaintext without --target: exit 3"; else bad "list --plaintext alone" "exit $rc"; fi
"$orpc" --help >"$work/out.txt" 2>/dev/null
rc=$?
if [ $rc -eq 0 ] && grep -q -- "--protoset" "$work/out.txt" && grep -q -- "--plaintext" "$work/out.txt"; then ok "--help on stdout names --protoset and --plaintext"; else bad "--help stdout" "exit $rc"; fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
