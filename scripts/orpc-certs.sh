#!/bin/sh
# orpc-certs.sh — the development PKI of orpc's mTLS service identity.
#
# Usage:
#   scripts/orpc-certs.sh ca      --out DIR [--trust-domain TD] [--days N] [--force]
#   scripts/orpc-certs.sh service --out DIR --name NAME [--trust-domain TD]
#                                 [--days N] [--dns NAME]... [--ip ADDR]...
#   scripts/orpc-certs.sh all     --out DIR [--trust-domain TD] [--days N] [--force]
#
# ca       Writes DIR/ca.pem and DIR/ca.key: a self-signed CA (CA:TRUE,
#          pathlen:0, keyCertSign+cRLSign), valid --days (default 3650).
#          Refuses to replace an existing DIR/ca.pem or DIR/ca.key (exit 1,
#          nothing touched) unless --force is given.
# service  Writes DIR/NAME.pem (the leaf certificate only; the CA stays in
#          ca.pem) and DIR/NAME.key, signed by DIR/ca.pem + DIR/ca.key (which
#          must exist), valid --days (default 365). Replaces an existing pair.
#          Subject alternative names: URI spiffe://TD/service/NAME, then
#          DNS NAME, DNS localhost, IP 127.0.0.1, IP ::1 — unless any --dns or
#          --ip is given, in which case exactly those (after the URI) instead.
#          extendedKeyUsage serverAuth+clientAuth, so one certificate serves
#          a process as both server and client.
# all      The CA (an existing one in DIR is reused unless --force) plus one
#          service certificate for each OpsConductor service: auth, user,
#          jobs, executor, scheduler, notification, credentials, and for the
#          command-line client orpc-cli.
#
# TD defaults to opsconductor.local and must match [a-z0-9.-]+ (at most 255
# characters); NAME must match [a-z0-9-]+ (at most 64 characters). Anything
# else is refused with a message, before openssl runs.
#
# Keys are EC P-256, PKCS#8 PEM, written under umask 077 and checked to be
# mode 0600; certificates are mode 0644. Files are minted in a temporary
# directory inside DIR and moved into place (keys before certificates), so a
# failure leaves DIR as it was. Key material is never printed. Prints one
# line per certificate written; on failure shows openssl's output on stderr
# and exits non-zero (2 for usage errors, 1 otherwise).
set -eu
LC_ALL=C
export LC_ALL

prog=orpc-certs.sh
SERVICES="auth user jobs executor scheduler notification credentials orpc-cli"

usage() {
    sed -n '3,8s/^# \{0,1\}//p' "$0" >&2
    exit 2
}
die() { # message — a refusal or usage-level error, before any minting
    echo "$prog: $1" >&2
    exit "${2:-1}"
}

command -v openssl >/dev/null 2>&1 || die "openssl not found in PATH"

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
ca | service | all) ;;
-h | --help | help) usage ;;
*) die "unknown command '$cmd' (expected ca, service or all)" 2 ;;
esac

out=
td=opsconductor.local
name=
name_given=0
days=
force=0
dns_list=
ip_list=
custom_san=0

need_arg() { # option remaining-arg-count
    [ "$2" -ge 2 ] || die "$1 needs a value" 2
}
while [ $# -gt 0 ]; do
    opt=$1
    case $opt in
    --*=*)
        val=${opt#*=}
        opt=${opt%%=*}
        shift
        set -- "$opt" "$val" "$@"
        continue
        ;;
    esac
    case $opt in
    --out) need_arg "$opt" $#; out=$2; shift 2 ;;
    --trust-domain) need_arg "$opt" $#; td=$2; shift 2 ;;
    --days) need_arg "$opt" $#; days=$2; shift 2 ;;
    --force) force=1; shift ;;
    --name)
        [ "$cmd" = service ] || die "--name applies to 'service' only" 2
        need_arg "$opt" $#; name=$2; name_given=1; shift 2 ;;
    --dns)
        [ "$cmd" = service ] || die "--dns applies to 'service' only" 2
        need_arg "$opt" $#
        case $2 in
        '' | *[!A-Za-z0-9.*-]*)
            die "invalid --dns name '$2' (letters, digits, '.', '-', '*' only)" 2 ;;
        esac
        [ ${#2} -le 253 ] || die "--dns name longer than 253 characters" 2
        dns_list="$dns_list $2"; custom_san=1; shift 2 ;;
    --ip)
        [ "$cmd" = service ] || die "--ip applies to 'service' only" 2
        need_arg "$opt" $#
        case $2 in
        '' | *[!0-9A-Fa-f:.]*)
            die "invalid --ip address '$2' (an IPv4 or IPv6 literal)" 2 ;;
        esac
        ip_list="$ip_list $2"; custom_san=1; shift 2 ;;
    -h | --help) usage ;;
    *) die "unknown argument '$opt' (see --help)" 2 ;;
    esac
