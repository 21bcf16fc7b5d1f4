/*
 * method_test.c — lookups on the tables protoc-gen-orpc generates:
 * methods by bare name or full path (and the service magic check), fields by
 * number (binary search) and by JSON or proto name, enum values by number
 * (first declared wins among aliases) and by legacy spelling before proto
 * name, and call-kind names.  The tables are written by hand here in the
 * shape the generator emits, with protobuf-c descriptors beside them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <orpc/method.h>

/* ---- a message: fields sorted by number, as protobuf-c has them ---------- */

#define FD(nm, num)                                                            \
    {                                                                          \
        (nm), (num), PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_STRING, 0, 0,      \
            NULL, NULL, 0, 0, NULL, NULL                                       \
    }

static const ProtobufCFieldDescriptor job_fields[6] = {
    FD("job_id", 1), FD("display_name", 2), FD("run_at", 5),
    FD("x_y", 7),    FD("xY", 100),         FD("last", 536870911u),
};
static const unsigned job_by_name[6] = {2, 0, 5, 3, 4, 1};
static const ProtobufCIntRange job_ranges[1] = {{1, 0}};

static const ProtobufCMessageDescriptor job_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "pkg.Job",
    "Job",
    "Pkg__Job",
    "pkg",
    sizeof(ProtobufCMessage),
    6,
    job_fields,
    job_by_name,
    0,
    job_ranges,
    NULL,
    NULL,
    NULL,
    NULL,
};

static const orpc_legacy_header auth_header = {"Authorization", "Bearer "};

static const orpc_field_info job_field_info[6] = {
    {1, "jobId", NULL, NULL, &auth_header},
    {2, "displayName", NULL, NULL, NULL},
    {5, "runAt", NULL, NULL, NULL},
    {7, "xY", NULL, NULL, NULL},
    {100, "customJson", NULL, NULL, NULL},
    {536870911u, "last", NULL, NULL, NULL},
};

static const orpc_message_info job_info = {&job_desc, "pkg.Job", 6,
                                           job_field_info};

static const orpc_message_info empty_info = {NULL, "pkg.Empty", 0, NULL};

/* ---- services ------------------------------------------------------------ */

static const orpc_service_desc jobs_svc;
static const orpc_service_desc other_svc;

static const orpc_method_desc jobs_methods[3] = {
    {"GetJob", "/pkg.JobsService/GetJob", ORPC_CALL_UNARY, &job_info, &job_info,
     NULL, ORPC_NO_SIDE_EFFECTS, 0, &jobs_svc},
    {"ListJobs", "/pkg.JobsService/ListJobs", ORPC_CALL_SERVER_STREAMING,
     &empty_info, &job_info, NULL, ORPC_IDEMPOTENCY_UNKNOWN, 0, &jobs_svc},
    {"Watch", "/pkg.JobsService/Watch", ORPC_CALL_BIDI_STREAMING, &job_info,
     &job_info, NULL, ORPC_IDEMPOTENCY_UNKNOWN, 1, &jobs_svc},
};

static const orpc_service_desc jobs_svc = {
    ORPC_SERVICE_DESC_MAGIC,
    sizeof(orpc_method_desc),
    "JobsService",
    "pkg.JobsService",
    "pkg",
    3,
    jobs_methods,
    NULL,
    NULL,
    NULL,
};

static const orpc_method_desc other_methods[1] = {
    {"GetJob", "/pkg.Other/GetJob", ORPC_CALL_UNARY, &job_info, &job_info, NULL,
     ORPC_IDEMPOTENCY_UNKNOWN, 0, &other_svc},
};

static const orpc_service_desc other_svc = {
    ORPC_SERVICE_DESC_MAGIC,
    sizeof(orpc_method_desc),
    "Other",
    "pkg.Other",
    "pkg",
    1,
    other_methods,
    NULL,
    NULL,
    NULL,
};

/* A table from a later generator whose method element has grown: the
 * runtime steps by the table's own element size. */
