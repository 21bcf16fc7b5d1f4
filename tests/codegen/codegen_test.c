/*
 * codegen_test.c — protoc-gen-orpc, end to end through protoc.
 *
 * What it tests, and why:
 *   - golden: the plugin's output for tests/codegen/protos/golden/ is
 *     byte-identical to the reviewed files in tests/codegen/golden/ (run with
 *     protoc-c beside it, as every build does).  Any change to the generated
 *     code must show up as a golden diff someone read
 *     (tests/codegen/update-golden.sh regenerates them).
 *   - determinism: two runs give identical bytes, and so does generating each
 *     proto on its own: output depends on the input, never on the run or on
 *     which other files protoc sent.
 *   - bad input: each proto under tests/codegen/protos/bad/ has one mistake;
 *     protoc must fail with "file:line:column: reason" pointing at the option
 *     or declaration at fault, reported through the plugin protocol (not a
 *     crash, not a sanitizer report), and write no output.
 *   - the plugin run by hand with garbage on stdin exits non-zero with a
 *     message that says what to do, and answers an empty or odd request
 *     properly.
 *
 * Everything runs in fresh directories from mkdtemp() under /tmp, removed
 * afterwards.  Children are started with posix_spawn() with stdin, stdout
 * and stderr redirected to files, and killed after PROC_TIMEOUT_S.
 *
 * usage: codegen_test --protoc=PATH --protoc-gen-c=PATH --plugin=PATH
 *                     --protos=DIR --golden=DIR [--import=DIR]...
 * (tests/codegen/CMakeLists.txt passes all of them.)
 */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>

#include <cmocka.h>

extern char **environ;

/* Longest a protoc or plugin run may take (they take well under a second;
 * sanitizer builds are slower). */
#define PROC_TIMEOUT_S 60

#define MAX_IMPORTS 16
#define MAX_FILES 256

/* ---- configuration, from argv ------------------------------------------ */

static struct {
    const char *protoc;
    const char *protoc_gen_c;
    const char *plugin;
    const char *protos; /* tests/codegen/protos */
    const char *golden; /* tests/codegen/golden */
    const char *imports[MAX_IMPORTS];
    size_t n_imports;
} cfg;

/* ---- small helpers ------------------------------------------------------ */

static char *xasprintf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* The whole file, NUL-terminated (|*len| excludes the NUL); NULL if it
 * cannot be read. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Temporary directories not yet removed: a failing assertion leaves the
 * test by longjmp(), so each test's teardown removes what is left here. */
#define MAX_TMPDIRS 16
static char *live_tmpdirs[MAX_TMPDIRS];

static char *make_tmpdir(void)
{
    char *t = xasprintf("/tmp/orpc-codegen-XXXXXX");
    if (mkdtemp(t) == NULL) {
        print_error("mkdtemp: %s\n", strerror(errno));
        free(t);
        fail();
    }
    for (size_t i = 0; i < MAX_TMPDIRS; i++) {
        if (live_tmpdirs[i] == NULL) {
            live_tmpdirs[i] = t;
            return t;
        }
    }
    print_error("more than %d temporary directories at once\n", MAX_TMPDIRS);
    fail();
    return NULL;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "codegen_test: cannot remove %s: %s\n", path,
                strerror(errno));
    return 0;
}