done

[ -n "$out" ] || die "--out DIR is required" 2

# The trust domain: SPIFFE allows lowercase letters, digits, '.', '-' and
# '_'; the house rule drops '_'. Case-sensitive on purpose: "Example.org" is
# refused, not folded.
case $td in
'' | *[!a-z0-9.-]*)
    die "invalid trust domain '$td': must be non-empty and use only a-z, 0-9, '.' and '-'" 2 ;;
esac
[ ${#td} -le 255 ] || die "invalid trust domain: longer than 255 characters" 2

if [ "$cmd" = service ]; then
    [ $name_given -eq 1 ] || die "service needs --name NAME" 2
    case $name in
    '' | *[!a-z0-9-]*)
        die "invalid service name '$name': must be non-empty and use only a-z, 0-9 and '-'" 2 ;;
    esac
    [ ${#name} -le 64 ] || die "invalid service name: longer than 64 characters" 2
fi

if [ -n "$days" ]; then
    case $days in
    '' | *[!0-9]*) die "invalid --days '$days': a positive whole number" 2 ;;
    esac
    # Strip leading zeros so the shell does not read octal.
    days=$(echo "$days" | sed 's/^0*//')
    [ -n "$days" ] && [ ${#days} -le 5 ] && [ "$days" -ge 1 ] &&
        [ "$days" -le 36500 ] ||
        die "invalid --days: between 1 and 36500" 2
fi

if [ "$cmd" = service ] && ! { [ -s "$out/ca.pem" ] && [ -s "$out/ca.key" ]; }; then
    die "no CA in '$out' (ca.pem and ca.key): run '$0 ca --out $out' first"
fi

mkdir -p "$out" 2>/dev/null || die "cannot create directory '$out'"
[ -d "$out" ] && [ -w "$out" ] || die "'$out' is not a writable directory"

tmp=$(mktemp -d "$out/.orpc-certs.XXXXXX") ||
    die "cannot create a temporary directory in '$out'"
log=$tmp/openssl.log
: >"$log"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

# Show openssl's output, with any PEM private key blocks removed (openssl
# should never print one here; this makes sure of it).
fail() {
    echo "$prog: $1 failed:" >&2
    sed '/-----BEGIN[A-Z ]*PRIVATE KEY-----/,/-----END[A-Z ]*PRIVATE KEY-----/d' \
        "$log" >&2
    exit 1
}

# Run openssl quietly, keeping its output for the error report.
ossl() {
    openssl "$@" >>"$log" 2>&1
}

serial() {
    # A positive random 63-bit serial, in hex.
    openssl rand -hex 8 | sed 's/^./7/'
}

filemode() {
    stat -c %a "$1" 2>/dev/null || stat -f %Lp "$1"
}

newkey() { # path
    (umask 077 && ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$1") || fail "key generation ($(basename "$1"))"
    chmod 600 "$1" || fail "chmod 600 $(basename "$1")"
    m=$(filemode "$1") || fail "stat $(basename "$1")"
    [ "$m" = 600 ] || {
        echo "$prog: $(basename "$1") has mode $m, not 600" >&2
        exit 1
    }
}

# Move a finished key and certificate from $tmp into $out (key first, so a
# reader that sees the new certificate also finds its key).
install_pair() { # base
    chmod 644 "$tmp/$1.pem" || fail "chmod 644 $1.pem"
    mv -f "$tmp/$1.key" "$out/$1.key" || fail "installing $1.key"
    mv -f "$tmp/$1.pem" "$out/$1.pem" || fail "installing $1.pem"
}

mint_ca() {
    cat >"$tmp/ca.ext" <<'EOF'
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    newkey "$tmp/ca.key"
    ossl req -new -key "$tmp/ca.key" \
        -subj "/O=OpsConductor/OU=orpc development PKI/CN=OpsConductor development CA" \
        -out "$tmp/ca.csr" || fail "CA request"
    ossl x509 -req -in "$tmp/ca.csr" -signkey "$tmp/ca.key" -sha256 \
        -days "${days:-3650}" -set_serial "0x$(serial)" \
        -extfile "$tmp/ca.ext" -out "$tmp/ca.pem" || fail "CA certificate"
    ossl verify -CAfile "$tmp/ca.pem" "$tmp/ca.pem" || fail "CA self-check"
    install_pair ca
    echo "$prog: wrote $out/ca.pem and $out/ca.key"
}

ca_present() {
    [ -e "$out/ca.pem" ] || [ -e "$out/ca.key" ]
}

mint_service() { # name
    n=$1
    id="spiffe://$td/service/$n"
    [ -s "$out/ca.pem" ] && [ -s "$out/ca.key" ] ||
        die "no CA in '$out' (ca.pem and ca.key): run '$0 ca --out $out' first"
    ossl x509 -in "$out/ca.pem" -noout || fail "reading $out/ca.pem"

    san="URI:$id"
    if [ $custom_san -eq 1 ]; then
        for d in $dns_list; do san="$san, DNS:$d"; done
        for a in $ip_list; do san="$san, IP:$a"; done
    else
        san="$san, DNS:$n, DNS:localhost, IP:127.0.0.1, IP:::1"
    fi
    cat >"$tmp/$n.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = $san
EOF
    newkey "$tmp/$n.key"
    ossl req -new -key "$tmp/$n.key" -subj "/O=OpsConductor/CN=$n" \
        -out "$tmp/$n.csr" || fail "$n request"
    ossl x509 -req -in "$tmp/$n.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
        -sha256 -days "${days:-365}" -set_serial "0x$(serial)" \
        -extfile "$tmp/$n.ext" -out "$tmp/$n.pem" || fail "$n certificate"

    # Self-check: chains to the CA for both roles and carries the ID.
    ossl verify -CAfile "$out/ca.pem" -purpose sslserver "$tmp/$n.pem" &&
        ossl verify -CAfile "$out/ca.pem" -purpose sslclient "$tmp/$n.pem" ||
        fail "verifying $n.pem against $out/ca.pem"
    openssl x509 -in "$tmp/$n.pem" -noout -ext subjectAltName 2>>"$log" |
        grep -q "URI:$id\(,\|\$\)" || fail "checking the SPIFFE ID of $n.pem"

    # The leaf outliving its CA is allowed but worth knowing.
    secs=$(( ${days:-365} * 86400 ))
    openssl x509 -in "$out/ca.pem" -noout -checkend "$secs" >/dev/null 2>&1 ||
        echo "$prog: warning: $out/ca.pem expires before $n.pem does;" \
            "$n.pem stops verifying when the CA expires" >&2

    install_pair "$n"
    echo "$prog: wrote $out/$n.pem and $out/$n.key ($id)"
}

case $cmd in
ca)
    if ca_present && [ $force -eq 0 ]; then
        die "a CA already exists in '$out' (ca.pem or ca.key); not overwriting it (use --force to replace it, which invalidates every certificate it signed)"
    fi
    mint_ca
    ;;
service)
    [ $force -eq 0 ] || die "--force applies to 'ca' and 'all' only" 2
    mint_service "$name"
    ;;
all)
    if ca_present && [ $force -eq 0 ]; then
        [ -s "$out/ca.pem" ] && [ -s "$out/ca.key" ] ||
            die "'$out' holds only half a CA (ca.pem or ca.key missing); use --force to mint a new one"
        echo "$prog: reusing the existing CA $out/ca.pem"
    else
        mint_ca
    fi
    for s in $SERVICES; do
        mint_service "$s"
    done
    ;;
esac
