#include "util/check.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

check_state g_check;

int check_report(const char *name) {
    if (g_check.n_skip)
        fprintf(stderr, "%s: %d checks, %d failed, %d parts skipped\n", name,
                g_check.n_ok + g_check.n_fail, g_check.n_fail, g_check.n_skip);
    else
        fprintf(stderr, "%s: %d checks, %d failed\n", name, g_check.n_ok + g_check.n_fail,
                g_check.n_fail);
    if (g_check.n_ok + g_check.n_fail == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    return g_check.n_fail ? 1 : 0;
}

const char *test_model_dir(void) {
    const char *d = getenv("SPECDEC_MODEL_DIR");
    return d && *d ? d : "../shared/models";
}

const char *test_shared_dir(void) {
    static char buf[4096];
    const char *m = test_model_dir();
    size_t n = strlen(m);
    while (n > 0 && m[n - 1] == '/') n--;
    while (n > 0 && m[n - 1] != '/') n--;
    if (n == 0) return "..";
    if (n >= sizeof buf) n = sizeof buf - 1;
    memcpy(buf, m, n);
    buf[n] = 0;
    return buf;
}

char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long n = ftell(f);
    if (n < 0) { fclose(f); return NULL; }
    rewind(f);
    char *b = malloc((size_t)n + 1);
    if (!b) { fclose(f); return NULL; }
    if (fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); fclose(f); return NULL; }
    fclose(f);
    b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

void check_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fflush(stderr);
    fputs("SKIP: ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
    g_check.n_skip++;
}

int test_in_ci(void) {
    const char *ci = getenv("CI");
    return ci && (!strcmp(ci, "true") || !strcmp(ci, "1"));
}

void check_need(const char *what) {
    if (test_in_ci()) {
        CHECK(0, "%s is missing, and CI (CI=true) must provide it", what);
    } else {
        check_skip("%s is missing", what);
    }
}
