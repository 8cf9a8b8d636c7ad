/* check.h - a tiny test helper (after antirez's test_cond): CHECK prints
 * what failed and counts it; check_report() returns the exit code. */
#ifndef SD_TEST_CHECK_H
#define SD_TEST_CHECK_H
#include <stdio.h>

typedef struct {
    int n_ok, n_fail, n_skip;
} check_state;

extern check_state g_check; /* test-process state; defined in check.c */

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (cond) {                                                          \
            g_check.n_ok++;                                                  \
        } else {                                                             \
            g_check.n_fail++;                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, \
                    #cond);                                                  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

/* Prints "<name>: N checks, M failed[, K parts skipped]" and returns 0 if
 * none failed (and at least one ran), 1 otherwise. */
int check_report(const char *name);

/* A part of a test that could not run here (a kernel table the CPU lacks,
 * a missing optional input): prints "SKIP: <what>" on stdout, which
 * tests/run.sh collects and names in its summary, and counts it. A skip is
 * never a pass: it is reported as a skip. */
void check_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* True when running in CI (environment CI=true): a dependency that .ci/run
 * installs (node, the openai package, the quantized files...) must then be
 * present, and its absence is a failure, not a skip. */
int test_in_ci(void);

/* A dependency `what` is missing: outside CI a skip (check_skip), in CI a
 * failed check. */
void check_need(const char *what);
/* Model directory: $SPECDEC_MODEL_DIR or ../shared/models. */
const char *test_model_dir(void);
/* Shared directory: parent of the model dir (../shared). */
const char *test_shared_dir(void);
/* Reads a whole file; returns malloc'd buffer (NUL-terminated) or NULL. */
char *test_read_file(const char *path, size_t *len);
#endif
