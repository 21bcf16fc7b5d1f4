#!/bin/sh
# gen-test-certs.sh — mint the throwaway TLS material of the interop tests.
#
# Usage: scripts/gen-test-certs.sh OUTDIR
#
# Writes into OUTDIR (created if missing):
#   ca.pem, ca.key          test CA (self-signed)
#   server.pem, server.key  server certificate, signed by the CA, for
#                           DNS localhost, *.test.example.com,
#                           foo.test.google.fr (gRPC interop's usual
#                           --server_host_override), IP 127.0.0.1 and ::1
#   client.pem, client.key  client certificate, signed by the CA, with URI
#                           SAN spiffe://test.orpc/service/interop-client
#
# EC P-256 keys (PKCS#8 PEM, mode 0600), certificates valid for one day.
# Idempotent: when every file is present, the chain verifies and nothing
# expires within the hour, the existing set is kept; otherwise the whole set
# is minted again (into a temporary directory, then moved into place).
# Quiet on success; on failure prints openssl's output and exits non-zero.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
command -v openssl >/dev/null 2>&1 || {
    echo "gen-test-certs.sh: openssl not found" >&2
    exit 1
}

CLIENT_ID=spiffe://test.orpc/service/interop-client
FILES="ca.pem ca.key server.pem server.key client.pem client.key"

# Is the set in $1 complete, valid for another hour, and correctly chained?
still_good() {
    for f in $FILES; do
        [ -s "$1/$f" ] || return 1
    done
    for c in ca server client; do
        openssl x509 -in "$1/$c.pem" -noout -checkend 3600 \
            >/dev/null 2>&1 || return 1
    done
    openssl verify -CAfile "$1/ca.pem" -purpose sslserver "$1/server.pem" \
        >/dev/null 2>&1 || return 1
    openssl verify -CAfile "$1/ca.pem" -purpose sslclient "$1/client.pem" \
        >/dev/null 2>&1 || return 1
    openssl x509 -in "$1/client.pem" -noout -ext subjectAltName 2>/dev/null |
        grep -q "URI:$CLIENT_ID" || return 1
    return 0
}

mkdir -p "$out"
if still_good "$out"; then
    exit 0
fi

tmp=$(mktemp -d "$out/.gen-test-certs.XXXXXX")
log=$tmp/openssl.log
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

fail() {
    echo "gen-test-certs.sh: $1 failed:" >&2
    cat "$log" >&2
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

newkey() {
    (umask 077 && ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -out "$tmp/$1.key") || fail "key generation ($1)"
    chmod 600 "$tmp/$1.key"
}

cat >"$tmp/ca.ext" <<'EOF'
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
cat >"$tmp/server.ext" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost, DNS:*.test.example.com, DNS:foo.test.google.fr, IP:127.0.0.1, IP:::1
EOF
cat >"$tmp/client.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = URI:$CLIENT_ID
EOF

# The CA: self-signed, with a CSR signed by its own key so that the same
# `x509 -req -extfile` path (portable across OpenSSL 1.1 and 3) applies.
newkey ca
ossl req -new -key "$tmp/ca.key" -subj "/O=orpc tests/CN=orpc interop test CA" \
    -out "$tmp/ca.csr" || fail "CA request"
ossl x509 -req -in "$tmp/ca.csr" -signkey "$tmp/ca.key" -sha256 -days 1 \
    -set_serial "0x$(serial)" -extfile "$tmp/ca.ext" -out "$tmp/ca.pem" ||
    fail "CA certificate"

leaf() { # name subject
    newkey "$1"
    ossl req -new -key "$tmp/$1.key" -subj "$2" -out "$tmp/$1.csr" ||
        fail "$1 request"
    ossl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
        -sha256 -days 1 -set_serial "0x$(serial)" -extfile "$tmp/$1.ext" \
        -out "$tmp/$1.pem" || fail "$1 certificate"
}
leaf server "/O=orpc tests/CN=localhost"
leaf client "/O=orpc tests/CN=interop-client"

still_good "$tmp" || {
    echo "gen-test-certs.sh: freshly minted certificates do not verify" >&2
    openssl verify -CAfile "$tmp/ca.pem" "$tmp/server.pem" "$tmp/client.pem" >&2 || true
    exit 1
}

# Keys first, certificates last: a reader that sees a new certificate also
# finds its key.
for f in ca.key server.key client.key ca.pem server.pem client.pem; do
    mv -f "$tmp/$f" "$out/$f"
done