typedef struct later_method {
    orpc_method_desc base;
    uint64_t added_later[3];
} later_method;
static const orpc_service_desc later_svc;
static const later_method later_methods[2] = {
    {{"A", "/pkg.Later/A", ORPC_CALL_UNARY, &job_info, &job_info, NULL,
      ORPC_IDEMPOTENCY_UNKNOWN, 0, &later_svc},
     {1, 2, 3}},
    {{"B", "/pkg.Later/B", ORPC_CALL_UNARY, &job_info, &job_info, NULL,
      ORPC_IDEMPOTENCY_UNKNOWN, 0, &later_svc},
     {4, 5, 6}},
};
static const orpc_service_desc later_svc = {
    ORPC_SERVICE_DESC_MAGIC,
    sizeof(later_method),
    "Later",
    "pkg.Later",
    "pkg",
    2,
    &later_methods[0].base,
    NULL,
    NULL,
    NULL,
};
/* ... and one whose elements are too small to hold what the runtime reads. */
static const orpc_service_desc short_svc = {
    ORPC_SERVICE_DESC_MAGIC,
    offsetof(orpc_method_desc, service),
    "Short",
    "pkg.Short",
    "pkg",
    2,
    &later_methods[0].base,
    NULL,
    NULL,
    NULL,
};

/* ---- an enum with an alias and legacy spellings -------------------------- */

static const orpc_enum_value_info kind_values[5] = {
    {0, "KIND_UNSPECIFIED", NULL}, /* no legacy spelling */
    {1, "KIND_EMAIL", "email"},    /* legacy spelling */
    {2, "KIND_SMS", "KIND_EMAIL"}, /* legacy name equal to another's name */
    {1, "KIND_MAIL", "mail"},      /* alias of 1 */
    {-5, "KIND_NEGATIVE", NULL},
};

static const orpc_enum_info kind_info = {NULL, "pkg.Kind", 5, kind_values};

/* ---- tests --------------------------------------------------------------- */

static void test_method_tables_of_other_sizes(void **state)
{
    (void)state;
    assert_ptr_equal(orpc_service_method(&jobs_svc, 2), &jobs_methods[2]);
    assert_null(orpc_service_method(&jobs_svc, 3));
    assert_ptr_equal(orpc_service_method(&later_svc, 0),
                     &later_methods[0].base);
    assert_ptr_equal(orpc_service_method(&later_svc, 1),
                     &later_methods[1].base);
    assert_ptr_equal(orpc_service_find_method(&later_svc, "B"),
                     &later_methods[1].base);
    assert_ptr_equal(orpc_service_find_method(&later_svc, "/pkg.Later/B"),
                     &later_methods[1].base);
    assert_null(orpc_service_method(&short_svc, 0));
    assert_null(orpc_service_find_method(&short_svc, "A"));
    assert_null(orpc_service_method(NULL, 0));
}

static void test_find_method_by_name_and_path(void **state)
{
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        const orpc_method_desc *m = &jobs_methods[i];
        assert_ptr_equal(orpc_service_find_method(&jobs_svc, m->name), m);
        assert_ptr_equal(orpc_service_find_method(&jobs_svc, m->path), m);
        assert_ptr_equal(m->service, &jobs_svc);
    }
    assert_ptr_equal(orpc_service_find_method(&other_svc, "GetJob"),
                     &other_methods[0]);
    assert_ptr_equal(orpc_service_find_method(&other_svc, "/pkg.Other/GetJob"),
                     &other_methods[0]);
}

static void test_find_method_misses(void **state)
{
    (void)state;
    static const char *const miss[] = {
        "",
        "getjob",
        "GetJob ",
        "Get",
        "GetJobs",
        "/GetJob",
        "pkg.JobsService/GetJob",
        "/pkg.JobsService/GetJob/",
        "/pkg.JobsService/getjob",
        "/pkg.Other/GetJob",
        "/pkg.JobsService/",
        "/",
        "JobsService",
    };
    for (size_t i = 0; i < sizeof(miss) / sizeof(miss[0]); i++) {
        if (orpc_service_find_method(&jobs_svc, miss[i]) != NULL) {
            fail_msg("\"%s\" should not be found", miss[i]);
        }
    }
    assert_null(orpc_service_find_method(NULL, "GetJob"));
    assert_null(orpc_service_find_method(&jobs_svc, NULL));
}

