#!/bin/sh
# run.sh — the gRPC interop matrix: orpc against real gRPC (python3-grpcio)
# and against itself, on loopback.
#
# Usage: tests/interop/run.sh BUILD_DIR [SOURCE_DIR]
#
#   BUILD_DIR   build tree holding bin/orpc-interop-server and
#               bin/orpc-interop-client
#   SOURCE_DIR  the orpc source tree (default: two levels above this script)
#
# For each transport (plaintext over 127.0.0.1; TLS to localhost with
# --server_host_override=foo.test.google.fr and the test CA) and each
# direction
#   orpc->py    orpc-interop-client  against interop_server.py
#   py->orpc    interop_client.py    against orpc-interop-server
#   orpc->orpc  orpc-interop-client  against orpc-interop-server
# it starts the server once on an ephemeral port (from its "listening on N"
# line), runs the 18 interop cases against it, one client process each
# (bounded by `timeout`); over TLS, one more client run claims a host name
# the certificate does not carry and must fail.  Then the server must stop
# cleanly (exit 0) on SIGTERM.  A short mTLS block follows: servers that
# require client certificates must serve clients that have one (py->orpc
# also checks the identity the orpc server reports) and refuse those that
# have none.
#
# Prints one line per check, the case x direction x transport matrix, then
# "N passed, M failed"; exits 1 if any check failed or
# if /usr/bin/python3 lacks grpcio.  Certificates come from
# scripts/gen-test-certs.sh and the Python message modules from
# python/gen_pb.sh, both into a temporary directory that is removed on
# exit, as are the servers.  Servers run with --verbose=true, logging into
# that directory (server-<client>-<server>-<transport>.log).
#
# Environment: INTEROP_CASES (space-separated) to run a subset;
# INTEROP_KEEP=1 to keep the work directory (logs) for inspection;
# INTEROP_BUDGET_S (default 500): no client starts after that many
# seconds, so the whole run stays within ctest's 600 s.
set -u

here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 BUILD_DIR [SOURCE_DIR]" >&2
    exit 2
fi
build=$(cd "$1" && pwd) || exit 2
repo=$(cd "${2:-$here/../..}" && pwd) || exit 2
bin=$build/bin
pydir=$repo/tests/interop/python
PY=/usr/bin/python3
CASE_TIMEOUT=30

