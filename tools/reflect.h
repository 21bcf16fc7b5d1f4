/*
 * reflect.h — the `orpc` command's server reflection client: lists a
 * server's services and fetches the FileDescriptorProtos of a symbol (with
 * everything they import) into an orpc__dpool, over
 * grpc.reflection.v1.ServerReflection, or v1alpha when the server does not
 * implement v1.
 *
 * Threads: one thread at a time (it holds one blocking stream).
 */
#ifndef ORPC_TOOLS_REFLECT_H
#define ORPC_TOOLS_REFLECT_H

#include <orpc/orpc.h>

#include "descpool.h"

typedef struct orpc__refl orpc__refl;

/* A client on |ch| (borrowed until orpc__refl_free()); the stream opens on
 * the first question and lasts at most |timeout_ms| (0: 10 s).  0 or -1
 * (no memory). */
int orpc__refl_new(orpc__refl **out, orpc_channel *ch, long timeout_ms);
/* Ends the stream and frees the client; NULL does nothing. */
void orpc__refl_free(orpc__refl *r);

/* Each of the functions below returns a gRPC status code: 0, the code the
 * server or the stream ended with, or INTERNAL / RESOURCE_EXHAUSTED for an
 * answer that does not parse or is too large; orpc__refl_error() then says
 * why. */

/* The names of the server's services: |*names| (|*n| of them) is one
 * allocation, freed with free(). */
int orpc__refl_list(orpc__refl *r, char ***names, size_t *n);
/* Adds the file declaring |symbol| (a service, a method, a type) and its
 * imports, transitively, to |pool|. */
int orpc__refl_fetch(orpc__refl *r, const char *symbol, orpc__dpool *pool);
/* Why the last function failed. */
const char *orpc__refl_error(const orpc__refl *r);

#endif
