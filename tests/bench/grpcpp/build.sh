#!/bin/bash
# build.sh — builds the gRPC C++ benchmark peers (bench_server, bench_client)
# from orpc's copies of the grpc.testing protos.
#
#   build.sh SRC_DIR OUT_DIR
#
# SRC_DIR is the orpc source tree (its proto/ and tests/bench/grpcpp/ are
# read), OUT_DIR receives gen/ (protoc's C++), obj/ and the two binaries.
# Needs libgrpc++-dev, protobuf-compiler-grpc and pkg-config.  Idempotent:
# a step runs only when its output is missing or older than its inputs.
set -eu

[ $# -eq 2 ] || { echo "usage: $0 SRC_DIR OUT_DIR" >&2; exit 2; }
src=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
here=$src/tests/bench/grpcpp
plugin=/usr/bin/grpc_cpp_plugin
CXX=${CXX:-g++}

for tool in protoc pkg-config "$CXX"; do
    command -v "$tool" >/dev/null 2>&1 ||
        { echo "build.sh: $tool not found (scripts/install-deps.sh --bench)" >&2; exit 1; }
done
[ -x "$plugin" ] || { echo "build.sh: $plugin not found (protobuf-compiler-grpc)" >&2; exit 1; }
pkg-config --exists grpc++ protobuf ||
    { echo "build.sh: pkg-config finds no grpc++/protobuf (libgrpc++-dev)" >&2; exit 1; }

protos="grpc/testing/messages.proto grpc/testing/benchmark_service.proto"
cflags=$(pkg-config --cflags grpc++ protobuf)
libs=$(pkg-config --libs grpc++ protobuf)
CXXFLAGS=${CXXFLAGS:--O2}

# True when $1 is missing or older than any of the remaining files.
stale() {
    t=$1; shift
    [ -e "$t" ] || return 0
    for f in "$@"; do [ "$f" -nt "$t" ] && return 0; done
    return 1
}

gen=$out/gen
obj=$out/obj
mkdir -p "$gen" "$obj"

proto_files=""
for p in $protos; do proto_files="$proto_files $src/proto/$p"; done
# shellcheck disable=SC2086
if stale "$gen/.stamp" $proto_files "$0"; then
    echo "build.sh: protoc -> $gen"
    # shellcheck disable=SC2086
    protoc -I"$src/proto" -I/usr/include \
        --cpp_out="$gen" --grpc_out="$gen" \
        --plugin=protoc-gen-grpc="$plugin" $protos
    touch "$gen/.stamp"
fi

objs=""
for p in $protos; do
    base=${p%.proto}
    for kind in pb grpc.pb; do
        cc=$gen/$base.$kind.cc
        o=$obj/$(basename "$base").$kind.o
        if stale "$o" "$cc" "$gen/.stamp"; then
            echo "build.sh: $CXX $(basename "$cc")"
            # shellcheck disable=SC2086
            "$CXX" -std=c++17 $CXXFLAGS -I"$gen" $cflags -c "$cc" -o "$o.tmp"
            mv "$o.tmp" "$o"
        fi
        objs="$objs $o"
    done
done

for prog in bench_server bench_client; do
    # shellcheck disable=SC2086
    if stale "$out/$prog" "$here/$prog.cc" $objs "$0"; then
        echo "build.sh: $CXX $prog"
        # shellcheck disable=SC2086
        "$CXX" -std=c++17 $CXXFLAGS -Wall -Wextra -I"$gen" $cflags \
            "$here/$prog.cc" $objs -o "$out/$prog.tmp" $libs -lpthread
        mv "$out/$prog.tmp" "$out/$prog"
    fi
done
