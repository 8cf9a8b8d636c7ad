/*
 * test_quants.c - the quants.h block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q4_K,
 * Q5_K, Q6_K, BF16) and their activation formats (Q8_1, Q8_K).
 *
 *  1. Round trips: random rows quantized by this test's own round-to-
 *     nearest encoders (below; simpler than ggml's scale searches but valid
 *     encodings of the formats), dequantized by sd_dequantize_row: every
 *     value equals the encoder's own decode formula bit for bit, and
 *     |x - deq| <= 1.0 step (Q4_0/Q5_0: step = |d|, d = max/-8 leaves the
 *     opposite extreme a whole step off after clipping) or 0.5 step (Q4_1,
 *     Q5_1; k-quants: step = d*scale of the sub-block, scales rounded up),
 *     plus 2e-3 of the data scale for half-precision scale rounding; BF16
 *     half an ulp. RMS errors are printed.
 *  2. Real rows: rows of the llama.cpp-written Q4_K_M / Q6_K / Q4_0 files
 *     (Q4_K, Q5_0, Q6_K, Q4_0 and Q8_0 tensors) dequantized against the
 *     F16 model they were made from: relative RMS error below 0.12 (4-bit),
 *     0.06 (5-bit), 0.03 (6-bit), 0.01 (8-bit) - a layout bug gives ~1.4.
 *  3. Activation quantizers: Q8_1 quants/d equal Q8_0's and s = half(d *
 *     sum q); Q8_K |x - d q| <= |d|/2, the max-magnitude element maps to
 *     -127, bsums are the sums of 16 quants; zero blocks give d = 0.
 *  4. Gemms (random weight bytes with finite scales, random activations):
 *     every SIMD table (avx2, avx512, avx512vnni) equals the reference bit
 *     for bit (BF16: |err| <= 1e-5 sum|x w|, float vs double accumulation);
 *     the reference equals the double-precision dot of the dequantized
 *     operands within 1e-5 * sum|x w| (only float rounding differs), and
 *     with test-quantized weights the F32 dot of the unquantized data
 *     within sum_k (|x_k| e_w,k + |w_k| e_x,k + e_w,k e_x,k), e the
 *     quantization errors.
 *  5. Batch invariance, every table and type: rows computed for N = 1 and
 *     inside N = 8 (and N = 13) calls, and with [0, M) split at 16, at 5
 *     and row by row, are bit-identical (BF16 shares the F32/F16 tiles,
 *     whose contract is splits at multiples of 16: split at 16 and 32).
 *  6. round_bf16_row: SIMD byte-identical to the reference (ties, NaN).
 *  7. A BF16 model end to end: the F16 draft model rewritten with BF16
 *     matrices (token_embd included) loads, its batch of 8 equals 8 single
 *     decodes bit for bit with every table, and its logits stay close to
 *     the F16 model's (max |dlogit| <= 0.5, argmax equal on >= 90% of the
 *     positions of a real prompt).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "kernels/quants.h"
#include "model/model.h"
#include "util/check.h"
#include "util/tables.h"

/* ------------------------------------------------------------ rng */

typedef struct { uint64_t s; } rng_t;

static uint32_t rng_u32(rng_t *r) {
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    uint64_t x = r->s;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* uniform in [-1, 1) */
static float rng_f(rng_t *r) { return (float)((double)rng_u32(r) / 2147483648.0 - 1.0); }

/* ------------------------------------------------------------ test encoders */

/* Each encoder writes the row's blocks and, per element, the decoded value
 * its own formula gives (dec) and the step size (step). */
static int nearest(float v) { return (int)lrintf(v); }

/* Half of v >= 0 rounded up (super-block scales: quantized sub-block
 * scales never need more than 6 / 8 bits, even where the half is
 * subnormal). */
static uint16_t half_up(float v) {
    uint16_t h = sd_fp32_to_fp16(v);
    if (sd_fp16_to_fp32(h) < v) h++;
    return h;
}

static void enc_q4_0(const float *x, int K, void *out, float *dec, float *step) {
    sd_block_q4_0 *b = out;
    for (int i = 0; i < K / 32; i++) {
        const float *xb = x + 32 * i;
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(xb[j]) > amax) { amax = fabsf(xb[j]); max = xb[j]; }
        uint16_t dh = sd_fp32_to_fp16(max / -8.0f);
        float d = sd_fp16_to_fp32(dh), id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = dh;
        for (int j = 0; j < 16; j++) {
            int q0 = nearest(xb[j] * id) + 8, q1 = nearest(xb[j + 16] * id) + 8;
            q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
            q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
            dec[32 * i + j] = (float)(q0 - 8) * d;
            dec[32 * i + j + 16] = (float)(q1 - 8) * d;
        }
        for (int j = 0; j < 32; j++) step[32 * i + j] = fabsf(d);
    }
}

/* Q5_0 (offset 16, bits 32) or Q4_1/Q5_1 (min-based: levels 15 or 31). */
static void enc_q5_0(const float *x, int K, void *out, float *dec, float *step) {
    sd_block_q5_0 *b = out;
    for (int i = 0; i < K / 32; i++) {
        const float *xb = x + 32 * i;
        float amax = 0, max = 0;
        for (int j = 0; j < 32; j++)
            if (fabsf(xb[j]) > amax) { amax = fabsf(xb[j]); max = xb[j]; }
        uint16_t dh = sd_fp32_to_fp16(max / -16.0f);
        float d = sd_fp16_to_fp32(dh), id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = dh;
        uint32_t qh = 0;
        memset(b[i].qs, 0, 16);
        for (int j = 0; j < 32; j++) {
            int q = nearest(xb[j] * id) + 16;
            q = q < 0 ? 0 : q > 31 ? 31 : q;
            b[i].qs[j % 16] |= (uint8_t)((q & 15) << (j < 16 ? 0 : 4));
            qh |= (uint32_t)(q >> 4) << j;
            dec[32 * i + j] = (float)(q - 16) * d;
            step[32 * i + j] = fabsf(d);
        }
        memcpy(b[i].qh, &qh, 4);
    }
}

