/*
 * json_cross_driver.c — the C side of the JSON cross-check with
 * python3-protobuf (json_cross_test.sh, json_python_check.py).
 *
 *   json_cross_driver decode TYPE [OPTION...]  JSON on stdin -> protobuf
 *   json_cross_driver encode TYPE [OPTION...]  protobuf on stdin -> JSON
 *
 * TYPE is a full message name from json_types.proto, grpc.testing's
 * messages.proto or the OpsConductor notification and jobs protos; OPTION is
 * legacy, proto_names, emit_defaults or ignore_unknown.  Exit 0 on success,
 * 1 with the error on stderr, 2 on misuse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <orpc/compat/json.h>

#include "grpc/testing/messages.orpc.h"
#include "json_types.orpc.h"
#include "opsconductor/jobs/v1/jobs.orpc.h"
#include "opsconductor/notification/v1/notification.orpc.h"

static const orpc_message_info *find_type(const char *name)
{
    const orpc_file_desc *const files[] = {
        &json_types_proto__orpc_file,
        &grpc_testing_messages_proto__orpc_file,
        &opsconductor_jobs_v1_jobs_proto__orpc_file,
        &opsconductor_notification_v1_notification_proto__orpc_file,
    };
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        for (size_t i = 0; i < files[f]->n_messages; i++) {
            if (strcmp(files[f]->messages[i]->full_name, name) == 0) {
                return files[f]->messages[i];
            }
        }
    }
    return NULL;
}

static char *read_all(size_t *len)
{
    size_t cap = 4096;
    size_t n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n, stdin);
        if (n < cap) {
            break;
        }
        char *more = realloc(buf, cap * 2);
        if (more == NULL) {
            free(buf);
            buf = NULL;
        } else {
            buf = more;
            cap *= 2;
        }
    }
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 3 ||
        (strcmp(argv[1], "decode") != 0 && strcmp(argv[1], "encode") != 0)) {
        fprintf(stderr, "usage: %s decode|encode TYPE [OPTION...]\n", argv[0]);
        return 2;
    }
    const orpc_message_info *info = find_type(argv[2]);
    if (info == NULL) {
        fprintf(stderr, "unknown type %s\n", argv[2]);
        return 2;
    }
    orpc_json_opts opts = {0};
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "legacy") == 0) {
            opts.legacy = 1;
        } else if (strcmp(argv[i], "proto_names") == 0) {
            opts.proto_names = 1;
        } else if (strcmp(argv[i], "emit_defaults") == 0) {
            opts.emit_defaults = 1;
        } else if (strcmp(argv[i], "ignore_unknown") == 0) {
            opts.ignore_unknown = 1;
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    size_t len = 0;
    char *in = read_all(&len);
    if (in == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    int rc = 0;
    if (strcmp(argv[1], "decode") == 0) {
        ProtobufCMessage *msg = NULL;
        orpc_error_detail jd;
        int jrc = orpc_json_decode(&msg, info, in, len, &opts, NULL, &jd);
        if (jrc != 0) {
            fprintf(stderr, "decode: %s: %s\n", orpc_err_name(jrc), jd.message);
            rc = 1;
        } else {
            size_t n = protobuf_c_message_get_packed_size(msg);
            uint8_t *out = malloc(n + 1);
            if (out == NULL) {
                rc = 1;
            } else {
                protobuf_c_message_pack(msg, out);
                fwrite(out, 1, n, stdout);
                free(out);
            }
            protobuf_c_message_free_unpacked(msg, NULL);
        }
    } else {
        ProtobufCMessage *msg = protobuf_c_message_unpack(
            info->descriptor, NULL, len, (const uint8_t *)in);
        char *json = NULL;
        size_t jlen = 0;
        orpc_error_detail jd;
        if (msg == NULL) {
            fprintf(stderr, "encode: input is not a %s\n", argv[2]);
            rc = 1;
        } else if ((rc = orpc_json_encode(&json, &jlen, info, msg, &opts,
                                          &jd)) != 0) {
            fprintf(stderr, "encode: %s: %s\n", orpc_err_name(rc), jd.message);
            rc = 1;
        } else {
            fwrite(json, 1, jlen, stdout);
        }
        free(json);
        protobuf_c_message_free_unpacked(msg, NULL);
    }
    free(in);
    return rc;
}