static void test_find_method_checks_magic(void **state)
{
    (void)state;
    orpc_service_desc bad = jobs_svc;
    bad.magic = 0x12345678u;
    assert_null(orpc_service_find_method(&bad, "GetJob"));
    /* Not a service at all: a message info reinterpreted. */
    uint32_t junk[16] = {0};
    assert_null(
        orpc_service_find_method((const orpc_service_desc *)(void *)junk, "x"));
    /* A service without methods, or with a NULL table. */
    orpc_service_desc none = jobs_svc;
    none.n_methods = 0;
    assert_null(orpc_service_find_method(&none, "GetJob"));
    none.n_methods = 3;
    none.methods = NULL;
    assert_null(orpc_service_find_method(&none, "GetJob"));
}

static void test_message_info_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < job_info.n_fields; i++) {
        const orpc_field_info *f =
            orpc_message_info_field(&job_info, job_field_info[i].number);
        assert_ptr_equal(f, &job_field_info[i]);
        /* Lines up with protobuf-c's descriptor. */
        assert_int_equal(f->number, job_desc.fields[i].id);
    }
    const uint32_t missing[] = {0,  3,   4,          6,          8,
                                99, 101, 536870910u, 536870912u, UINT32_MAX};
    for (size_t i = 0; i < sizeof(missing) / sizeof(missing[0]); i++) {
        assert_null(orpc_message_info_field(&job_info, missing[i]));
    }
    assert_ptr_equal(orpc_message_info_field(&job_info, 1)->legacy_header,
                     &auth_header);
    assert_null(orpc_message_info_field(NULL, 1));
    assert_null(orpc_message_info_field(&empty_info, 1));
    assert_null(orpc_message_info_field(&empty_info, 0));

    /* Every prefix of the table: the search has no off-by-one. */
    for (size_t n = 0; n <= 6; n++) {
        orpc_message_info part = job_info;
        part.n_fields = n;
        for (size_t i = 0; i < 6; i++) {
            const orpc_field_info *f =
                orpc_message_info_field(&part, job_field_info[i].number);
            if (i < n) {
                assert_ptr_equal(f, &job_field_info[i]);
            } else {
                assert_null(f);
            }
        }
    }
}

static void test_message_info_find(void **state)
{
    (void)state;
    /* JSON names and proto names lead to the same index. */
    assert_int_equal(orpc_message_info_find(&job_info, "jobId"), 0);
    assert_int_equal(orpc_message_info_find(&job_info, "job_id"), 0);
    assert_int_equal(orpc_message_info_find(&job_info, "displayName"), 1);
    assert_int_equal(orpc_message_info_find(&job_info, "display_name"), 1);
    assert_int_equal(orpc_message_info_find(&job_info, "runAt"), 2);
    assert_int_equal(orpc_message_info_find(&job_info, "run_at"), 2);
    assert_int_equal(orpc_message_info_find(&job_info, "customJson"), 4);
    assert_int_equal(orpc_message_info_find(&job_info, "last"), 5);
    /* A JSON name wins over another field's proto name. */
    assert_int_equal(orpc_message_info_find(&job_info, "xY"), 3);
    assert_int_equal(orpc_message_info_find(&job_info, "x_y"), 3);

    assert_int_equal(orpc_message_info_find(&job_info, "JobId"), -1);
    assert_int_equal(orpc_message_info_find(&job_info, "jobid"), -1);
    assert_int_equal(orpc_message_info_find(&job_info, ""), -1);
    assert_int_equal(orpc_message_info_find(&job_info, "1"), -1);
    assert_int_equal(orpc_message_info_find(&job_info, NULL), -1);
    assert_int_equal(orpc_message_info_find(NULL, "jobId"), -1);
    assert_int_equal(orpc_message_info_find(&empty_info, "jobId"), -1);

    /* Without a protobuf-c descriptor only JSON names are known. */
    orpc_message_info bare = job_info;
    bare.descriptor = NULL;
    assert_int_equal(orpc_message_info_find(&bare, "jobId"), 0);
    assert_int_equal(orpc_message_info_find(&bare, "job_id"), -1);
}

