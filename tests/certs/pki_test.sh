#!/bin/sh
# pki_test.sh — scripts/orpc-certs.sh and tests/certs/mint-matrix.sh do what
# they promise.
#
# Usage: sh tests/certs/pki_test.sh [SOURCE_DIR]
#   SOURCE_DIR defaults to the repository this script sits in.
#
# Runs `orpc-certs.sh all` into a temporary directory and checks that every
# service certificate verifies against the CA (as server and as client),
# carries exactly one URI SAN, spiffe://opsconductor.local/service/<name>,
# plus the default DNS/IP names, and that every key is mode 0600; that `ca`
# refuses to overwrite an existing CA without --force (and replaces it with
# --force); that `all` reuses an existing CA; that bad service names, trust
# domains, DNS names and IPs are refused before anything is written; that
# --dns/--ip replace the default names; that no key material is ever printed;
# and that mint-matrix.sh succeeds quietly and produces its full set.
# Prints failures as they happen, then "N passed, M failed"; exits non-zero
# on any failure. Needs only sh and openssl; no network.
set -u
LC_ALL=C
export LC_ALL

here=$(cd "$(dirname "$0")" && pwd)
root=${1:-$here/../..}
certs=$root/scripts/orpc-certs.sh
matrix=$root/tests/certs/mint-matrix.sh
TD=opsconductor.local
SERVICES="auth user jobs executor scheduler notification credentials orpc-cli"

for f in "$certs" "$matrix"; do
    [ -r "$f" ] || { echo "pki_test.sh: $f not found"; exit 1; }
done
command -v openssl >/dev/null 2>&1 || { echo "pki_test.sh: openssl not found"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/orpc-pki-test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP
transcript=$tmp/transcript # everything the scripts printed
: >"$transcript"

pass=0
failed=0
ok() { pass=$((pass + 1)); }
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*"
}
check() { # description command...
    _what=$1
    shift
    if "$@"; then ok; else bad "$_what"; fi
}

# Run orpc-certs.sh; its output goes to $tmp/last (and the transcript), the
# exit status to $rc.
run() {
    sh "$certs" "$@" >"$tmp/last" 2>&1
    rc=$?
    cat "$tmp/last" >>"$transcript"
}

filemode() { stat -c %a "$1" 2>/dev/null || stat -f %Lp "$1"; }
sum() { cksum <"$1"; }

# Subject alternative names, one per line, as openssl prints them.
sans() {
    openssl x509 -in "$1" -noout -text 2>/dev/null | awk '
        /X509v3 Subject Alternative Name:/ { getline
            sub(/^[ \t]+/, ""); n = split($0, a, ", ")
            for (i = 1; i <= n; i++) print a[i] }'
}
verifies() { # cafile cert purpose
    openssl verify -CAfile "$1" -purpose "$3" "$2" >/dev/null 2>&1
}
same_key() { # key cert
    _kp=$(openssl pkey -in "$1" -pubout 2>/dev/null) &&
        _cp=$(openssl x509 -in "$2" -noout -pubkey 2>/dev/null) &&
        [ -n "$_kp" ] && [ "$_kp" = "$_cp" ]
}
listing() { (cd "$1" && ls -A) 2>/dev/null; }

# --- all ---------------------------------------------------------------------

d=$tmp/pki
run all --out "$d"
check "all exits 0 (rc $rc): $(cat "$tmp/last")" [ "$rc" -eq 0 ]
check "ca.pem and ca.key exist" [ -s "$d/ca.pem" -a -s "$d/ca.key" ]
check "ca.pem is self-signed and verifies" verifies "$d/ca.pem" "$d/ca.pem" any

