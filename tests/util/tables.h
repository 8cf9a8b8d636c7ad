/* tables.h - the kernel tables a test may run here: those of the CPU as the
 * library sees it (sd_cpu_isa(): the CPU's instruction sets lowered to the
 * cap SPECDEC_CPU_CAP, src/kernels/kernels.h). A table the CPU lacks is a
 * named skip, never a silent pass. */
#ifndef SD_TEST_TABLES_H
#define SD_TEST_TABLES_H

#include "kernels/kernels.h"

/* The table called name ("ref", "avx2", "avx512", "avx512vnni") when this
 * CPU runs it (sd_kernels_by_name). Otherwise NULL, after
 * check_skip("kernel table NAME: the CPU lacks WHAT[ (SPECDEC_CPU_CAP=..)]")
 * the first time a test asks for that table: one SKIP line per table per
 * test, however often it asks. An unknown name is a failed check. */
const sd_kernels *test_kernel_table(const char *name);
/* True when a model can load with backend b here (sd_kernels_get(b));
 * otherwise false, after the skip of b's table as above (SD_BACKEND_AVX512:
 * "avx512"). */
int test_backend_here(sd_backend b);

#endif
