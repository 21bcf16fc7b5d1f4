/*
 * admin.h — internal: a server's admin listener (admin.c), plain HTTP/1.1
 * serving GET /metrics (a registry's Prometheus page) and GET /healthz
 * (the server's overall health), started by orpc_server_new() from
 * orpc_server_opts.admin_address.
 *
 * Threads: start and stop from the thread that owns the server (its
 * constructor and destructor); the port from any thread.  The listener
 * runs on a thread of its own.
 */
#ifndef ORPC_ADMIN_H
#define ORPC_ADMIN_H

#include <orpc/error.h>
#include <orpc/metrics.h>
#include <orpc/server.h>

typedef struct orpc__admin orpc__admin;

/*
 * Binds |address| ("host:port" as orpc_server_listen() takes it; port 0
 * picks one) and starts serving.  /metrics renders |metrics| (a
 * reference is taken; NULL: an empty page); /healthz reads |srv|'s health
 * (orpc__health_overall()), so |srv| must outlive the listener.
 * 0; ORPC_EINVAL (NULL |out| or |address|); ORPC_EADDR (an address that
 * does not parse or cannot be bound); ORPC_ESYS; ORPC_ENOMEM — the reason
 * in |detail| when given.
 */
int orpc__admin_start(orpc__admin **out, const char *address, orpc_server *srv,
                      orpc_metrics *metrics, orpc_error_detail *detail);

/* The bound port (0 for a NULL |a|). */
int orpc__admin_port(const orpc__admin *a);

/* Closes the listener and its connections, waits for its thread, frees
 * it.  NULL is a no-op. */
void orpc__admin_stop(orpc__admin *a);

/* health.c: the status of |service| in |srv|'s health table ("" is the
 * server's overall health); ORPC_HEALTH_SERVICE_UNKNOWN when it is not
 * there, the server has no health service, or the application replaced
 * it.  Any thread. */
orpc_health_status orpc__health_get(orpc_server *srv, const char *service);

#endif /* ORPC_ADMIN_H */
