#!/bin/sh
# json_cross_test.sh — cross-checks orpc's proto3 JSON mapping with Debian's
# python3-protobuf json_format (see json_python_check.py).
#
#   json_cross_test.sh DRIVER WORKDIR [IMPORT_DIR...]
#
# Generates the Python modules of the test protos into WORKDIR with
# `protoc --python_out` ($PROTOC, default protoc; imports from tests/protos,
# proto/ and the IMPORT_DIRs, by default Debian's), then runs the check with
# /usr/bin/python3.  A missing python3-protobuf fails the test.
set -eu

driver=$1
work=$2
shift 2
if [ $# -eq 0 ]; then
    set -- /usr/include /usr/share/gocode/src/github.com/gogo/googleapis
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
protoc=${PROTOC:-protoc}

if ! /usr/bin/python3 -c 'import google.protobuf.json_format' 2>/dev/null; then
    echo "json_cross_test: /usr/bin/python3 has no google.protobuf" \
         "(apt-get install python3-protobuf)" >&2
    exit 1
fi

rm -rf "$work"
mkdir -p "$work"
for d in "$@"; do # each IMPORT_DIR becomes -IIMPORT_DIR, in order
    set -- "$@" "-I$d"
    shift
done
"$protoc" --python_out="$work" -I"$here/protos" -I"$root/proto" "$@" \
    json_types.proto orpc/options.proto \
    google/api/annotations.proto google/api/http.proto \
    opsconductor/notification/v1/notification.proto \
    opsconductor/jobs/v1/jobs.proto \
    grpc/testing/messages.proto

exec /usr/bin/python3 "$here/json_python_check.py" "$driver" "$work"
