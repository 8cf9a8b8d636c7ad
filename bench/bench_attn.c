/*
 * bench_attn.c - single-thread micro-benchmark of the default (F32)
 * attention kernel of a table, shaped like the shipped target model: R = 3
 * query heads per KV head, D = 64, K/V F16 rows of stride 2 D elements (two
 * KV heads interleaved), n_prefix cells visible to all rows and a causal
 * tail (row i also sees batch cells 0..i).
 *
 * Build by hand (from the repo root, after `make lib`):
 *   cc -O2 -Iinclude -Isrc bench/bench_attn.c build/libspecdec.a -lm \
 *      -lpthread -o build/bench_attn
 *   ./build/bench_attn [table: avx512|avx2|ref] [D] [R] [old/libspecdec.so]
 * With a shared library of another version (e.g. the previous commit,
 * built with `git archive HEAD~ | tar -x -C /tmp/old && make -C /tmp/old
 * lib`), its kernel of the same table is timed too, in alternating rounds,
 * and the speedup printed ("new" is the kernel linked in).
 * Hot cache (the same K/V every call). Prints us/call and GFMA/s, counting
 * 2 * R * D multiply-adds per (row, visible cell) (scores and P V). The
 * machine may be shared: each figure is the best of 40 rounds of >= 1 ms
 * (short rounds are less likely to be preempted).
 */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/attn.h"
#include "kernels/kernels.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float frand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return ((float)((*s >> 8) & 0xffff) / 65536.0f) * 2.0f - 1.0f;
}

typedef struct bench_case {
    const sd_attn_row *rows;
    int nr, R, D;
    float scale;
    const uint16_t *K, *V;
    size_t stride;
    int n_prefix;
} bench_case;

/* Seconds per call of f: one round of >= 1 ms. */
static double round_s(sd_attn_rows_fn f, const bench_case *c) {
    int iters = 0;
    double t0 = now_s(), el;
    do {
        for (int r = 0; r < 4; r++, iters++) f(c->rows, c->nr, c->R, c->D, c->scale, c->K, c->V, c->stride, c->n_prefix);
        el = now_s() - t0;
    } while (el < 0.001);
    return el / iters;
}

int main(int argc, char **argv) {
    const char *tname = argc > 1 ? argv[1] : "avx512";
    const int D = argc > 2 ? atoi(argv[2]) : 64;
    const int R = argc > 3 ? atoi(argv[3]) : 3;
    if (D <= 0 || D > SD_ATTN_MAX_D || R <= 0 || R > SD_ATTN_MAX_REP) {
        fprintf(stderr, "bad D or R\n");
        return 1;
    }
    sd_attn_rows_fn f = sd_attn_f32_rows_for(tname), f_old = NULL;
    if (!f) {
        fprintf(stderr, "table %s not available on this CPU\n", tname);
        return 1;
    }
    if (argc > 4) {
        void *h = dlopen(argv[4], RTLD_NOW | RTLD_LOCAL);
        sd_attn_rows_fn (*rows_for)(const char *) = NULL;
        if (h) *(void **)&rows_for = dlsym(h, "sd_attn_f32_rows_for");
        if (!rows_for) {
            fprintf(stderr, "%s: %s\n", argv[4], dlerror());
            return 1;
        }
        f_old = rows_for(tname);
        if (!f_old) {
            fprintf(stderr, "%s: table %s not available\n", argv[4], tname);
            return 1;
        }
    }
    static const int prefixes[] = {256, 800, 1024};
    static const int row_counts[] = {1, 2, 4, 8, 16};
    enum { MAX_ROWS = 16 };
    const size_t stride = (size_t)2 * D;
    const int n_max = 1024 + MAX_ROWS;
    unsigned seed = 1;
    uint16_t *K = malloc((size_t)n_max * stride * 2), *V = malloc((size_t)n_max * stride * 2);
    float *q = malloc((size_t)MAX_ROWS * R * D * sizeof(float));
    float *out = malloc((size_t)MAX_ROWS * R * D * sizeof(float));
    float *out_old = malloc((size_t)MAX_ROWS * R * D * sizeof(float));
    for (size_t i = 0; i < (size_t)n_max * stride; i++) {
        K[i] = sd_fp32_to_fp16(frand(&seed));
        V[i] = sd_fp32_to_fp16(frand(&seed));
    }
    for (int i = 0; i < MAX_ROWS * R * D; i++) q[i] = frand(&seed) * 2.0f;
    const float scale = 1.0f / sqrtf((float)D);
    printf("attention f32 (%s), R=%d D=%d stride=%zu, 1 thread, hot cache\n", tname, R, D, stride);
    if (f_old)
        printf("%8s %5s %10s %9s %10s %9s %8s %9s\n", "n_prefix", "rows", "old us", "GFMA/s", "new us", "GFMA/s",
               "speedup", "max|diff|");
    else
        printf("%8s %5s %10s %9s %10s\n", "n_prefix", "rows", "us/call", "GFMA/s", "us/row");
    for (size_t ip = 0; ip < sizeof prefixes / sizeof *prefixes; ip++) {
        const int n_prefix = prefixes[ip];
        for (size_t ir = 0; ir < sizeof row_counts / sizeof *row_counts; ir++) {
            const int nr = row_counts[ir];
            sd_attn_row rows[MAX_ROWS], rows_old[MAX_ROWS];
            double cells = 0;
            for (int i = 0; i < nr; i++) {
                rows[i] = (sd_attn_row){.out = out + (size_t)i * R * D, .q = q + (size_t)i * R * D,
                                        .n_batch = i + 1, .vis = NULL};
                rows_old[i] = rows[i];
                rows_old[i].out = out_old + (size_t)i * R * D;
                cells += n_prefix + i + 1;
            }
            const bench_case c = {rows, nr, R, D, scale, K, V, stride, n_prefix};
            const bench_case c_old = {rows_old, nr, R, D, scale, K, V, stride, n_prefix};
            for (int w = 0; w < 20; w++) {
                f(rows, nr, R, D, scale, K, V, stride, n_prefix);
                if (f_old) f_old(rows_old, nr, R, D, scale, K, V, stride, n_prefix);
            }
            double per = 1e30, per_old = 1e30;
            for (int round = 0; round < 40; round++) {
                double t = round_s(f, &c);
                per = t < per ? t : per;
                if (f_old) {
                    t = round_s(f_old, &c_old);
                    per_old = t < per_old ? t : per_old;
                }
            }
            const double fma = 2.0 * R * D * cells;
            if (f_old) {
                double diff = 0;
                for (int i = 0; i < nr * R * D; i++) diff = fmax(diff, fabs((double)out[i] - out_old[i]));
                printf("%8d %5d %10.2f %9.1f %10.2f %9.1f %7.2fx %9.2g\n", n_prefix, nr, per_old * 1e6,
                       fma / per_old * 1e-9, per * 1e6, fma / per * 1e-9, per_old / per, diff);
            } else {
                printf("%8d %5d %10.2f %9.1f %10.2f\n", n_prefix, nr, per * 1e6, fma / per * 1e-9, per * 1e6 / nr);
            }
        }
    }
    free(K), free(V), free(q), free(out), free(out_old);
    return 0;
}
