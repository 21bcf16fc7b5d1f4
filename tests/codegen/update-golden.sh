#!/bin/sh
# update-golden.sh — regenerates tests/codegen/golden/ from the golden protos.
#
# The codegen test compares protoc-gen-orpc's output for
# tests/codegen/protos/golden/**.proto byte for byte with the files under
# tests/codegen/golden/.  After an intended change to the generator, run this
# script, then READ the diff (git diff tests/codegen/golden) before committing
# it: the golden files are the reviewed record of what the plugin emits.
#
# usage: tests/codegen/update-golden.sh [PLUGIN]
#   PLUGIN         protoc-gen-orpc to use (default: build/bin/protoc-gen-orpc,
#                  i.e. the dev preset's; build it first)
# environment:
#   PROTOC         protoc (default: protoc from PATH)
#   ORPC_PROTO_IMPORT_DIRS
#                  colon-separated import path after the golden protos
#                  (default: the same as the CMake build's: proto/, then the
#                  Debian packages' /usr/include, /usr/share/grpc-proto and
#                  /usr/share/gocode/src/github.com/gogo/googleapis)
# Also available as a build target: cmake --build build --target codegen_update_golden
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
plugin=${1:-$root/build/bin/protoc-gen-orpc}
protoc=${PROTOC:-protoc}
imports=${ORPC_PROTO_IMPORT_DIRS:-$root/proto:/usr/include:/usr/share/grpc-proto:/usr/share/gocode/src/github.com/gogo/googleapis}
src=$here/protos/golden
dst=$here/golden

if [ ! -x "$plugin" ]; then
    echo "update-golden.sh: no plugin at $plugin (build it, or pass its path)" >&2
    exit 1
fi

tmp=$(mktemp -d /tmp/orpc-golden-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

set -- -I"$src"
old_ifs=$IFS
IFS=:
for d in $imports; do
    set -- "$@" -I"$d"
done
IFS=$old_ifs

# Proto paths relative to the golden root, sorted, so the request (and so
# the output) does not depend on the file system's order.
protos=$(cd "$src" && find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
if [ -z "$protos" ]; then
    echo "update-golden.sh: no protos under $src" >&2
    exit 1
fi
# shellcheck disable=SC2086 # the proto paths contain no spaces
"$protoc" "$@" --plugin=protoc-gen-orpc="$plugin" --orpc_out="$tmp" $protos

# Replace the golden set as a whole, so files of removed protos go too.
find "$dst" -type f \( -name '*.orpc.h' -o -name '*.orpc.c' \) -exec rm -f {} + 2>/dev/null || true
mkdir -p "$dst"
(cd "$tmp" && find . -type f \( -name '*.orpc.h' -o -name '*.orpc.c' \)) |
    LC_ALL=C sort | while read -r f; do
        mkdir -p "$dst/$(dirname "$f")"
        cp "$tmp/$f" "$dst/$f"
        echo "updated tests/codegen/golden/${f#./}"
    done
# Drop directories left empty by removed protos.
find "$dst" -mindepth 1 -type d -empty -delete