/* Removes |dir| and everything in it, and frees the string. */
static void rm_tmpdir(char *dir)
{
    if (dir == NULL)
        return;
    for (size_t i = 0; i < MAX_TMPDIRS; i++)
        if (live_tmpdirs[i] == dir)
            live_tmpdirs[i] = NULL;
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* Teardown of every test: removes the directories a failure left. */
static int remove_tmpdirs(void **state)
{
    (void)state;
    for (size_t i = 0; i < MAX_TMPDIRS; i++)
        rm_tmpdir(live_tmpdirs[i]);
    return 0;
}

/* ---- file lists ---------------------------------------------------------- */

typedef struct file_list {
    char *names[MAX_FILES]; /* relative to the walked root, sorted */
    size_t n;
} file_list;

/* nftw() has no user pointer: the walk in progress. */
static file_list *walk_list;
static size_t walk_root_len;
static const char *const *walk_suffixes;

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int list_entry(const char *path, const struct stat *sb, int flag,
                      struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag != FTW_F)
        return 0;
    for (const char *const *s = walk_suffixes; *s != NULL; s++) {
        if (has_suffix(path, *s)) {
            if (walk_list->n == MAX_FILES)
                return 1;
            walk_list->names[walk_list->n++] =
                xasprintf("%s", path + walk_root_len + 1);
            return 0;
        }
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Files under |root| whose names end in one of |suffixes| (NULL-ended). */
static void list_files(const char *root, const char *const *suffixes,
                       file_list *out)
{
    memset(out, 0, sizeof(*out));
    walk_list = out;
    walk_root_len = strlen(root);
    walk_suffixes = suffixes;
    int rc = nftw(root, list_entry, 16, FTW_PHYS);
    walk_list = NULL;
    if (rc != 0) {
        print_error("cannot list %s (%s)\n", root,
                    rc > 0 ? "too many files" : strerror(errno));
        fail();
    }
    qsort(out->names, out->n, sizeof(out->names[0]), cmp_str);
}

static void free_list(file_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->names[i]);
    l->n = 0;
}

static const char *const orpc_suffixes[] = {".orpc.h", ".orpc.c", NULL};
static const char *const proto_suffixes[] = {".proto", NULL};

/* ---- running programs ------------------------------------------------------
 */

typedef struct run_result {
    int exited; /* nonzero: exited normally with |code| */
    int code;
    int signal; /* the signal that ended it, or 0 */
    int timed_out;
    char *out; /* stdout, NUL-terminated */
    size_t out_len;
    char *err; /* stderr, NUL-terminated */
} run_result;

static void free_result(run_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof(*r));
}

/*
 * Runs argv[0] (a path) with stdin from |stdin_path| (NULL: /dev/null) and
 * stdout and stderr captured in files of |scratch|.  Kills it after
 * PROC_TIMEOUT_S.
 */
static void run(char *const argv[], const char *stdin_path, const char *scratch,
                run_result *r)
{
    char *out_path = xasprintf("%s/.stdout", scratch);
    char *err_path = xasprintf("%s/.stderr", scratch);
    posix_spawn_file_actions_t fa;
    pid_t pid;

    memset(r, 0, sizeof(*r));
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(
        posix_spawn_file_actions_addopen(
            &fa, 0, stdin_path ? stdin_path : "/dev/null", O_RDONLY, 0),
        0);
    assert_int_equal(posix_spawn_file_actions_addopen(
                         &fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600),
                     0);
    assert_int_equal(posix_spawn_file_actions_addopen(
                         &fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600),
                     0);
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        print_error("cannot run %s: %s\n", argv[0], strerror(rc));
        fail();
    }

    struct timespec tick = {0, 5 * 1000 * 1000};
    long waited_ms = 0;
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            print_error("waitpid: %s\n", strerror(errno));
            fail();
        }
        if (waited_ms >= PROC_TIMEOUT_S * 1000L) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            r->timed_out = 1;
            break;
        }
        nanosleep(&tick, NULL);
        waited_ms += 5;
    }
    if (WIFEXITED(status)) {
        r->exited = 1;
        r->code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        r->signal = WTERMSIG(status);
    }
    r->out = read_file(out_path, &r->out_len);
    r->err = read_file(err_path, NULL);
    assert_non_null(r->out);
    assert_non_null(r->err);
    unlink(out_path);
    unlink(err_path);
    free(out_path);
    free(err_path);
    if (r->timed_out) {
        print_error("%s ran longer than %d s and was killed\n", argv[0],
                    PROC_TIMEOUT_S);
        fail();
    }
}

