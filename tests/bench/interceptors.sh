#!/bin/bash
# interceptors.sh — what the default interceptor chain (trace context and
# metrics; call logs off) costs, against none: orpc-bench-client ->
# orpc-bench-server, unary, 4 channels x 64 outstanding, 100-byte payloads,
# both sides with --interceptors=none, then both with the default chain,
# alternating (A B A B ...) in one run.
#
#   tests/bench/interceptors.sh [--write-results]
#
# Environment: BENCH_ROUNDS [3], BENCH_SECONDS [5], BENCH_WARMUP [1],
# BENCH_THREADS [nproc], BENCH_BUILD [build], BENCH_PIN [1].  With
# BENCH_PIN=1 (and two cores or more) the server runs one IO thread pinned
# to core 0 and the client is pinned to core 1 (taskset): on a small
# machine the two otherwise trade cores and throughput moves by ±10 % from
# run to run, far more than the few percent measured here.  Prints each measurement and
# the medians with the ratio (default / none), of the throughput and of the
# CPU time client and server spend per call; --write-results puts them in
# tests/bench/RESULTS.md's "Interceptor chain" section.  Loopback only; every
# server it starts is stopped on exit.  Exit 0 when every measurement
# succeeded, 1 otherwise, 2 on bad usage.
set -euo pipefail

write_results=0
for arg in "$@"; do
    case "$arg" in
    --write-results) write_results=1 ;;
    -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "interceptors.sh: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${BENCH_ROUNDS:-3}
