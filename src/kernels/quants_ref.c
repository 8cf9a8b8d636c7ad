/*
 * quants_ref.c - scalar reference gemms, dequantization and activation
 * quantizers of the block formats in quants.h. The dot-product semantics
 * (accumulation order) are defined in quants.h; the SIMD kernels
 * (quants_avx2.c) reproduce these results bit for bit
 * (tests/test_quants.c).
 *
 * Compiled without ISA flags. fmaf is called explicitly where the
 * semantics need a fused multiply-add (libm's is correctly rounded, like
 * vfmadd), and every other float operation is its own statement, so no
 * compiler contracts differently here and in the SIMD files.
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/quants.h"

static const void *row_at(const void *base, size_t stride, int i) {
    return (const char *)base + (size_t)i * stride;
}

/* ------------------------------------------------------------ unpacking */

/* Signed quants of one 32-element block, element order. */
static void unpack_q4_0(const sd_block_q4_0 *b, int8_t q[32]) {
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)((b->qs[j] & 0x0F) - 8);
        q[j + 16] = (int8_t)((b->qs[j] >> 4) - 8);
    }
}

/* Unsigned quants (0..15) of a Q4_1 block. */
static void unpack_q4_1(const sd_block_q4_1 *b, int8_t q[32]) {
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)(b->qs[j] & 0x0F);
        q[j + 16] = (int8_t)(b->qs[j] >> 4);
    }
}

/* 5-bit quants: low nibbles in qs, the 5th bit of element j is bit j of qh
 * (ggml's dequantize_row_q5_0/1); offset 16 for Q5_0, 0 for Q5_1. */
static void unpack_q5(const uint8_t qs[16], const uint8_t qh4[4], int off, int8_t q[32]) {
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    for (int j = 0; j < 16; j++) {
        int h0 = (int)((qh >> j) & 1u) << 4;
        int h1 = (int)((qh >> (j + 16)) & 1u) << 4;
        q[j] = (int8_t)(((qs[j] & 0x0F) | h0) - off);
        q[j + 16] = (int8_t)(((qs[j] >> 4) | h1) - off);
    }
}

/* Q4_K/Q5_K super-block: quants q[256] (0..31) and 8 (scale, min). */
static void unpack_q4_K(const sd_block_q4_K *b, int8_t q[256], uint8_t sc[8], uint8_t mn[8]) {
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 32; l++) {
            q[64 * k + l] = (int8_t)(b->qs[32 * k + l] & 0x0F);
            q[64 * k + 32 + l] = (int8_t)(b->qs[32 * k + l] >> 4);
        }
    for (int j = 0; j < 8; j++) sd_scale_min_k4(j, b->scales, &sc[j], &mn[j]);
}

static void unpack_q5_K(const sd_block_q5_K *b, int8_t q[256], uint8_t sc[8], uint8_t mn[8]) {
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 32; l++) {
            int h0 = ((b->qh[l] >> (2 * k)) & 1) << 4;
            int h1 = ((b->qh[l] >> (2 * k + 1)) & 1) << 4;
            q[64 * k + l] = (int8_t)((b->qs[32 * k + l] & 0x0F) | h0);
            q[64 * k + 32 + l] = (int8_t)((b->qs[32 * k + l] >> 4) | h1);
        }
    for (int j = 0; j < 8; j++) sd_scale_min_k4(j, b->scales, &sc[j], &mn[j]);
}

/* Q6_K super-block: signed quants q[256] (-32..31), ggml's layout: per
 * half of 128, element l (< 32) takes ql[l] low, l+32 ql[l+32] low, l+64
 * ql[l] high, l+96 ql[l+32] high nibble, with 2 bits of qh[l] each. */