/* Signs that the plugin died instead of answering through the protocol. */
static void assert_no_crash(const run_result *r)
{
    static const char *const marks[] = {"Sanitizer",          "runtime error",
                                        "Plugin killed",      "Plugin failed",
                                        "Segmentation fault", "core dumped"};
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
        if (strstr(r->err, marks[i]) != NULL) {
            print_error("the plugin crashed (\"%s\"); stderr:\n%s\n", marks[i],
                        r->err);
            fail();
        }
    }
}

/*
 * Runs protoc on |protos| (relative to |root|) with the plugin, into
 * |out_dir|; also protoc-c when |with_c|.
 */
static void run_protoc(const char *root, char *const *protos, size_t n,
                       const char *out_dir, int with_c, run_result *r)
{
    char *argv[MAX_IMPORTS + MAX_FILES + 16];
    char *owned[MAX_IMPORTS + 8];
    size_t a = 0, o = 0;

    assert_true(n <= MAX_FILES);
    argv[a++] = (char *)cfg.protoc;
    argv[a++] = owned[o++] = xasprintf("-I%s", root);
    for (size_t i = 0; i < cfg.n_imports; i++)
        argv[a++] = owned[o++] = xasprintf("-I%s", cfg.imports[i]);
    argv[a++] = owned[o++] =
        xasprintf("--plugin=protoc-gen-orpc=%s", cfg.plugin);
    if (with_c) {
        argv[a++] = owned[o++] =
            xasprintf("--plugin=protoc-gen-c=%s", cfg.protoc_gen_c);
        argv[a++] = owned[o++] = xasprintf("--c_out=%s", out_dir);
    }
    argv[a++] = owned[o++] = xasprintf("--orpc_out=%s", out_dir);
    for (size_t i = 0; i < n; i++)
        argv[a++] = protos[i];
    argv[a] = NULL;
    run(argv, NULL, out_dir, r);
    for (size_t i = 0; i < o; i++)
        free(owned[i]);
}

static char *golden_protos_dir(void)
{
    return xasprintf("%s/golden", cfg.protos);
}

/* Generates every golden proto in one protoc run; returns the directory. */
static char *generate_golden(int with_c)
{
    char *root = golden_protos_dir();
    char *out = make_tmpdir();
    file_list protos;
    run_result r;

    list_files(root, proto_suffixes, &protos);
    assert_true(protos.n >= 2);
    run_protoc(root, protos.names, protos.n, out, with_c, &r);
    if (!r.exited || r.code != 0) {
        print_error(
            "protoc failed on the golden protos (exit %d, signal %d):\n%s\n",
            r.code, r.signal, r.err);
        fail();
    }
    assert_no_crash(&r);
    free_result(&r);
    free_list(&protos);
    free(root);
    return out;
}

/* ---- comparing files ------------------------------------------------------
 */

/* Prints line |line| (1-based) of |text| as "<label>: <line>". */
static void print_line(const char *label, const char *text, size_t len,
                       size_t line)
{
    size_t i = 0, l = 1;
    while (i < len && l < line) {
        if (text[i] == '\n')
            l++;
        i++;
    }
    size_t end = i;
    while (end < len && text[end] != '\n')
        end++;
    if (i >= len)
        print_error("  %-14s| <end of file>\n", label);
    else
        print_error("  %-14s| %.*s\n", label, (int)(end - i), text + i);
}

/*
 * 1 if files |a| and |b| have the same bytes; else prints, under |what|,
 * the first line that differs and returns 0.
 */
