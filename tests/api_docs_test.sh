#!/bin/sh
# api_docs_test.sh — every exported function of orpc's public headers is
# documented where it is declared (house style 12).
#
# For each declaration that starts with ORPC_EXTERN in the public headers
# (rpc/include/orpc/*.h, compat/include/orpc/compat/*.h,
# clients/include/orpc/*.h: the include dirs given, and every component's
# <component>/include of the source tree this script lives in, so a new
# component is covered without being listed), the nearest non-blank line
# above it must end a doc comment ("/**" … "*/").  Prints each
# undocumented declaration and fails when there is one.
set -eu
[ $# -ge 1 ] || { echo "usage: api_docs_test.sh <include dir>..."; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
fail=0
count=0
headers=$(for d in "$@" "$root"/*/include; do
    [ -d "$d/orpc" ] && find "$(cd "$d" && pwd)/orpc" -name '*.h'
done | sort -u)
for h in $headers; do
    out=$(awk -v file="$h" '
        /^[ \t]*\/\*\*/ { indoc = 1 }
        /^ORPC_EXTERN/ {
            n++
            if (lastnb != docend) { printf "%s:%d: undocumented: %s\n", file, NR, $0; bad++ }
        }
        indoc && /\*\/[ \t]*$/ { indoc = 0; docend = NR }
        NF { lastnb = NR }
        END { printf "COUNT %d %d\n", n, bad }' "$h")
    echo "$out" | grep -v '^COUNT' || true
    c=$(echo "$out" | awk '/^COUNT/ {print $2}')
    b=$(echo "$out" | awk '/^COUNT/ {print $3}')
    count=$((count + c))
    [ "${b:-0}" -eq 0 ] || fail=1
done
if [ "$count" -lt 50 ]; then
    echo "only $count exported declarations found: are the dirs right?"
    exit 1
fi
if [ $fail -ne 0 ]; then
    echo "$count exported declarations; some are undocumented (above)"
    exit 1
fi
echo "$count exported declarations, all documented"