seconds=${BENCH_SECONDS:-5}
warmup=${BENCH_WARMUP:-1}
threads=${BENCH_THREADS:-$(nproc)}
pin=${BENCH_PIN:-1}
spin="" cpin=""
if [ "$pin" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    spin="taskset -c 0" cpin="taskset -c 1" threads=1
fi
build=${BENCH_BUILD:-$root/build}
case "$build" in /*) ;; *) build=$root/$build ;; esac
for v in rounds seconds warmup threads; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "interceptors.sh: bad $v '${!v}'" >&2; exit 2; }
done
[ "$rounds" -ge 1 ] && [ "$seconds" -ge 1 ] && [ "$threads" -ge 1 ] ||
    { echo "interceptors.sh: BENCH_ROUNDS, BENCH_SECONDS, BENCH_THREADS must be >= 1" >&2; exit 2; }
server=$build/bin/orpc-bench-server
client=$build/bin/orpc-bench-client
for f in "$server" "$client"; do
    [ -x "$f" ] || { echo "interceptors.sh: $f is not built" >&2; exit 1; }
done
command_line="BENCH_ROUNDS=$rounds BENCH_SECONDS=$seconds BENCH_PIN=${BENCH_PIN:-1} tests/bench/interceptors.sh${*:+ $*}"

tmp=$(mktemp -d)
spid=""
cleanup() {
    [ -z "$spid" ] || { kill -KILL "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; }
    rm -rf "$tmp"
}
trap cleanup EXIT

# measure CHAIN: one server and one client run, both with --interceptors=
# CHAIN; prints "QPS CPU_US": the calls per second, and the CPU time both
# processes spent per call (user + system, whole runs, over the calls made)
# — the steadier figure on a small machine, where the two share the cores.
measure() {
    local chain=$1 port out line qps cpu
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    out=$tmp/server-$chain.log
    $spin "$server" --port="$port" --threads="$threads" --interceptors="$chain" >"$out" 2>&1 &
    spid=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$out" 2>/dev/null && break
        sleep 0.1
    done
    line=$(timeout -k 5 $((warmup + seconds + 30)) python3 -c '
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(p.stdout.strip(), "client_cpu=%.6f" % (r.ru_utime + r.ru_stime))
sys.exit(p.returncode)' $cpin "$client" --target="127.0.0.1:$port" \
        --channels=4 --outstanding=64 --seconds="$seconds" --warmup="$warmup" \
        --req_size=100 --resp_size=100 --rpc=unary --interceptors="$chain" 2>"$tmp/client.err") || true
    # the server's CPU so far (utime + stime, in clock ticks)
    local ticks
    ticks=$(awk '{print $14 + $15}' "/proc/$spid/stat" 2>/dev/null || echo 0)
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    spid=""
    qps=$(sed -nE 's/^qps=([0-9.]+).*/\1/p' <<<"$line")
    [ -n "$qps" ] || { echo "interceptors.sh: $chain: no result: $(cat "$tmp/client.err")" >&2; return 1; }
    cpu=$(awk -v line="$line" -v ticks="$ticks" -v hz="$(getconf CLK_TCK)" -v w="$warmup" -v s="$seconds" -v q="$qps" '
        BEGIN { match(line, /client_cpu=[0-9.]+/); c = substr(line, RSTART + 11, RLENGTH - 11)
                printf "%.2f", (c + ticks / hz) * 1e6 / (q * (w + s)) }')
    echo "$qps $cpu"
}

median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

none=() dflt=() paired=() cpu_none=() cpu_dflt=() failed=0
for r in $(seq "$rounds"); do
    qn="" qd=""
    for chain in none default; do
        if res=$(measure "$chain"); then
            read -r q c <<<"$res"
            echo "round $r: $chain: qps=$q cpu_us_per_call=$c" >&2
            if [ "$chain" = none ]; then
                none+=("$q") cpu_none+=("$c") qn=$q
            else
                dflt+=("$q") cpu_dflt+=("$c") qd=$q
            fi
        else
            failed=1
        fi
    done
    # the two runs of a round are next to each other: their ratio is less
    # exposed to the machine's drift than the medians of each
    [ -z "$qn" ] || [ -z "$qd" ] || paired+=("$(awk -v a="$qd" -v b="$qn" 'BEGIN {printf "%.4f", a / b}')")
done
[ "${#none[@]}" -gt 0 ] && [ "${#dflt[@]}" -gt 0 ] || exit 1
m_none=$(printf '%s\n' "${none[@]}" | median)
m_dflt=$(printf '%s\n' "${dflt[@]}" | median)
ratio=$(awk -v a="$m_dflt" -v b="$m_none" 'BEGIN {printf "%.3f", a / b}')
cost=$(awk -v r="$ratio" 'BEGIN {printf "%.1f", (1 - r) * 100}')
m_pair=$(printf '%s\n' "${paired[@]}" | median)
c_none=$(printf '%s\n' "${cpu_none[@]}" | median)
c_dflt=$(printf '%s\n' "${cpu_dflt[@]}" | median)
c_ratio=$(awk -v a="$c_dflt" -v b="$c_none" 'BEGIN {printf "%.3f", a / b}')
c_cost=$(awk -v r="$c_ratio" 'BEGIN {printf "%.1f", (r - 1) * 100}')
pcost=$(awk -v r="$m_pair" 'BEGIN {printf "%.1f", (1 - r) * 100}')
table="| unary 4×64, 100 B | none | default chain | default / none | cost |
|---|---:|---:|---:|---:|
| qps (median of $rounds) | $(printf '%.0f' "$m_none") | $(printf '%.0f' "$m_dflt") | $ratio | $cost % |
| median of the $rounds rounds' own ratios | | | $(printf '%.3f' "$m_pair") | $pcost % |
| CPU µs per call, client + server (median) | $c_none | $c_dflt | $c_ratio | $c_cost % |"
echo "$table"
if [ "$write_results" = 1 ]; then
    results=$here/RESULTS.md
    section="## Interceptor chain

What the default interceptor chain (W3C trace context and metrics, call
logs off) costs against none, orpc client and server alike: \`$command_line\`
(release build) on $(nproc) cores, $(date -u +%Y-%m-%d)$([ -n "$spin" ] && echo "; server pinned to core 0 with one IO thread, client to core 1").

$table"
    python3 - "$results" "$section" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
pat = re.compile(r"^## Interceptor chain\n.*?(?=^## |\Z)", re.S | re.M)
text = pat.sub(section + "\n\n", text) if pat.search(text) else text.rstrip() + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
fi
exit $failed