CASES=${INTEROP_CASES:-"empty_unary large_unary client_streaming
server_streaming ping_pong empty_stream cancel_after_begin
cancel_after_first_response timeout_on_sleeping_server custom_metadata
status_code_and_message special_status_message unimplemented_method
unimplemented_service client_compressed_unary server_compressed_unary
client_compressed_streaming server_compressed_streaming"}

die() {
    echo "interop: $*" >&2
    exit 1
}

for b in orpc-interop-server orpc-interop-client; do
    [ -x "$bin/$b" ] || die "$bin/$b not built"
done
if ! "$PY" -c 'import grpc, google.protobuf' 2>/dev/null; then
    echo "interop: $PY lacks grpc/protobuf (apt-get install python3-grpcio" \
        "python3-protobuf)" >&2
    exit 1
fi
command -v timeout >/dev/null 2>&1 || die "timeout(1) not found"

work=$(mktemp -d "${TMPDIR:-/tmp}/orpc-interop.XXXXXX") || die "mktemp failed"
: >"$work/results"
started=$(date +%s)
BUDGET=${INTEROP_BUDGET_S:-500} # client runs start only within this budget
server_pid=
port=
passed=0
failed=0
failures=

# stop_server [check LABEL]: SIGTERM, wait up to 10 s (the orpc server
# drains for up to 5 s), then SIGKILL.  With "check", record whether it
# exited 0 on SIGTERM.
stop_server() {
    [ -n "$server_pid" ] || return 0
    alive=1
    kill -0 "$server_pid" 2>/dev/null || alive=0
    kill "$server_pid" 2>/dev/null
    i=0
    while kill -0 "$server_pid" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    killed=0
    if kill -0 "$server_pid" 2>/dev/null; then
        kill -9 "$server_pid" 2>/dev/null
        killed=1
    fi
    wait "$server_pid" 2>/dev/null
    rc=$?
    server_pid=
    [ "${1:-}" = check ] || return 0
    if [ $alive -eq 0 ]; then
        record "$2/server-shutdown" 1 "server had already exited (status $rc)"
    elif [ $killed -eq 1 ]; then
        record "$2/server-shutdown" 1 "server still running 10 s after SIGTERM"
    else
        record "$2/server-shutdown" "$rc" "server exited with status $rc"
    fi
}
cleanup() {
    stop_server
    if [ "${INTEROP_KEEP:-0}" = 1 ]; then
        echo "interop: work directory kept: $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# record NAME RC REASON [NOTE]: NAME is DIRECTION/TRANSPORT/CHECK.
record() {
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok    $1${4:+ ($4)}"
        echo "$1 ok" >>"$work/results"
    else
        echo "$1 FAIL" >>"$work/results"
        failed=$((failed + 1))
        failures="$failures $1"
        echo "FAIL  $1: $3"
    fi
}

sh "$repo/scripts/gen-test-certs.sh" "$work/certs" ||
    die "gen-test-certs.sh failed"
sh "$pydir/gen_pb.sh" "$repo/proto" "$work/pb" || die "gen_pb.sh failed"
certs=$work/certs
TLS_SERVER="--use_tls=true --tls_cert=$certs/server.pem --tls_key=$certs/server.key"
MTLS_SERVER="$TLS_SERVER --tls_ca=$certs/ca.pem"
PLAIN_CLIENT="--server_host=127.0.0.1 --use_tls=false"
TLS_CLIENT="--server_host=localhost --use_tls=true --ca=$certs/ca.pem --server_host_override=foo.test.google.fr"
MTLS_CLIENT="$TLS_CLIENT --cert=$certs/client.pem --key=$certs/client.key"

# start_server orpc|py LABEL [server flags...]: start it, set $port.
start_server() {
    s_impl=$1
    s_log=$work/server-$2.log
    shift 2
    stop_server
    : >"$work/server.out"
    if [ "$s_impl" = py ]; then
        "$PY" "$pydir/interop_server.py" --port=0 --bind_host=localhost \
            --verbose=true --pb_dir="$work/pb" "$@" >"$work/server.out" \
            2>"$s_log" &
    else
        "$bin/orpc-interop-server" --port=0 --verbose=true "$@" \
            >"$work/server.out" 2>"$s_log" &
    fi
    server_pid=$!
    port=
    i=0
    while [ $i -lt 200 ]; do # up to 20 s
        port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$work/server.out")
        [ -n "$port" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    cat "$s_log" >&2
    return 1
}

# run_client [--expect-fail=ERE] orpc|py NAME CASE [client flags...]: one
# client run, recorded.  With --expect-fail the run must fail instead, e.g.
# a TLS handshake that has to be refused, and fail for the right reason:
# exit 1 with a "FAIL" line matching the extended regular expression ERE
# (the status and message the client got).  A deadline is never the right
# reason: a handshake that hangs until the client gives up is not refused.
run_client() {
    expect=pass
    case $1 in
    --expect-fail=*)
        expect=fail
        expect_re=${1#--expect-fail=}
        shift
        ;;
    esac
    impl=$1
    name=$2
    tc=$3
    shift 3
    if [ $(($(date +%s) - started)) -ge "$BUDGET" ]; then
        record "$name" 1 "not run: the ${BUDGET}s time budget is spent"
        return
    fi
    if [ "$impl" = py ]; then
        timeout "$CASE_TIMEOUT" "$PY" "$pydir/interop_client.py" \
            --server_port="$port" --test_case="$tc" --pb_dir="$work/pb" \
            "$@" >"$work/client.out" 2>"$work/client.err"
    else
        timeout "$CASE_TIMEOUT" "$bin/orpc-interop-client" \
            --server_port="$port" --test_case="$tc" "$@" \
            >"$work/client.out" 2>"$work/client.err"
    fi
    rc=$?
    reason=$(grep -m1 '^FAIL' "$work/client.err")
    if [ $rc -eq 124 ]; then
        reason="timed out after ${CASE_TIMEOUT}s"
    elif [ -z "$reason" ]; then
        reason="exit $rc: $(tail -n 1 "$work/client.err")"
    fi
    if [ $expect = fail ]; then
        why=$(grep -m1 '^FAIL' "$work/client.err")
        if [ $rc -ne 1 ]; then
            record "$name" 1 "expected the client to fail (exit 1), got exit $rc: $reason"
        elif printf '%s\n' "$why" |
            grep -qiE 'DEADLINE_EXCEEDED|deadline exceeded|no result after'; then
            record "$name" 1 "failed by a deadline, not refused: $why"
        elif ! printf '%s\n' "$why" | grep -qE "$expect_re"; then
            record "$name" 1 "failed for another reason than /$expect_re/: $why"
        else
            record "$name" 0 "" "failed as expected"
        fi
        return
    fi
    record "$name" "$rc" "$reason"
}

# block CLIENT SERVER TRANSPORT: one server, every case.
block() {
    cimpl=$1
    simpl=$2
    transport=$3
    label="$cimpl->$simpl/$transport"
    case $transport in
    plaintext) sflags=--use_tls=false cflags=$PLAIN_CLIENT ;;
    tls) sflags=$TLS_SERVER cflags=$TLS_CLIENT ;;
    esac
    # shellcheck disable=SC2086 # flags are split on purpose
    if ! start_server "$simpl" "$cimpl-$simpl-$transport" $sflags; then
        for c in $CASES; do
            record "$label/$c" 1 "$simpl server did not start"
        done
        return
    fi
    for c in $CASES; do
        # shellcheck disable=SC2086
        run_client "$cimpl" "$label/$c" "$c" $cflags
    done
    if [ "$transport" = tls ]; then
        # The server's certificate does not name this host: the client
        # must refuse the handshake.
        case $cimpl in
        orpc) why_re='status UNAVAILABLE \(.*(does not match the expected name|certificate verify failed)' ;;
        py) why_re='UNAVAILABLE: .*(is not in peer certificate|CERTIFICATE_VERIFY_FAILED|[Hh]andshake)' ;;
        esac
        # shellcheck disable=SC2086
        run_client --expect-fail="$why_re" "$cimpl" "$label/wrong-hostname" \
            empty_unary $cflags --server_host_override=not-in-the-cert.example.org
    fi
    stop_server check "$label"
}

