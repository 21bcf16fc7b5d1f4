#!/bin/sh
# interop_admin_test.sh BUILD_DIR — orpc-interop-server --admin_port=0:
# prints the admin port it picked, answers /healthz with SERVING and
# /metrics with a page promtool accepts, 404 elsewhere; an interop client's
# calls still work beside it.  Loopback only; every wait is bounded.
set -eu
build=$1
bin=$build/bin
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "interop_admin_test: $*" >&2; exit 1; }

"$bin/orpc-interop-server" --port=0 --admin_port=0 >"$work/out" 2>"$work/err" &
pid=$!
i=0
while ! grep -q '^listening on ' "$work/out"; do
    i=$((i + 1))
    [ $i -lt 100 ] || fail "the server did not start: $(cat "$work/err")"
    kill -0 "$pid" 2>/dev/null || fail "the server died: $(cat "$work/err")"
    sleep 0.1
done
admin=$(sed -n 's/^admin on \([0-9][0-9]*\)$/\1/p' "$work/out")
port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$work/out")
[ -n "$admin" ] && [ "$admin" -gt 0 ] || fail "no 'admin on <port>' line"
[ "$admin" != "$port" ] || fail "admin and gRPC ports are the same"

code=$(curl -s -m 10 -o "$work/health" -w '%{http_code}' \
    "http://127.0.0.1:$admin/healthz")
[ "$code" = 200 ] || fail "/healthz: $code"
[ "$(cat "$work/health")" = SERVING ] || fail "/healthz: $(cat "$work/health")"

"$bin/orpc-interop-client" --server_port="$port" --test_case=empty_unary \
    >"$work/client" 2>&1 || fail "empty_unary: $(cat "$work/client")"

code=$(curl -s -m 10 -D "$work/head" -o "$work/metrics" -w '%{http_code}' \
    "http://127.0.0.1:$admin/metrics")
[ "$code" = 200 ] || fail "/metrics: $code"
grep -qi '^Content-Type: text/plain; version=0.0.4' "$work/head" ||
    fail "/metrics content type: $(cat "$work/head")"
promtool check metrics <"$work/metrics" || fail "promtool refused the page"

code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:$admin/other")
[ "$code" = 404 ] || fail "/other: $code"

# a port in use is refused at start
if "$bin/orpc-interop-server" --port=0 --admin_port="$admin" \
    >"$work/out2" 2>&1; then
    fail "a second server took admin port $admin"
fi
grep -q 'orpc_server_new' "$work/out2" || fail "no reason given: $(cat "$work/out2")"
echo "interop_admin_test: ok (admin port $admin)"
