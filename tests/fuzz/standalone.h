/*
 * standalone.h — the regression runner shared by the libFuzzer targets of
 * this folder, for builds without libFuzzer (-DORPC_FUZZ_STANDALONE, as
 * ctest runs them): a main() that replays the files named on the command
 * line (a crash file, a corpus) through LLVMFuzzerTestOneInput, or, with
 * none, a fixed number of deterministic inputs generated from a fixed seed.
 * "-write-seeds DIR" runs the generated inputs and also saves them in DIR
 * (seed-000, seed-001, ...), a seed corpus for libFuzzer, which rarely
 * finds, say, a valid gzip CRC on its own.
 *
 * Why a header: each target is one translation unit (the README builds it
 * with one clang command line), and the runner is the same for all of them
 * but for the name, the seed and the input generator.
 *
 * Include it only under ORPC_FUZZ_STANDALONE, after fuzz.h (CHECK())
 * and LLVMFuzzerTestOneInput() declaration and before its generator, which
 * may use rng_next().  Then main() calls fuzz_standalone_main().
 */
#ifndef ORPC_TESTS_FUZZ_STANDALONE_H
#define ORPC_TESTS_FUZZ_STANDALONE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CHECK
#error "standalone.h: define CHECK(cond) before including it"
#endif

/* Writes generated input |i| into |buf| (|cap| bytes) and returns its
 * length; |buf| still holds input i - 1, of length |len| (0 for i == 0). */
typedef size_t fuzz_gen_fn(uint32_t *st, int i, uint8_t *buf, size_t len,
                           size_t cap);

/* Deterministic pseudo-random numbers (xorshift32). */
static uint32_t rng_next(uint32_t *st)
{
    uint32_t x = *st;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *st = x;
    return x;
}

/* Input |i| for targets that pair fresh inputs with spoilt ones: even ones
 * new from |gen|, each odd one the input before it (|len| bytes) with a few
 * bytes flipped or cut short. */
static inline size_t
fuzz_fresh_or_spoilt(uint32_t *st, int i, uint8_t *buf, size_t len, size_t cap,
                     size_t (*gen)(uint32_t *, uint8_t *, size_t))
{
    if (i % 2 == 0 || len == 0) {
        return gen(st, buf, cap);
    }
    if (rng_next(st) % 3 == 0) {
        return rng_next(st) % len;
    }
    for (int j = 0; j < 3; j++) {
        buf[rng_next(st) % len] ^= (uint8_t)(1 + rng_next(st) % 255);
    }
    return len;
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    CHECK(buf != NULL);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            CHECK(buf != NULL);
        }
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

/* Writes |buf| as file |i| of directory |dir| (a seed corpus). */
static void write_seed(const char *dir, int i, const uint8_t *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/seed-%03d", dir, i);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(buf, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

/* The runner: the files in argv, or |n| inputs from |gen| starting from
 * |seed|; |name| prefixes the summary line.  Returns main()'s status. */
static int fuzz_standalone_main(int argc, char **argv, const char *name,
                                uint32_t seed, int n, fuzz_gen_fn *gen)
{
    int rc = 0;
    const char *seed_dir = NULL;
    if (argc == 3 && strcmp(argv[1], "-write-seeds") == 0) {
        seed_dir = argv[2]; /* run the built-in inputs and save them */
    } else if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            rc |= run_file(argv[i]);
        }
        printf("%s: %d file(s) run\n", name, argc - 1);
        return rc;
    }
    enum { CAP = 8192 };
    uint8_t *buf = malloc(CAP);
    CHECK(buf != NULL);
    uint32_t st = seed;
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        len = gen(&st, i, buf, len, CAP);
        if (seed_dir != NULL) {
            write_seed(seed_dir, i, buf, len);
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    free(buf);
    printf("%s: %d generated inputs run\n", name, n);
    return 0;
}

/*
 * The whole standalone main() of a target whose generated inputs are
 * independent of each other: |gen|(st, buf, cap) writes one and returns its
 * length.  |name| and |seed| as for fuzz_standalone_main(), 50 inputs.
 */
#define FUZZ_STANDALONE_MAIN(name, seed, gen)                                  \
    static size_t next_input(uint32_t *st, int i, uint8_t *buf, size_t len,    \
                             size_t cap)                                       \
    {                                                                          \
        (void)i;                                                               \
        (void)len;                                                             \
        return gen(st, buf, cap);                                              \
    }                                                                          \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        return fuzz_standalone_main(argc, argv, name, seed, 50, next_input);   \
    }

#endif /* ORPC_TESTS_FUZZ_STANDALONE_H */
