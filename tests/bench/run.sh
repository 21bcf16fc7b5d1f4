#!/bin/bash
# run.sh — orpc against gRPC C++: throughput, latency and memory per idle
# connection, measured in one run with the two alternating (A B A B ...).
#
#   tests/bench/run.sh [--write-results]
#
# Environment (defaults in brackets):
#   BENCH_ROUNDS   rounds; each measures every case for orpc, then gRPC [2]
#   BENCH_SECONDS  length of one measurement, after its warm-up [10]
#   BENCH_WARMUP   warm-up before each measurement, not counted [1]
#   BENCH_THREADS  --threads of both servers [nproc]
#   BENCH_CONNS    idle connections for the memory figure [1000]
#   BENCH_BUILD    build dir holding bin/orpc-bench-{server,client} [build]
#
# Builds the gRPC C++ peers (tests/bench/grpcpp/build.sh into
# $BENCH_BUILD/bench/grpcpp), then per round and per case runs orpc, then gRPC:
#   h2load  -c1 -m1, -c4 -m64, -c16 -m100: gRPC unary calls, 100-byte payload
#           each way, against each server (the same client for both);
#   clients orpc-bench-client -> orpc-bench-server and bench_client ->
#           bench_server: unary and ping-pong streaming, 1x1 and 4x64
#           (channels x outstanding), 100-byte payloads;
#   memory  VmRSS growth of a fresh server per idle HTTP/2 connection
#           (tests/bench/idle_conns.py).
# Prints every measurement as it is taken, then a markdown table of the
# medians over the rounds with orpc/gRPC ratios — to stdout, or with
# --write-results to tests/bench/RESULTS.md.  When the orpc binaries are not
# built yet it says so and measures the gRPC C++ side only.
#
# Everything runs on 127.0.0.1, servers unpinned, each command under a
# timeout; every server this script starts is stopped on exit.  Exit status:
# 0 when every measurement taken succeeded, 1 otherwise, 2 on bad usage.
set -euo pipefail

write_results=0
for arg in "$@"; do
    case "$arg" in
    --write-results) write_results=1 ;;
    -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done
# The command as run, with the BENCH_* settings in force.
command_line="BENCH_ROUNDS=${BENCH_ROUNDS:-2} BENCH_SECONDS=${BENCH_SECONDS:-10}"
for v in BENCH_WARMUP BENCH_THREADS BENCH_CONNS BENCH_BUILD; do
    [ -z "${!v:-}" ] || command_line="$command_line $v=${!v}"
