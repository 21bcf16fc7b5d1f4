#!/bin/sh
# reflection_python_test.sh BUILD_DIR SOURCE_DIR — server reflection
# between orpc and python3-grpcio (tests/reflection_python_test.py): grpcio's
# reflection client protocol against an orpc server, and `orpc list`/`call`
# against a grpcio server whose reflection servicer speaks v1alpha only.
# Loopback only; the script's own temporary directory is removed on exit.
set -u
build=$1
src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
/usr/bin/python3 "$src/tests/reflection_python_test.py" "$build/bin/orpc" \
    "$build/bin/cli_echo_server" "${PROTOC:-protoc}" /usr/share/grpc-proto \
    "$work"
