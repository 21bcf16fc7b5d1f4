/*
 * data.h — the OpsConductor data both generations serve: the same
 * deterministic objects per id as the legacy services (tests/legacy/
 * legacy_server.py: job_obj, job_status_obj, credential_obj, user_obj,
 * preferences_obj), key for key and in the same order, so that a shadow
 * comparison of the two sides finds nothing to report.
 *
 * Each function returns a new jansson object (the caller's, json_decref)
 * or NULL when out of memory; ids out of range are the caller's to refuse.
 * Threads: any.
 */
#ifndef OPSC_DATA_H
#define OPSC_DATA_H

#include <stdint.h>

#include <jansson.h>

enum {
    DATA_N_JOBS = 100,
    DATA_N_CREDENTIALS = 20,
    DATA_N_TARGETS = 5,
    DATA_N_USERS = 50,
    DATA_N_TEMPLATES = 10
};

/** job_obj(jid): the seed of the jobs table. */
json_t *data_job(int64_t jid);
/** credential_obj(cid). */
json_t *data_credential(int64_t cid);
/** {"credentials": [...]} of target |tid| (h_target_credentials). */
json_t *data_target_credentials(int64_t tid);
/** user_obj(uid). */
json_t *data_user(int64_t uid);
/** preferences_obj(uid). */
json_t *data_preferences(int64_t uid);

#endif /* OPSC_DATA_H */