done
command_line="$command_line tests/bench/run.sh${*:+ $*}"

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${BENCH_ROUNDS:-2}
seconds=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-1}
ncpu=$(nproc)
threads=${BENCH_THREADS:-$ncpu}
nconns=${BENCH_CONNS:-1000}
build=${BENCH_BUILD:-$root/build}
case "$build" in /*) ;; *) build=$root/$build ;; esac
for v in rounds seconds warmup threads nconns; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -ge 0 ]] || { echo "run.sh: bad $v '${!v}'" >&2; exit 2; }
done
if [ "$rounds" -lt 1 ] || [ "$seconds" -lt 1 ] || [ "$threads" -lt 1 ]; then
    echo "run.sh: BENCH_ROUNDS, BENCH_SECONDS, BENCH_THREADS must be >= 1" >&2
    exit 2
fi

PAYLOAD=100       # bytes of payload each way
PATH_UNARY=/grpc.testing.BenchmarkService/UnaryCall
run_limit=$((warmup + seconds + 30))   # timeout of one measurement

log() { printf '%s\n' "$*" >&2; }
failures=0
fail() { log "FAIL: $*"; failures=$((failures + 1)); }

for tool in h2load nghttp python3 timeout flock; do
    command -v "$tool" >/dev/null 2>&1 ||
        { echo "run.sh: $tool not found (sh scripts/install-deps.sh --bench)" >&2; exit 1; }
done

# --- scratch space and servers, all cleaned up on exit -----------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/orpc-bench.XXXXXX")
server_pids=""
cleanup() {
    local pid
    for pid in $server_pids; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in $server_pids; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# One benchmark at a time on this machine: two runs would share the CPUs and
# spoil each other's figures.
exec 9>"${TMPDIR:-/tmp}/orpc-bench.lock"
if ! flock -n 9; then
    log "run.sh: another benchmark run holds ${TMPDIR:-/tmp}/orpc-bench.lock; waiting (at most 30 min)"
    flock -w 1800 9 || { log "run.sh: still busy, giving up"; exit 1; }
fi

# Enough descriptors for the idle connections (the servers inherit this).
want_fds=$((nconns + 1024))
hard_fds=$(ulimit -Hn)
if [ "$hard_fds" != unlimited ] && [ "$hard_fds" -lt "$want_fds" ]; then
    want_fds=$hard_fds
fi
[ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$want_fds" ] && ulimit -Sn "$want_fds"

# --- the peers ----------------------------------------------------------------
log "== building the gRPC C++ peers"
gdir=$build/bench/grpcpp
timeout -k 5 1200 bash "$here/grpcpp/build.sh" "$root" "$gdir" >&2
g_server=$gdir/bench_server
g_client=$gdir/bench_client
o_server=$build/bin/orpc-bench-server
o_client=$build/bin/orpc-bench-client

impls=""
have_orpc=0
if [ -x "$o_server" ] && [ -x "$o_client" ]; then
    have_orpc=1
    impls="orpc"
else
    for f in "$o_server" "$o_client"; do
        [ -x "$f" ] || log "orpc: ${f#"$root"/} is missing: SKIPPING the orpc side (build orpc first)"
    done
fi
impls="$impls grpc"
name() { if [ "$1" = orpc ]; then echo orpc; else echo "gRPC C++"; fi; }
server_bin() { if [ "$1" = orpc ]; then echo "$o_server"; else echo "$g_server"; fi; }
client_bin() { if [ "$1" = orpc ]; then echo "$o_client"; else echo "$g_client"; fi; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server IMPL: starts it on a free port; sets SPID and SPORT.
start_server() {
    local bin port pid out
    bin=$(server_bin "$1")
    port=$(free_port)
    out=$tmp/server-$1-$port.log
    "$bin" --port="$port" --threads="$threads" >"$out" 2>&1 9>&- &
    pid=$!
    server_pids="$server_pids $pid"
    for _ in $(seq 100); do
        grep -q "listening on" "$out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q "listening on" "$out" 2>/dev/null; then
        log "run.sh: $(name "$1") server did not start; its output:"
        cat "$out" >&2
        exit 1
    fi
    SPID=$pid
    SPORT=$port
}

stop_server() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    server_pids=$(for p in $server_pids; do [ "$p" = "$pid" ] || printf ' %s' "$p"; done)
}

# The h2load request body: one length-prefixed gRPC message holding a
# SimpleRequest {response_size: 100, payload {body: 100 zero bytes}}.
body=$tmp/unary-request.bin
python3 - "$body" "$PAYLOAD" <<'EOF'
import struct, sys
n = int(sys.argv[2])
def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
payload = b"\x12" + varint(n) + b"\0" * n               # Payload.body
msg = b"\x10" + varint(n) + b"\x1a" + varint(len(payload)) + payload
with open(sys.argv[1], "wb") as f:
    f.write(b"\0" + struct.pack(">I", len(msg)) + msg)
EOF
# What the response must be: the same framing around SimpleResponse
# {payload {body: 100 bytes}}: 5 + 2 + 2 + 100 bytes.
resp_frame_len=$((5 + 2 + 2 + PAYLOAD))

# check_body IMPL PORT: one call with the h2load body must end with
# grpc-status 0 and a response of the right size (h2load only sees :status).
check_body() {
    local out=$tmp/nghttp-$1.txt
    if ! timeout 10 nghttp -v -H 'content-type: application/grpc' -H 'te: trailers' \
        -d "$body" "http://127.0.0.1:$2$PATH_UNARY" >"$out" 2>&1; then
        fail "$(name "$1"): nghttp call with the h2load body failed"
        return 1
    fi
    if ! grep -aq 'grpc-status: 0' "$out" ||
        ! grep -aq "recv DATA frame <length=$resp_frame_len," "$out"; then
        fail "$(name "$1"): the h2load body does not get grpc-status 0 and a $resp_frame_len-byte response"
        grep -a -E 'grpc-status|grpc-message|:status|DATA frame' "$out" >&2 || true
        return 1
    fi
    log "$(name "$1"): h2load body accepted (grpc-status 0, $resp_frame_len-byte response)"
}

# --- results: VALS[case|metric|impl] = the values of the rounds ---------------
declare -A VALS=() BAD=()
rows=()
declare -A SEEN=()
record() { # case metric impl value
    local k="$1|$2"
    [ -n "${SEEN[$k]:-}" ] || { SEEN[$k]=1; rows+=("$k"); }
    VALS[$k|$3]="${VALS[$k|$3]:-} $4"
}
record_bad() { # case metric impl
    local k="$1|$2"
    [ -n "${SEEN[$k]:-}" ] || { SEEN[$k]=1; rows+=("$k"); }
    BAD[$k|$3]=1
}

# h2load_run IMPL PORT C M: one h2load measurement of unary calls.
h2load_run() {
    local impl=$1 port=$2 c=$3 m=$4 t out case rps mean
    t=$((c < ncpu ? c : ncpu))
    case="h2load unary -c$c -m$m"
    out=$tmp/h2load.txt
    if ! timeout -k 5 "$run_limit" h2load -D "$seconds" --warm-up-time="$warmup" \
        -c "$c" -m "$m" -t "$t" -H 'content-type: application/grpc' -H 'te: trailers' \
        -d "$body" "http://127.0.0.1:$port$PATH_UNARY" >"$out" 2>&1; then
        fail "$(name "$impl"): $case: h2load failed"
        tail -5 "$out" >&2
        record_bad "$case" "req/s" "$impl"; record_bad "$case" "mean latency us" "$impl"
        return
    fi
    # requests: T total, S started, D done, OK succeeded, F failed, E errored, TO timeout
    # status codes: N 2xx, ...
    local req codes
    req=$(grep -a '^requests:' "$out" || true)
    codes=$(grep -a '^status codes:' "$out" || true)
    read -r done_ ok_ failed_ errored_ timeout_ < <(echo "$req" |
        awk '{for(i=1;i<=NF;i++){if($(i+1)~/^done/)d=$i; if($(i+1)~/^succeeded/)s=$i;
              if($(i+1)~/^failed/)f=$i; if($(i+1)~/^errored/)e=$i; if($(i+1)~/^timeout/)t=$i}
              print d+0, s+0, f+0, e+0, t+0}')
    local n2xx
    n2xx=$(echo "$codes" | awk '{print $3+0}')
    rps=$(grep -a '^finished in' "$out" | sed -E 's/.* ([0-9.]+) req\/s.*/\1/')
    mean=$(grep -a '^time for request:' "$out" | awk '{v=$6; u=v; sub(/[0-9.]+/,"",u); sub(/[a-z]+$/,"",v);
        m = (u=="us") ? 1 : (u=="ms") ? 1000 : (u=="s") ? 1000000 : -1; if (m<0) print ""; else printf "%.0f", v*m}')
    if [ -z "$rps" ] || [ -z "$mean" ] || [ "$ok_" -le 0 ] || [ "$ok_" -ne "$done_" ] || [ "$failed_" -ne 0 ] ||
        [ "$errored_" -ne 0 ] || [ "$timeout_" -ne 0 ] || [ "$n2xx" -ne "$ok_" ]; then
        fail "$(name "$impl"): $case: not every request succeeded: $req / $codes"
        record_bad "$case" "req/s" "$impl"; record_bad "$case" "mean latency us" "$impl"
        return
    fi
    rps=$(printf '%.0f' "$rps")
    log "  $(printf '%-9s' "$(name "$impl")") $case: $rps req/s, mean latency ${mean} us ($ok_ requests, all 2xx)"
    record "$case" "req/s" "$impl" "$rps"
    record "$case" "mean latency us" "$impl" "$mean"
}

