#!/bin/sh
# version-guard.sh — generated headers refuse orpc headers of another
# version: compiles one generated header three times, against the real
# rpc/include and against two copies whose orpc/common.h claims (1) an
# older runtime than the generator and (2) a runtime that no longer accepts
# code this old; the first must compile, the other two must stop with the
# #error naming the problem.
#
# usage: version-guard.sh CC RPC_INCLUDE_DIR GEN_DIR HEADER
#   GEN_DIR holds HEADER (a *.orpc.h) and the .pb-c.h files it includes.
set -u
[ $# -eq 4 ] || { echo "usage: $0 CC RPC_INCLUDE_DIR GEN_DIR HEADER" >&2; exit 2; }
cc=$1 inc=$2 gen=$3 hdr=$4
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0

compile() { # compile INCLUDE_DIR OUT: 0 when it compiles
    printf '#include "%s"\n' "$hdr" >"$tmp/t.c"
    "$cc" -std=c11 -fsyntax-only -I"$1" -I"$gen" "$tmp/t.c" >"$2" 2>&1
}

if ! compile "$inc" "$tmp/ok.log"; then
    echo "FAIL: $hdr does not compile against $inc:"; cat "$tmp/ok.log"; fail=1
fi

# variant NAME SED-EXPRESSION EXPECTED-TEXT
variant() {
    mkdir -p "$tmp/$1"
    cp -r "$inc/orpc" "$tmp/$1/"
    sed -i "$2" "$tmp/$1/orpc/common.h"
    if cmp -s "$inc/orpc/common.h" "$tmp/$1/orpc/common.h"; then
        echo "FAIL: $1: the edit changed nothing in common.h"; fail=1; return
    fi
    if compile "$tmp/$1" "$tmp/$1.log"; then
        echo "FAIL: $1: compiled against mismatched headers"; fail=1
    elif ! grep -q "$3" "$tmp/$1.log"; then
        echo "FAIL: $1: no \"$3\" in:"; cat "$tmp/$1.log"; fail=1
    else
        echo "ok: $1: $(grep -o "$3[^\"]*" "$tmp/$1.log" | head -1)"
    fi
}
variant older-runtime 's/^#define ORPC_VERSION_MAJOR .*/#define ORPC_VERSION_MAJOR 0/; s/^#define ORPC_VERSION_MINOR .*/#define ORPC_VERSION_MINOR 0/' "newer than the orpc headers in use"
variant runtime-dropped-old-code 's/^#define ORPC_MIN_GENERATED_VERSION .*/#define ORPC_MIN_GENERATED_VERSION 999999999/' "older than the orpc headers in use accept"
exit $fail
