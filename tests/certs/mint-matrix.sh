#!/bin/sh
# mint-matrix.sh — mint the good and the deliberately broken certificates of
# orpc's mTLS tests, all for trust domain test.orpc.
#
# Usage: tests/certs/mint-matrix.sh OUTDIR
#
# Writes into OUTDIR (created if missing), each NAME as NAME.pem + NAME.key
# (EC P-256, keys mode 0600); see tests/certs/README.md for what each is for:
#   ca, other-ca, server, client, client-b, other-client, expired, notyet,
#   nosan, twospiffe, badspiffe, dnsonly, server-wrongname
#
# Valid material comes from scripts/orpc-certs.sh (override the path with
# ORPC_CERTS=...); the malformed certificates, which that script rightly
# refuses to make, come from openssl directly; expired and notyet from
# `openssl ca` with a throwaway configuration, because openssl 3.0's
# `x509 -req` cannot set a start date.
#
# Every result is checked with openssl (x509 -text, verify) before anything
# is moved into OUTDIR, so a mint that silently went wrong fails here, not as
# a puzzling TLS test. Everything is minted afresh in a temporary directory
# inside OUTDIR; OUTDIR is only touched when all checks pass. Quiet on
# success; on failure prints what went wrong (never key material) and exits
# non-zero. No network; a few dozen openssl runs.
set -eu
LC_ALL=C
export LC_ALL

prog=mint-matrix.sh
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
command -v openssl >/dev/null 2>&1 || {
    echo "$prog: openssl not found" >&2
    exit 1
}
here=$(cd "$(dirname "$0")" && pwd)
certs=${ORPC_CERTS:-$here/../../scripts/orpc-certs.sh}
[ -r "$certs" ] || {
    echo "$prog: $certs not found (set ORPC_CERTS)" >&2
    exit 1
}

TD=test.orpc
NAMES="ca other-ca server client client-b other-client expired notyet nosan
twospiffe badspiffe dnsonly server-wrongname"
BAD_ID="spiffe://Test.ORPC/service/x/../y"
LOOPBACK="DNS:localhost, IP:127.0.0.1, IP:::1"