static int same_file(const char *what, const char *a_label, const char *a,
                     const char *b_label, const char *b)
{
    size_t na = 0, nb = 0;
    char *da = read_file(a, &na), *db = read_file(b, &nb);
    int same = 0;
    if (da == NULL || db == NULL) {
        print_error("%s: cannot read %s\n", what, da == NULL ? a : b);
    } else if (na == nb && memcmp(da, db, na) == 0) {
        same = 1;
    } else {
        size_t i = 0, line = 1;
        while (i < na && i < nb && da[i] == db[i]) {
            if (da[i] == '\n')
                line++;
            i++;
        }
        print_error("%s differs, first at line %zu:\n", what, line);
        print_line(a_label, da, na, line);
        print_line(b_label, db, nb, line);
    }
    free(da);
    free(db);
    return same;
}

/*
 * Every .orpc.h/.orpc.c under |expected_dir| is in |actual_dir| with the
 * same bytes, and |actual_dir| has no others.  Fails the test otherwise,
 * after reporting every difference.
 */
static void compare_trees(const char *expected_dir, const char *expected_label,
                          const char *actual_dir, const char *actual_label)
{
    file_list want, got;
    int ok = 1;

    list_files(expected_dir, orpc_suffixes, &want);
    list_files(actual_dir, orpc_suffixes, &got);
    if (want.n == 0) {
        print_error("no generated files in %s\n", expected_dir);
        ok = 0;
    }
    for (size_t i = 0; i < want.n; i++) {
        char *e = xasprintf("%s/%s", expected_dir, want.names[i]);
        char *g = xasprintf("%s/%s", actual_dir, want.names[i]);
        if (access(g, F_OK) != 0) {
            print_error("%s: not generated\n", want.names[i]);
            ok = 0;
        } else if (!same_file(want.names[i], expected_label, e, actual_label,
                              g)) {
            ok = 0;
        }
        free(e);
        free(g);
    }
    for (size_t i = 0; i < got.n; i++) {
        if (bsearch(&got.names[i], want.names, want.n, sizeof(want.names[0]),
                    cmp_str) == NULL) {
            print_error("%s: generated but not expected\n", got.names[i]);
            ok = 0;
        }
    }
    free_list(&want);
    free_list(&got);
    if (!ok) {
        print_error(
            "(if the change is intended, run tests/codegen/update-golden.sh "
            "and review the diff)\n");
        fail();
    }
}

/* ---- golden tests -----------------------------------------------------------
 */

/* The plugin's output for the golden protos is the golden files. */
static void test_golden_matches(void **state)
{
    (void)state;
    char *out = generate_golden(1);
    /* protoc-c ran too: its output must be there (the plugin does not
     * replace it). */
    char *pbc = xasprintf("%s/calls/v1/calls.pb-c.h", out);
    assert_int_equal(access(pbc, F_OK), 0);
    free(pbc);
    compare_trees(cfg.golden, "golden", out, "plugin");
    rm_tmpdir(out);
}

/* Two runs give the same bytes. */
static void test_golden_deterministic(void **state)
{
    (void)state;
    char *first = generate_golden(1);
    char *second = generate_golden(1);
    compare_trees(first, "run 1", second, "run 2");
    rm_tmpdir(first);
    rm_tmpdir(second);
}

/* Each proto generated on its own gives the same bytes as all together:
 * the output depends only on the file and what it imports. */
static void test_golden_one_at_a_time(void **state)
{
    (void)state;
    char *root = golden_protos_dir();
    char *out = make_tmpdir();
    file_list protos;

    list_files(root, proto_suffixes, &protos);
    for (size_t i = 0; i < protos.n; i++) {
        run_result r;
        run_protoc(root, &protos.names[i], 1, out, 0, &r);
        if (!r.exited || r.code != 0) {
            print_error("protoc failed on %s alone:\n%s\n", protos.names[i],
                        r.err);
            fail();
        }
        assert_no_crash(&r);
        free_result(&r);
    }
    compare_trees(cfg.golden, "golden", out, "one at a time");
    free_list(&protos);
    free(root);
    rm_tmpdir(out);
}

/* ---- bad input --------------------------------------------------------------
 */

