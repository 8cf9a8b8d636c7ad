/*
 * bench_kernels.c - single-thread gemm micro-benchmark of a kernel table.
 *
 * Build by hand (from the repo root, after `make lib`):
 *   cc -O2 -Iinclude -Isrc bench/bench_kernels.c build/libspecdec.a -lm \
 *      -o build/bench_kernels
 *   ./build/bench_kernels [table: avx512|avx2|ref] [hot|cold] [type]
 * type: one of f32 f16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_K q5_K q6_K bf16 (default:
 * f16, q8_0, f32). Quantized weights are random bytes with finite scales
 * (speed does not depend on the values); K-quant types use K = 1024 only.
 * hot:  the same W every call (L2/L3 resident for small shapes).
 * cold: cycles over enough copies of W (>= 256 MB) that every call streams
 *       W from DRAM, like decode of a model larger than L3.
 * Prints us/call (the fastest call: robust on a shared machine), GFLOP/s (2 M K N) and weight GB/s, and the cost of N
 * tokens relative to N = 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "kernels/quants.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { T_F32, T_F16, T_Q8, T_Q4_0, T_Q4_1, T_Q5_0, T_Q5_1, T_Q4_K, T_Q5_K, T_Q6_K, T_BF16, T_N };
/* sd_type and activation format of each bench type */
static const int k_sd[T_N] = {SD_TYPE_F32, SD_TYPE_F16, SD_TYPE_Q8_0, SD_TYPE_Q4_0, SD_TYPE_Q4_1,
                              SD_TYPE_Q5_0, SD_TYPE_Q5_1, SD_TYPE_Q4_K, SD_TYPE_Q5_K, SD_TYPE_Q6_K,
                              SD_TYPE_BF16};
static const int k_act[T_N] = {SD_TYPE_F32, SD_TYPE_F32, SD_TYPE_Q8_0, SD_TYPE_Q8_0, SD_TYPE_Q8_1,
                               SD_TYPE_Q8_0, SD_TYPE_Q8_1, SD_TYPE_Q8_K, SD_TYPE_Q8_K, SD_TYPE_Q8_K,
                               SD_TYPE_F32};

static sd_gemm_fn gemm_of(const sd_kernels *t, int type) {
    sd_gemm_fn f[T_N] = {t->gemm_f32, t->gemm_f16, t->gemm_q8_0, t->gemm_q4_0, t->gemm_q4_1,
                         t->gemm_q5_0, t->gemm_q5_1, t->gemm_q4_K, t->gemm_q5_K, t->gemm_q6_K,
                         t->gemm_bf16};
    return f[type];
}

static size_t row_size(int sdt, int K) {
    if (sdt == SD_TYPE_F32) return (size_t)K * 4;
    return (size_t)(K / sd_quant_block_size(sdt)) * sd_quant_block_bytes(sdt);
}

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
    static const char *tn[T_N] = {"f32", "f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                                  "q4_K", "q5_K", "q6_K", "bf16"};
    int types[T_N] = {T_F16, T_Q8, T_F32}, n_types = 3;
    if (argc > 3) {
        n_types = 0;
        for (int i = 0; i < T_N; i++)
            if (strcmp(argv[3], tn[i]) == 0) types[n_types++] = i;
        if (!n_types) {
            fprintf(stderr, "unknown type %s\n", argv[3]);
            return 1;
        }
    }
    printf("table %s, %s weights, 1 thread\n", t->name, cold ? "cold (DRAM)" : "hot");
    printf("%-5s %5s %5s %3s %10s %9s %8s %8s\n", "type", "M", "K", "N", "us/call",
           "GFLOP/s", "W GB/s", "xN=1");
    for (int it = 0; it < n_types; it++) {
        int type = types[it];
        for (size_t is = 0; is < sizeof shapes / sizeof *shapes; is++) {
            int M = shapes[is][0], K = shapes[is][1];
            int bs = sd_quant_block_size(k_sd[type]);
            if (K % bs != 0) continue;
            size_t wrow = row_size(k_sd[type], K);
            size_t xrow = k_act[type] == SD_TYPE_F32 ? (size_t)K * 4 : row_size(k_act[type], K);
            size_t wbytes = wrow * (size_t)M;
            int copies = cold ? (int)((256u << 20) / wbytes) + 1 : 1;
            char *w = malloc(wbytes * (size_t)copies);
            float *xf = malloc((size_t)64 * K * 4);
            char *x = malloc((size_t)64 * xrow);
            float *y = malloc((size_t)64 * M * 4);
            for (size_t i = 0; i < (size_t)64 * K; i++)
                xf[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
            for (int n = 0; n < 64; n++) {
                const float *xn = xf + (size_t)n * K;
                switch (k_act[type]) {
                case SD_TYPE_Q8_0: sd_kernels_ref()->quantize_row_q8_0(x + n * xrow, xn, K); break;
                case SD_TYPE_Q8_1: sd_quantize_row_q8_1(x + n * xrow, xn, K); break;
                case SD_TYPE_Q8_K: sd_quantize_row_q8_K(x + n * xrow, xn, K); break;
                default: memcpy(x + n * xrow, xn, xrow); break;
                }
            }
            for (int c = 0; c < copies; c++)
                for (int m = 0; m < M; m++) {
                    char *row = w + (size_t)c * wbytes + (size_t)m * wrow;
                    if (type == T_F32)
                        memcpy(row, xf + (size_t)(m % 64) * K, wrow);
                    else if (type == T_F16 || type == T_BF16)
                        for (int k = 0; k < K; k++) {
                            float v = xf[(size_t)(m % 64) * K + k];
                            uint16_t h = type == T_F16 ? sd_fp32_to_fp16(v) : sd_fp32_to_bf16(v);
                            memcpy(row + 2 * k, &h, 2);
                        }
                    else if (type == T_Q8)
                        sd_kernels_ref()->quantize_row_q8_0(row, xf + (size_t)(m % 64) * K, K);
                    else /* random quants, all half scales 2^-4 (0x2C00) */
                        for (size_t i = 0; i < wrow; i++)
                            row[i] = (i % 2 && (i / 2) % 9 == 0) ? 0x2C : (char)((i * 2654435761u) >> 13);
                }
            sd_gemm_fn f = gemm_of(t, type);
            double t1 = 0;
            for (size_t in = 0; in < sizeof Ns / sizeof *Ns; in++) {
                int N = Ns[in];
                /* warm up */
                for (int c = 0; c < copies && c < 4; c++)
                    f(y, (size_t)M, x, xrow, w + (size_t)c * wbytes, wrow, K, N, 0, M);
                /* the fastest single call over >= 0.2 s of calls: the
                 * machine may be shared, and a call that ran undisturbed
                 * is the kernel's own cost */
                double per = 1e30;
                int iters = 0;
                double tstart = now_s();
                do {
                    double t0 = now_s();
                    f(y, (size_t)M, x, xrow, w + (size_t)(iters % copies) * wbytes, wrow, K, N, 0, M);
                    double el = now_s() - t0;
                    if (el < per)
                        per = el;
                    iters++;
                } while (now_s() - tstart < 0.2 || iters < 20);
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