mkdir -p "$out"
work=$(mktemp -d "$out/.mint-matrix.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM HUP
work=$(cd "$work" && pwd)
m=$work/m # the finished set
log=$work/log
mkdir "$m"
: >"$log"

fail() {
    echo "$prog: $1 failed:" >&2
    sed '/-----BEGIN[A-Z ]*PRIVATE KEY-----/,/-----END[A-Z ]*PRIVATE KEY-----/d' \
        "$log" >&2
    exit 1
}
ossl() { openssl "$@" >>"$log" 2>&1; }
oc() { sh "$certs" "$@" >>"$log" 2>&1; }

# --- valid material, through orpc-certs.sh ---------------------------------

oc ca --out "$m" --trust-domain $TD --days 365 || fail "orpc-certs.sh ca"
oc service --out "$m" --trust-domain $TD --days 30 --name server \
    --dns localhost --ip 127.0.0.1 --ip ::1 || fail "orpc-certs.sh service server"
oc service --out "$m" --trust-domain $TD --days 30 --name client-a ||
    fail "orpc-certs.sh service client-a"
mv "$m/client-a.key" "$m/client.key"
mv "$m/client-a.pem" "$m/client.pem"
oc service --out "$m" --trust-domain $TD --days 30 --name client-b ||
    fail "orpc-certs.sh service client-b"

# An unrelated CA, and a client with a fine SPIFFE ID that it signed.
mkdir "$work/other"
oc ca --out "$work/other" --trust-domain $TD --days 365 ||
    fail "orpc-certs.sh ca (other CA)"
oc service --out "$work/other" --trust-domain $TD --days 30 --name client-a ||
    fail "orpc-certs.sh service client-a (other CA)"
mv "$work/other/ca.key" "$m/other-ca.key"
mv "$work/other/ca.pem" "$m/other-ca.pem"
mv "$work/other/client-a.key" "$m/other-client.key"
mv "$work/other/client-a.pem" "$m/other-client.pem"

# The server's identity, but only DNS wrong.example.org (no IP SANs).
mkdir "$work/wn"
ln -s "$m/ca.pem" "$work/wn/ca.pem"
ln -s "$m/ca.key" "$work/wn/ca.key"
oc service --out "$work/wn" --trust-domain $TD --days 30 --name server \
    --dns wrong.example.org || fail "orpc-certs.sh service server (wrong name)"
mv "$work/wn/server.key" "$m/server-wrongname.key"
mv "$work/wn/server.pem" "$m/server-wrongname.pem"

# --- malformed material, with openssl directly ------------------------------

serial() { openssl rand -hex 8 | sed 's/^./7/'; }

newkey() { # base
    (umask 077 && ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$m/$1.key") || fail "key generation ($1)"
    chmod 600 "$m/$1.key"
}

ext() { # base SAN-or-empty — the leaf profile of orpc-certs.sh, SAN varied
    {
        echo "basicConstraints = critical, CA:FALSE"
        echo "keyUsage = critical, digitalSignature"
        echo "extendedKeyUsage = serverAuth, clientAuth"
        echo "subjectKeyIdentifier = hash"
        echo "authorityKeyIdentifier = keyid:always"
        [ -z "$2" ] || echo "subjectAltName = $2"
    } >"$work/$1.ext"
}

leaf() { # base CN SAN-or-empty
    ext "$1" "$3"
    newkey "$1"
    ossl req -new -key "$m/$1.key" -subj "/O=orpc tests/CN=$2" \
        -out "$work/$1.csr" || fail "$1 request"
    ossl x509 -req -in "$work/$1.csr" -CA "$m/ca.pem" -CAkey "$m/ca.key" \
        -sha256 -days 30 -set_serial "0x$(serial)" -extfile "$work/$1.ext" \
        -out "$m/$1.pem" || fail "$1 certificate"
}

# CN localhost: OpenSSL falls back to the CN when there is no DNS SAN, so as
# a server certificate nosan passes host checks and fails on identity alone.
leaf nosan localhost ""
leaf twospiffe twospiffe \
    "URI:spiffe://$TD/service/client-a, URI:spiffe://$TD/service/client-b, $LOOPBACK"
leaf badspiffe badspiffe "URI:$BAD_ID, $LOOPBACK"
leaf dnsonly dnsonly "DNS:localhost"

# Dates: UTC, YYYYMMDDHHMMSSZ, relative to now (GNU date, else BSD date).
stamp() { # seconds from now
    t=$(( $(date -u +%s) + $1 ))
    date -u -d "@$t" +%Y%m%d%H%M%SZ 2>/dev/null ||
        date -u -r "$t" +%Y%m%d%H%M%SZ
}
DAY=86400

# `openssl ca` run in its own scratch database; only the dates differ from
# the profile above.
mkdir "$work/cadb"
: >"$work/cadb/index.txt"
cat >"$work/cadb/ca.cnf" <<'EOF'
[ ca ]
default_ca = throwaway

[ throwaway ]
database = index.txt
new_certs_dir = .
rand_serial = yes
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
email_in_dn = no
preserve = yes

[ anything ]
organizationName = optional
commonName = supplied
EOF
dated() { # base start end
    ext "$1" "URI:spiffe://$TD/service/client-a, $LOOPBACK"
    newkey "$1"
    ossl req -new -key "$m/$1.key" -subj "/O=orpc tests/CN=$1" \
        -out "$work/$1.csr" || fail "$1 request"
    (cd "$work/cadb" && ossl ca -batch -notext -config ca.cnf \
        -cert "$m/ca.pem" -keyfile "$m/ca.key" -extfile "$work/$1.ext" \
        -startdate "$2" -enddate "$3" -in "$work/$1.csr" -out "$m/$1.pem") ||
        fail "$1 certificate (openssl ca)"
}
start=$(stamp $((-37 * DAY))) && end=$(stamp $((-7 * DAY))) ||
    { echo "$prog: cannot compute dates with date(1)" >&2; exit 1; }
dated expired "$start" "$end"
start=$(stamp $((7 * DAY))) && end=$(stamp $((37 * DAY))) ||
    { echo "$prog: cannot compute dates with date(1)" >&2; exit 1; }
dated notyet "$start" "$end"

# --- checks -----------------------------------------------------------------

bad=0
problem() {
    echo "$prog: check failed: $*" >&2
    bad=$((bad + 1))
}

# The subject alternative names of $1, one per line, as openssl prints them.
sans() {
    openssl x509 -in "$1" -noout -text 2>/dev/null | awk '
        /X509v3 Subject Alternative Name:/ { getline; found = 1
            sub(/^[ \t]+/, ""); n = split($0, a, ", ")
            for (i = 1; i <= n; i++) print a[i] }
        END { if (!found) print "(none)" }'
}
nl='
'
expect_sans() { # base expected-lines...
    b=$1
    shift
    want=
    for s in "$@"; do want="$want$s$nl"; done
    got=$(sans "$m/$b.pem")$nl
    [ "$got" = "$want" ] || problem "$b.pem SANs are" \
        "[$(echo "$got" | tr '\n' ' ')], want [$(echo "$want" | tr '\n' ' ')]"
}

# verify against a CA file; $3 = OK, or the error text that must appear.
expect_verify() { # base cafile OK|error-text [verify options...]
    b=$1 ca=$2 want=$3
    shift 3
    if res=$(openssl verify -CAfile "$m/$ca" "$@" "$m/$b.pem" 2>&1); then
        [ "$want" = OK ] ||
            problem "$b.pem verified against $ca $*; want \"$want\""
    else
        if [ "$want" = OK ]; then
            problem "$b.pem does not verify against $ca $*: $res"
        else
            case $res in
            *"$want"*) ;;
            *) problem "$b.pem against $ca $*: want \"$want\", got: $res" ;;
            esac
        fi
    fi
}

