#!/bin/sh
# tour_test.sh SERVER CLIENT — runs the README's tour: start the server on
# an ephemeral loopback port, call it, check the greetings, stop it.
set -eu
server=$1
client=$2
out=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$out"' EXIT
"$server" 127.0.0.1:0 > "$out/server.log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$out/server.log")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { echo "server did not start"; cat "$out/server.log"; exit 1; }
"$client" "127.0.0.1:$port" world > "$out/client.log"
expected="Hello, world!
Hello #1, world!
Hello #2, world!
Hello #3, world!"
if [ "$(cat "$out/client.log")" != "$expected" ]; then
    echo "unexpected output:"; cat "$out/client.log"; exit 1
fi
# an error status comes back as the exit code: INVALID_ARGUMENT is 3
set +e
"$client" "127.0.0.1:$port" "" > /dev/null 2>"$out/err.log"
code=$?
set -e
[ "$code" -eq 3 ] || { echo "empty name: exit $code, want 3"; cat "$out/err.log"; exit 1; }
kill -TERM "$pid"
wait "$pid"
echo "tour ok"