# client_run IMPL PORT RPC CHANNELS OUTSTANDING: one closed-loop run of the
# implementation's own client against its own server.
CLIENT_METRICS="qps p50_us p90_us p99_us p999_us"
client_run() {
    local impl=$1 port=$2 rpc=$3 ch=$4 m=$5 case line out rc=0
    case="$rpc ${ch}ch x ${m}"
    out=$tmp/client.txt
    timeout -k 5 "$run_limit" "$(client_bin "$impl")" --target="127.0.0.1:$port" \
        --channels="$ch" --outstanding="$m" --seconds="$seconds" --warmup="$warmup" \
        --req_size="$PAYLOAD" --resp_size="$PAYLOAD" --rpc="$rpc" >"$out" 2>"$out.err" || rc=$?
    line=$(grep -a -E '^qps=' "$out" | tail -1 || true)
    local qps errors ok
    qps=$(sed -nE 's/.*(^| )qps=([0-9.]+).*/\2/p' <<<"$line")
    ok=$(sed -nE 's/.* ok=([0-9]+).*/\1/p' <<<"$line")
    errors=$(sed -nE 's/.* errors=([0-9]+).*/\1/p' <<<"$line")
    if [ "$rc" -ne 0 ] || [ -z "$qps" ] || [ -z "$ok" ] || [ "${errors:-1}" -ne 0 ] || [ "$ok" -le 0 ]; then
        fail "$(name "$impl"): $case: exit $rc: ${line:-no result line}"
        tail -3 "$out.err" >&2 || true
        for k in $CLIENT_METRICS; do
            if [ "$k" = qps ] && [ "$rpc" = streaming ]; then k="msg/s"; fi
            record_bad "$case" "$k" "$impl"
        done
        return
    fi
    log "  $(printf '%-9s' "$(name "$impl")") $case: $line"
    for k in $CLIENT_METRICS; do
        local label=$k
        [ "$k" = qps ] && [ "$rpc" = streaming ] && label="msg/s"
        record "$case" "$label" "$impl" "$(sed -nE "s/.*(^| )$k=([0-9.]+).*/\2/p" <<<"$line")"
    done
}