filemode() { stat -c %a "$1" 2>/dev/null || stat -f %Lp "$1"; }

for b in $NAMES; do
    [ -s "$m/$b.pem" ] && [ -s "$m/$b.key" ] || {
        problem "$b.pem or $b.key missing"
        continue
    }
    n=$(grep -c -- '-----BEGIN CERTIFICATE-----' "$m/$b.pem" || true)
    [ "$n" = 1 ] || problem "$b.pem holds $n certificates, want 1"
    k=$(filemode "$m/$b.key")
    [ "$k" = 600 ] || problem "$b.key has mode $k, want 600"
    kp=$(openssl pkey -in "$m/$b.key" -pubout 2>&1) || problem "$b.key unreadable"
    cp=$(openssl x509 -in "$m/$b.pem" -noout -pubkey 2>&1) || problem "$b.pem unreadable"
    [ "$kp" = "$cp" ] || problem "$b.key does not match $b.pem"
    openssl x509 -in "$m/$b.pem" -noout -text 2>/dev/null |
        grep -q 'NIST CURVE: P-256' || problem "$b.pem is not an EC P-256 key"
done

# The CAs.
expect_verify ca ca.pem OK
expect_verify other-ca other-ca.pem OK
expect_verify other-ca ca.pem "self-signed certificate"
for c in ca other-ca; do
    openssl x509 -in "$m/$c.pem" -noout -ext basicConstraints 2>/dev/null |
        grep -q 'CA:TRUE' || problem "$c.pem is not a CA"
done

# Valid leaves.
expect_verify server ca.pem OK -purpose sslserver -verify_hostname localhost
expect_verify server ca.pem OK -purpose sslserver -verify_ip 127.0.0.1
expect_verify server ca.pem OK -purpose sslserver -verify_ip ::1
expect_sans server "URI:spiffe://$TD/service/server" "DNS:localhost" \
    "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1"
for c in client:client-a client-b:client-b; do
    f=${c%%:*} id=${c#*:}
    expect_verify "$f" ca.pem OK -purpose sslclient
    expect_sans "$f" "URI:spiffe://$TD/service/$id" "DNS:$id" "DNS:localhost" \
        "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1"
done

# Wrong issuer.
expect_verify other-client ca.pem "unable to get local issuer certificate"
expect_verify other-client other-ca.pem OK -purpose sslclient
expect_sans other-client "URI:spiffe://$TD/service/client-a" "DNS:client-a" \
    "DNS:localhost" "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1"

# Dates: the only defect.
expect_verify expired ca.pem "certificate has expired"
expect_verify expired ca.pem OK -no_check_time -purpose sslclient
expect_verify notyet ca.pem "certificate is not yet valid"
expect_verify notyet ca.pem OK -no_check_time -purpose sslclient
for b in expired notyet; do
    expect_sans "$b" "URI:spiffe://$TD/service/client-a" "DNS:localhost" \
        "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1"
done
openssl x509 -in "$m/expired.pem" -noout -checkend 0 >/dev/null 2>&1 &&
    problem "expired.pem has not expired"
openssl x509 -in "$m/notyet.pem" -noout -checkend $((30 * DAY)) >/dev/null 2>&1 ||
    problem "notyet.pem ends too soon (dates not applied?)"

# SAN defects: each chains fine, so only the identity check can reject it.
for b in nosan twospiffe badspiffe dnsonly server-wrongname; do
    expect_verify "$b" ca.pem OK -purpose sslclient
    expect_verify "$b" ca.pem OK -purpose sslserver
done
openssl x509 -in "$m/nosan.pem" -noout -text 2>/dev/null |
    grep -q 'Subject Alternative Name' && problem "nosan.pem has a subjectAltName"
expect_sans nosan "(none)"
expect_sans twospiffe "URI:spiffe://$TD/service/client-a" \
    "URI:spiffe://$TD/service/client-b" "DNS:localhost" \
    "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1"
expect_sans badspiffe "URI:$BAD_ID" "DNS:localhost" \
    "IP Address:127.0.0.1" "IP Address:0:0:0:0:0:0:0:1"
expect_sans dnsonly "DNS:localhost"
expect_sans server-wrongname "URI:spiffe://$TD/service/server" \
    "DNS:wrong.example.org"
expect_verify server-wrongname ca.pem OK -verify_hostname wrong.example.org
expect_verify server-wrongname ca.pem "hostname mismatch" -verify_hostname localhost
expect_verify server-wrongname ca.pem "IP address mismatch" -verify_ip 127.0.0.1

if [ $bad -ne 0 ]; then
    echo "$prog: $bad check(s) failed; nothing written to $out" >&2
    exit 1
fi

# Keys first, certificates last.
for b in $NAMES; do mv -f "$m/$b.key" "$out/$b.key"; done
for b in $NAMES; do mv -f "$m/$b.pem" "$out/$b.pem"; done
