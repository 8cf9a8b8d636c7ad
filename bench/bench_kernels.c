/*
 * bench_kernels.c - single-thread gemm micro-benchmark of a kernel table.
 *
 * Build by hand (from the repo root, after `make lib`):
 *   cc -O2 -Iinclude -Isrc bench/bench_kernels.c build/libspecdec.a -lm \
 *      -o build/bench_kernels
 *   ./build/bench_kernels [table: avx512|avx2|ref] [hot|cold]
 * hot:  the same W every call (L2/L3 resident for small shapes).
 * cold: cycles over enough copies of W (>= 256 MB) that every call streams
 *       W from DRAM, like decode of a model larger than L3.
 * Prints us/call, GFLOP/s (2 M K N) and weight GB/s, and the cost of N
 * tokens relative to N = 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { T_F32, T_F16, T_Q8 };

int main(int argc, char **argv) {
    const char *tname = argc > 1 ? argv[1] : "avx512";
    int cold = argc > 2 && strcmp(argv[2], "cold") == 0;
    sd_backend b = strcmp(tname, "ref") == 0    ? SD_BACKEND_REF
                   : strcmp(tname, "avx2") == 0 ? SD_BACKEND_AVX2
                                                : SD_BACKEND_AVX512;
    const sd_kernels *t = sd_kernels_get(b);
    if (!t) {
        fprintf(stderr, "table %s not available\n", tname);
        return 1;
    }
    static const int shapes[][2] = {{384, 384}, {1024, 384}, {384, 1024}, {8192, 384}};
    static const int Ns[] = {1, 2, 4, 8, 16, 32, 64};
    static const int types[] = {T_F16, T_Q8, T_F32};
    static const char *tn[] = {"f32", "f16", "q8_0"};
    printf("table %s, %s weights, 1 thread\n", t->name, cold ? "cold (DRAM)" : "hot");
    printf("%-5s %5s %5s %3s %10s %9s %8s %8s\n", "type", "M", "K", "N", "us/call",
           "GFLOP/s", "W GB/s", "xN=1");
    for (size_t it = 0; it < sizeof types / sizeof *types; it++) {
        int type = types[it];
        for (size_t is = 0; is < sizeof shapes / sizeof *shapes; is++) {
            int M = shapes[is][0], K = shapes[is][1];
            size_t wrow = type == T_F32 ? (size_t)K * 4
                          : type == T_F16 ? (size_t)K * 2
                                          : (size_t)K / 32 * sizeof(sd_block_q8_0);
            size_t xrow = type == T_Q8 ? wrow : (size_t)K * 4;
            size_t wbytes = wrow * (size_t)M;
            int copies = cold ? (int)((256u << 20) / wbytes) + 1 : 1;
            char *w = malloc(wbytes * (size_t)copies);
            float *xf = malloc((size_t)64 * K * 4);
            char *x = malloc((size_t)64 * xrow);
            float *y = malloc((size_t)64 * M * 4);
            for (size_t i = 0; i < (size_t)64 * K; i++)
                xf[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
            for (int n = 0; n < 64; n++) {
                if (type == T_Q8)
                    sd_kernels_ref()->quantize_row_q8_0(x + n * xrow, xf + (size_t)n * K, K);
                else
                    memcpy(x + n * xrow, xf + (size_t)n * K, xrow);
            }
            for (int c = 0; c < copies; c++)
                for (int m = 0; m < M; m++) {
                    char *row = w + (size_t)c * wbytes + (size_t)m * wrow;
                    if (type == T_F32)
                        memcpy(row, xf + (size_t)(m % 64) * K, wrow);
                    else if (type == T_F16)
                        for (int k = 0; k < K; k++) {
                            uint16_t h = sd_fp32_to_fp16(xf[(size_t)(m % 64) * K + k]);
                            memcpy(row + 2 * k, &h, 2);
                        }
                    else
                        sd_kernels_ref()->quantize_row_q8_0(row, xf + (size_t)(m % 64) * K, K);
                }
            sd_gemm_fn f = type == T_F32 ? t->gemm_f32 : type == T_F16 ? t->gemm_f16 : t->gemm_q8_0;
            double t1 = 0;
            for (size_t in = 0; in < sizeof Ns / sizeof *Ns; in++) {
                int N = Ns[in];
                /* warm up, then the best of 5 rounds of >= 0.05 s (the
                 * machine may be shared) */
                for (int c = 0; c < copies && c < 4; c++)
                    f(y, (size_t)M, x, xrow, w + (size_t)c * wbytes, wrow, K, N, 0, M);
                double per = 1e30;
                int iters = 0;
                for (int round = 0; round < 5; round++) {
                    int it0 = iters;
                    double t0 = now_s(), el;
                    do {
                        for (int r = 0; r < 8; r++, iters++)
                            f(y, (size_t)M, x, xrow,
                              w + (size_t)(iters % copies) * wbytes, wrow, K, N, 0, M);
                        el = now_s() - t0;
                    } while (el < 0.05);
                    if (el / (iters - it0) < per)
                        per = el / (iters - it0);
                }
                if (N == 1)
                    t1 = per;
                printf("%-5s %5d %5d %3d %10.2f %9.1f %8.1f %8.2f\n", tn[type], M, K, N,
                       per * 1e6, 2.0 * M * K * N / per * 1e-9, wbytes / per * 1e-9,
                       per / t1);
            }
            free(w), free(xf), free(x), free(y);
        }
    }
    return 0;
}
