/*
 * orpc/tls.h — TLS material and peer identity.
 *
 * One options struct serves servers and channels.  Each piece of material
 * comes from a PEM file or from PEM text in memory (the memory form wins when
 * both are given).  orpc copies what it needs when the server or channel is
 * created, and rereads files on reload (orpc_server_reload()).
 *
 * Protocol: TLS 1.2 or later with ALPN "h2".  TLS 1.2 is limited to ECDHE
 * key exchange with AES-GCM or ChaCha20-Poly1305, as HTTP/2 requires
 * (RFC 9113 §9.2.2): a peer that offers only other suites fails the
 * handshake.  TLS 1.3 uses OpenSSL's default suites.  Servers let clients
 * resume sessions, also with client certificates (sessions do not survive
 * orpc_server_reload()).  docs/tls.md explains these choices.
 *
 * Identity: a service's certificate carries exactly one URI SAN
 * `spiffe://<trust-domain>/service/<name>`.  orpc parses it strictly; a
 * certificate with none, several, or a malformed one has no identity.
 *
 * Thread-safety: the structs are plain data; functions may be called from
 * any thread.
 */
#ifndef ORPC_TLS_H
#define ORPC_TLS_H

#include <orpc/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Lowest TLS version to accept. */
typedef enum orpc_tls_version {
    /** The default: TLS 1.2 (TLS 1.3 is preferred when both ends have it). */
    ORPC_TLS_DEFAULT = 0,
    /** TLS 1.2. */
    ORPC_TLS_1_2 = 12,
    /** TLS 1.3 only. */
    ORPC_TLS_1_3 = 13
} orpc_tls_version;

/**
 * TLS settings.  Zero-initialise and set what applies; fields are only ever
 * appended.  All strings are borrowed until the function they are passed to
 * returns.
 */
typedef struct orpc_tls_opts {
    /** CA bundle that verifies the peer: file path. */
    const char *ca_file;
    /** CA bundle as PEM text. */
    const char *ca_pem;
    /** Own certificate chain (leaf first): file path. */
    const char *cert_file;
    /** Own certificate chain as PEM text. */
    const char *cert_pem;
    /** Own private key: file path (should be mode 0600), unencrypted PEM of
     *  at most 256 KiB.  orpc wipes its copy of the text once the key is
     *  parsed.  Encrypted keys are refused (no passphrase prompt). */
    const char *key_file;
    /** Own private key as unencrypted PEM text.  Copies orpc keeps are wiped
     *  before they are freed; wiping the caller's own is the caller's
     *  business. */
    const char *key_pem;
    /** Server: require a client certificate signed by the CA bundle. */
    int require_client_cert;
    /** Channel: the DNS name or IP the server's certificate must carry; by
     *  default the target's host.  Also sent as SNI when it is a name.  A
     *  `unix:` target has no host: a TLS channel to one needs this or
     *  |expected_spiffe_id|, or orpc_channel_new() fails with
     *  ORPC_ECONFIG. */
    const char *server_name;
    /** Channel: accept the server only when its SPIFFE ID equals this.
     *  Enough on its own to name the server of a `unix:` target. */
    const char *expected_spiffe_id;
    /** Lowest protocol version. */
    orpc_tls_version min_version;
} orpc_tls_opts;

/** Longest SPIFFE ID orpc accepts, in bytes (the SPIFFE spec's limit). */
#define ORPC_SPIFFE_ID_MAX 2048

/** A parsed SPIFFE ID. */
typedef struct orpc_spiffe_id {
    /** The whole ID, "spiffe://example.org/service/jobs". */
    char id[ORPC_SPIFFE_ID_MAX + 1];
    /** Length of the trust domain, which starts at id + 9. */
    size_t trust_domain_len;
    /** Offset of the path (starting with '/') within |id|. */
    size_t path_offset;
} orpc_spiffe_id;

/**
 * @function
 * Parses |uri| as a SPIFFE ID: scheme "spiffe", a trust domain of
 * the characters `a-z 0-9 . _ -`, a non-empty path of segments of
 * `A-Z a-z 0-9 . _ -` that are not "." or "..", no trailing '/', no query,
 * fragment, port, user info or percent-encoding, at most ORPC_SPIFFE_ID_MAX
 * bytes.
 *
 * Returns 0, or ORPC_EINVAL when |uri| is not a SPIFFE ID (or either
 * argument is NULL); |*out| is cleared on failure.
 *
 * Ownership: copies |uri| into |*out| (|uri| may be out->id itself);
 * nothing is allocated.
 * Threads: any thread.
 */
ORPC_EXTERN int orpc_spiffe_id_parse(orpc_spiffe_id *out, const char *uri);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_TLS_H */