for transport in plaintext tls; do
    block orpc py "$transport"
    block py orpc "$transport"
    block orpc orpc "$transport"
done

# mTLS: servers that require a client certificate signed by the test CA.
# shellcheck disable=SC2086
if start_server orpc mtls-orpc $MTLS_SERVER; then
    run_client py "py->orpc/mtls/large_unary" large_unary $MTLS_CLIENT
    run_client py "py->orpc/mtls/client_cert_username" client_cert_username \
        $MTLS_CLIENT
    run_client orpc "orpc->orpc/mtls/ping_pong" ping_pong $MTLS_CLIENT
    # (grpcio reports the server's refusal as a failed read on the
    # handshake's connection, orpc the TLS alert it got)
    run_client --expect-fail='UNAVAILABLE: .*(Endpoint read failed|Socket closed|[Hh]andshake|certificate)' \
        py "py->orpc/mtls/no-client-cert" empty_unary $TLS_CLIENT
    run_client --expect-fail='status UNAVAILABLE \(.*(certificate required|alert|[Hh]andshake)' \
        orpc "orpc->orpc/mtls/no-client-cert" empty_unary $TLS_CLIENT
    stop_server check "orpc/mtls"
else
    record "orpc/mtls" 1 "orpc server did not start"
fi
# shellcheck disable=SC2086
if start_server py mtls-py $MTLS_SERVER; then
    run_client orpc "orpc->py/mtls/large_unary" large_unary $MTLS_CLIENT
    run_client orpc "orpc->py/mtls/ping_pong" ping_pong $MTLS_CLIENT
    # (over TLS 1.3 the client's side of the handshake is over before the
    # server checks the certificate: the grpcio server then closes the
    # connection without a word)
    run_client --expect-fail='status UNAVAILABLE \(connection lost: (connection closed by peer|.*certificate required|.*alert|.*[Hh]andshake)' \
        orpc "orpc->py/mtls/no-client-cert" empty_unary $TLS_CLIENT
    stop_server check "py/mtls"
