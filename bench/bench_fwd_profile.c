/*
 * bench_fwd_profile.c - where the time of an n-row forward goes, and the
 * forward's work splits compared in one process.
 *
 * Build (from the repo root):
 *   make lib BUILD=build-prof EXTRA_CFLAGS=-DSD_FWD_PROFILE
 *   cc -O2 -DSD_FWD_PROFILE -Iinclude -Isrc bench/bench_fwd_profile.c \
 *      build-prof/libspecdec.a -lm -pthread -o build-prof/bench_fwd_profile
 *   ./build-prof/bench_fwd_profile [MODEL] [threads] [reps] [f16|q8_0] [splits]
 * (without -DSD_FWD_PROFILE and against build/libspecdec.a: times only).
 *
 * For n = 1, 2, 4, 6, 8, 16, 32 rows (all with logits) at 256 tokens of
 * (SD_PROFILE_CTX: that many tokens of)
 * context: the fastest, 25th-percentile and median forward (ms). splits: a
 * comma list of forward work splits (ctx.h: 0 auto, 1 columns, 2 rows;
 * default 0); each gets its own context on the same model and pool, and
 * the forwards alternate between them rep by rep, so that a shared
 * machine's load falls on all alike. For the fastest forward of the first
 * split, SD_FWD_PROFILE builds print the time per phase of threads 0 and 1
 * (us; "barrier" is the time spent waiting in barriers).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_gettime under -std=c11 */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compute/ctx.h"
#include "specdec.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { MAX_SPLITS = 4 };

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "../shared/models/kernel-c-target.gguf";
    int nth = argc > 2 ? atoi(argv[2]) : 2;
    int reps = argc > 3 ? atoi(argv[3]) : 200;
    sd_model_params mp = sd_model_default_params();
    if (argc > 4 && !strcmp(argv[4], "q8_0")) mp.quantize = SD_TYPE_Q8_0;
    int splits[MAX_SPLITS] = {0}, n_splits = 1;
    if (argc > 5) {
        n_splits = 0;
        for (const char *c = argv[5]; *c && n_splits < MAX_SPLITS; c++)
            if (*c >= '0' && *c <= '2') splits[n_splits++] = *c - '0';
    }
    if (reps < 1 || nth < 1 || n_splits < 1) return 2;
    sd_model *m = NULL;
    char err[256];
    if (sd_model_load(path, &mp, &m, err, sizeof err) != SD_OK) {
        fprintf(stderr, "load: %s\n", err);
        return 1;
    }
    sd_threadpool *pool = NULL;
    if (sd_threadpool_new(nth, &pool) != SD_OK) return 1;
    sd_ctx_params cp = sd_ctx_default_params();
    /* SD_PROFILE_CTX: tokens of context (default 256, at most 4000) */
    const char *env_ctx = getenv("SD_PROFILE_CTX");
    const int n_pre = env_ctx && atoi(env_ctx) >= 1 && atoi(env_ctx) <= 4000 ? atoi(env_ctx) : 256;
    cp.n_ctx = n_pre + 64;
    cp.pool = pool;
    sd_ctx *ctx[MAX_SPLITS];
    int32_t pre[4000];
    for (int i = 0; i < n_pre; i++) pre[i] = (int32_t)((i * 7919 + 13) % 8192);
    for (int k = 0; k < n_splits; k++) {
        if (sd_ctx_new(m, &cp, &ctx[k]) != SD_OK) return 1;
        ctx[k]->split = splits[k];
        sd_batch pb = sd_batch_simple(pre, n_pre);
        if (sd_ctx_decode(ctx[k], &pb) != SD_OK) return 1;
    }
    static const int ns[] = {1, 2, 4, 6, 8, 16, 32};
    double *ms = malloc((size_t)MAX_SPLITS * (size_t)reps * sizeof *ms);
    double base[MAX_SPLITS] = {0};
#ifdef SD_FWD_PROFILE
    static const char *names[] = {"input/final", "barrier", "norm1+prep", "qkv", "rope+cache",
                                  "attention", "prep wo", "wo", "add+norm2+prep", "gate+up",
                                  "swiglu+prep", "down", "out norm+prep", "head", "scatter"};
    enum { NS = sizeof names / sizeof *names };
#endif
    printf("%d threads, %d reps, %d tokens of context, splits (0 auto, 1 columns, 2 rows):", nth, reps, n_pre);
    for (int k = 0; k < n_splits; k++) printf(" %d", splits[k]);
    printf("\n");
    for (size_t in = 0; in < sizeof ns / sizeof *ns; in++) {
        int n = ns[in];
        int32_t toks[32];
        uint8_t out[32];
        for (int i = 0; i < n; i++) {
            toks[i] = (int32_t)((i * 101 + 7) % 8192);
            out[i] = 1;
        }
#ifdef SD_FWD_PROFILE
        double best_prof[2][SD_FWD_PROFILE_SLOTS] = {{0}};
#endif
        double best = 1e30;
        for (int r = 0; r < reps + 3; r++)
            for (int k = 0; k < n_splits; k++) {
                sd_ctx_kv_truncate(ctx[k], n_pre);
                sd_batch b = sd_batch_simple(toks, n);
                b.output = out;
#ifdef SD_FWD_PROFILE
                memset(ctx[k]->s.prof, 0, sizeof ctx[k]->s.prof);
#endif
                double t0 = now_ms();
                if (sd_ctx_decode(ctx[k], &b) != SD_OK) return 1;
                double t = now_ms() - t0;
                if (r < 3) continue; /* warm-up */
                ms[(size_t)k * reps + (r - 3)] = t;
                if (k == 0 && t < best) {
                    best = t;
#ifdef SD_FWD_PROFILE
                    memcpy(best_prof, ctx[k]->s.prof, sizeof best_prof);
#endif
                }
            }
        for (int k = 0; k < n_splits; k++) {
            double *v = ms + (size_t)k * reps;
            qsort(v, (size_t)reps, sizeof *v, cmp_d);
            if (n == 1) base[k] = v[reps / 2];
            printf("n=%-2d split %d  min %.3f  p25 %.3f  median %.3f ms (%.2fx median n=1)\n", n, splits[k], v[0],
                   v[reps / 4], v[reps / 2], v[reps / 2] / base[k]);
        }
#ifdef SD_FWD_PROFILE
        for (int k = 0; k < NS; k++)
            if (best_prof[0][k] > 0 || best_prof[1][k] > 0)
                printf("    %-15s %8.1f %8.1f us\n", names[k], best_prof[0][k] * 1e6, best_prof[1][k] * 1e6);
#endif
    }
    free(ms);
    for (int k = 0; k < n_splits; k++) sd_ctx_free(ctx[k]);
    sd_threadpool_free(pool);
    sd_model_free(m);
    return 0;
}
