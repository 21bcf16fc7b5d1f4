#!/bin/sh
# api_docs_test.sh — every exported function of orpc's public headers is
# documented where it is declared, and says who owns what and from which
# threads it may be called (house style 9, 10 and 12).
#
# For each declaration that starts with ORPC_EXTERN in the public headers
# (rpc/include/orpc/*.h, compat/include/orpc/compat/*.h,
# clients/include/orpc/*.h: the include dirs given, and every component's
# <component>/include of the source tree this script lives in, so a new
# component is covered without being listed), the nearest non-blank line
# above it must end a doc comment ("/**" … "*/"), and that comment must
# have a line containing "Ownership:" and a line containing "Threads:".
# Prints each offender ("file:line: undocumented", "file:line: no
# Ownership:", "file:line: no Threads:") and fails when there is one.
#
# API_DOCS_SELFTEST=1 sh api_docs_test.sh checks the checker instead: it
# runs it on a made-up header whose offenders are known and compares.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)

# Prints the offenders of header $1, then "COUNT <declarations> <bad>".
check_header() {
    awk -v file="$1" '
        /^[ \t]*\/\*\*/ { indoc = 1; own = 0; thr = 0 }
        indoc && /Ownership:/ { own = 1 }
        indoc && /Threads:/ { thr = 1 }
        indoc && /\*\/[ \t]*$/ {
            indoc = 0; docend = NR; docown = own; docthr = thr
        }
        /^ORPC_EXTERN/ {
            n++
            if (lastnb != docend) {
                printf "%s:%d: undocumented: %s\n", file, NR, $0; bad++
            } else {
                if (!docown) {
                    printf "%s:%d: no Ownership: %s\n", file, NR, $0; bad++
                }
                if (!docthr) {
                    printf "%s:%d: no Threads: %s\n", file, NR, $0; bad++
                }
            }
        }
        NF { lastnb = NR }
        END { printf "COUNT %d %d\n", n, bad }' "$1"
}

if [ "${API_DOCS_SELFTEST:-}" = 1 ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    cat >"$tmp/t.h" <<'HDR'
/** Documented fully.
 * Ownership: nothing changes hands.
 * Threads: any thread.
 */
ORPC_EXTERN int good(void);

/**
 * No ownership line.
 * Threads: any thread.
 */
ORPC_EXTERN int no_own(void);

/**
 * No threads line.  Ownership: mid-paragraph still counts.
 */
ORPC_EXTERN int no_thr(void);

/** Neither. */
ORPC_EXTERN int neither(void);

/**
 * Ownership: and Threads: in the comment above the previous one do not
 * count for the next declaration.
 */
int not_exported(void);

ORPC_EXTERN int undocumented(void);
HDR
    cat >"$tmp/want" <<WANT
$tmp/t.h:11: no Ownership: ORPC_EXTERN int no_own(void);
$tmp/t.h:16: no Threads: ORPC_EXTERN int no_thr(void);
$tmp/t.h:19: no Ownership: ORPC_EXTERN int neither(void);
$tmp/t.h:19: no Threads: ORPC_EXTERN int neither(void);
$tmp/t.h:27: undocumented: ORPC_EXTERN int undocumented(void);
COUNT 5 5
WANT
    check_header "$tmp/t.h" >"$tmp/got"
    if ! diff -u "$tmp/want" "$tmp/got"; then
        echo "api_docs_test.sh: the checker is wrong (diff above)"
        exit 1
    fi
    echo "api_docs_test.sh: self-test passed"
    exit 0
fi

[ $# -ge 1 ] || { echo "usage: api_docs_test.sh <include dir>..."; exit 2; }
fail=0
count=0
headers=$(for d in "$@" "$root"/*/include; do
    [ -d "$d/orpc" ] && find "$(cd "$d" && pwd)/orpc" -name '*.h'
done | sort -u)
for h in $headers; do
    out=$(check_header "$h")
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
    echo "$count exported declarations; some are undocumented or lack"
    echo "an Ownership: or Threads: line (above)"
    exit 1
fi
echo "$count exported declarations, all documented with Ownership: and Threads:"
