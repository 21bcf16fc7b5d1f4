#!/bin/sh
# api_docs_test.sh — every exported function of orpc's public headers is
# documented where it is declared (house style 12).
#
# For each declaration that starts with ORPC_EXTERN in the public headers
# (rpc/include/orpc/*.h, compat/include/orpc/compat/*.h),
# the nearest non-blank line above it must end a doc comment ("/**" … "*/").  Prints each
# undocumented declaration and fails when there is one.
set -eu
[ $# -ge 1 ] || { echo "usage: api_docs_test.sh <include dir>..."; exit 2; }
fail=0
count=0
for h in $(for d in "$@"; do find "$d/orpc" -name '*.h' | sort; done); do
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