typedef struct bad_case {
    const char *proto; /* under protos/bad/ */
    int line, column;  /* where protoc must point */
    const char *reason;
} bad_case;

/* Line and column are those of the option (or declaration) at fault: for
 * google.api.http the `option` keyword, for field and enum value options
 * the '(' that opens the option's name, for orpc.service the `option`. */
static const bad_case bad_cases[] = {
    /* path variables */
    {"http_var_missing_field.proto", 10, 5,
     "method Get: path variable 'thing_id' names no field of bad.Req "
     "('thing_id' not found)"},
    {"http_var_repeated_field.proto", 11, 5,
     "method Get: path variable 'ids' names a repeated field"},
    {"http_var_twice.proto", 10, 5,
     "method Get: path template '/v1/{id}/things/{id}' does not parse: "
     "variable 'id' appears twice (at byte 16)"},
    {"http_var_message_field.proto", 12, 5,
     "method Get: path variable 'inner' names a message field"},
    {"http_var_through_scalar.proto", 11, 5,
     "method Get: path variable 'id.part': 'id' is not a message"},
    {"http_nested_var_missing.proto", 12, 5,
     "method Get: path variable 'shelf.id' names no field of bad.Shelf "
     "('id' not found)"},
    /* bodies */
    {"http_body_missing_field.proto", 10, 5,
     "method Create: body 'thing' names no field of bad.Req"},
    {"http_body_repeated_field.proto", 11, 5,
     "method Create: body 'items' names a repeated field"},
    {"http_get_with_body.proto", 10, 5,
     "method Get: a GET rule cannot have a body"},
    {"http_response_body_missing.proto", 11, 5,
     "method Get: response_body 'things' names no field of bad.Resp"},
    /* route conflicts */
    {"http_route_conflict.proto", 13, 5,
     "method Fetch: GET /v1/things/{id} is also the route of bad.Svc.Get"},
    {"http_route_conflict_renamed.proto", 14, 5,
     "method GetJob: GET /v1/jobs/{job_id} is also the route of bad.Svc.Get"},
    {"http_route_conflict_services.proto", 17, 5,
     "method Read: GET /v1/things/{id} is also the route of bad.First.Get"},
    /* templates that do not parse */
    {"tmpl_no_leading_slash.proto", 10, 5,
     "path template 'v1/things' does not parse: template must start with "
     "'/' (at byte 0)"},
    {"tmpl_unterminated_var.proto", 10, 5,
     "path template '/v1/things/{id' does not parse: unterminated variable "
     "(at byte 14)"},
    /* No byte offset asserted: the parser reports 0 for this one. */
    {"tmpl_dstar_not_last.proto", 10, 5,
     "path template '/v1/{path=**}/meta' does not parse: '**' must be the "
     "last segment"},
    {"tmpl_empty_segment.proto", 10, 5,
     "path template '/v1//things' does not parse: empty segment (at byte 4)"},
    {"tmpl_bad_char.proto", 10, 5,
     "path template '/v1/things?all=1' does not parse: unexpected '?' "
     "(at byte 10)"},
    {"tmpl_nested_var.proto", 10, 5,
     "path template '/v1/{a=x/{b}}' does not parse: variables cannot nest "
     "(at byte 9)"},
    {"tmpl_empty_verb.proto", 10, 5,
     "path template '/v1/things/{id}:' does not parse: empty verb after ':' "
     "(at byte 16)"},
    /* rules orpc does not take */
    {"http_client_streaming.proto", 11, 5,
     "method Upload: google.api.http is not supported on client- or "
     "bidi-streaming methods"},
    {"http_bidi_streaming.proto", 10, 5,
     "method Chat: google.api.http is not supported on client- or "
     "bidi-streaming methods"},
    {"http_custom_empty_kind.proto", 10, 5,
     "method Get: custom pattern has an empty kind"},
    {"http_custom_bad_kind.proto", 10, 5,
     "method Get: custom pattern kind is not an HTTP method token: GET POST"},
    {"http_nested_bindings.proto", 11, 5,
     "method Get: additional_bindings may not nest"},
    {"http_selector.proto", 11, 5,
     "method Get: google.api.http 'selector' belongs in service configuration"},
    {"http_no_pattern.proto", 10, 5,
     "method Get: google.api.http rule sets no pattern"},
    /* orpc options */
    {"legacy_header_not_string.proto", 8, 22,
     "field version: orpc.legacy_header needs a singular string field"},
    {"legacy_header_repeated.proto", 10, 33,
     "field tokens: orpc.legacy_header needs a singular string field"},
    {"legacy_header_bad_name.proto", 7, 21,
     "field token: orpc.legacy_header name 'X Token' is not a usable HTTP "
     "header name"},
    {"legacy_header_reserved_name.proto", 7, 21,
     "field token: orpc.legacy_header name 'Content-Length' is not a usable "
     "HTTP header name"},
    {"legacy_header_bad_prefix.proto", 8, 21,
     "field token: orpc.legacy_header prefix must be printable ASCII"},
    {"legacy_name_duplicate.proto", 9, 21,
     "enum value CHANNEL_MAIL: orpc.legacy_name 'email' is already the legacy "
     "name of CHANNEL_EMAIL"},
    {"legacy_name_duplicate_nested.proto", 10, 17,
     "enum value KIND_B: orpc.legacy_name 'a' is already the legacy name of "
     "KIND_A"},
    {"legacy_name_empty.proto", 8, 22,
     "enum value CHANNEL_EMAIL: orpc.legacy_name must be 1 to 256 printable "
     "ASCII bytes"},
    {"service_bad_url_env.proto", 10, 3,
     "service Svc: orpc.service legacy_url_env 'jobs-url' is not an "
     "environment variable name"},
    {"service_bad_default_url.proto", 9, 3,
     "service Svc: orpc.service legacy_default_url 'ftp://x' is not an "
     "http:// or https:// URL"},
};

