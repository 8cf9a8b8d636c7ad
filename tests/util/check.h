/* check.h - a tiny test helper (after antirez's test_cond): CHECK prints
 * what failed and counts it; check_report() returns the exit code. */
#ifndef SD_TEST_CHECK_H
#define SD_TEST_CHECK_H
#include <stdio.h>

typedef struct {
    int n_ok, n_fail;
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

/* Prints "<name>: N checks, M failed" and returns 0 if none failed (and at
 * least one ran), 1 otherwise. */
int check_report(const char *name);
/* Model directory: $SPECDEC_MODEL_DIR or ../shared/models. */
const char *test_model_dir(void);
/* Shared directory: parent of the model dir (../shared). */
const char *test_shared_dir(void);
/* Reads a whole file; returns malloc'd buffer (NUL-terminated) or NULL. */
char *test_read_file(const char *path, size_t *len);
#endif