static void test_enum_info_value(void **state)
{
    (void)state;
    assert_ptr_equal(orpc_enum_info_value(&kind_info, 0), &kind_values[0]);
    /* Aliased: the first declared. */
    assert_ptr_equal(orpc_enum_info_value(&kind_info, 1), &kind_values[1]);
    assert_ptr_equal(orpc_enum_info_value(&kind_info, 2), &kind_values[2]);
    assert_ptr_equal(orpc_enum_info_value(&kind_info, -5), &kind_values[4]);
    assert_null(orpc_enum_info_value(&kind_info, 3));
    assert_null(orpc_enum_info_value(&kind_info, -1));
    assert_null(orpc_enum_info_value(&kind_info, INT32_MAX));
    assert_null(orpc_enum_info_value(&kind_info, INT32_MIN));
    assert_null(orpc_enum_info_value(NULL, 0));
}

static void test_enum_info_find(void **state)
{
    (void)state;
    assert_ptr_equal(orpc_enum_info_find(&kind_info, "email"), &kind_values[1]);
    assert_ptr_equal(orpc_enum_info_find(&kind_info, "mail"), &kind_values[3]);
    /* A legacy spelling beats a proto name, wherever it is declared. */
    assert_ptr_equal(orpc_enum_info_find(&kind_info, "KIND_EMAIL"),
                     &kind_values[2]);
    /* Proto names otherwise, aliases included. */
    assert_ptr_equal(orpc_enum_info_find(&kind_info, "KIND_SMS"),
                     &kind_values[2]);
    assert_ptr_equal(orpc_enum_info_find(&kind_info, "KIND_MAIL"),
                     &kind_values[3]);
    assert_ptr_equal(orpc_enum_info_find(&kind_info, "KIND_UNSPECIFIED"),
                     &kind_values[0]);
    assert_null(orpc_enum_info_find(&kind_info, "EMAIL"));
    assert_null(orpc_enum_info_find(&kind_info, "kind_sms"));
    assert_null(orpc_enum_info_find(&kind_info, ""));
    assert_null(orpc_enum_info_find(&kind_info, "1"));
    assert_null(orpc_enum_info_find(&kind_info, NULL));
    assert_null(orpc_enum_info_find(NULL, "email"));
    orpc_enum_info none = kind_info;
    none.n_values = 0;
    assert_null(orpc_enum_info_find(&none, "email"));
    assert_null(orpc_enum_info_value(&none, 0));
}

static void test_call_kind_name(void **state)
{
    (void)state;
    assert_string_equal(orpc_call_kind_name(ORPC_CALL_UNARY), "unary");
    assert_string_equal(orpc_call_kind_name(ORPC_CALL_SERVER_STREAMING),
                        "server_streaming");
    assert_string_equal(orpc_call_kind_name(ORPC_CALL_CLIENT_STREAMING),
                        "client_streaming");
    assert_string_equal(orpc_call_kind_name(ORPC_CALL_BIDI_STREAMING),
                        "bidi_streaming");
    assert_string_equal(orpc_call_kind_name((orpc_call_kind)4), "unknown");
    assert_string_equal(orpc_call_kind_name((orpc_call_kind)-1), "unknown");
    assert_string_equal(orpc_call_kind_name(jobs_methods[1].kind),
                        "server_streaming");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_method_by_name_and_path),
        cmocka_unit_test(test_method_tables_of_other_sizes),
        cmocka_unit_test(test_find_method_misses),
        cmocka_unit_test(test_find_method_checks_magic),
        cmocka_unit_test(test_message_info_field),
        cmocka_unit_test(test_message_info_find),
        cmocka_unit_test(test_enum_info_value),
        cmocka_unit_test(test_enum_info_find),
        cmocka_unit_test(test_call_kind_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
