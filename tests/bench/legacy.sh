#!/bin/bash
# legacy.sh — what serving legacy JSON costs: one orpc handler (JobsService
# GetJob, a ~100-byte job) reached as a legacy route over HTTP/1.1 and as
# gRPC on the same port, next to the same route served by FastAPI/uvicorn,
# measured in one run with the three alternating.
#
#   tests/bench/legacy.sh [--write-results]
#
# Environment (defaults in brackets):
#   BENCH_ROUNDS   rounds; each measures the three once [3]
#   BENCH_SECONDS  length of one measurement [10]
#   BENCH_CONNS    keep-alive connections (wrk -c; h2load -c, one call in
#                  flight on each) [16]
#   BENCH_PIN      1: server on core 0, load generator on core 1 [1]
#   BENCH_BUILD    build dir holding bin/orpc-legacy-bench-server [build]
#
# Cases, per round:
#   legacy   wrk -t1 -cN: GET /jobs/7 with a bearer token, against
#            orpc-legacy-bench-server (orpc's gateway: HTTP/1.1 parsing,
#            token check, JSON encoding of the handler's message)
#   grpc     h2load -cN -m1: gRPC GetJob, the same handler, the same port
#   fastapi  wrk -t1 -cN: the same route and JSON from
#            tests/bench/fastapi_jobs.py under uvicorn (one worker), as
#            today's services run
# Prints each measurement, then a table of the medians with the ratios the
# issue sets targets for (legacy/gRPC ≥ 0.5, legacy/FastAPI ≥ 10) — to
# stdout, or with --write-results into tests/bench/RESULTS.md (section
# "Legacy JSON on the same port").  Everything on 127.0.0.1; every server
# started is stopped on exit.  Exit: 0 if every measurement succeeded.
set -euo pipefail

write_results=0
for arg in "$@"; do
    case "$arg" in
    --write-results) write_results=1 ;;
    -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "legacy.sh: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=${BENCH_ROUNDS:-3}
seconds=${BENCH_SECONDS:-10}
conns=${BENCH_CONNS:-16}
pin=${BENCH_PIN:-1}
build=${BENCH_BUILD:-$root/build}
case "$build" in /*) ;; *) build=$root/$build ;; esac
for v in rounds seconds conns; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "legacy.sh: bad $v '${!v}'" >&2; exit 2; }
done
server=$build/bin/orpc-legacy-bench-server
[ -x "$server" ] || { echo "legacy.sh: $server not built (cmake --build $build)" >&2; exit 2; }
for tool in wrk h2load taskset timeout; do
    command -v $tool >/dev/null || { echo "legacy.sh: $tool missing (scripts/install-deps.sh --bench)" >&2; exit 2; }
done
/usr/bin/python3 -c 'import fastapi, uvicorn' 2>/dev/null ||
    { echo "legacy.sh: python3-fastapi/python3-uvicorn missing (scripts/install-deps.sh --bench)" >&2; exit 2; }
command_line="BENCH_ROUNDS=$rounds BENCH_SECONDS=$seconds BENCH_CONNS=$conns BENCH_PIN=$pin tests/bench/legacy.sh${*:+ $*}"

spin="" cpin=""
if [ "$pin" = 1 ] && [ "$(nproc)" -ge 2 ]; then
    spin="taskset -c 0" cpin="taskset -c 1"
fi
tmp=$(mktemp -d)
spid=""
cleanup() {
    [ -z "$spid" ] || { kill -TERM "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true; }
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http PORT: until GET /jobs/7 answers 200 (10 s at most).
wait_http() {
    for _ in $(seq 100); do
        if python3 - "$1" <<'EOF' 2>/dev/null; then return 0; fi
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=1)
c.request("GET", "/jobs/7", headers={"Authorization": "Bearer bench-token"})
r = c.getresponse()
body = r.read()
sys.exit(0 if r.status == 200 and b'"nightly-backup"' in body else 1)
EOF
        sleep 0.1
    done
    return 1
}

start_orpc() {
    port=$(free_port)
    $spin "$server" --port="$port" --threads=1 >"$tmp/orpc.log" 2>&1 &
    spid=$!
    wait_http "$port" || { echo "legacy.sh: orpc server did not answer" >&2; cat "$tmp/orpc.log" >&2; return 1; }
}

start_fastapi() {
    port=$(free_port)
    (cd "$here" && exec $spin /usr/bin/python3 -m uvicorn fastapi_jobs:app \
        --host 127.0.0.1 --port "$port" --log-level warning --no-access-log) >"$tmp/fastapi.log" 2>&1 &
    spid=$!
    wait_http "$port" || { echo "legacy.sh: FastAPI app did not answer" >&2; cat "$tmp/fastapi.log" >&2; return 1; }
}

stop_server() {
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    spid=""
}

# wrk_run PORT: requests per second of GET /jobs/7, or nothing on failure
# (any non-2xx answer or socket error fails the measurement).
wrk_run() {
    local out=$tmp/wrk.txt
    timeout -k 5 $((seconds + 30)) $cpin wrk -t1 -c"$conns" -d"${seconds}s" \
        -H 'Authorization: Bearer bench-token' -H 'User-Agent: OpsConductor-bench/1.0.0' \
        "http://127.0.0.1:$1/jobs/7" >"$out" 2>&1 || { cat "$out" >&2; return 1; }
    if grep -q -E 'Non-2xx|Socket errors' "$out"; then cat "$out" >&2; return 1; fi
    sed -nE 's/^Requests\/sec: *([0-9.]+).*/\1/p' "$out"
}