static void enc_q_1(const float *x, int K, void *out, float *dec, float *step, int bits) {
    const int levels = (1 << bits) - 1;
    for (int i = 0; i < K / 32; i++) {
        const float *xb = x + 32 * i;
        float mn = xb[0], mx = xb[0];
        for (int j = 1; j < 32; j++) {
            if (xb[j] < mn) mn = xb[j];
            if (xb[j] > mx) mx = xb[j];
        }
        uint16_t dh = sd_fp32_to_fp16((mx - mn) / (float)levels), mh = sd_fp32_to_fp16(mn);
        float d = sd_fp16_to_fp32(dh), m = sd_fp16_to_fp32(mh), id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t qs[16] = {0};
        uint32_t qh = 0;
        for (int j = 0; j < 32; j++) {
            int q = nearest((xb[j] - m) * id);
            q = q < 0 ? 0 : q > levels ? levels : q;
            qs[j % 16] |= (uint8_t)((q & 15) << (j < 16 ? 0 : 4));
            qh |= (uint32_t)(q >> 4) << j;
            float v = (float)q * d;
            dec[32 * i + j] = v + m;
            step[32 * i + j] = fabsf(d);
        }
        if (bits == 4) {
            sd_block_q4_1 *b = (sd_block_q4_1 *)out + i;
            b->d = dh; b->m = mh;
            memcpy(b->qs, qs, 16);
        } else {
            sd_block_q5_1 *b = (sd_block_q5_1 *)out + i;
            b->d = dh; b->m = mh;
            memcpy(b->qs, qs, 16);
            memcpy(b->qh, &qh, 4);
        }
    }
}
static void enc_q4_1(const float *x, int K, void *out, float *dec, float *step) { enc_q_1(x, K, out, dec, step, 4); }
static void enc_q5_1(const float *x, int K, void *out, float *dec, float *step) { enc_q_1(x, K, out, dec, step, 5); }

/* Q4_K / Q5_K: per sub-block of 32, range [min(0, mn), mx] -> scale s_j
 * and min m_j >= 0, both quantized to 6 bits against d / dmin. */