else
    record "py/mtls" 1 "python server did not start"
fi

# Authorization: an orpc mTLS server with a gRPC authorization policy that
# lets the test client call UnaryCall only; SIGHUP rereads the policy, and
# the new one lets it call EmptyCall too.
policy=$work/policy.json
cat >"$policy" <<'JSON'
{"name": "interop",
 "allow_rules": [{"name": "unary-only",
   "source": {"principals": ["spiffe://test.orpc/service/interop-client"]},
   "request": {"paths": ["/grpc.testing.TestService/UnaryCall"]}}]}
JSON
# shellcheck disable=SC2086
if start_server orpc authz-orpc $MTLS_SERVER --authz_policy="$policy"; then
    run_client py "py->orpc/authz/allowed" large_unary $MTLS_CLIENT
    run_client --expect-fail='PERMISSION_DENIED' py \
        "py->orpc/authz/denied-method" empty_unary $MTLS_CLIENT
    if ! grep -q 'PERMISSION_DENIED\|permission' "$work/client.err"; then
        record "py->orpc/authz/denied-is-permission-denied" 1 \
            "$(head -c 300 "$work/client.err")"
    else
        record "py->orpc/authz/denied-is-permission-denied" 0 ""
    fi
    cat >"$policy" <<'JSON'
{"name": "interop-2",
 "allow_rules": [{"name": "unary-and-empty",
   "source": {"principals": ["spiffe://test.orpc/service/interop-client"]},
   "request": {"paths": ["/grpc.testing.TestService/UnaryCall",
                         "/grpc.testing.TestService/EmptyCall"]}}]}
JSON
    # SIGHUP; the server logs "reloaded TLS material ..." once it has the
    # new policy: wait for that line (up to 10 s), not for a guessed time
    s_log=$work/server-authz-orpc.log
    reloads=$(grep -c 'reloaded TLS material' "$s_log")
    kill -HUP "$server_pid"
    i=0
    while [ "$(grep -c 'reloaded TLS material' "$s_log")" -le "$reloads" ] &&
        [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if [ "$(grep -c 'reloaded TLS material' "$s_log")" -le "$reloads" ]; then
        record "orpc/authz/sighup-reload" 1 "no reload logged 10 s after SIGHUP"
    else
        record "orpc/authz/sighup-reload" 0 ""
    fi
    run_client py "py->orpc/authz/allowed-after-sighup" empty_unary \
        $MTLS_CLIENT
    stop_server check "orpc/authz"
else
    record "orpc/authz" 1 "orpc server did not start"
fi

# The matrix of the plaintext and TLS blocks: one row per check, one
# column per client>server direction (o = orpc, py = Python grpcio) and
# transport (h2c = plaintext).
echo
awk '
{
    n = split($1, p, "/")
    if (n != 3 || (p[2] != "plaintext" && p[2] != "tls"))
        next
    col = p[1] "/" p[2]
    sub(/^orpc->py/, "o>py", col); sub(/^py->orpc/, "py>o", col)
    sub(/^orpc->orpc/, "o>o", col); sub(/\/plaintext$/, "/h2c", col)
    row = p[3]
    if (!(col in seen_col)) { seen_col[col] = 1; cols[++nc] = col }
    if (!(row in seen_row)) { seen_row[row] = 1; rows[++nr] = row }
    cell[row, col] = $2
}
END {
    line = sprintf("%-28s", "check")
    for (c = 1; c <= nc; c++) line = line sprintf(" %-9s", cols[c])
    sub(/ +$/, "", line)
    print line
    for (r = 1; r <= nr; r++) {
        line = sprintf("%-28s", rows[r])
        for (c = 1; c <= nc; c++) {
            v = cell[rows[r], cols[c]]
            line = line sprintf(" %-9s", v == "" ? "-" : v)
        }
        sub(/ +$/, "", line)
        print line
    }
}' "$work/results"
echo
if [ $failed -gt 0 ]; then
    echo "failed:$failures"
    [ "${INTEROP_KEEP:-0}" = 1 ] ||
        echo "(INTEROP_KEEP=1 keeps the servers' logs)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
