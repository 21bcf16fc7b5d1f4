#!/bin/sh
# selftest.sh — check the Python interop peers against each other.
#
# Usage: tests/interop/python/selftest.sh
#
# Starts interop_server.py on an ephemeral loopback port and runs
# interop_client.py for every test case against it, three times:
#   plaintext  every case, over 127.0.0.1
#   tls        every case, over TLS to localhost with
#              --server_host_override=foo.test.google.fr, plus a connection
#              by IP (127.0.0.1 SAN) and one that must fail the hostname
#              check
#   mtls       a server that requires client certificates (--tls_ca): calls
#              with the client certificate succeed and report its SPIFFE id
#              as the username; a call without one must fail
# Prints one line per check, then "N passed, M failed"; exits 1 if any
# check failed.  Certificates come from scripts/gen-test-certs.sh and the
# message modules from gen_pb.sh, both into a temporary directory that is
# removed on exit, together with the server.
set -u

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
PY=/usr/bin/python3

CASES="empty_unary large_unary client_streaming server_streaming ping_pong
empty_stream cancel_after_begin cancel_after_first_response
timeout_on_sleeping_server custom_metadata status_code_and_message
special_status_message unimplemented_method unimplemented_service
client_compressed_unary server_compressed_unary client_compressed_streaming
server_compressed_streaming"

work=$(mktemp -d "${TMPDIR:-/tmp}/orpc-interop-selftest.XXXXXX")
server_pid=
port=
passed=0
failed=0

stop_server() {
    [ -n "$server_pid" ] || return 0
    kill "$server_pid" 2>/dev/null
    i=0
    while kill -0 "$server_pid" 2>/dev/null && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -9 "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=
}
cleanup() {
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "selftest: $*" >&2
    exit 1
}

"$PY" -c 'import grpc, google.protobuf' 2>/dev/null ||
    die "$PY lacks grpc/protobuf (apt-get install python3-grpcio python3-protobuf)"
sh "$here/gen_pb.sh" "$repo/proto" "$work/pb" || die "gen_pb.sh failed"
sh "$repo/scripts/gen-test-certs.sh" "$work/certs" ||
    die "gen-test-certs.sh failed"
certs=$work/certs

# start_server LABEL [server flags...]: start it and set $port.
start_server() {
    label=$1
    shift
    stop_server
    : >"$work/server.out"
    "$PY" "$here/interop_server.py" --port=0 --bind_host=localhost \
        --pb_dir="$work/pb" "$@" >"$work/server.out" \
        2>"$work/server-$label.log" &
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
    cat "$work/server-$label.log" >&2
    die "$label server did not start"
}

# check NAME pass|fail [client flags...]: run one client invocation and
# record whether its outcome was the expected one.
check() {
    name=$1
    expect=$2
    shift 2
    timeout 90 "$PY" "$here/interop_client.py" --server_port="$port" \
        --pb_dir="$work/pb" "$@" >"$work/client.out" 2>"$work/client.err"
    rc=$?
    reason=$(grep -m1 "^FAIL" "$work/client.err")
    if [ "$expect" = pass ] && [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok    $name"
    elif [ "$expect" = fail ] && [ $rc -eq 1 ]; then
        passed=$((passed + 1))
        echo "ok    $name (failed as expected)"
    else
        failed=$((failed + 1))
        echo "FAIL  $name (exit $rc, expected to $expect) ${reason:-}"
    fi
}

start_server plaintext --use_tls=false
for c in $CASES; do
    check "plaintext/$c" pass --server_host=127.0.0.1 --test_case="$c" \
        --use_tls=false
done

start_server tls --use_tls=true --tls_cert="$certs/server.pem" \
    --tls_key="$certs/server.key"
for c in $CASES; do
    check "tls/$c" pass --server_host=localhost --test_case="$c" \
        --use_tls=true --ca="$certs/ca.pem" \
        --server_host_override=foo.test.google.fr
done
check "tls/by-ip-san" pass --server_host=127.0.0.1 --test_case=large_unary \
    --use_tls=true --ca="$certs/ca.pem"
check "tls/wrong-hostname" fail --server_host=localhost \
    --test_case=empty_unary --use_tls=true --ca="$certs/ca.pem" \
    --server_host_override=not-in-the-cert.example.org --rpc_timeout_s=5

start_server mtls --use_tls=true --tls_cert="$certs/server.pem" \
    --tls_key="$certs/server.key" --tls_ca="$certs/ca.pem"
for c in empty_unary large_unary ping_pong client_cert_username; do
    check "mtls/$c" pass --server_host=localhost --test_case="$c" \
        --use_tls=true --ca="$certs/ca.pem" --cert="$certs/client.pem" \
        --key="$certs/client.key"
done
check "mtls/no-client-cert" fail --server_host=localhost \
    --test_case=empty_unary --use_tls=true --ca="$certs/ca.pem" \
    --rpc_timeout_s=5
stop_server

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
