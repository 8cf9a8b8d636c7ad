/*
 * bench_packed.c - the packed gemms (src/kernels/packed.h) against the
 * scalar references, then their speed: one thread, weights streamed from
 * DRAM (enough copies of W that every call misses the caches), n tokens.
 *
 * Build (from the repo root, after `make lib`):
 *   cc -O2 -Iinclude -Isrc bench/bench_packed.c build/libspecdec.a -lm -o build/bench_packed
 *   ./build/bench_packed [type] [M] [K]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "kernels/packed.h"
#include "kernels/quants.h"
#include "model/quantize.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint32_t rng = 12345;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

typedef struct { const char *name; int type, act; } tinfo;
static const tinfo types[] = {
    {"q8_0", SD_TYPE_Q8_0, SD_TYPE_Q8_0}, {"q4_0", SD_TYPE_Q4_0, SD_TYPE_Q8_0},
    {"q5_0", SD_TYPE_Q5_0, SD_TYPE_Q8_0}, {"q4_K", SD_TYPE_Q4_K, SD_TYPE_Q8_K},
    {"q5_K", SD_TYPE_Q5_K, SD_TYPE_Q8_K}, {"q6_K", SD_TYPE_Q6_K, SD_TYPE_Q8_K},
};

static size_t row_size(int t, int K) { return (size_t)(K / sd_quant_block_size(t)) * sd_quant_block_bytes(t); }

static sd_gemm_fn ref_of(int t) {
    const sd_kernels *r = sd_kernels_ref();
    switch (t) {
    case SD_TYPE_Q8_0: return r->gemm_q8_0;
    case SD_TYPE_Q4_0: return r->gemm_q4_0;
    case SD_TYPE_Q5_0: return r->gemm_q5_0;
    case SD_TYPE_Q4_K: return r->gemm_q4_K;
    case SD_TYPE_Q5_K: return r->gemm_q5_K;
    default: return r->gemm_q6_K;
    }
}

static void quant_x(int act, void *dst, const float *x, int K) {
    if (act == SD_TYPE_Q8_0) sd_kernels_ref()->quantize_row_q8_0(dst, x, K);
    else sd_quantize_row_q8_K(dst, x, K);
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
    const int Mb = argc > 2 ? atoi(argv[2]) : 4096, Kb = argc > 3 ? atoi(argv[3]) : 1536;
    const sd_kernels *tabs[4] = {sd_kernels_avx2(), NULL, sd_kernels_avx512_plain(),
                                 sd_kernels_avx512()};
    tabs[1] = sd_kernels_avx2vnni();
    int bad_total = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const tinfo *T = &types[ti];
        if (only && strcmp(only, T->name) != 0) continue;
        const int pk = sd_pack_type_of(T->type);
        /* correctness: M 48, K 512 / 768, N 1..17 */
        for (int K = 512; K <= 768; K += 256) {
            const int M = 48, NMAX = 17;
            const size_t rb = row_size(T->type, K), xb = row_size(T->act, K);
            float *wf = malloc((size_t)M * K * 4), *xf = malloc((size_t)NMAX * K * 4);
            char *w = malloc(rb * M), *wp = malloc(rb * M), *x = malloc(xb * NMAX), *back = malloc(rb);
            float *y0 = malloc((size_t)NMAX * M * 4), *y1 = malloc((size_t)NMAX * M * 4);
            for (int i = 0; i < M * K; i++) wf[i] = frand() * (1.0f + (float)(i % 7));
            for (int i = 0; i < NMAX * K; i++) xf[i] = frand() * 3.0f;
            for (int m = 0; m < M; m++) sd_quantize_row(T->type, wf + (size_t)m * K, w + rb * m, K);
            for (int n = 0; n < NMAX; n++) quant_x(T->act, x + xb * n, xf + (size_t)n * K, K);
            if (sd_pack_matrix(T->type, wp, w, rb, M, K) != 0) { printf("%s: pack failed\n", T->name); return 1; }
            int rt = 0;
            for (int m = 0; m < M; m++) {
                sd_unpack_row(T->type, back, wp, rb, m, K);
                rt += memcmp(back, w + rb * m, rb) != 0;
            }
            if (rt) printf("%s K=%d: %d rows do not round-trip\n", T->name, K, rt), bad_total++;
            ref_of(T->type)(y0, M, x, xb, w, rb, K, NMAX, 0, M);
            for (int t = 0; t < 4; t++) {
                if (!tabs[t] || !tabs[t]->gemm_packed[pk]) continue;
                for (int N = 1; N <= NMAX; N++) {
                    memset(y1, 0xff, (size_t)NMAX * M * 4);
                    tabs[t]->gemm_packed[pk](y1, M, x, xb, wp, rb, K, N, 16, 48);
                    tabs[t]->gemm_packed[pk](y1, M, x, xb, wp, rb, K, N, 0, 16);
                    int bad = 0;
                    for (int n = 0; n < N; n++)
                        bad += memcmp(y1 + (size_t)n * M, y0 + (size_t)n * M, (size_t)M * 4) != 0;
                    if (bad) {
                        printf("%s %s K=%d N=%d: %d token rows differ (y0 %g y1 %g)\n", T->name, tabs[t]->name, K, N,
                               bad, y0[0], y1[0]);
                        bad_total++;
                        break;
                    }
                }
            }
            free(wf), free(xf), free(w), free(wp), free(x), free(back), free(y0), free(y1);
        }
        /* speed: cold weights, one thread */
        {
            const int M = Mb, K = Kb, NMAX = 32;
            const size_t rb = row_size(T->type, K), xb = row_size(T->act, K), wbytes = rb * M;
            const int copies = argc > 4 && !strcmp(argv[4], "hot") ? 1 : (int)((512u << 20) / wbytes) + 1;
            char *wp = malloc(wbytes * copies), *w = malloc(wbytes), *x = malloc(xb * NMAX);
            float *y = malloc((size_t)NMAX * M * 4), *row = malloc((size_t)K * 4);
            for (int m = 0; m < M; m++) {
                for (int k = 0; k < K; k++) row[k] = frand();
                sd_quantize_row(T->type, row, w + rb * m, K);
            }
            for (int n = 0; n < NMAX; n++) {
                for (int k = 0; k < K; k++) row[k] = frand();
                quant_x(T->act, x + xb * n, row, K);
            }
            sd_pack_matrix(T->type, wp, w, rb, M, K);
            for (int c = 1; c < copies; c++) memcpy(wp + wbytes * c, wp, wbytes);
            printf("%s M=%d K=%d cold, 1 thread: us per call (GB/s) for N = 1 2 4 8 16 32\n", T->name, M, K);
            const int Ns[6] = {1, 2, 4, 8, 16, 32};
            for (int t = -1; t < 4; t++) {
                const sd_kernels *tb = t < 0 ? sd_kernels_get(SD_BACKEND_AUTO) : tabs[t];
                if (!tb) continue;
                printf("  %-11s", t < 0 ? "stored-auto" : tb->name);
                double t1 = 0;
                for (int in = 0; in < 6; in++) {
                    int N = Ns[in];
                    double best = 1e30;
                    for (int it = 0; it < 3 * copies + 200; it++) {
                        const char *wc = (t < 0 ? w : wp + wbytes * (it % copies));
                        double t0 = now_s();
                        if (t < 0) {
                            sd_gemm_fn f = T->type == SD_TYPE_Q8_0 ? tb->gemm_q8_0
                                           : T->type == SD_TYPE_Q4_0 ? tb->gemm_q4_0
                                           : T->type == SD_TYPE_Q5_0 ? tb->gemm_q5_0
                                           : T->type == SD_TYPE_Q4_K ? tb->gemm_q4_K
                                           : T->type == SD_TYPE_Q5_K ? tb->gemm_q5_K : tb->gemm_q6_K;
                            f(y, M, x, xb, wc, rb, K, N, 0, M);
                        } else {
                            tb->gemm_packed[pk](y, M, x, xb, wc, rb, K, N, 0, M);
                        }
                        double el = now_s() - t0;
                        if (el < best) best = el;
                    }
                    if (N == 1) t1 = best;
                    printf(" %7.1f(%5.1f %4.2fx)", best * 1e6, wbytes / best * 1e-9, best / t1);
                }
                printf("\n");
            }
            free(wp), free(w), free(x), free(y), free(row);
        }
    }
    printf(bad_total ? "FAILED: %d\n" : "all packed kernels equal the references\n", bad_total);
    return bad_total != 0;
}