nl='
'
for n in $SERVICES; do
    p=$d/$n.pem k=$d/$n.key
    if ! [ -s "$p" ] || ! [ -s "$k" ]; then
        bad "$n.pem or $n.key missing"
        continue
    fi
    check "$n.pem verifies against ca.pem as a server" verifies "$d/ca.pem" "$p" sslserver
    check "$n.pem verifies against ca.pem as a client" verifies "$d/ca.pem" "$p" sslclient
    uris=$(sans "$p" | grep '^URI:')
    check "$n.pem has exactly one URI SAN, spiffe://$TD/service/$n (got: $uris)" \
        [ "$uris" = "URI:spiffe://$TD/service/$n" ]
    want="URI:spiffe://$TD/service/$n${nl}DNS:$n${nl}DNS:localhost${nl}IP Address:127.0.0.1${nl}IP Address:0:0:0:0:0:0:0:1"
    got=$(sans "$p")
    check "$n.pem default SANs (got: $(echo "$got" | tr '\n' ' '))" [ "$got" = "$want" ]
    eku=$(openssl x509 -in "$p" -noout -ext extendedKeyUsage 2>/dev/null | tail -n 1)
    check "$n.pem EKU is serverAuth+clientAuth (got: $eku)" \
        [ "$(echo $eku)" = "TLS Web Server Authentication, TLS Web Client Authentication" ]
    check "$n.pem holds only the leaf" \
        [ "$(grep -c -- '-----BEGIN CERTIFICATE-----' "$p")" = 1 ]
    check "$n.pem is EC P-256" sh -c \
        "openssl x509 -in '$p' -noout -text | grep -q 'NIST CURVE: P-256'"
    check "$n.key matches $n.pem" same_key "$k" "$p"
    m=$(filemode "$p")
    check "$n.pem is mode 0644 (got $m)" [ "$m" = 644 ]
done

