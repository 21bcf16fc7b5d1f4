#!/bin/sh
# install-deps.sh — make sure every Debian package orpc needs is present.
#
# Checks each package with dpkg-query and installs only the missing ones with
# one `apt-get update` followed by one `apt-get install`.  Run as root it acts;
# run as anyone else it prints the exact command to run and exits 1.  It never
# touches a package that is already installed.
#
# Usage: scripts/install-deps.sh [--bench] [--check]
#   --bench   also the peers the benchmarks compare against (gRPC C++, h2load)
#   --check   only report what is missing; exit 1 if anything is
set -eu

# Build and test: the packages DESIGN.md lists, plus the tools that build them.
PKGS="
build-essential cmake pkg-config clang
protobuf-compiler protobuf-c-compiler libprotobuf-c-dev
libprotobuf-dev libprotoc-dev grpc-proto golang-github-gogo-googleapis-dev
libnghttp2-dev libssl-dev libuv1-dev libcurl4-openssl-dev libjansson-dev
zlib1g-dev libcmocka-dev libhttp-parser-dev libsqlite3-dev
python3 python3-grpcio python3-protobuf openssl valgrind
python3-fastapi python3-uvicorn python3-httpx
prometheus
"
# Benchmarks only (make bench): the peers orpc is measured against.
BENCH_PKGS="libgrpc++-dev protobuf-compiler-grpc nghttp2-client wrk"

check_only=0
for arg in "$@"; do
    case "$arg" in
    --bench) PKGS="$PKGS $BENCH_PKGS" ;;
    --check) check_only=1 ;;
    *) echo "install-deps.sh: unknown argument '$arg'" >&2; exit 2 ;;
    esac
done

missing=""
for p in $PKGS; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
    esac
done

if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi

echo "install-deps: missing:$missing"
[ "$check_only" -eq 1 ] && exit 1

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: not root; run as root:" >&2
    echo "  $cmd" >&2
    exit 1
fi

apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
echo "install-deps: installed:$missing"
