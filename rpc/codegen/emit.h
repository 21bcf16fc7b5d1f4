/*
 * emit.h — the emitters of protoc-gen-orpc (internal).
 *
 * One emitter per construct, each writing its declarations into the header
 * and its definitions into the source of one proto file:
 *   emit_tables.c  message, enum, method and service tables (orpc/method.h)
 *   emit_client.c  typed client stubs for the four call kinds
 *   emit_server.c  handler structs, dispatch trampolines, registration
 *   emit_file.c    the two files around them: banner, guards, includes
 * Emitters cannot fail (planning has checked everything); an allocation
 * failure is caught once, by the buffer.
 */
#ifndef ORPC_CG_EMIT_H
#define ORPC_CG_EMIT_H

#include "buf.h"
#include "plan.h"

void cg_emit_tables_decl(const cg_plan *plan, cg_buf *h);
void cg_emit_tables_def(const cg_plan *plan, cg_buf *c);
void cg_emit_client_decl(const cg_plan *plan, const cg_service_plan *sp,
                         cg_buf *h);
void cg_emit_client_def(const cg_plan *plan, const cg_service_plan *sp,
                        cg_buf *c);
void cg_emit_server_decl(const cg_plan *plan, const cg_service_plan *sp,
                         cg_buf *h);
void cg_emit_server_def(const cg_plan *plan, const cg_service_plan *sp,
                        cg_buf *c);

/* The whole header / source of |plan|'s file. */
void cg_emit_header(const cg_plan *plan, cg_buf *h);
void cg_emit_source(const cg_plan *plan, cg_buf *c);

/* Method |mi| of |sp| as an expression: &<svc>__orpc_methods[mi]. */
void cg_emit_method_ref(cg_buf *b, const cg_service_plan *sp, size_t mi);

#endif
