/*
 * orpc/opsconductor.h — everything a caller of the OpsConductor services
 * includes: the generated stubs and messages of the five services (auth,
 * jobs, notification, credentials, user) and the environment-configured
 * clients (orpc/clients.h).
 *
 *     #include <orpc/opsconductor.h>
 *
 *     orpc_client *jobs;
 *     orpc_error_detail why;
 *     orpc_client_new_from_env(
 *         &jobs, &opsconductor__jobs__v1__jobs_service__orpc_desc, &why);
 *
 * Thread-safety: see orpc/clients.h and the generated headers.
 */
#ifndef ORPC_OPSCONDUCTOR_H
#define ORPC_OPSCONDUCTOR_H

#include <orpc/clients.h>

#include <opsconductor/auth/v1/auth.orpc.h>
#include <opsconductor/credentials/v1/credentials.orpc.h>
#include <opsconductor/jobs/v1/jobs.orpc.h>
#include <opsconductor/notification/v1/notification.orpc.h>
#include <opsconductor/user/v1/user.orpc.h>

#endif /* ORPC_OPSCONDUCTOR_H */
