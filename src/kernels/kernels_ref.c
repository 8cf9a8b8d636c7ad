/*
 * kernels_ref.c - scalar reference kernels: the ground truth the SIMD tables
 * are tested against (tests/test_kernels.c).
 *
 * Accumulation choices: F32/F16 gemm, dot_f32 and the rmsnorm sum of squares
 * accumulate in double in natural k order (then round once to float), so the
 * reference is as close to the exact result as a float output can be. Q8_0
 * gemm follows ggml's math exactly: an exact int32 sum per block, then
 * sumf += sumi * (d_x * d_w) in float, blocks in order.
 */
#include <math.h>

#include "kernels/attn.h"
#include "kernels/kernels.h"
#include "kernels/quants.h"

/* Row helpers: byte-strided row addressing. */
static const void *row_at(const void *base, size_t stride, int i) {
    return (const char *)base + (size_t)i * stride;
}

/* y (N, ldy) [:, m0:m1] = x (N, K) F32 * W^T, W (M, K) F32. */
static void gemm_f32_ref(float *y, size_t ldy, const void *x, size_t x_stride,
                         const void *w, size_t w_stride, int K, int N, int m0,
                         int m1) {
    for (int n = 0; n < N; n++) {
        const float *xn = (const float *)row_at(x, x_stride, n);
        for (int m = m0; m < m1; m++) {
            const float *wm = (const float *)row_at(w, w_stride, m);
            double s = 0.0;
            for (int k = 0; k < K; k++)
                s += (double)xn[k] * (double)wm[k];
            y[(size_t)n * ldy + (size_t)m] = (float)s;
        }
    }
}

/* y (N, ldy) [:, m0:m1] = x (N, K) F32 * W^T, W (M, K) IEEE half. */
static void gemm_f16_ref(float *y, size_t ldy, const void *x, size_t x_stride,
                         const void *w, size_t w_stride, int K, int N, int m0,
                         int m1) {
    for (int n = 0; n < N; n++) {
        const float *xn = (const float *)row_at(x, x_stride, n);
        for (int m = m0; m < m1; m++) {
            const uint16_t *wm = (const uint16_t *)row_at(w, w_stride, m);
            double s = 0.0;
            for (int k = 0; k < K; k++)
                s += (double)xn[k] * (double)sd_fp16_to_fp32(wm[k]);
            y[(size_t)n * ldy + (size_t)m] = (float)s;
        }
    }
}

/* Dot of two Q8_0 rows of K elements (K/32 blocks), ggml's math. */
static float dot_q8_0_ref(const sd_block_q8_0 *a, const sd_block_q8_0 *b,
                          int K) {
    float sumf = 0.0f;
    for (int i = 0; i < K / SD_QK8_0; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < SD_QK8_0; j++)
            sumi += (int32_t)a[i].qs[j] * (int32_t)b[i].qs[j];
        const float d = sd_fp16_to_fp32(a[i].d) * sd_fp16_to_fp32(b[i].d);
        const float t = (float)sumi * d; /* own statements: never contracted */
        sumf += t;
    }
    return sumf;
}

/* y (N, ldy) [:, m0:m1] = x (N, K/32 Q8_0 blocks) * W^T, W (M, K) Q8_0. */
static void gemm_q8_0_ref(float *y, size_t ldy, const void *x, size_t x_stride,
                          const void *w, size_t w_stride, int K, int N, int m0,
                          int m1) {
    for (int n = 0; n < N; n++) {
        const sd_block_q8_0 *xn = (const sd_block_q8_0 *)row_at(x, x_stride, n);
        for (int m = m0; m < m1; m++) {
            const sd_block_q8_0 *wm =
                (const sd_block_q8_0 *)row_at(w, w_stride, m);
            y[(size_t)n * ldy + (size_t)m] = dot_q8_0_ref(xn, wm, K);
        }
    }
}

/* q = roundf(v) (half away from zero) as int8, NaN -> 0, clamped to
 * [-127, 127]. The SIMD quantizers reproduce this byte for byte. */
static int8_t q8_round(float v) {
    float q = roundf(v);
    if (q != q)
        return 0;
    if (q > 127.0f)
        q = 127.0f;
    if (q < -127.0f)
        q = -127.0f;
    return (int8_t)q;
}

/* dst (K/32 blocks) = Q8_0 of x (K), ggml's quantize_row_q8_0_ref: d =
 * amax/127, q = round(x / d) (NaN inputs are ignored by amax and give 0). */
static void quantize_row_q8_0_ref(void *dst, const float *x, int K) {
    sd_block_q8_0 *y = (sd_block_q8_0 *)dst;
    for (int i = 0; i < K / SD_QK8_0; i++) {
        const float *xb = x + i * SD_QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < SD_QK8_0; j++) {
            float v = fabsf(xb[j]);
            if (v > amax)
                amax = v;
        }
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = sd_fp32_to_fp16(d);
        for (int j = 0; j < SD_QK8_0; j++)
            y[i].qs[j] = q8_round(xb[j] * id);
    }
}

/* sum a[i]*b[i] (n), double accumulation. */
static float dot_f32_ref(const float *a, const float *b, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return (float)s;
}

/* y (n) += a * x (n). */
static void axpy_f32_ref(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* y (n) = x * (1/sqrt(mean(x^2) + eps)) * w, sum of squares in double. */
static void rmsnorm_ref(float *y, const float *x, const float *w, float eps,
                        int n) {
    double ss = 0.0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * (double)x[i];
    float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (int i = 0; i < n; i++)
        y[i] = (x[i] * scale) * w[i];
}

/* g (n) = g / (1 + exp(-g)) * u. */
static void swiglu_ref(float *g, const float *u, int n) {
    for (int i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

const sd_kernels sd_kernels_ref_table = {
    .name = "ref",
    .gemm_f32 = gemm_f32_ref,
    .gemm_f16 = gemm_f16_ref,
    .gemm_q8_0 = gemm_q8_0_ref,
    .gemm_q4_0 = sd_gemm_q4_0_ref,
    .gemm_q4_1 = sd_gemm_q4_1_ref,
    .gemm_q5_0 = sd_gemm_q5_0_ref,
    .gemm_q5_1 = sd_gemm_q5_1_ref,
    .gemm_q4_K = sd_gemm_q4_K_ref,
    .gemm_q5_K = sd_gemm_q5_K_ref,
    .gemm_q6_K = sd_gemm_q6_K_ref,
    .gemm_bf16 = sd_gemm_bf16_ref,
    .round_bf16_row = sd_round_bf16_row_ref,
    .quantize_row_q8_0 = quantize_row_q8_0_ref,
    .quantize_row_q8_K = sd_quantize_row_q8_K,
    .dot_f32 = dot_f32_ref,
    .axpy_f32 = axpy_f32_ref,
    .rmsnorm = rmsnorm_ref,
    .swiglu = swiglu_ref,
    .fp32_to_fp16_row = sd_fp32_to_fp16_row_ref,
    .round_f16_row = sd_round_f16_row_ref,
    .attn_f16 = sd_attn_f16_ref,
    .attn_f32 = sd_attn_f32_ref,
    .attn_f32_rows = sd_attn_f32_rows_ref,
    .sum_exp = sd_sum_exp_ref,
};
