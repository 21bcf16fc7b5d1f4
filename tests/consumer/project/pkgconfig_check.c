/*
 * pkgconfig_check — built by ../run.sh with nothing but
 * `cc pkgconfig_check.c $(pkg-config --cflags --libs orpc)`: liborpc's
 * headers and library are usable through orpc.pc alone.  Exits 0 when the
 * error and status names come out as documented.
 */
#include <stdio.h>
#include <string.h>

#include <orpc/orpc.h>

static int failures;

static void expect(const char *what, const char *got, const char *want)
{
    if (got == NULL || strcmp(got, want) != 0) {
        fprintf(stderr, "pkgconfig_check: %s gave \"%s\", want \"%s\"\n", what,
                got ? got : "(null)", want);
        failures++;
    }
}

int main(void)
{
    expect("orpc_strerror(ORPC_EINVAL)", orpc_strerror(ORPC_EINVAL),
           "invalid argument");
    expect("orpc_strerror(0)", orpc_strerror(0), "success");
    expect("orpc_strerror(-9999)", orpc_strerror(-9999), "unknown error");
    expect("orpc_code_name(ORPC_NOT_FOUND)", orpc_code_name(ORPC_NOT_FOUND),
           "NOT_FOUND");
    expect("orpc_code_name(ORPC_OK)", orpc_code_name(ORPC_OK), "OK");
    expect("orpc_code_name(99)", orpc_code_name(99), "UNKNOWN_CODE");
    if (failures != 0)
        return 1;
    printf("pkgconfig_check: all checks passed\n");
    return 0;
}