# rss_run IMPL: memory per idle connection of a fresh server.
rss_run() {
    local impl=$1 line case="$nconns idle HTTP/2 connections"
    start_server "$impl"
    if line=$(timeout -k 5 60 python3 "$here/idle_conns.py" --port="$SPORT" --pid="$SPID" \
        --conns="$nconns" 2>"$tmp/idle.err"); then
        log "  $(printf '%-9s' "$(name "$impl")") $case: $line"
        record "$case" "RSS bytes/conn" "$impl" "$(sed -nE 's/.*bytes_per_conn=(-?[0-9]+).*/\1/p' <<<"$line")"
    else
        fail "$(name "$impl"): $case: ${line:-} $(cat "$tmp/idle.err")"
        record_bad "$case" "RSS bytes/conn" "$impl"
    fi
    stop_server "$SPID"
}

# --- the run -------------------------------------------------------------------
cases=7
est=$(( rounds * cases * (warmup + seconds + 1) * $(wc -w <<<"$impls") + rounds * 10 ))
log "== $rounds round(s) x ${seconds}s per measurement, servers --threads=$threads, about ${est}s"

declare -A PORT=() PID=()
for impl in $impls; do
    start_server "$impl"
    PORT[$impl]=$SPORT
    PID[$impl]=$SPID
    log "$(name "$impl") server: pid $SPID, port $SPORT"
done
for impl in $impls; do check_body "$impl" "${PORT[$impl]}" || true; done

# Both clients against the other's server: not measured, only that they agree.
if [ "$have_orpc" = 1 ]; then
    for pair in "orpc grpc" "grpc orpc"; do
        # shellcheck disable=SC2086
        set -- $pair
        for rpc in unary streaming; do
            if timeout -k 5 30 "$(client_bin "$1")" --target="127.0.0.1:${PORT[$2]}" --channels=1 \
                --outstanding=4 --seconds=1 --warmup=0 --req_size=$PAYLOAD --resp_size=$PAYLOAD \
                --rpc=$rpc >"$tmp/cross.txt" 2>&1; then
                log "interop: $(name "$1") client -> $(name "$2") server, $rpc: $(grep -a '^qps=' "$tmp/cross.txt")"
            else
                fail "interop: $(name "$1") client -> $(name "$2") server, $rpc: $(tail -2 "$tmp/cross.txt")"
            fi
        done
    done