# h2load_run PORT: gRPC GetJob{job_id: 7} calls per second.
h2load_run() {
    local out=$tmp/h2load.txt body=$tmp/getjob.bin
    printf '\x00\x00\x00\x00\x02\x08\x07' >"$body"
    timeout -k 5 $((seconds + 30)) $cpin h2load -D "$seconds" -c "$conns" -m 1 -t 1 \
        -H 'content-type: application/grpc' -H 'te: trailers' -d "$body" \
        "http://127.0.0.1:$1/opsconductor.jobs.v1.JobsService/GetJob" >"$out" 2>&1 ||
        { tail -5 "$out" >&2; return 1; }
    local req
    req=$(grep -a '^requests:' "$out")
    # every request must have succeeded (h2load sees :status only)
    awk '{for(i=1;i<=NF;i++){if($(i+1)~/^done/)d=$i; if($(i+1)~/^succeeded/)s=$i}} END{exit !(d>0 && d==s)}' <<<"$req" ||
        { echo "legacy.sh: h2load: $req" >&2; return 1; }
    grep -a '^finished in' "$out" | sed -E 's/.* ([0-9.]+) req\/s.*/\1/'
}

declare -a L=() G=() F=()
failed=0
for r in $(seq "$rounds"); do
    if start_orpc; then
        if v=$(wrk_run "$port"); then L+=("$v"); echo "round $r: legacy  $v req/s" >&2; else failed=1; fi
        if v=$(h2load_run "$port"); then G+=("$v"); echo "round $r: grpc    $v req/s" >&2; else failed=1; fi
        stop_server
    else
        failed=1
    fi
    if start_fastapi; then
        if v=$(wrk_run "$port"); then F+=("$v"); echo "round $r: fastapi $v req/s" >&2; else failed=1; fi
        stop_server
    else
        failed=1
    fi
done

median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {if (NR==0) print ""; else print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
ml=$(median "${L[@]}") mg=$(median "${G[@]}") mf=$(median "${F[@]}")
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}' || echo "n/a"; }
table=$(cat <<EOF
| path (same handler, ${conns} keep-alive connections) | req/s (median of ${#L[@]}/${#G[@]}/${#F[@]}) |
|---|---:|
| legacy JSON over HTTP/1.1, orpc gateway (wrk) | ${ml:-n/a} |
| gRPC over HTTP/2, same port (h2load -m1) | ${mg:-n/a} |
| same route on FastAPI/uvicorn (wrk) | ${mf:-n/a} |

legacy/gRPC = **$(ratio "$ml" "$mg")** (target ≥ 0.5); legacy/FastAPI = **$(ratio "$ml" "$mf")** (target ≥ 10).
EOF
)
echo "$table"
if [ "$write_results" = 1 ]; then
    res=$here/RESULTS.md
    section="## Legacy JSON on the same port"
    body=$(cat <<EOF
$section

\`$command_line\` on $(date -u +%Y-%m-%d), $(nproc) cores ($(uname -m)); server pinned
to core 0 with one IO thread, load generator on core 1 (BENCH_PIN=$pin).
Rounds: legacy $(printf '%s ' "${L[@]}")/ gRPC $(printf '%s ' "${G[@]}")/ FastAPI $(printf '%s ' "${F[@]}")req/s.

$table
EOF
)
    python3 - "$res" "$section" "$body" <<'EOF'
import re, sys
path, section, body = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""
pat = re.compile(re.escape(section) + r"\n.*?(?=\n## |\Z)", re.S)
text = pat.sub(lambda m: body, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + body + "\n"
open(path, "w").write(text)
EOF
    echo "legacy.sh: wrote $res" >&2
fi
exit $failed
