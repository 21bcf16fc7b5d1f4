#!/bin/sh
# orpc_cli_test.sh BUILD_DIR SOURCE_DIR — the `orpc` command end to end:
# `list` (text and --json), `routes` under environment overrides,
# `call` on the legacy path (against tests/legacy/legacy_server.py) and on
# the gRPC path (against orpc-interop-server), and `health` (plaintext, TLS
# and mutual TLS against orpc-interop-server; NOT_SERVING and UNKNOWN
# against health_server), with exit codes equal to the gRPC status.
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
    grep -q "^opsconductor.jobs.v1.JobsService/WatchJob	server_streaming$" "$work/list.txt"; then
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
"$orpc" call --mode grpc --target "127.0.0.1:$gport" -d '{"response_size": 3}' \
    grpc.testing.TestService/UnaryCall >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && grep -q '"body":"AAAA"' "$work/out.json"; then ok "call grpc UnaryCall"; else bad "call grpc UnaryCall" "exit $rc $(cat "$work/out.json" "$work/err.txt")"; fi
"$orpc" call --mode grpc --target "127.0.0.1:$gport" \
    -d '{"response_status": {"code": 9, "message": "nope"}}' \
    grpc.testing.TestService/UnaryCall >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 9 ] && grep -q "FAILED_PRECONDITION: nope" "$work/err.txt"; then ok "call grpc status → exit 9"; else bad "call grpc status" "exit $rc $(cat "$work/err.txt")"; fi
"$orpc" call --mode grpc --target "127.0.0.1:$gport" \
    -d '{"response_parameters": [{"size": 1}, {"size": 2}]}' \
    grpc.testing.TestService/StreamingOutputCall >"$work/out.json" 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && [ "$(wc -l <"$work/out.json")" -eq 2 ]; then ok "call grpc server streaming"; else bad "call grpc server streaming" "exit $rc"; fi
"$orpc" call --mode grpc --target "127.0.0.1:$gport" -H 'x-grpc-test-echo-initial: hi' \
    grpc.testing.TestService/EmptyCall >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ]; then ok "call grpc with -H"; else bad "call grpc -H" "exit $rc $(cat "$work/err.txt")"; fi
"$orpc" call nosuch.Service/Nope >/dev/null 2>&1
rc=$?
if [ $rc -eq 12 ]; then ok "unknown method: exit 12"; else bad "unknown method" "exit $rc"; fi

# shadow from the command line: the legacy side answers, the gRPC side
# (which has no JobsService) is compared and disagrees
"$orpc" call --mode shadow -v --legacy-url "$url" --target "127.0.0.1:$gport" \
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
"$orpc" call --mode shadow --legacy-url "$url" --target "127.0.0.1:$gport" \
    -d '{"job_id": 3}' opsconductor.jobs.v1.JobsService/RunJob \
    >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && grep -q "^shadow: not mirrored (the method has side effects)" "$work/err.txt"; then
    ok "call --mode shadow does not mirror a write"
else
    bad "call --mode shadow write" "exit $rc $(cat "$work/err.txt")"
fi
"$orpc" call -v --target "127.0.0.1:$gport" grpc.testing.TestService/EmptyCall \
    >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 0 ] && grep -q "^served-by: grpc$" "$work/err.txt"; then ok "a method without a legacy endpoint goes over gRPC"; else bad "no-legacy method" "exit $rc $(cat "$work/err.txt")"; fi

# counters: each process using the table writes its stats file; `routes`
# sums them
printf 'opsconductor.jobs.v1.JobsService/GetJob = fallback\nstats_file = %s/stats-{pid}.json\n' \
    "$work" >"$work/routes.conf"
for i in 1 2; do
    ORPC_ROUTES_FILE=$work/routes.conf "$orpc" call --legacy-url "$url" \
        --target "127.0.0.1:$gport" -d '{"job_id": 7}' \
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
"$orpc" call --env --target "127.0.0.1:$gport" grpc.testing.TestService/EmptyCall \
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
"$orpc" call --mode grpc --target "127.0.0.1:$gport" -d '{not json' \
    grpc.testing.TestService/EmptyCall >/dev/null 2>&1
rc=$?
if [ $rc -eq 3 ]; then ok "bad JSON: INVALID_ARGUMENT exit 3"; else bad "bad JSON" "exit $rc"; fi
"$orpc" call --mode grpc --target "127.0.0.1:$gport" -d @"$work/does-not-exist.json" \
    grpc.testing.TestService/EmptyCall >/dev/null 2>&1
rc=$?
if [ $rc -eq 3 ]; then ok "unreadable -d file: INVALID_ARGUMENT exit 3"; else bad "unreadable -d file" "exit $rc"; fi
echo 'this is not a routing table' >"$work/bad-routes"
ORPC_ROUTES_FILE=$work/bad-routes "$orpc" call --target "127.0.0.1:$gport" \
    grpc.testing.TestService/EmptyCall >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 9 ]; then ok "bad routing table: FAILED_PRECONDITION exit 9"; else bad "bad routing table" "exit $rc $(cat "$work/err.txt")"; fi
# a port that was just free: nobody answers
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
"$orpc" call --mode grpc --target "127.0.0.1:$dead" --timeout 5000 \
    grpc.testing.TestService/EmptyCall >/dev/null 2>"$work/err.txt"
rc=$?
if [ $rc -eq 14 ] && grep -q "UNAVAILABLE" "$work/err.txt"; then ok "unreachable target: UNAVAILABLE exit 14"; else bad "unreachable target" "exit $rc $(cat "$work/err.txt")"; fi
"$orpc" call --mode grpc --target "127.0.0.1:$gport" --timeout soon \
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

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
