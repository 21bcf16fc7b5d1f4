#!/bin/sh
# scripts/demo.sh [BUILD_DIR] — runs OpsConductor's migration demo
# (examples/opsconductor/demo/demo.py) against a build; `make demo`
# installs the packages and builds first.  Everything runs on 127.0.0.1;
# the logs, stats and metrics snapshot go to BUILD_DIR/demo.
set -eu
build=${1:-build}
cd "$(dirname "$0")/.."
exec /usr/bin/python3 examples/opsconductor/demo/demo.py --build "$build"