fi

for r in $(seq "$rounds"); do
    log "== round $r of $rounds"
    for cm in "1 1" "4 64" "16 100"; do
        # shellcheck disable=SC2086
        set -- $cm
        for impl in $impls; do h2load_run "$impl" "${PORT[$impl]}" "$1" "$2"; done
    done
    for rpc in unary streaming; do
        for cm in "1 1" "4 64"; do
            # shellcheck disable=SC2086
            set -- $cm
            for impl in $impls; do client_run "$impl" "${PORT[$impl]}" "$rpc" "$1" "$2"; done
        done
    done
done
for impl in $impls; do stop_server "${PID[$impl]}"; done

log "== memory per idle connection ($nconns connections, fresh servers)"
for r in $(seq "$rounds"); do
    for impl in $impls; do rss_run "$impl"; done
done

# --- the report ----------------------------------------------------------------
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{v[++n]=$1} END{if(!n) exit
    if(n%2) printf "%.0f", v[(n+1)/2]; else printf "%.0f", (v[n/2]+v[n/2+1])/2}'; }
cell() { # key impl
    if [ -n "${BAD[$1|$2]:-}" ]; then echo FAIL
    elif [ -n "${VALS[$1|$2]:-}" ]; then median <<<"${VALS[$1|$2]}"
    else echo "—"; fi
}
better() { case "$1" in *req/s | qps | msg/s) echo "higher" ;; *) echo "lower" ;; esac; }

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
[ -n "$cpu_model" ] || cpu_model=unknown
report=$tmp/report.md
{
    echo "# orpc vs gRPC C++: benchmark results"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $ncpu CPUs, $cpu_model, $(uname -sr)"
    echo "- peers: gRPC C++ $(pkg-config --modversion grpc++) (async API, one completion queue per thread), $(h2load --version 2>&1 | head -1)"
    echo "- command: \`$command_line\`"
    echo "- setup: loopback 127.0.0.1, h2c; both servers --threads=$threads, unpinned, clients on the same machine; ${seconds}s per measurement after ${warmup}s warm-up; $rounds round(s), orpc then gRPC in each; figures are medians over the rounds; payloads ${PAYLOAD} bytes each way"
    if [ "$have_orpc" != 1 ]; then
        echo "- **orpc side not measured**: ${o_server#"$root"/} or ${o_client#"$root"/} is missing"
    fi
    [ "$failures" -eq 0 ] || echo "- **$failures measurement(s) failed** (FAIL below)"
    echo
    echo "| measurement | metric | better | orpc | gRPC C++ | orpc / gRPC |"
    echo "|---|---|---|--:|--:|--:|"
    for k in "${rows[@]}"; do
        c=${k%%|*}; m=${k#*|}
        a=$(cell "$k" orpc); b=$(cell "$k" grpc)
        ratio="—"
        if [[ $a =~ ^-?[0-9]+$ && $b =~ ^-?[0-9]+$ && $b != 0 ]]; then
            ratio=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", a/b}')
        fi
        echo "| $c | ${m/_us/ us} | $(better "$m") | $a | $b | $ratio |"
    done
    echo
    echo "Client rows: each implementation's own client against its own server"
    echo "(channels x outstanding RPCs per channel; streaming = ping-pong messages"
    echo "on long-lived StreamingCalls).  h2load rows: the same h2load against both."
} >"$report"

if [ "$write_results" = 1 ]; then
    # The new table replaces the file's head; the "## " sections after it
    # (earlier runs kept for comparison, the soak) stay.
    if [ -f "$here/RESULTS.md" ]; then
        sed -n '/^## /,$p' "$here/RESULTS.md" >"$tmp/kept"
        if [ -s "$tmp/kept" ]; then
            echo >>"$report"
            cat "$tmp/kept" >>"$report"
        fi
    fi
    cp "$report" "$here/RESULTS.md"
    log "== wrote ${here#"$root"/}/RESULTS.md"
fi
echo
cat "$report"
[ "$failures" -eq 0 ]
