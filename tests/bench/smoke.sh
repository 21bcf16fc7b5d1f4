#!/bin/sh
# smoke.sh — orpc-bench-server and orpc-bench-client work together: a server
# on a free port, then the client for 1 s of unary and of streaming calls
# (1 channel, 4 outstanding); each run must report ok > 0 and errors=0.
#
#   smoke.sh SERVER_BIN CLIENT_BIN
set -u
[ $# -eq 2 ] || { echo "usage: $0 SERVER_BIN CLIENT_BIN" >&2; exit 2; }
server=$1
client=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/orpc-bench-smoke.XXXXXX") || exit 1
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$server" --port=0 --threads=2 >"$tmp/server.log" 2>&1 &
pid=$!
port=""
i=0
while [ $i -lt 100 ]; do
    port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$tmp/server.log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$port" ]; then
    echo "smoke.sh: the server did not start:" >&2
    cat "$tmp/server.log" >&2
    exit 1
fi

status=0
for rpc in unary streaming; do
    if ! timeout 30 "$client" --target="127.0.0.1:$port" --channels=1 --outstanding=4 \
        --seconds=1 --warmup=0 --req_size=100 --resp_size=100 --rpc=$rpc \
        >"$tmp/client.out" 2>"$tmp/client.err"; then
        echo "smoke.sh: $rpc: the client failed:" >&2
        cat "$tmp/client.out" "$tmp/client.err" >&2
        status=1
        continue
    fi
    line=$(grep '^qps=' "$tmp/client.out")
    ok=$(echo "$line" | sed -n 's/.* ok=\([0-9][0-9]*\).*/\1/p')
    errors=$(echo "$line" | sed -n 's/.* errors=\([0-9][0-9]*\).*/\1/p')
    if [ -z "$ok" ] || [ "$ok" -le 0 ] || [ "$errors" != 0 ]; then
        echo "smoke.sh: $rpc: want ok > 0 and errors=0, got: $line" >&2
        status=1
    else
        echo "$rpc: $line"
    fi
done
if ! kill -0 "$pid" 2>/dev/null; then
    echo "smoke.sh: the server died:" >&2
    cat "$tmp/server.log" >&2
    status=1
fi
exit $status
