#include "util/tables.h"

#include <stdlib.h>
#include <string.h>

#include "util/check.h"

const sd_kernels *test_kernel_table(const char *name) {
    static const char *const names[] = {"ref", "avx2", "avx512", "avx512vnni"};
    static const char *const needs[] = {"nothing", "AVX2/FMA/F16C", "AVX-512", "AVX512-VNNI"};
    static int reported[4]; /* test-process state: tables already named as skipped */
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) != 0) continue;
        /* the lookup must agree with the library's view of the CPU; a table
         * either one refuses is never handed to the test (so a lookup that
         * ignores the CPU fails here instead of faulting later) */
        const sd_kernels *t = sd_kernels_by_name(name);
        const int here = (int)sd_cpu_isa() >= i;
        CHECK((t != NULL) == here, "sd_kernels_by_name(%s) %s, but sd_cpu_isa() = %d", name,
              t ? "gave a table" : "refused", (int)sd_cpu_isa());
        if (t && here) return t;
        if (!reported[i]) {
            const char *cap = getenv("SPECDEC_CPU_CAP");
            int capped = cap && *cap;
            check_skip("kernel table %s: the CPU lacks %s%s%s%s", name, needs[i], capped ? " (SPECDEC_CPU_CAP=" : "",
                       capped ? cap : "", capped ? ")" : "");
            reported[i] = 1;
        }
        return NULL;
    }
    CHECK(0, "test_kernel_table: unknown table name %s", name);
    return NULL;
}

int test_backend_here(sd_backend b) {
    if (sd_kernels_get(b)) return 1;
    const char *name = b == SD_BACKEND_AVX2 ? "avx2" : b == SD_BACKEND_AVX512 ? "avx512" : NULL;
    CHECK(name != NULL, "test_backend_here: backend %d refused", (int)b);
    if (name) test_kernel_table(name);
    return 0;
}