nkeys=0
for k in "$d"/*.key; do
    [ -e "$k" ] || continue
    nkeys=$((nkeys + 1))
    m=$(filemode "$k")
    check "$(basename "$k") is mode 0600 (got $m)" [ "$m" = 600 ]
done
check "all wrote 9 keys (got $nkeys)" [ "$nkeys" -eq 9 ]
check "no temporary files left in the output directory" \
    [ "$(listing "$d" | grep -c '^\.')" -eq 0 ]

# --- ca is idempotent: refuses to overwrite without --force -------------------

ca_sum=$(sum "$d/ca.pem") key_sum=$(sum "$d/ca.key")
run ca --out "$d"
check "ca over an existing CA exits non-zero" [ "$rc" -ne 0 ]
check "ca's refusal mentions --force: $(cat "$tmp/last")" grep -q -- --force "$tmp/last"
check "refused ca leaves ca.pem alone" [ "$(sum "$d/ca.pem")" = "$ca_sum" ]
check "refused ca leaves ca.key alone" [ "$(sum "$d/ca.key")" = "$key_sum" ]

h=$tmp/half
mkdir "$h" && cp "$d/ca.key" "$h/ca.key"
run ca --out "$h"
check "ca refuses when only ca.key exists" [ "$rc" -ne 0 -a ! -e "$h/ca.pem" ]

# all reuses the existing CA and reissues the service certificates.
jobs_sum=$(sum "$d/jobs.pem")
run all --out "$d"
check "all over an existing CA exits 0 (rc $rc)" [ "$rc" -eq 0 ]
check "all reuses the existing ca.pem" [ "$(sum "$d/ca.pem")" = "$ca_sum" ]
check "all reissues jobs.pem" [ "$(sum "$d/jobs.pem")" != "$jobs_sum" ]
check "reissued jobs.pem verifies" verifies "$d/ca.pem" "$d/jobs.pem" sslserver

# --force replaces the CA.
f=$tmp/force
mkdir "$f" && cp "$d/ca.pem" "$d/ca.key" "$d/jobs.pem" "$f/"
run ca --out "$f" --force
check "ca --force exits 0 (rc $rc)" [ "$rc" -eq 0 ]
check "ca --force replaces ca.pem" [ "$(sum "$f/ca.pem")" != "$ca_sum" ]
check "ca --force replaces ca.key" [ "$(sum "$f/ca.key")" != "$key_sum" ]
m=$(filemode "$f/ca.key")
check "replaced ca.key is mode 0600 (got $m)" [ "$m" = 600 ]
check "old jobs.pem no longer verifies against the new CA" \
    sh -c "! openssl verify -CAfile '$f/ca.pem' '$f/jobs.pem' >/dev/null 2>&1"

# --- refusals ------------------------------------------------------------------

before=$(listing "$d")
for n in "Jobs" "a/b" "" "../x" "jobs;id" " jobs" "jobs_x" "jöbs"; do
    run service --out "$d" --name "$n"
    check "service --name '$n' is refused (rc $rc)" [ "$rc" -ne 0 ]
    check "refusal of '$n' names the problem: $(cat "$tmp/last")" \
        grep -q "invalid service name" "$tmp/last"
done
run service --out "$d"
check "service without --name is refused" [ "$rc" -ne 0 ]
for t in "Opsconductor.local" "a/b" "" "ops_conductor" "ops conductor" "td:1"; do
    run service --out "$d" --name jobs --trust-domain "$t"
    check "--trust-domain '$t' is refused (rc $rc)" [ "$rc" -ne 0 ]
    check "refusal of trust domain '$t' names the problem: $(cat "$tmp/last")" \
        grep -q "invalid trust domain" "$tmp/last"
    run all --out "$tmp/td-refused" --trust-domain "$t"
    check "all --trust-domain '$t' is refused" [ "$rc" -ne 0 -a ! -e "$tmp/td-refused/ca.pem" ]
done
run service --out "$d" --name jobs --dns 'a.example, URI:spiffe://evil/x'
check "--dns with a comma is refused" [ "$rc" -ne 0 ]
run service --out "$d" --name jobs --ip '127.0.0.1
DNS:evil'
check "--ip with a newline is refused" [ "$rc" -ne 0 ]
run service --out "$d" --name jobs --ip 10.0.0.300
check "--ip 10.0.0.300 fails" [ "$rc" -ne 0 ]
check "... showing openssl's error: $(cat "$tmp/last")" grep -q "bad ip address" "$tmp/last"
for n in 0 -1 x 99999; do
    run service --out "$d" --name jobs --days "$n"
    check "--days $n is refused" [ "$rc" -ne 0 ]
done
run bogus --out "$d"
check "an unknown command is refused" [ "$rc" -ne 0 ]
check "refusals left the directory as it was" [ "$(listing "$d")" = "$before" ]
check "jobs.pem still verifies after the refusals" verifies "$d/ca.pem" "$d/jobs.pem" sslclient

run service --out "$tmp/no-ca" --name jobs
check "service without a CA is refused" [ "$rc" -ne 0 -a ! -e "$tmp/no-ca/jobs.pem" ]

# --- --dns/--ip replace the defaults --------------------------------------------

run service --out "$d" --name custom --trust-domain example.org --dns api.example.org --ip 10.1.2.3
check "service with --dns/--ip exits 0 (rc $rc): $(cat "$tmp/last")" [ "$rc" -eq 0 ]
got=$(sans "$d/custom.pem")
check "--dns/--ip replace the default names (got: $(echo "$got" | tr '\n' ' '))" \
    [ "$got" = "URI:spiffe://example.org/service/custom${nl}DNS:api.example.org${nl}IP Address:10.1.2.3" ]
m=$(filemode "$d/custom.key")
check "custom.key is mode 0600 (got $m)" [ "$m" = 600 ]

# --- nothing secret was printed ----------------------------------------------------

check "no key material in anything orpc-certs.sh printed" \
    sh -c "! grep -q 'PRIVATE KEY' '$transcript'"

# --- mint-matrix.sh -------------------------------------------------------------------

mx=$tmp/matrix
sh "$matrix" "$mx" >"$tmp/matrix.out" 2>&1
rc=$?
check "mint-matrix.sh exits 0 (rc $rc): $(cat "$tmp/matrix.out")" [ "$rc" -eq 0 ]
check "mint-matrix.sh is quiet on success" [ ! -s "$tmp/matrix.out" ]
missing=
for b in ca other-ca server client client-b other-client expired notyet nosan \
    twospiffe badspiffe dnsonly server-wrongname; do
    [ -s "$mx/$b.pem" ] && [ -s "$mx/$b.key" ] || missing="$missing $b"
done
check "mint-matrix.sh wrote every pair (missing:$missing)" [ -z "$missing" ]
check "mint-matrix.sh left no temporary files" \
    [ "$(listing "$mx" | grep -c '^\.')" -eq 0 ]
check "matrix expired.pem is expired" sh -c \
    "openssl verify -CAfile '$mx/ca.pem' '$mx/expired.pem' 2>&1 | grep -q 'certificate has expired'"
check "matrix notyet.pem is not yet valid" sh -c \
    "openssl verify -CAfile '$mx/ca.pem' '$mx/notyet.pem' 2>&1 | grep -q 'not yet valid'"
check "mint-matrix.sh without OUTDIR is a usage error" \
    sh -c "! sh '$matrix' >/dev/null 2>&1"

echo "$pass passed, $failed failed"
[ "$failed" -eq 0 ]