static void unpack_q6_K(const sd_block_q6_K *b, int8_t q[256]) {
    const uint8_t *ql = b->ql, *qh = b->qh;
    for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; l++) {
            q[n + l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            q[n + l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            q[n + l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            q[n + l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
        ql += 64;
        qh += 32;
    }
}

/* ------------------------------------------------------------ dequantize */

int sd_quant_block_size(int type) {
    switch (type) {
    case SD_TYPE_F32: case SD_TYPE_F16: case SD_TYPE_BF16: return 1;
    case SD_TYPE_Q4_0: case SD_TYPE_Q4_1: case SD_TYPE_Q5_0: case SD_TYPE_Q5_1:
    case SD_TYPE_Q8_0: case SD_TYPE_Q8_1: return 32;
    case SD_TYPE_Q4_K: case SD_TYPE_Q5_K: case SD_TYPE_Q6_K: case SD_TYPE_Q8_K: return SD_QK_K;
    default: return 0;
    }
}

size_t sd_quant_block_bytes(int type) {
    switch (type) {
    case SD_TYPE_F32: return 4;
    case SD_TYPE_F16: case SD_TYPE_BF16: return 2;
    case SD_TYPE_Q4_0: return sizeof(sd_block_q4_0);
    case SD_TYPE_Q4_1: return sizeof(sd_block_q4_1);
    case SD_TYPE_Q5_0: return sizeof(sd_block_q5_0);
    case SD_TYPE_Q5_1: return sizeof(sd_block_q5_1);
    case SD_TYPE_Q8_0: return sizeof(sd_block_q8_0);
    case SD_TYPE_Q8_1: return sizeof(sd_block_q8_1);
    case SD_TYPE_Q4_K: return sizeof(sd_block_q4_K);
    case SD_TYPE_Q5_K: return sizeof(sd_block_q5_K);
    case SD_TYPE_Q6_K: return sizeof(sd_block_q6_K);
    case SD_TYPE_Q8_K: return sizeof(sd_block_q8_K);
    default: return 0;
    }
}

/* y (K) = row x (K elements of type) as floats, ggml's dequantize_row_*
 * arithmetic (d*q, d*q + m, d*sc*q - dmin*m in float). */
int sd_dequantize_row(int type, float *y, const void *x, int K) {
    int8_t q[256];
    switch (type) {
    case SD_TYPE_F32:
        memcpy(y, x, (size_t)K * sizeof(float));
        return 0;
    case SD_TYPE_F16:
        for (int i = 0; i < K; i++) {
            uint16_t h;
            memcpy(&h, (const char *)x + 2 * (size_t)i, 2);
            y[i] = sd_fp16_to_fp32(h);
        }
        return 0;
    case SD_TYPE_BF16:
        for (int i = 0; i < K; i++) {
            uint16_t h;
            memcpy(&h, (const char *)x + 2 * (size_t)i, 2);
            y[i] = sd_bf16_to_fp32(h);
        }
        return 0;
    case SD_TYPE_Q8_0:
        sd_dequantize_row_q8_0(y, x, K);
        return 0;
    case SD_TYPE_Q4_0:
        for (int i = 0; i < K / 32; i++) {
            const sd_block_q4_0 *b = (const sd_block_q4_0 *)x + i;
            float d = sd_fp16_to_fp32(b->d);
            unpack_q4_0(b, q);
            for (int j = 0; j < 32; j++) y[32 * i + j] = (float)q[j] * d;
        }
        return 0;
    case SD_TYPE_Q4_1:
        for (int i = 0; i < K / 32; i++) {
            const sd_block_q4_1 *b = (const sd_block_q4_1 *)x + i;
            float d = sd_fp16_to_fp32(b->d), m = sd_fp16_to_fp32(b->m);
            unpack_q4_1(b, q);
            for (int j = 0; j < 32; j++) {
                float v = (float)q[j] * d;
                y[32 * i + j] = v + m;
            }
        }
        return 0;
    case SD_TYPE_Q5_0:
        for (int i = 0; i < K / 32; i++) {
            const sd_block_q5_0 *b = (const sd_block_q5_0 *)x + i;
            float d = sd_fp16_to_fp32(b->d);
            unpack_q5(b->qs, b->qh, 16, q);
            for (int j = 0; j < 32; j++) y[32 * i + j] = (float)q[j] * d;
        }
        return 0;
    case SD_TYPE_Q5_1:
        for (int i = 0; i < K / 32; i++) {
            const sd_block_q5_1 *b = (const sd_block_q5_1 *)x + i;
            float d = sd_fp16_to_fp32(b->d), m = sd_fp16_to_fp32(b->m);
            unpack_q5(b->qs, b->qh, 0, q);
            for (int j = 0; j < 32; j++) {
                float v = (float)q[j] * d;
                y[32 * i + j] = v + m;
            }
        }
        return 0;
    case SD_TYPE_Q4_K:
    case SD_TYPE_Q5_K:
        for (int i = 0; i < K / SD_QK_K; i++) {
            uint8_t sc[8], mn[8];
            uint16_t dh, dmh;
            if (type == SD_TYPE_Q4_K) {
                const sd_block_q4_K *b = (const sd_block_q4_K *)x + i;
                unpack_q4_K(b, q, sc, mn);
                dh = b->d;
                dmh = b->dmin;
            } else {
                const sd_block_q5_K *b = (const sd_block_q5_K *)x + i;
                unpack_q5_K(b, q, sc, mn);
                dh = b->d;
                dmh = b->dmin;
            }
            float d = sd_fp16_to_fp32(dh), dmin = sd_fp16_to_fp32(dmh);
            for (int j = 0; j < 8; j++) {
                float d1 = d * (float)sc[j];
                float m1 = dmin * (float)mn[j];
                for (int l = 0; l < 32; l++) {
                    float v = d1 * (float)q[32 * j + l];
                    y[SD_QK_K * i + 32 * j + l] = v - m1;
                }
            }
        }
        return 0;
    case SD_TYPE_Q6_K:
        for (int i = 0; i < K / SD_QK_K; i++) {
            const sd_block_q6_K *b = (const sd_block_q6_K *)x + i;
            float d = sd_fp16_to_fp32(b->d);
            unpack_q6_K(b, q);
            for (int j = 0; j < 16; j++) {
                float ds = d * (float)b->scales[j];
                for (int l = 0; l < 16; l++) y[SD_QK_K * i + 16 * j + l] = ds * (float)q[16 * j + l];
            }
        }
        return 0;
    default:
        return -1;
    }
}

/* ------------------------------------------------------------ activations */

/* roundf as int8, NaN -> 0, clamped to +-127 (kernels_ref.c's q8_round). */
static int8_t round_q8(float v) {
    float q = roundf(v);
    if (q != q) return 0;
    if (q > 127.0f) q = 127.0f;
    if (q < -127.0f) q = -127.0f;
    return (int8_t)q;
}

/* ggml's quantize_row_q8_1_ref: the Q8_0 quants and d, s = d * sum(qs). */
void sd_quantize_row_q8_1(void *dst, const float *x, int K) {
    sd_block_q8_1 *y = (sd_block_q8_1 *)dst;
    for (int i = 0; i < K / SD_QK8_1; i++) {
        const float *xb = x + i * SD_QK8_1;
        float amax = 0.0f;
        for (int j = 0; j < SD_QK8_1; j++) {
            float v = fabsf(xb[j]);
            if (v > amax) amax = v;
        }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int j = 0; j < SD_QK8_1; j++) {
            y[i].qs[j] = round_q8(xb[j] * id);
            sum += y[i].qs[j];
        }
        y[i].d = sd_fp32_to_fp16(d);
        y[i].s = sd_fp32_to_fp16((float)sum * d);
    }
}

/* Round half to even via the float magic number (ggml's nearest_int);
 * |v| <= 2^22. */
static int nearest_int(float v) {
    float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

/* ggml's quantize_row_q8_K_ref: scale from the signed element of largest
 * magnitude (iscale = -127/max), nearest-even, clamp at +127, bsums. An
 * all-zero (or NaN-only) block gives d = 0 and zero quants; NaN elements
 * give 0. */
void sd_quantize_row_q8_K(void *dst, const float *x, int K) {
    sd_block_q8_K *y = (sd_block_q8_K *)dst;
    for (int i = 0; i < K / SD_QK_K; i++) {
        const float *xb = x + i * SD_QK_K;
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < SD_QK_K; j++) {
            float ax = fabsf(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        memset(y[i].bsums, 0, sizeof y[i].bsums);
        if (amax == 0.0f || !isfinite(amax)) {
            y[i].d = 0.0f;
            memset(y[i].qs, 0, SD_QK_K);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < SD_QK_K; j++) {
            float v = iscale * xb[j];
            int q = v == v ? nearest_int(v) : 0;
            y[i].qs[j] = (int8_t)(q < 127 ? q : 127);
        }
        for (int j = 0; j < SD_QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ------------------------------------------------------------ dots */

/* The 8-lane block accumulation (quants.h): acc[i] += p_i * d, p_i the
 * exact sum of 4 consecutive products. */
static void lanes_add(float acc[8], const int8_t qw[32], const int8_t qx[32], float d) {
    for (int i = 0; i < 8; i++) {
        int32_t p = 0;
        for (int e = 4 * i; e < 4 * i + 4; e++) p += (int32_t)qw[e] * (int32_t)qx[e];
        acc[i] = fmaf((float)p, d, acc[i]);
    }
}

/* ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)): the SIMD horizontal sum order. */
static float lanes_sum(const float a[8]) {
    float s0 = a[0] + a[4], s1 = a[1] + a[5], s2 = a[2] + a[6], s3 = a[3] + a[7];
    float t0 = s0 + s2, t1 = s1 + s3;
    return t0 + t1;
}

/* Q4_0 / Q5_0 (as Q8_0 in kernels_ref.c, and as ggml's scalar code): an
 * exact int32 sum per block, then sumf += sumi * (d_w * d_x) in float,
 * blocks in order. */
static float blocks32_dot(float sumf, const int8_t qw[32], const int8_t qx[32], float d) {
    int32_t p = 0;
    for (int e = 0; e < 32; e++) p += (int32_t)qw[e] * (int32_t)qx[e];
    const float t = (float)p * d; /* its own statement: never contracted */
    return sumf + t;
}

static float dot_q4_0_ref(const sd_block_q4_0 *w, const sd_block_q8_0 *x, int nb) {
    float sumf = 0.0f;
    int8_t q[32];
    for (int b = 0; b < nb; b++) {
        unpack_q4_0(&w[b], q);
        sumf = blocks32_dot(sumf, q, x[b].qs, sd_fp16_to_fp32(w[b].d) * sd_fp16_to_fp32(x[b].d));
    }
    return sumf;
}

static float dot_q5_0_ref(const sd_block_q5_0 *w, const sd_block_q8_0 *x, int nb) {
    float sumf = 0.0f;
    int8_t q[32];
    for (int b = 0; b < nb; b++) {
        unpack_q5(w[b].qs, w[b].qh, 16, q);
        sumf = blocks32_dot(sumf, q, x[b].qs, sd_fp16_to_fp32(w[b].d) * sd_fp16_to_fp32(x[b].d));
    }
    return sumf;
}

static float dot_q4_1_ref(const sd_block_q4_1 *w, const sd_block_q8_1 *x, int nb) {
    float acc[8] = {0}, summs = 0.0f;
    int8_t q[32];
    for (int b = 0; b < nb; b++) {
        unpack_q4_1(&w[b], q);
        float d = sd_fp16_to_fp32(w[b].d) * sd_fp16_to_fp32(x[b].d);
        lanes_add(acc, q, x[b].qs, d);
        summs = fmaf(sd_fp16_to_fp32(w[b].m), sd_fp16_to_fp32(x[b].s), summs);
    }
    float s = lanes_sum(acc);
    return s + summs;
}

static float dot_q5_1_ref(const sd_block_q5_1 *w, const sd_block_q8_1 *x, int nb) {
    float acc[8] = {0}, summs = 0.0f;
    int8_t q[32];
    for (int b = 0; b < nb; b++) {
        unpack_q5(w[b].qs, w[b].qh, 0, q);
        float d = sd_fp16_to_fp32(w[b].d) * sd_fp16_to_fp32(x[b].d);
        lanes_add(acc, q, x[b].qs, d);
        summs = fmaf(sd_fp16_to_fp32(w[b].m), sd_fp16_to_fp32(x[b].s), summs);
    }
    float s = lanes_sum(acc);
    return s + summs;
}

/* Super-block tail of the k-quant dots: sumf += (dd*isum) - (dm*summ). */
static float kq_add(float sumf, float dd, int32_t isum, float dm, int32_t summ) {
    float a = dd * (float)isum;
    float b = dm * (float)summ;
    float t = a - b;
    return sumf + t;
}

/* Q4_K/Q5_K (q from unpack_q4_K / unpack_q5_K) against one Q8_K block. */
static float kq45_block(float sumf, const int8_t q[256], const uint8_t sc[8], const uint8_t mn[8],
                        uint16_t dh, uint16_t dmh, const sd_block_q8_K *x) {
    int32_t isum = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
        int32_t s = 0;
        for (int l = 0; l < 32; l++) s += (int32_t)q[32 * j + l] * (int32_t)x->qs[32 * j + l];
        isum += (int32_t)sc[j] * s;
        summ += (int32_t)mn[j] * ((int32_t)x->bsums[2 * j] + (int32_t)x->bsums[2 * j + 1]);
    }
    float dd = sd_fp16_to_fp32(dh) * x->d;
    float dm = sd_fp16_to_fp32(dmh) * x->d;
    return kq_add(sumf, dd, isum, dm, summ);
}

static float dot_q4_K_ref(const sd_block_q4_K *w, const sd_block_q8_K *x, int nb) {
    float sumf = 0.0f;
    int8_t q[256];
    uint8_t sc[8], mn[8];
    for (int b = 0; b < nb; b++) {
        unpack_q4_K(&w[b], q, sc, mn);
        sumf = kq45_block(sumf, q, sc, mn, w[b].d, w[b].dmin, &x[b]);
    }
    return sumf;
}

static float dot_q5_K_ref(const sd_block_q5_K *w, const sd_block_q8_K *x, int nb) {
    float sumf = 0.0f;
    int8_t q[256];
    uint8_t sc[8], mn[8];
    for (int b = 0; b < nb; b++) {
        unpack_q5_K(&w[b], q, sc, mn);
        sumf = kq45_block(sumf, q, sc, mn, w[b].d, w[b].dmin, &x[b]);
    }
    return sumf;
}

static float dot_q6_K_ref(const sd_block_q6_K *w, const sd_block_q8_K *x, int nb) {
    float sumf = 0.0f;
    int8_t q[256];
    for (int b = 0; b < nb; b++) {
        unpack_q6_K(&w[b], q);
        int32_t isum = 0;
        for (int j = 0; j < 16; j++) {
            int32_t s = 0;
            for (int l = 0; l < 16; l++) s += (int32_t)q[16 * j + l] * (int32_t)x[b].qs[16 * j + l];
            isum += (int32_t)w[b].scales[j] * s;
        }
        float dd = sd_fp16_to_fp32(w[b].d) * x[b].d;
        sumf = kq_add(sumf, dd, isum, 0.0f, 0);
    }
    return sumf;
}

/* ------------------------------------------------------------ gemms */

/* y (N, ldy) [:, m0:m1] = x (N rows of the activation format) * W^T. */
#define GEMM_REF(NAME, WT, XT, DOT, QK)                                                    \
    void NAME(float *y, size_t ldy, const void *x, size_t x_stride, const void *w,          \
              size_t w_stride, int K, int N, int m0, int m1) {                              \
        for (int n = 0; n < N; n++) {                                                       \
            const XT *xn = (const XT *)row_at(x, x_stride, n);                              \
            for (int m = m0; m < m1; m++)                                                   \
                y[(size_t)n * ldy + (size_t)m] = DOT((const WT *)row_at(w, w_stride, m), xn, \
                                                     K / (QK));                             \
        }                                                                                   \
    }

GEMM_REF(sd_gemm_q4_0_ref, sd_block_q4_0, sd_block_q8_0, dot_q4_0_ref, 32)
GEMM_REF(sd_gemm_q4_1_ref, sd_block_q4_1, sd_block_q8_1, dot_q4_1_ref, 32)
GEMM_REF(sd_gemm_q5_0_ref, sd_block_q5_0, sd_block_q8_0, dot_q5_0_ref, 32)
GEMM_REF(sd_gemm_q5_1_ref, sd_block_q5_1, sd_block_q8_1, dot_q5_1_ref, 32)
GEMM_REF(sd_gemm_q4_K_ref, sd_block_q4_K, sd_block_q8_K, dot_q4_K_ref, SD_QK_K)
GEMM_REF(sd_gemm_q5_K_ref, sd_block_q5_K, sd_block_q8_K, dot_q5_K_ref, SD_QK_K)
GEMM_REF(sd_gemm_q6_K_ref, sd_block_q6_K, sd_block_q8_K, dot_q6_K_ref, SD_QK_K)

/* y (N, ldy) [:, m0:m1] = x (N, K) F32 (BF16-rounded) * W^T, W BF16;
 * double accumulation like the F16 reference. */
void sd_gemm_bf16_ref(float *y, size_t ldy, const void *x, size_t x_stride, const void *w,
                      size_t w_stride, int K, int N, int m0, int m1) {
    for (int n = 0; n < N; n++) {
        const float *xn = (const float *)row_at(x, x_stride, n);
        for (int m = m0; m < m1; m++) {
            const uint16_t *wm = (const uint16_t *)row_at(w, w_stride, m);
            double s = 0.0;
            for (int k = 0; k < K; k++) s += (double)xn[k] * (double)sd_bf16_to_fp32(wm[k]);
            y[(size_t)n * ldy + (size_t)m] = (float)s;
        }
    }
}

/* x (n) rounded to BF16 values in place (ggml converts activations of BF16
 * matmuls with ggml_fp32_to_bf16). */
void sd_round_bf16_row_ref(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = sd_bf16_to_fp32(sd_fp32_to_bf16(x[i]));
}
