#!/bin/bash
# soak.sh — the soak run: one orpc server (orpc-interop-server, TLS) under
# mixed traffic from orpc-soak for SOAK_SECONDS, watching that the server's
# memory and descriptors stay flat.  `make soak` runs it.
#
#   tests/bench/soak.sh [BUILD_DIR]        (default: build/release)
#
# Environment (defaults in brackets):
#   SOAK_SECONDS  length of the run in seconds [600]
#   SOAK_WARMUP   warm-up in seconds, not judged [a tenth of the run, but
#                 at least a third of it up to 60 s: 60 for 600]
#   SOAK_ARGS     further orpc-soak flags (rates, threads, tolerances; see
#                 tests/bench/soak.c or `orpc-soak --help`)
#   SOAK_LOG      also keep the whole output in this file [none]
#
# Mints throwaway certificates (scripts/gen-test-certs.sh) into a temporary
# directory, starts orpc-interop-server on a free loopback port with TLS,
# runs orpc-soak against it (one line per second, then a summary and
# PASS/FAIL), then stops the server with SIGTERM, which must end it cleanly
# within 10 s.  Everything stays on 127.0.0.1; the server and the temporary
# directory are removed on exit.  Takes the benchmarks' lock
# (/tmp/orpc-bench.lock, waiting at most 10 minutes) so a benchmark and a
# soak never share the CPUs.
#
# Exit status: orpc-soak's (0 flat and clean, 1 a check failed, 3 its
# watchdog fired), or 1 when the server does not start or stop cleanly, 2 on
# bad usage.
set -euo pipefail

case "${1:-}" in
-h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac
[ $# -le 1 ] || { echo "usage: $0 [BUILD_DIR]" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build/release}
case "$build" in /*) ;; *) build=$(pwd)/$build ;; esac
seconds=${SOAK_SECONDS:-600}
[[ $seconds =~ ^[0-9]+$ && $seconds -ge 2 ]] ||
    { echo "soak.sh: bad SOAK_SECONDS '$seconds' (>= 2)" >&2; exit 2; }
warmup_flag=
if [ -n "${SOAK_WARMUP:-}" ]; then
    [[ $SOAK_WARMUP =~ ^[0-9]+$ ]] ||
        { echo "soak.sh: bad SOAK_WARMUP '$SOAK_WARMUP'" >&2; exit 2; }
    warmup_flag=--warmup=$SOAK_WARMUP
fi
server_bin=$build/bin/orpc-interop-server
soak_bin=$build/bin/orpc-soak
for b in "$server_bin" "$soak_bin"; do
    [ -x "$b" ] || { echo "soak.sh: $b not built (cmake --build $build)" >&2; exit 1; }
done
for tool in openssl timeout flock; do
    command -v "$tool" >/dev/null 2>&1 ||
        { echo "soak.sh: $tool not found (sh scripts/install-deps.sh)" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/orpc-soak.XXXXXX")
server_pid=
stop_server() { # sets server_rc
    server_rc=0
    [ -n "$server_pid" ] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$server_pid" 2>/dev/null; then
        echo "soak.sh: the server did not stop within 10 s of SIGTERM" >&2
        kill -KILL "$server_pid" 2>/dev/null || true
        server_rc=1
    fi
    wait "$server_pid" 2>/dev/null || server_rc=$?
    server_pid=
}
cleanup() {
    stop_server || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

exec 9>"${TMPDIR:-/tmp}/orpc-bench.lock"
if ! flock -n 9; then
    echo "soak.sh: a benchmark or soak holds ${TMPDIR:-/tmp}/orpc-bench.lock; waiting (at most 10 min)" >&2
    flock -w 600 9 || { echo "soak.sh: still busy, giving up" >&2; exit 1; }
fi

sh "$root/scripts/gen-test-certs.sh" "$tmp/certs"
certs=$tmp/certs

# The server: TLS on a free port of 127.0.0.1 (and ::1), from its
# "listening on N" line.
"$server_bin" --port=0 --use_tls=true --tls_cert="$certs/server.pem" \
    --tls_key="$certs/server.key" >"$tmp/server.out" 2>"$tmp/server.err" 9>&- &
server_pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/^listening on \([0-9][0-9]*\)$/\1/p' "$tmp/server.out" 2>/dev/null)
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "soak.sh: the server did not start; its output:" >&2
    cat "$tmp/server.out" "$tmp/server.err" >&2
    exit 1
fi
echo "# soak.sh: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) CPUs, $(uname -sr);" \
    "server ${server_bin#"$root"/} pid $server_pid on 127.0.0.1:$port (TLS)"

# shellcheck disable=SC2086  # SOAK_ARGS is a list of flags
cmd=("$soak_bin" --target="127.0.0.1:$port" --ca="$certs/ca.pem"
    --server_name=localhost --server_pid="$server_pid" --seconds="$seconds"
    $warmup_flag ${SOAK_ARGS:-})
soak_rc=0
if [ -n "${SOAK_LOG:-}" ]; then
    timeout -k 5 $((seconds + 180)) "${cmd[@]}" 9>&- 2>&1 | tee "$SOAK_LOG" || soak_rc=${PIPESTATUS[0]}
else
    timeout -k 5 $((seconds + 180)) "${cmd[@]}" 9>&- 2>&1 || soak_rc=$?
fi

stop_server
if [ "$server_rc" -ne 0 ]; then
    echo "soak.sh: the server exited with status $server_rc after SIGTERM; its stderr:" >&2
    tail -20 "$tmp/server.err" >&2
    [ "$soak_rc" -ne 0 ] || soak_rc=1
else
    echo "soak.sh: the server stopped cleanly on SIGTERM"
fi
if [ -s "$tmp/server.err" ]; then
    echo "soak.sh: the server wrote to stderr (last lines):"
    tail -5 "$tmp/server.err"
fi
echo "soak.sh: exit $soak_rc"
exit "$soak_rc"
