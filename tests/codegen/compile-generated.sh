#!/bin/sh
# compile-generated.sh — compiles protoc-gen-orpc's output with strict flags.
#
# Generated code lands in users' builds, which may use any warning flags; it
# must therefore be clean C11 under the strictest common set, with gcc and
# with clang.  Every *.orpc.c found is compiled on its own (it includes its
# own .orpc.h first, so each header is checked to stand alone too) with
#   -std=c11 -Wall -Wextra -Wpedantic -Werror -Wmissing-prototypes
#   -Wstrict-prototypes -fsyntax-only
# Every failing file is named, and the script fails if any does, or if it
# found nothing to compile (a vacuous pass would hide a broken setup).
#
# usage: compile-generated.sh --cc=CC [--include=DIR]... [--dir=DIR]...
#            [--protos=DIR --protoc=PATH --protoc-gen-c=PATH --plugin=PATH
#             [--import=DIR]...]
#   --include  an include directory
#   --dir      compile every *.orpc.c under DIR (also added as an include
#              directory)
#   --protos   first generate every .proto under DIR (protoc with protoc-c
#              and the plugin, into a temporary directory), then compile
#              that output too
#
# protoc-c 1.4.1 does not escape C keywords in the member names of its
# ProtobufCService structs (rpc Return gives `void (*return)(...)` in the
# .pb-c.h), so a proto with such a method cannot be compiled at all with it.
# protoc-gen-orpc's output for such methods is what is under test here, so
# after generating, the script renames those protoc-c members (KEYWORD ->
# KEYWORD_); only protoc-c's own service stubs, which are not compiled here,
# use them.
set -u

cc=
protos=
protoc=
protoc_gen_c=
plugin=
incs=
dirs=
imports=
nl='
'

for arg in "$@"; do
    case $arg in
    --cc=*) cc=${arg#*=} ;;
    --include=*) incs="$incs$nl${arg#*=}" ;;
    --dir=*) dirs="$dirs$nl${arg#*=}" ;;
    --protos=*) protos=${arg#*=} ;;
    --protoc=*) protoc=${arg#*=} ;;
    --protoc-gen-c=*) protoc_gen_c=${arg#*=} ;;
    --plugin=*) plugin=${arg#*=} ;;
    --import=*) imports="$imports$nl${arg#*=}" ;;
    *)
        echo "compile-generated.sh: unknown argument: $arg" >&2
        exit 2
        ;;
    esac
done
if [ -z "$cc" ]; then
    echo "compile-generated.sh: --cc is required" >&2
    exit 2
fi
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "compile-generated.sh: compiler '$cc' not found" >&2
    exit 1
fi

tmp=$(mktemp -d /tmp/orpc-compile-XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

if [ -n "$protos" ]; then
    if [ -z "$protoc" ] || [ -z "$protoc_gen_c" ] || [ -z "$plugin" ]; then
        echo "compile-generated.sh: --protos needs --protoc, --protoc-gen-c and --plugin" >&2
        exit 2
    fi
    gen=$tmp/gen
    mkdir -p "$gen"
    set -- -I"$protos"
    old_ifs=$IFS
    IFS=$nl
    for d in $imports; do
        [ -n "$d" ] && set -- "$@" -I"$d"
    done
    IFS=$old_ifs
    list=$(cd "$protos" && find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
    if [ -z "$list" ]; then
        echo "compile-generated.sh: no .proto under $protos" >&2
        exit 1
    fi
    # shellcheck disable=SC2086 # the proto paths contain no spaces
    if ! "$protoc" "$@" --plugin=protoc-gen-c="$protoc_gen_c" \
        --plugin=protoc-gen-orpc="$plugin" --c_out="$gen" --orpc_out="$gen" \
        $list; then
        echo "compile-generated.sh: protoc failed on the protos under $protos" >&2
        exit 1
    fi
    # See the note at the top: protoc-c's unescaped keyword members.
    kw='auto|break|case|char|const|continue|default|do|double|else|enum|extern|float|for|goto|if|inline|int|long|register|restrict|return|short|signed|sizeof|static|struct|switch|typedef|union|unsigned|void|volatile|while|bool|true|false'
    find "$gen" -name '*.pb-c.h' | while read -r h; do
        sed -E "s/\(\*($kw)\)\(/(*\1_)(/" "$h" >"$h.tmp" && mv "$h.tmp" "$h"
    done
    dirs="$dirs$nl$gen"
fi

set --
old_ifs=$IFS
IFS=$nl
for d in $incs $dirs; do
    [ -n "$d" ] && set -- "$@" -I"$d"
done
files=
for d in $dirs; do
    [ -z "$d" ] && continue
    if [ ! -d "$d" ]; then
        echo "compile-generated.sh: no directory $d (is the build complete?)" >&2
        exit 1
    fi
    found=$(find "$d" -name '*.orpc.c' | LC_ALL=C sort)
    if [ -z "$found" ]; then
        echo "compile-generated.sh: no .orpc.c under $d (is the build complete?)" >&2
        exit 1
    fi
    files="$files$nl$found"
done
IFS=$old_ifs

total=0
failed=0
failures=
old_ifs=$IFS
IFS=$nl
for f in $files; do
    IFS=$old_ifs
    [ -z "$f" ] && continue
    total=$((total + 1))
    if "$cc" -std=c11 -Wall -Wextra -Wpedantic -Werror -Wmissing-prototypes \
        -Wstrict-prototypes -fsyntax-only "$@" "$f" >"$tmp/out" 2>&1; then
        echo "ok    $f"
    else
        echo "FAIL  $f"
        sed 's/^/      /' "$tmp/out"
        failed=$((failed + 1))
        failures="$failures$nl  $f"
    fi
    IFS=$nl
done
IFS=$old_ifs

if [ "$total" -eq 0 ]; then
    echo "compile-generated.sh: nothing to compile" >&2
    exit 1
fi
if [ "$failed" -ne 0 ]; then
    echo "$failed of $total generated files do not compile with $cc:$failures" >&2
    exit 1
fi
echo "all $total generated files compile with $cc"
