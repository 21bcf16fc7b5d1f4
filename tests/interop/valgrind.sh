#!/bin/sh
# valgrind.sh BUILD_DIR SOURCE_DIR — the interop cases with orpc's binaries
# under valgrind's memcheck: the orpc server answering the Python client,
# then the orpc client calling the Python server, plaintext.  Any memory
# error or leak (definite or indirect) fails the run.  Loopback only; every
# step is bounded by `timeout`.
set -u
build=$1
src=$2
PY=/usr/bin/python3
pydir=$src/tests/interop/python
bin=$build/bin
work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 1; }
sh "$pydir/gen_pb.sh" "$src/proto" "$work/pb" >/dev/null || exit 1

VG="valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99
    --track-origins=no"
CASES="empty_unary large_unary client_streaming server_streaming ping_pong
empty_stream cancel_after_begin cancel_after_first_response
timeout_on_sleeping_server custom_metadata status_code_and_message
special_status_message unimplemented_method unimplemented_service
client_compressed_unary server_compressed_unary client_compressed_streaming
server_compressed_streaming"
passed=0
failed=0

wait_port() {
    i=0
    while [ $i -lt 300 ]; do
        p=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$1")
        [ -n "$p" ] && { echo "$p"; return 0; }
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# 1. orpc server under valgrind, Python client.
# shellcheck disable=SC2086
$VG --log-file="$work/vg-server.log" "$bin/orpc-interop-server" --port=0 \
    >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
port=$(wait_port "$work/server.out") || { echo "orpc server did not start"; cat "$work/server.err"; exit 1; }
for c in $CASES; do
    if timeout 60 "$PY" "$pydir/interop_client.py" --server_port="$port" \
        --test_case="$c" --pb_dir="$work/pb" 2>"$work/c.err"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL py->orpc(valgrind) $c: $(head -c 200 "$work/c.err")"
    fi
done
kill -TERM "$server_pid"
timeout 60 sh -c "while kill -0 $server_pid 2>/dev/null; do sleep 0.1; done"
wait "$server_pid"
rc=$?
server_pid=
if [ $rc -eq 0 ]; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
    echo "FAIL orpc server under valgrind exited $rc:"
    cat "$work/vg-server.log"
fi

# 2. Python server, orpc client under valgrind.
"$PY" "$pydir/interop_server.py" --port=0 --bind_host=localhost \
    --pb_dir="$work/pb" >"$work/py.out" 2>"$work/py.err" &
server_pid=$!
port=$(wait_port "$work/py.out") || { echo "python server did not start"; cat "$work/py.err"; exit 1; }
for c in $CASES; do
    # shellcheck disable=SC2086
    timeout 120 $VG --log-file="$work/vg-client-$c.log" \
        "$bin/orpc-interop-client" --server_port="$port" --test_case="$c" \
        2>"$work/c.err"
    rc=$?
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL orpc(valgrind)->py $c: exit $rc $(head -c 200 "$work/c.err")"
        cat "$work/vg-client-$c.log"
    fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
