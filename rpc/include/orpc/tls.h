/*
 * orpc/tls.h — TLS material and peer identity.
 *
 * One options struct serves servers and channels.  Each piece of material
 * comes from a PEM file or from PEM text in memory (the memory form wins when
 * both are given).  orpc copies what it needs when the server or channel is
 * created, and rereads files on reload (orpc_server_reload()).
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
    /** Own private key: file path (should be mode 0600). */
    const char *key_file;
    /** Own private key as PEM text. */
    const char *key_pem;
    /** Server: require a client certificate signed by the CA bundle. */
    int require_client_cert;
    /** Channel: the DNS name or IP the server's certificate must carry; by
     *  default the target's host.  Also sent as SNI when it is a name. */
    const char *server_name;
    /** Channel: accept the server only when its SPIFFE ID equals this. */
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
 */
ORPC_EXTERN int orpc_spiffe_id_parse(const char *uri, orpc_spiffe_id *out);

#ifdef __cplusplus
}
#endif

#endif /* ORPC_TLS_H */