static void enc_qk45(const float *x, int K, void *out, float *dec, float *step, int bits) {
    const int levels = (1 << bits) - 1;
    for (int i = 0; i < K / SD_QK_K; i++) {
        const float *xs = x + SD_QK_K * i;
        /* mins first (rounded up, so x + min >= 0), then scales covering
         * the shifted range (rounded up: no clipping) */
        float lo[8], hi[8], mmax = 0;
        for (int j = 0; j < 8; j++) {
            lo[j] = 0.0f;
            hi[j] = 0.0f;
            for (int l = 0; l < 32; l++) {
                float v = xs[32 * j + l];
                if (v < lo[j]) lo[j] = v;
                if (v > hi[j]) hi[j] = v;
            }
            if (-lo[j] > mmax) mmax = -lo[j];
        }
        uint16_t dmh = half_up(mmax / 63.0f);
        float dmin = sd_fp16_to_fp32(dmh);
        uint8_t ls[8], lm[8], scales[12] = {0};
        float s[8], smax = 0;
        for (int j = 0; j < 8; j++) {
            int c = dmin > 0 ? (int)ceilf(-lo[j] / dmin) : 0;
            lm[j] = (uint8_t)(c < 0 ? 0 : c > 63 ? 63 : c);
            s[j] = (hi[j] + dmin * (float)lm[j]) / (float)levels;
            if (s[j] > smax) smax = s[j];
        }
        uint16_t dh = half_up(smax / 63.0f);
        float d = sd_fp16_to_fp32(dh);
        for (int j = 0; j < 8; j++) {
            int a = d > 0 ? (int)ceilf(s[j] / d) : 0;
            ls[j] = (uint8_t)(a < 0 ? 0 : a > 63 ? 63 : a);
            if (j < 4) {
                scales[j] = ls[j];
                scales[j + 4] = lm[j];
            } else {
                scales[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
                scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
                scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
            }
        }
        uint8_t qs[128] = {0}, qh[32] = {0};
        for (int j = 0; j < 8; j++) {
            float d1 = d * (float)ls[j], m1 = dmin * (float)lm[j];
            for (int l = 0; l < 32; l++) {
                int q = d1 > 0 ? nearest((xs[32 * j + l] + m1) / d1) : 0;
                q = q < 0 ? 0 : q > levels ? levels : q;
                qs[32 * (j / 2) + l] |= (uint8_t)((q & 15) << (j % 2 ? 4 : 0));
                qh[l] |= (uint8_t)((q >> 4) << j);
                float v = d1 * (float)q;
                dec[SD_QK_K * i + 32 * j + l] = v - m1;
                step[SD_QK_K * i + 32 * j + l] = d1 > 0 ? d1 : s[j];
            }
        }
        if (bits == 4) {
            sd_block_q4_K *b = (sd_block_q4_K *)out + i;
            b->d = dh; b->dmin = dmh;
            memcpy(b->scales, scales, 12);
            memcpy(b->qs, qs, 128);
        } else {
            sd_block_q5_K *b = (sd_block_q5_K *)out + i;
            b->d = dh; b->dmin = dmh;
            memcpy(b->scales, scales, 12);
            memcpy(b->qs, qs, 128);
            memcpy(b->qh, qh, 32);
        }
    }
}
static void enc_q4_K(const float *x, int K, void *out, float *dec, float *step) { enc_qk45(x, K, out, dec, step, 4); }
static void enc_q5_K(const float *x, int K, void *out, float *dec, float *step) { enc_qk45(x, K, out, dec, step, 5); }

/* Q6_K: per 16 elements s_j = amax/31, 8-bit scales against d. */
static void enc_q6_K(const float *x, int K, void *out, float *dec, float *step) {
    for (int i = 0; i < K / SD_QK_K; i++) {
        sd_block_q6_K *b = (sd_block_q6_K *)out + i;
        const float *xs = x + SD_QK_K * i;
        float s[16], smax = 0;
        for (int j = 0; j < 16; j++) {
            float a = 0;
            for (int l = 0; l < 16; l++) a = fmaxf(a, fabsf(xs[16 * j + l]));
            s[j] = a / 31.0f;
            smax = fmaxf(smax, s[j]);
        }
        b->d = half_up(smax / 127.0f);
        float d = sd_fp16_to_fp32(b->d);
        int q[256];
        for (int j = 0; j < 16; j++) {
            int sc = d > 0 ? (int)ceilf(s[j] / d) : 0; /* up: no clipping */
            b->scales[j] = (int8_t)(sc > 127 ? 127 : sc);
            float ds = d * (float)b->scales[j];
            for (int l = 0; l < 16; l++) {
                int v = ds > 0 ? nearest(xs[16 * j + l] / ds) : 0;
                v = v < -32 ? -32 : v > 31 ? 31 : v;
                q[16 * j + l] = v + 32;
                dec[SD_QK_K * i + 16 * j + l] = ds * (float)v;
                step[SD_QK_K * i + 16 * j + l] = ds > 0 ? ds : s[j];
            }
        }
        memset(b->ql, 0, sizeof b->ql);
        memset(b->qh, 0, sizeof b->qh);
        for (int n = 0; n < 2; n++)
            for (int l = 0; l < 32; l++) {
                const int *qn = q + 128 * n;
                uint8_t *ql = b->ql + 64 * n, *qh = b->qh + 32 * n;
                ql[l] = (uint8_t)((qn[l] & 15) | ((qn[l + 64] & 15) << 4));
                ql[l + 32] = (uint8_t)((qn[l + 32] & 15) | ((qn[l + 96] & 15) << 4));
                qh[l] = (uint8_t)((qn[l] >> 4) | ((qn[l + 32] >> 4) << 2) | ((qn[l + 64] >> 4) << 4) |
                                  ((qn[l + 96] >> 4) << 6));
            }
    }
}

static void enc_bf16(const float *x, int K, void *out, float *dec, float *step) {
    uint16_t *h = out;
    for (int k = 0; k < K; k++) {
        h[k] = sd_fp32_to_bf16(x[k]);
        dec[k] = sd_bf16_to_fp32(h[k]);
        step[k] = fabsf(x[k]) * (1.0f / 128.0f); /* >= one bf16 ulp of x */
    }
}

typedef void (*enc_fn)(const float *x, int K, void *out, float *dec, float *step);

typedef struct qtype {
    const char *name;
    int type, act;          /* weight type, activation format */
    enc_fn enc;
    double tol_steps;       /* round-trip bound in steps */
} qtype;

static const qtype k_types[] = {
    {"q4_0", SD_TYPE_Q4_0, SD_TYPE_Q8_0, enc_q4_0, 1.0},
    {"q4_1", SD_TYPE_Q4_1, SD_TYPE_Q8_1, enc_q4_1, 0.5},
    {"q5_0", SD_TYPE_Q5_0, SD_TYPE_Q8_0, enc_q5_0, 1.0},
    {"q5_1", SD_TYPE_Q5_1, SD_TYPE_Q8_1, enc_q5_1, 0.5},
    {"q4_K", SD_TYPE_Q4_K, SD_TYPE_Q8_K, enc_q4_K, 0.5},
    {"q5_K", SD_TYPE_Q5_K, SD_TYPE_Q8_K, enc_q5_K, 0.5},
    {"q6_K", SD_TYPE_Q6_K, SD_TYPE_Q8_K, enc_q6_K, 0.5},
    {"bf16", SD_TYPE_BF16, SD_TYPE_F32, enc_bf16, 0.5},
};
enum { N_TYPES = sizeof k_types / sizeof k_types[0] };

static size_t row_bytes(int type, int K) {
    return (size_t)(K / sd_quant_block_size(type)) * sd_quant_block_bytes(type);
}

static sd_gemm_fn gemm_of(const sd_kernels *k, int type) {
    switch (type) {
    case SD_TYPE_Q4_0: return k->gemm_q4_0;
    case SD_TYPE_Q4_1: return k->gemm_q4_1;
    case SD_TYPE_Q5_0: return k->gemm_q5_0;
    case SD_TYPE_Q5_1: return k->gemm_q5_1;
    case SD_TYPE_Q4_K: return k->gemm_q4_K;
    case SD_TYPE_Q5_K: return k->gemm_q5_K;
    case SD_TYPE_Q6_K: return k->gemm_q6_K;
    case SD_TYPE_BF16: return k->gemm_bf16;
    default: return NULL;
    }
}

/* x (K) -> activation row in format act (F32: rounded to BF16). */
static void quantize_act(int act, void *dst, const float *x, int K) {
    switch (act) {
    case SD_TYPE_Q8_0: sd_kernels_ref()->quantize_row_q8_0(dst, x, K); break;
    case SD_TYPE_Q8_1: sd_quantize_row_q8_1(dst, x, K); break;
    case SD_TYPE_Q8_K: sd_quantize_row_q8_K(dst, x, K); break;
    default:
        memcpy(dst, x, (size_t)K * sizeof(float));
        sd_round_bf16_row_ref(dst, (size_t)K);
        break;
    }
}

/* Dequantized activation row (Q8_0/Q8_1/Q8_K/F32). */
static void dequant_act(int act, float *y, const void *x, int K) {
    if (act == SD_TYPE_Q8_0) {
        sd_dequantize_row_q8_0(y, x, K);
    } else if (act == SD_TYPE_Q8_1) {
        const sd_block_q8_1 *b = x;
        for (int i = 0; i < K / 32; i++)
            for (int j = 0; j < 32; j++) y[32 * i + j] = sd_fp16_to_fp32(b[i].d) * (float)b[i].qs[j];
    } else if (act == SD_TYPE_Q8_K) {
        const sd_block_q8_K *b = x;
        for (int i = 0; i < K / 256; i++)
            for (int j = 0; j < 256; j++) y[256 * i + j] = b[i].d * (float)b[i].qs[j];
    } else {
        memcpy(y, x, (size_t)K * sizeof(float));
    }
}

static size_t act_bytes(int act, int K) {
    return act == SD_TYPE_F32 ? (size_t)K * sizeof(float) : row_bytes(act, K);
}

/* ------------------------------------------------------------ 1. round trips */

static void test_round_trip(void) {
    rng_t r = {11};
    const int K = 1024;
    float *x = malloc(K * sizeof(float)), *dec = malloc(K * sizeof(float));
    float *step = malloc(K * sizeof(float)), *y = malloc(K * sizeof(float));
    void *q = malloc(4 * (size_t)K);
    for (int ti = 0; ti < N_TYPES; ti++) {
        const qtype *T = &k_types[ti];
        double se = 0, sx = 0;
        int exact = 1, within = 1;
        for (int rep = 0; rep < 20; rep++) {
            float scale = rep % 3 == 0 ? 1e-3f : rep % 3 == 1 ? 1.0f : 50.0f;
            for (int k = 0; k < K; k++) {
                x[k] = rng_f(&r) * scale;
                if (rep % 4 == 3) x[k] = fabsf(x[k]); /* one-signed rows (min-based types) */
            }
            if (rep == 5) memset(x + 256, 0, 256 * sizeof(float)); /* a zero super-block */
            T->enc(x, K, q, dec, step);
            CHECK(sd_dequantize_row(T->type, y, q, K) == 0, "%s dequantize", T->name);
            for (int k = 0; k < K; k++) {
                if (memcmp(&y[k], &dec[k], 4) != 0) exact = 0;
                double e = fabs((double)x[k] - (double)y[k]);
                if (e > T->tol_steps * step[k] * (1 + 1e-5) + 2e-3 * scale) within = 0;
                se += e * e;
                sx += (double)x[k] * x[k];
            }
        }
        CHECK(exact, "%s: sd_dequantize_row differs from the encoder's decode", T->name);
        CHECK(within, "%s: round-trip error above %.1f steps", T->name, T->tol_steps);
        fprintf(stderr, "  round trip %-5s relative RMS error %.4f\n", T->name, sqrt(se / sx));
    }
    CHECK(sd_dequantize_row(SD_TYPE_Q2_K, y, q, 256) == -1, "q2_K not supported");
    free(x); free(dec); free(step); free(y); free(q);
}

/* ------------------------------------------------------------ 2. real rows */

static void test_real_rows(void) {
    char path[1024];
    sd_model_params p = sd_model_default_params();
    sd_model *ref = NULL, *qm = NULL;
    char err[256];
    snprintf(path, sizeof path, "%s/kernel-c-target.gguf", test_model_dir());
    if (sd_model_load(path, &p, &ref, err, sizeof err) != SD_OK) {
        CHECK(0, "load %s: %s", path, err);
        return;
    }
    const char *files[] = {"Q4_K_M", "Q6_K", "Q4_0", "Q8_0"};
    int seen[SD_TYPE_COUNT] = {0};
    for (int f = 0; f < 4; f++) {
        snprintf(path, sizeof path, "%s/quant/kernel-c-target-%s.gguf", test_model_dir(), files[f]);
        if (sd_model_load(path, &p, &qm, err, sizeof err) != SD_OK) {
            CHECK(0, "load %s: %s", path, err);
            continue;
        }
        for (int il = 0; il < ref->n_layer; il++) {
            const sd_weight *a[] = {&ref->layers[il].w_down, &ref->layers[il].wq, &ref->layers[il].w_gate};
            const sd_weight *b[] = {&qm->layers[il].w_down, &qm->layers[il].wq, &qm->layers[il].w_gate};
            for (int w = 0; w < 3; w++) {
                const int K = (int)a[w]->cols;
                float *ya = malloc((size_t)K * 4), *yb = malloc((size_t)K * 4);
                double se = 0, sx = 0;
                for (int row = 0; row < a[w]->rows; row += 37) {
                    sd_weight_get_row(a[w], row, ya);
                    sd_weight_get_row(b[w], row, yb);
                    for (int k = 0; k < K; k++) {
                        se += ((double)ya[k] - yb[k]) * ((double)ya[k] - yb[k]);
                        sx += (double)ya[k] * ya[k];
                    }
                }
                double rel = sqrt(se / sx);
                int t = b[w]->type;
                double tol = t == SD_TYPE_Q8_0 ? 0.01 : t == SD_TYPE_Q6_K ? 0.03
                             : (t == SD_TYPE_Q5_0 || t == SD_TYPE_Q5_K) ? 0.06 : 0.12;
                CHECK(rel < tol, "%s blk.%d %s (%s): relative RMS error %.4f vs F16", files[f], il,
                      w == 0 ? "ffn_down" : w == 1 ? "attn_q" : "ffn_gate", sd_type_name(t), rel);
                if (!seen[t]) {
                    fprintf(stderr, "  real rows %-5s (%s) relative RMS error vs F16 %.4f\n", sd_type_name(t),
                            files[f], rel);
                    seen[t] = 1;
                }
                free(ya);
                free(yb);
            }
        }
        sd_model_free(qm);
    }
    CHECK(seen[SD_TYPE_Q4_K] && seen[SD_TYPE_Q6_K] && seen[SD_TYPE_Q5_0] && seen[SD_TYPE_Q4_0],
          "the files hold Q4_K, Q6_K, Q5_0 and Q4_0 tensors");
    sd_model_free(ref);
}


/* Every table's quantize_row_q8_K equals the reference byte for byte
 * (forward.c quantizes every K-quant activation with it): random rows at
 * several scales, and blocks built to hit each rule: all zero, a NaN, an
 * infinity, the largest |x| twice with opposite signs (the first wins), a
 * negative maximum, exact .5 ties of iscale * x (round half to even),
 * denormals. Mutation check: the rule "first element with |x| = amax"
 * replaced by "last" fails the opposite-signs block. */
static void test_q8_K_tables(void) {
    rng_t r = {77};
    const char *names[] = {"ref", "avx2", "avx2vnni", "avx512", "avx512vnni"};
    enum { K = 1024, NB = K / 256 };
    static float x[K];
    static sd_block_q8_K want[NB], got[NB];
    for (int ti = 0; ti < 5; ti++) {
        /* avx2vnni (AVX2 + AVX-VNNI) is not in tables.c's list */
        const sd_kernels *k = ti == 2 ? sd_kernels_by_name(names[ti]) : test_kernel_table(names[ti]);
        if (!k && ti == 2) check_skip("kernel table avx2vnni: the CPU lacks AVX-VNNI (or a cap excludes it)");
        if (!k) continue; /* named skip */
        CHECK(k->quantize_row_q8_K != NULL, "%s: quantize_row_q8_K set", names[ti]);
        if (!k->quantize_row_q8_K) continue;
        int bad = 0;
        for (int rep = 0; rep < 200; rep++) {
            const float scale = rep % 5 == 0 ? 1e-30f : rep % 5 == 1 ? 1e3f : 1.0f;
            for (int i = 0; i < K; i++) x[i] = rng_f(&r) * scale;
            switch (rep % 8) {
            case 0: for (int i = 0; i < 256; i++) x[i] = 0.0f; break;
            case 1: x[17] = NAN; break;
            case 2: x[300] = INFINITY; break;
            case 3: x[40] = 9.0f; x[200] = -9.0f; x[600] = -9.0f; x[700] = 9.0f; break;
            case 4: x[5] = -7.0f; break;
            case 5: /* iscale = -127 / -127 = 1: x = k + 0.5 are exact ties */
                for (int i = 0; i < 256; i++) x[i] = (float)((i % 100) - 50) + 0.5f;
                x[255] = -127.0f;
                break;
            case 6: for (int i = 256; i < 512; i++) x[i] = (float)(i - 384) * 1e-40f; break; /* denormals */
            default: break;
            }
            sd_quantize_row_q8_K(want, x, K);
            memset(got, 0x5a, sizeof got);
            k->quantize_row_q8_K(got, x, K);
            if (memcmp(want, got, sizeof want) != 0) bad++;
        }
        CHECK(bad == 0, "%s: quantize_row_q8_K differs from the reference in %d of 200 rows", names[ti], bad);
    }
}

/* ------------------------------------------------------------ 3. activations */

static void test_act_quant(void) {
    rng_t r = {5};
    const int K = 512;
    float x[512];
    sd_block_q8_0 q0[16];
    sd_block_q8_1 q1[16];
    sd_block_q8_K qk[2];
    for (int rep = 0; rep < 50; rep++) {
        for (int k = 0; k < K; k++) x[k] = rng_f(&r) * (rep + 1) * 0.1f;
        if (rep == 3) memset(x, 0, 256 * sizeof(float));
        sd_kernels_ref()->quantize_row_q8_0(q0, x, K);
        sd_quantize_row_q8_1(q1, x, K);
        int ok1 = 1;
        for (int i = 0; i < K / 32; i++) ok1 &= q1[i].d == q0[i].d && memcmp(q1[i].qs, q0[i].qs, 32) == 0;
        /* s = half(d_float * sum), d_float = amax / 127 before rounding to half */
        for (int i = 0; i < K / 32; i++) {
            float amax = 0;
            int sum = 0;
            for (int j = 0; j < 32; j++) {
                amax = fmaxf(amax, fabsf(x[32 * i + j]));
                sum += q1[i].qs[j];
            }
            ok1 &= q1[i].s == sd_fp32_to_fp16((float)sum * (amax / 127.0f));
        }
        CHECK(ok1, "q8_1 equals q8_0 with s = d * sum (rep %d)", rep);
        sd_quantize_row_q8_K(qk, x, K);
        int okk = 1;
        for (int i = 0; i < 2; i++) {
            const float *xb = x + 256 * i;
            float amax = 0;
            for (int j = 0; j < 256; j++) amax = fmaxf(amax, fabsf(xb[j]));
            if (amax == 0) {
                okk &= qk[i].d == 0.0f;
                for (int j = 0; j < 256; j++) okk &= qk[i].qs[j] == 0;
                continue;
            }
            int has_m127 = 0;
            for (int j = 0; j < 256; j++) {
                okk &= fabsf(xb[j] - qk[i].d * (float)qk[i].qs[j]) <= 0.5001f * fabsf(qk[i].d);
                if (fabsf(xb[j]) == amax) has_m127 |= qk[i].qs[j] == -127;
            }
            okk &= has_m127 && fabsf(fabsf(qk[i].d) - amax / 127.0f) <= 1e-6f * amax;
            for (int j = 0; j < 16; j++) {
                int s = 0;
                for (int l = 0; l < 16; l++) s += qk[i].qs[16 * j + l];
                okk &= qk[i].bsums[j] == s;
            }
        }
        CHECK(okk, "q8_K properties (rep %d)", rep);
    }
}

/* ------------------------------------------------------------ 4, 5. gemms */

typedef struct gemm_case {
    int K, M, N;
    void *w;           /* (M) rows */
    size_t ws;
    void *x;           /* (N) activation rows */
    size_t xs;
    float *xf;         /* (N, K) unquantized activations */
    float *wf, *we;    /* (M, K) unquantized weights and their errors (test-quantized) */
} gemm_case;

/* Weights: random bytes with finite half scales (mode 0) or the test
 * encoder applied to random floats (mode 1). */
static void make_case(gemm_case *c, const qtype *T, int K, int M, int N, int mode, rng_t *r) {
    c->K = K; c->M = M; c->N = N;
    c->ws = row_bytes(T->type, K);
    c->w = malloc(c->ws * (size_t)M);
    c->wf = malloc((size_t)M * K * sizeof(float));
    c->we = malloc((size_t)M * K * sizeof(float));
    float *dec = malloc((size_t)K * sizeof(float)), *step = malloc((size_t)K * sizeof(float));
    for (int m = 0; m < M; m++) {
        char *wr = (char *)c->w + (size_t)m * c->ws;
        float *xf = c->wf + (size_t)m * K;
        if (mode == 0) {
            for (size_t i = 0; i < c->ws; i++) wr[i] = (char)rng_u32(r);
            /* scales: finite halves in [2^-14, 2) (BF16: finite values) */
            int bs = sd_quant_block_size(T->type);
            size_t bb = sd_quant_block_bytes(T->type);
            for (int b = 0; b < K / bs; b++) {
                char *blk = wr + (size_t)b * bb;
                uint16_t h = (uint16_t)(0x0400 + rng_u32(r) % 0x3800); /* sign 0 */
                if (rng_u32(r) & 1) h |= 0x8000;
                switch (T->type) {
                case SD_TYPE_Q4_0: case SD_TYPE_Q5_0: memcpy(blk, &h, 2); break;
                case SD_TYPE_Q4_1: case SD_TYPE_Q5_1: case SD_TYPE_Q4_K: case SD_TYPE_Q5_K: {
                    uint16_t h2 = (uint16_t)(0x0400 + rng_u32(r) % 0x3800);
                    memcpy(blk, &h, 2);
                    memcpy(blk + 2, &h2, 2);
                    break;
                }
                case SD_TYPE_Q6_K: memcpy(blk + 208, &h, 2); break;
                case SD_TYPE_BF16: {
                    uint16_t v = sd_fp32_to_bf16(rng_f(r));
                    memcpy(blk, &v, 2);
                    break;
                }
                default: break;
                }
            }
            sd_dequantize_row(T->type, xf, wr, K);
            memset(c->we + (size_t)m * K, 0, (size_t)K * sizeof(float));
        } else {
            for (int k = 0; k < K; k++) xf[k] = rng_f(r);
            T->enc(xf, K, wr, dec, step);
            for (int k = 0; k < K; k++) c->we[(size_t)m * K + k] = fabsf(xf[k] - dec[k]);
        }
    }
    c->xs = act_bytes(T->act, K);
    c->x = malloc(c->xs * (size_t)N);
    c->xf = malloc((size_t)N * K * sizeof(float));
    for (int n = 0; n < N; n++) {
        for (int k = 0; k < K; k++) c->xf[(size_t)n * K + k] = rng_f(r) * (n % 3 == 0 ? 3.0f : 0.5f);
        quantize_act(T->act, (char *)c->x + (size_t)n * c->xs, c->xf + (size_t)n * K, K);
    }
    free(dec);
    free(step);
}

static void free_case(gemm_case *c) {
    free(c->w); free(c->x); free(c->xf); free(c->wf); free(c->we);
}

/* y (N, M) = table's gemm over [m0, m1) for tokens [n0, n0 + nn). */
static void run_gemm(const sd_kernels *k, const qtype *T, const gemm_case *c, float *y, int n0, int nn,
                     int m0, int m1) {
    gemm_of(k, T->type)(y + (size_t)n0 * c->M, (size_t)c->M, (const char *)c->x + (size_t)n0 * c->xs, c->xs,
                        c->w, c->ws, c->K, nn, m0, m1);
}

static void test_gemms(void) {
    rng_t r = {2024};
    const sd_kernels *tabs[] = {test_kernel_table("avx2"), test_kernel_table("avx512"),
                                test_kernel_table("avx512vnni")};
    const int Ks[] = {256, 512, 1024};
    for (int ti = 0; ti < N_TYPES; ti++) {
        const qtype *T = &k_types[ti];
        for (int ki = 0; ki < 3; ki++)
            for (int mode = 0; mode < 2; mode++) {
                const int K = Ks[ki], M = 37, N = 13;
                gemm_case c;
                make_case(&c, T, K, M, N, mode, &r);
                float *yr = malloc((size_t)N * M * sizeof(float)), *ys = malloc((size_t)N * M * sizeof(float));
                run_gemm(sd_kernels_ref(), T, &c, yr, 0, N, 0, M);
                /* ref vs double math on dequantized operands; vs F32 on the
                 * unquantized data (mode 1) */
                float *wd = malloc((size_t)K * 4), *xd = malloc((size_t)K * 4);
                int ok_deq = 1, ok_f32 = 1;
                double worst = 0;
                for (int n = 0; n < N; n++) {
                    dequant_act(T->act, xd, (const char *)c.x + (size_t)n * c.xs, K);
                    for (int m = 0; m < M; m++) {
                        sd_dequantize_row(T->type, wd, (const char *)c.w + (size_t)m * c.ws, K);
                        double s = 0, sa = 0, sf = 0, bound = 0;
                        for (int k = 0; k < K; k++) {
                            s += (double)wd[k] * xd[k];
                            sa += fabs((double)wd[k] * xd[k]);
                            double xv = c.xf[(size_t)n * K + k], wv = c.wf[(size_t)m * K + k];
                            double ew = c.we[(size_t)m * K + k], ex = fabs(xv - xd[k]);
                            sf += xv * wv;
                            bound += fabs(xv) * ew + fabs(wv) * ex + ew * ex;
                        }
                        if (T->act == SD_TYPE_Q8_1) {
                            /* ggml's Q8_1 carries s = half(d * sum q) for the
                             * min term: use it as stored */
                            const sd_block_q8_1 *xb =
                                (const sd_block_q8_1 *)((const char *)c.x + (size_t)n * c.xs);
                            for (int b = 0; b < K / 32; b++) {
                                uint16_t mh;
                                memcpy(&mh, (const char *)c.w + (size_t)m * c.ws + (size_t)b * sd_quant_block_bytes(T->type) + 2, 2);
                                double mw = sd_fp16_to_fp32(mh), sx = 0;
                                for (int j = 0; j < 32; j++) sx += xd[32 * b + j];
                                s += mw * (sd_fp16_to_fp32(xb[b].s) - sx);
                            }
                        }
                        double got = yr[(size_t)n * M + m];
                        if (fabs(got - s) > 1e-5 * sa + 1e-30) ok_deq = 0;
                        if (mode == 1 && fabs(got - sf) > bound * 1.001 + 1e-5 * sa) ok_f32 = 0;
                        if (mode == 1 && fabs(got - sf) / (bound + 1e-30) > worst) worst = fabs(got - sf) / bound;
                    }
                }
                CHECK(ok_deq, "%s K=%d mode %d: ref != dequantized dot", T->name, K, mode);
                CHECK(ok_f32, "%s K=%d: ref outside the quantization bound of the F32 dot", T->name, K);
                for (int tb = 0; tb < 3; tb++) {
                    const sd_kernels *kt = tabs[tb];
                    if (!kt) continue;
                    memset(ys, 0, (size_t)N * M * sizeof(float));
                    run_gemm(kt, T, &c, ys, 0, N, 0, M);
                    if (T->type == SD_TYPE_BF16) {
                        int ok = 1;
                        for (int n = 0; n < N; n++)
                            for (int m = 0; m < M; m++) {
                                sd_dequantize_row(T->type, wd, (const char *)c.w + (size_t)m * c.ws, K);
                                const float *xr = (const float *)((const char *)c.x + (size_t)n * c.xs);
                                double sa = 0;
                                for (int k = 0; k < K; k++) sa += fabs((double)wd[k] * xr[k]);
                                ok &= fabs((double)ys[(size_t)n * M + m] - yr[(size_t)n * M + m]) <= 1e-5 * sa + 1e-30;
                            }
                        CHECK(ok, "%s %s K=%d: SIMD vs ref beyond 1e-5 sum|xw|", kt->name, T->name, K);
                    } else {
                        CHECK(memcmp(ys, yr, (size_t)N * M * sizeof(float)) == 0, "%s %s K=%d mode %d: SIMD != ref",
                              kt->name, T->name, K, mode);
                    }
                }
                /* batch invariance, every table including ref */
                const sd_kernels *all[] = {sd_kernels_ref(), tabs[0], tabs[1], tabs[2]};
                for (int tb = 0; tb < 4; tb++) {
                    const sd_kernels *kt = all[tb];
                    if (!kt) continue;
                    float *yf = malloc((size_t)N * M * sizeof(float));
                    run_gemm(kt, T, &c, yf, 0, N, 0, M); /* N = 13, whole */
                    int ok = 1;
                    /* N = 1 each token, split at 16 */
                    for (int n = 0; n < N; n++) {
                        run_gemm(kt, T, &c, ys, n, 1, 0, 16);
                        run_gemm(kt, T, &c, ys, n, 1, 16, M);
                    }
                    ok &= memcmp(ys, yf, (size_t)N * M * sizeof(float)) == 0;
                    /* N = 8 then 5; split at 5 (quants) or 32 (BF16: the
                     * F32/F16 tiles group rows from m0, so like F16 its
                     * contract is splits at multiples of 16) */
                    const int sp = T->type == SD_TYPE_BF16 ? 32 : 5;
                    run_gemm(kt, T, &c, ys, 0, 8, 0, sp);
                    run_gemm(kt, T, &c, ys, 0, 8, sp, M);
                    run_gemm(kt, T, &c, ys, 8, 5, 0, sp);
                    run_gemm(kt, T, &c, ys, 8, 5, sp, M);
                    ok &= memcmp(ys, yf, (size_t)N * M * sizeof(float)) == 0;
                    /* row by row (quants), tokens 3 + 10 */
                    const int rs = T->type == SD_TYPE_BF16 ? 16 : 1;
                    for (int m = 0; m < M; m += rs) {
                        int me = m + rs < M ? m + rs : M;
                        run_gemm(kt, T, &c, ys, 0, 3, m, me);
                        run_gemm(kt, T, &c, ys, 3, 10, m, me);
                    }
                    ok &= memcmp(ys, yf, (size_t)N * M * sizeof(float)) == 0;
                    CHECK(ok, "%s %s K=%d: not batch invariant", kt->name, T->name, K);
                    free(yf);
                }
                if (mode == 1 && ki == 2)
                    fprintf(stderr, "  gemm %-5s worst |ref - f32 dot| / quantization bound %.3f\n", T->name, worst);
                free(wd); free(xd); free(yr); free(ys);
                free_case(&c);
            }
    }
}

/* ------------------------------------------------------------ 6. bf16 rounding */

static void test_round_bf16(void) {
    rng_t r = {99};
    enum { n = 1000 };
    float a[n], b[n];
    for (int i = 0; i < n; i++) {
        uint32_t u = rng_u32(&r);
        if (i % 5 == 0) u = (u & 0xffff0000u) | 0x8000u;     /* exact tie */
        if (i % 7 == 0) u = 0x7f800001u | (u & 0x80000000u); /* NaN */
        if (i % 11 == 0) u = 0x7f7fffffu;                     /* rounds to inf */
        memcpy(&a[i], &u, 4);
        b[i] = a[i];
    }
    sd_round_bf16_row_ref(a, n);
    const sd_kernels *tabs[] = {test_kernel_table("avx2"), test_kernel_table("avx512")};
    for (int t = 0; t < 2; t++) {
        if (!tabs[t]) continue;
        float c[n];
        memcpy(c, b, sizeof c);
        tabs[t]->round_bf16_row(c, n);
        CHECK(memcmp(a, c, sizeof c) == 0, "%s round_bf16_row != ref", tabs[t]->name);
    }
    /* ties to even: 1 + 2^-8 (tie between 1 and 1 + 2^-7) -> 1 */
    float t1 = 1.0f + 1.0f / 256.0f;
    sd_round_bf16_row_ref(&t1, 1);
    CHECK(t1 == 1.0f, "bf16 tie to even");
}

/* ------------------------------------------------------------ 7. BF16 model */

/* Minimal GGUF walk over a trusted file (the shipped draft): skips one kv
 * value of type t at *p. */
static int skip_val(const uint8_t *b, size_t n, size_t *p, uint32_t t) {
    static const int sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (t > 12) return -1;
    if (t == 8) {
        uint64_t len;
        if (*p + 8 > n) return -1;
        memcpy(&len, b + *p, 8);
        *p += 8 + len;
        return *p <= n ? 0 : -1;
    }
    if (t == 9) {
        uint32_t et;
        uint64_t cnt;
        if (*p + 12 > n) return -1;
        memcpy(&et, b + *p, 4);
        memcpy(&cnt, b + *p + 4, 8);
        *p += 12;
        for (uint64_t i = 0; i < cnt; i++)
            if (skip_val(b, n, p, et)) return -1;
        return 0;
    }
    *p += (size_t)sz[t];
    return *p <= n ? 0 : -1;
}

/* Rewrites every F16 tensor of the GGUF image b (n bytes) as BF16 (same
 * size: the type id and the data change). Returns the number converted or
 * -1. */
static int gguf_f16_to_bf16(uint8_t *b, size_t n) {
    size_t p = 8;
    uint64_t nt, nkv;
    uint32_t align = 32;
    memcpy(&nt, b + p, 8);
    memcpy(&nkv, b + p + 8, 8);
    p += 16;
    for (uint64_t i = 0; i < nkv; i++) {
        uint64_t kl;
        memcpy(&kl, b + p, 8);
        int is_align = kl == 17 && memcmp(b + p + 8, "general.alignment", 17) == 0;
        p += 8 + kl;
        uint32_t t;
        memcpy(&t, b + p, 4);
        p += 4;
        if (is_align) memcpy(&align, b + p, 4);
        if (skip_val(b, n, &p, t)) return -1;
    }
    enum { MAXT = 64 };
    size_t type_at[MAXT];
    uint64_t off[MAXT], nel[MAXT];
    if (nt > MAXT) return -1;
    for (uint64_t i = 0; i < nt; i++) {
        uint64_t nl;
        uint32_t nd;
        memcpy(&nl, b + p, 8);
        p += 8 + nl;
        memcpy(&nd, b + p, 4);
        p += 4;
        nel[i] = 1;
        for (uint32_t d = 0; d < nd; d++, p += 8) {
            uint64_t ne;
            memcpy(&ne, b + p, 8);
            nel[i] *= ne;
        }
        type_at[i] = p;
        memcpy(&off[i], b + p + 4, 8);
        p += 12;
    }
    size_t data = (p + align - 1) / align * align;
    int conv = 0;
    for (uint64_t i = 0; i < nt; i++) {
        uint32_t t;
        memcpy(&t, b + type_at[i], 4);
        if (t != SD_TYPE_F16) continue;
        if (data + off[i] + 2 * nel[i] > n) return -1;
        t = SD_TYPE_BF16;
        memcpy(b + type_at[i], &t, 4);
        uint16_t *h = (uint16_t *)(b + data + off[i]);
        for (uint64_t k = 0; k < nel[i]; k++) {
            uint16_t v;
            memcpy(&v, &h[k], 2);
            v = sd_fp32_to_bf16(sd_fp16_to_fp32(v));
            memcpy(&h[k], &v, 2);
        }
        conv++;
    }
    return conv;
}

static void test_bf16_model(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/kernel-c-draft.gguf", test_model_dir());
    size_t n = 0;
    uint8_t *img = (uint8_t *)test_read_file(path, &n);
    CHECK(img != NULL, "read %s", path);
    if (!img) return;
    int conv = gguf_f16_to_bf16(img, n);
    CHECK(conv > 3, "converted %d F16 tensors to BF16", conv);
    char tmp[] = "/tmp/test_quants_bf16_XXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0 && write(fd, img, n) == (ssize_t)n, "write %s", tmp);
    if (fd >= 0) close(fd);
    free(img);
    sd_model_params mp = sd_model_default_params();
    sd_model *f16 = NULL, *bf = NULL;
    char err[256];
    CHECK(sd_model_load(path, &mp, &f16, err, sizeof err) == SD_OK, "load f16: %s", err);
    const int NT = 24, V = 8192;
    float *ref = malloc((size_t)NT * V * sizeof(float));
    uint8_t out[24];
    memset(out, 1, sizeof out);
    sd_threadpool *pool = NULL;
    sd_threadpool_new(2, &pool);
    sd_ctx_params cp = sd_ctx_default_params();
    cp.pool = pool;
    sd_ctx *c = NULL;
    int32_t tk[64];
    const char *text = "static int btrfs_check_leaf(struct extent_buffer *leaf)\n{\n\tstruct btrfs_fs_info *fs_info";
    int nt = f16 ? sd_tokenize(sd_model_vocab(f16), text, strlen(text), tk, 64, true, false) : 0;
    CHECK(nt >= NT, "prompt tokens %d", nt);
    if (f16 && sd_ctx_new(f16, &cp, &c) == SD_OK) {
        sd_batch b = sd_batch_simple(tk, NT);
        b.output = out;
        CHECK(sd_ctx_decode(c, &b) == SD_OK, "f16 decode");
        for (int i = 0; i < NT; i++) memcpy(ref + (size_t)i * V, sd_ctx_logits(c, i), (size_t)V * sizeof(float));
        sd_ctx_free(c);
    }
    const sd_backend backends[4] = {SD_BACKEND_REF, SD_BACKEND_AVX2, SD_BACKEND_AVX512, SD_BACKEND_AUTO};
    for (int bi = 0; bi < 4; bi++) {
        if (!test_backend_here(backends[bi])) continue; /* named skip */
        mp.backend = backends[bi];
        bf = NULL;
        CHECK(sd_model_load(tmp, &mp, &bf, err, sizeof err) == SD_OK, "load bf16: %s", err);
        if (!bf) continue;
        sd_model_info info;
        sd_model_get_info(bf, &info);
        CHECK(info.weight_type == SD_TYPE_BF16, "weight type %d", info.weight_type);
        c = NULL;
        if (sd_ctx_new(bf, &cp, &c) != SD_OK) {
            sd_model_free(bf);
            continue;
        }
        sd_batch b = sd_batch_simple(tk, NT);
        b.output = out;
        CHECK(sd_ctx_decode(c, &b) == SD_OK, "bf16 decode");
        float *batched = malloc((size_t)NT * V * sizeof(float));
        for (int i = 0; i < NT; i++) memcpy(batched + (size_t)i * V, sd_ctx_logits(c, i), (size_t)V * sizeof(float));
        double worst = 0;
        int same_argmax = 0;
        for (int i = 0; i < NT; i++) {
            int a = 0, r = 0;
            for (int v = 0; v < V; v++) {
                double d = fabs((double)batched[(size_t)i * V + v] - ref[(size_t)i * V + v]);
                if (d > worst) worst = d;
                if (batched[(size_t)i * V + v] > batched[(size_t)i * V + a]) a = v;
                if (ref[(size_t)i * V + v] > ref[(size_t)i * V + r]) r = v;
            }
            same_argmax += a == r;
        }
        CHECK(worst <= 0.5 && same_argmax * 10 >= NT * 9, "%s: bf16 vs f16 logits: max diff %.3f, argmax %d/%d",
              sd_backend_name(backends[bi]), worst, same_argmax, NT);
        if (bi == 3)
            fprintf(stderr, "  bf16 draft model vs f16: max |dlogit| %.4f, argmax equal %d/%d\n", worst, same_argmax, NT);
        /* the last 8 tokens one by one: bit-identical to the batch */
        sd_ctx_kv_truncate(c, NT - 8);
        int ok = 1;
        for (int i = NT - 8; i < NT; i++) {
            sd_batch one = sd_batch_simple(&tk[i], 1);
            ok &= sd_ctx_decode(c, &one) == SD_OK &&
                  memcmp(sd_ctx_logits(c, 0), batched + (size_t)i * V, (size_t)V * sizeof(float)) == 0;
        }
        CHECK(ok, "%s: bf16 model not batch invariant", sd_backend_name(backends[bi]));
        free(batched);
        sd_ctx_free(c);
        sd_model_free(bf);
    }
    sd_threadpool_free(pool);
    sd_model_free(f16);
    free(ref);
    unlink(tmp);
}

int main(void) {
    test_round_trip();
    test_act_quant();
    test_q8_K_tables();
    test_round_bf16();
    test_gemms();
    test_real_rows();
    test_bf16_model();
    return check_report("test_quants");
}
