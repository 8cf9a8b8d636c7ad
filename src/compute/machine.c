/*
 * machine.c - the machine's own limits, measured (sd_machine_probe): the
 * streaming read bandwidth of all the pool's threads, and the peak rates
 * of the integer dot and the F32 FMA of a kernel table. bench-forward
 * divides a forward's weight bytes and multiply-adds by them (a roofline).
 *
 * Each figure is the best of several short runs: on a shared machine the
 * fastest run is the one nothing else disturbed.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "specdec.h"
#include "compute/threadpool.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct read_job {
    const unsigned char *buf;
    size_t n;            /* bytes                 */
    uint64_t sink[64];   /* per thread (<= 64)    */
} read_job;

/* 16-byte lanes (SSE2 on every x86-64; NEON elsewhere), as the kernels'
 * loads are wide: a scalar 8-byte loop measured ~30% below the read rate
 * of 32-byte loads on a Zen 5 (32.8 against 46 GB/s). */
typedef uint64_t read_v __attribute__((vector_size(16), aligned(16)));

/* Sums this thread's share of the buffer with 8 independent vector sums
 * (128 bytes a turn), so the loads, not the adds, bound the loop. */
static void read_worker(void *arg, int ith, int nth) {
    read_job *j = arg;
    const size_t per = j->n / (size_t)nth / 128 * 128;
    const read_v *p = (const read_v *)(const void *)(j->buf + per * (size_t)ith);
    read_v s[8] = {{0}};
    for (size_t i = 0; i < per / 16; i += 8)
        for (int k = 0; k < 8; k++) s[k] += p[i + (size_t)k];
    uint64_t t = 0;
    for (int k = 0; k < 8; k++) t += s[k][0] + s[k][1];
    if (ith < 64) j->sink[ith] = t;
}

typedef struct peak_job {
    int64_t (*fn)(int64_t);
    int64_t reps;
    int64_t done[64];
} peak_job;

static void peak_worker(void *arg, int ith, int nth) {
    peak_job *j = arg;
    (void)nth;
    int64_t d = j->fn(j->reps);
    if (ith < 64) j->done[ith] = d;
}

/* Multiply-adds per second of fn on every thread at once (best of runs). */
static double peak_rate(sd_threadpool *pool, int64_t (*fn)(int64_t)) {
    const int nth = pool ? sd_threadpool_n_threads(pool) : 1;
    peak_job j = {.fn = fn, .reps = 400000};
    double best = 0;
    for (int r = 0; r < 25; r++) {
        memset(j.done, 0, sizeof j.done);
        double t0 = now_s();
        sd_threadpool_run(pool, peak_worker, &j);
        double t = now_s() - t0;
        int64_t total = 0;
        for (int i = 0; i < nth && i < 64; i++) total += j.done[i];
        if (t > 0 && (double)total / t > best) best = (double)total / t;
    }
    return best;
}

sd_status sd_machine_probe(sd_backend backend, sd_threadpool *pool, sd_machine *out) {
    if (!out) return SD_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    const sd_kernels *k = sd_kernels_get(backend);
    if (!k) return SD_ERR_UNSUPPORTED;
    out->table = k->name;
    out->n_threads = pool ? sd_threadpool_n_threads(pool) : 1;
    /* read: 512 MB, far beyond any L3 this runs on, best of 6 passes */
    const size_t bytes = (size_t)512 << 20;
    unsigned char *buf = aligned_alloc(64, bytes);
    if (!buf) return SD_ERR_NOMEM;
    memset(buf, 1, bytes);
    read_job rj = {.buf = buf, .n = bytes};
    for (int r = 0; r < 6; r++) {
        double t0 = now_s();
        sd_threadpool_run(pool, read_worker, &rj);
        double t = now_s() - t0;
        if (t > 0 && (double)bytes / t / 1e9 > out->read_gbps) out->read_gbps = (double)bytes / t / 1e9;
    }
    free(buf);
    if (k->probe_dot) out->dot_gmacs = peak_rate(pool, k->probe_dot) / 1e9;
    if (k->probe_fma) out->fma_gmacs = peak_rate(pool, k->probe_fma) / 1e9;
    return SD_OK;
}