#define N_BAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

static void test_bad_input(void **state)
{
    const bad_case *bc = *state;
    char *root = xasprintf("%s/bad", cfg.protos);
    char *out = make_tmpdir();
    char *proto = (char *)bc->proto;
    run_result r;

    run_protoc(root, &proto, 1, out, 0, &r);
    if (!r.exited || r.code == 0) {
        print_error("protoc on %s: expected a failure, got exit %d signal %d\n"
                    "stderr:\n%s\n",
                    bc->proto, r.code, r.signal, r.err);
        fail();
    }
    assert_no_crash(&r);

    /* "--orpc_out: <file>:<line>:<column>: <reason>" */
    char *where = xasprintf("%s:%d:%d: ", bc->proto, bc->line, bc->column);
    const char *at = strstr(r.err, where);
    if (at == NULL) {
        const char *file = strstr(r.err, bc->proto);
        print_error("%s: expected an error at \"%s\"%s; stderr:\n%s\n",
                    bc->proto, where,
                    file ? " (the file is named, the position differs)"
                         : " (the file is not named)",
                    r.err);
        fail();
    }
    const char *reason = at + strlen(where);
    const char *eol = strchr(reason, '\n');
    size_t reason_len = eol ? (size_t)(eol - reason) : strlen(reason);
    char *got = xasprintf("%.*s", (int)reason_len, reason);
    if (strstr(got, bc->reason) == NULL) {
        print_error("%s: expected the reason \"%s\"\n  got \"%s\"\n", bc->proto,
                    bc->reason, got);
        fail();
    }

    /* Nothing written: protoc writes no output of a failed plugin. */
    file_list written;
    list_files(out, orpc_suffixes, &written);
    assert_int_equal(written.n, 0);

    free(got);
    free(where);
    free_result(&r);
    free(root);
    rm_tmpdir(out);
}

