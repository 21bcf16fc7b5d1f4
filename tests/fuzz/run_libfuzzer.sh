#!/bin/sh
# run_libfuzzer.sh — one brief libFuzzer run of a target, as ctest runs it
# (tests <target>_libfuzzer, label libfuzzer, make test), so that the real
# fuzzers keep building and running, not only their standalone runners.
#
# Usage: run_libfuzzer.sh RUNNER FUZZER WORKDIR SECONDS [INPUT ...]
#
#   RUNNER   the target's standalone runner (bin/<target>): writes its
#            built-in inputs as the seed corpus (-write-seeds)
#   FUZZER   the libFuzzer build (bin/<target>_libfuzzer)
#   WORKDIR  emptied, then holds corpus/ (seeds, regression inputs and what
#            the run finds) and any crash-*/leak-*/timeout-* artifact
#   SECONDS  libFuzzer's -max_total_time
#   INPUT    extra seed files (the target's fuzz/regressions/ inputs)
#
# Exits with libFuzzer's status: nonzero on a crash, a failed CHECK(), a
# sanitizer report, a leak or an input slower than 10 s; the artifact's
# path is in the output.  Every input also runs under ASan + UBSan here.
set -eu

if [ $# -lt 4 ]; then
    echo "usage: $0 RUNNER FUZZER WORKDIR SECONDS [INPUT ...]" >&2
    exit 2
fi
runner=$1
fuzzer=$2
work=$3
secs=$4
shift 4

rm -rf "$work"
mkdir -p "$work/corpus"
"$runner" -write-seeds "$work/corpus" >/dev/null
for f in "$@"; do
    cp "$f" "$work/corpus/"
done

# -max_total_time bounds the fuzzing; -timeout one input; -rss_limit_mb
# the memory; -runs caps the count on a fast machine.
exec "$fuzzer" "$work/corpus" -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=2048 -runs=2000000 -print_final_stats=1 \
    -artifact_prefix="$work/"
