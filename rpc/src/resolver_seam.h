/*
 * resolver_seam.h — the resolver's test seam (internal, never installed):
 * a channel whose DNS target is answered with a list of addresses instead
 * of by getaddrinfo, and how often it has resolved.  Tests include this
 * header from rpc/src; the two functions are exported from liborpc (the
 * rest of the runtime is hidden) but are not part of the API.
 */
#ifndef ORPC_RESOLVER_SEAM_H
#define ORPC_RESOLVER_SEAM_H

#include <stdint.h>

#include <orpc/channel.h>

/* From now on, |ch|'s resolutions answer |answer| ("127.0.0.2,::1": IP
 * literals, comma-separated, with the target's port) instead of asking
 * DNS; NULL asks DNS again.  An answer with no address is a failed
 * resolution.  |min_interval_ms| replaces the 30 s that re-resolutions
 * are at least apart (0 keeps it).  Takes effect at the next resolution.
 * Returns 0, ORPC_EINVAL (not a DNS target, or an entry that is not an IP
 * literal) or ORPC_ENOMEM.  Copies |answer|.  Any thread. */
ORPC_EXTERN int orpc__resolver_override(orpc_channel *ch, const char *answer,
                                        int64_t min_interval_ms);

/* How many resolutions of |ch| have completed (answered or failed).  Any
 * thread. */
ORPC_EXTERN unsigned orpc__resolver_resolutions(orpc_channel *ch);

#endif /* ORPC_RESOLVER_SEAM_H */