/* Every proto under protos/bad/ has a case above, and every case a proto. */
static void test_bad_cases_complete(void **state)
{
    (void)state;
    char *root = xasprintf("%s/bad", cfg.protos);
    file_list protos;
    int ok = 1;

    list_files(root, proto_suffixes, &protos);
    for (size_t i = 0; i < protos.n; i++) {
        size_t j = 0;
        while (j < N_BAD && strcmp(bad_cases[j].proto, protos.names[i]) != 0)
            j++;
        if (j == N_BAD) {
            print_error("protos/bad/%s has no case in codegen_test.c\n",
                        protos.names[i]);
            ok = 0;
        }
    }
    if (protos.n != N_BAD) {
        print_error("%zu bad protos, %zu cases\n", protos.n, (size_t)N_BAD);
        ok = 0;
    }
    free_list(&protos);
    free(root);
    assert_true(ok);
}

/* ---- the plugin by hand
 * ------------------------------------------------------ */

/* Runs the plugin with |input| on stdin. */
static void run_plugin(const void *input, size_t len, run_result *r)
{
    char *dir = make_tmpdir();
    char *in = xasprintf("%s/request", dir);
    char *argv[] = {(char *)cfg.plugin, NULL};
    write_file(in, input, len);
    run(argv, in, dir, r);
    unlink(in);
    free(in);
    rm_tmpdir(dir);
}

/* Garbage on stdin: a non-zero exit, a message saying what is wrong
 * ("protoc-gen-orpc: ... not a CodeGeneratorRequest (run me through
 * protoc)"), nothing on stdout, no crash. */
static void test_plugin_garbage(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        const char *data;
        size_t len;
    } inputs[] = {
        {"text", "hello, I am not a protobuf message\n", 35},
        {"wire type 7", "\x0f\x00\x00\x00", 4},
        {"truncated length-delimited field",
         "\x0a\x7f"
         "abc",
         5},
        {"varint longer than 10 bytes",
         "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 13},
        {"length past the end of the input",
         "\x0a\x05"
         "ab",
         4},
        {"proto_file (15) that is not a FileDescriptorProto",
         "\x7a\x03\xff\xff\xff", 5},
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]) + 1; i++) {
        run_result r;
        char noise[4096];
        const char *what = "pseudo-random bytes";
        if (i < sizeof(inputs) / sizeof(inputs[0])) {
            what = inputs[i].what;
            run_plugin(inputs[i].data, inputs[i].len, &r);
        } else {
            /* A fixed sequence (xorshift), so a failure reproduces. */
            uint32_t x = 2463534242u;
            for (size_t k = 0; k < sizeof(noise); k++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                noise[k] = (char)(x & 0xff);
            }
            run_plugin(noise, sizeof(noise), &r);
        }
        if (!r.exited || r.code == 0 ||
            strstr(r.err, "protoc-gen-orpc:") == NULL ||
            strstr(r.err, "not a CodeGeneratorRequest") == NULL ||
            r.out_len != 0) {
            print_error("garbage (%s): expected a non-zero exit with a message "
                        "and no output; got exit %d signal %d, %zu bytes out, "
                        "stderr:\n%s\n",
                        what, r.code, r.signal, r.out_len, r.err);
            fail();
        }
        assert_no_crash(&r);
        free_result(&r);
    }
}

/* An empty request is a valid one asking for nothing: exit 0 and a response
 * with no files and no error (only supported_features = 1, field 2). */
static void test_plugin_empty_request(void **state)
{
    (void)state;
    run_result r;
    run_plugin("", 0, &r);
    assert_true(r.exited);
    assert_int_equal(r.code, 0);
    assert_no_crash(&r);
    assert_int_equal(r.out_len, 2);
    assert_memory_equal(r.out, "\x10\x01", 2);
    free_result(&r);
}

/* A request naming a file it does not carry: the error goes back in the
 * response (field 1), the plugin exits 0 as the protocol asks. */
static void test_plugin_unknown_file(void **state)
{
    (void)state;
    static const char req[] = "\x0a\x0a"
                              "nope.proto";
    static const char want[] = "nope.proto: not among the files protoc sent";
    run_result r;
    run_plugin(req, sizeof(req) - 1, &r);
    assert_true(r.exited);
    assert_int_equal(r.code, 0);
    assert_no_crash(&r);
    /* CodeGeneratorResponse.error = 1: tag 0x0a, length, text. */
    assert_true(r.out_len >= 2 + sizeof(want) - 1);
    assert_int_equal((unsigned char)r.out[0], 0x0a);
    assert_int_equal((unsigned char)r.out[1], sizeof(want) - 1);
    assert_memory_equal(r.out + 2, want, sizeof(want) - 1);
    free_result(&r);
}

/* ---- main
 * ----------------------------------------------------------------------- */

static const char *opt_value(const char *arg, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) == 0 && arg[n] == '=')
        return arg + n + 1;
    return NULL;
}

static int usage(const char *why)
{
    fprintf(stderr,
            "codegen_test: %s\n"
            "usage: codegen_test --protoc=PATH --protoc-gen-c=PATH "
            "--plugin=PATH\n"
            "                    --protos=DIR --golden=DIR [--import=DIR]...\n",
            why);
    return 2;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = opt_value(argv[i], "--protoc")) != NULL)
            cfg.protoc = v;
        else if ((v = opt_value(argv[i], "--protoc-gen-c")) != NULL)
            cfg.protoc_gen_c = v;
        else if ((v = opt_value(argv[i], "--plugin")) != NULL)
            cfg.plugin = v;
        else if ((v = opt_value(argv[i], "--protos")) != NULL)
            cfg.protos = v;
        else if ((v = opt_value(argv[i], "--golden")) != NULL)
            cfg.golden = v;
        else if ((v = opt_value(argv[i], "--import")) != NULL) {
            if (cfg.n_imports == MAX_IMPORTS)
                return usage("too many --import");
            cfg.imports[cfg.n_imports++] = v;
        } else
            return usage(argv[i]);
    }
    if (!cfg.protoc || !cfg.protoc_gen_c || !cfg.plugin || !cfg.protos ||
        !cfg.golden)
        return usage("missing option");
    const char *exes[] = {cfg.protoc, cfg.protoc_gen_c, cfg.plugin};
    for (size_t i = 0; i < 3; i++) {
        if (access(exes[i], X_OK) != 0) {
            fprintf(stderr, "codegen_test: %s: %s\n", exes[i], strerror(errno));
            return 2;
        }
    }

    /* The fixed tests, then one per bad input, named after its proto. */
    struct CMUnitTest tests[8 + N_BAD];
    char names[N_BAD][96];
    size_t n = 0;
    memset(tests, 0, sizeof(tests));
#define T(f) (struct CMUnitTest) cmocka_unit_test_teardown(f, remove_tmpdirs)
    tests[n++] = T(test_golden_matches);
    tests[n++] = T(test_golden_deterministic);
    tests[n++] = T(test_golden_one_at_a_time);
    tests[n++] = T(test_bad_cases_complete);
    tests[n++] = T(test_plugin_garbage);
    tests[n++] = T(test_plugin_empty_request);
    tests[n++] = T(test_plugin_unknown_file);
#undef T
    for (size_t i = 0; i < N_BAD; i++) {
        snprintf(names[i], sizeof(names[i]), "bad/%s", bad_cases[i].proto);
        tests[n].name = names[i];
        tests[n].test_func = test_bad_input;
        tests[n].teardown_func = remove_tmpdirs;
        tests[n].initial_state = (void *)&bad_cases[i];
        n++;
    }
    return _cmocka_run_group_tests("codegen", tests, n, NULL, NULL);
}
