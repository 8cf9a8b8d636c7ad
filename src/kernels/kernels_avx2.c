/*
 * kernels_avx2.c - AVX2 + FMA + F16C kernels (8-wide), the fallback for
 * CPUs without AVX-512. Same structure as kernels_avx512.c: MR x NT
 * register tiles (16 ymm registers allow 4 rows x 2 tokens), token chunks
 * that keep x in L2, W row blocks reused from L1 across token blocks.
 * K tails (K % 8) are finished in scalar code.
 *
 * Batch invariant (tests/test_kernels.c): every tile accumulates each
 * (row, token) pair on its own, in the same order whatever the tile's token
 * count, and the row grouping (4 for F32/F16, 2 for Q8_0) starts at m0, so
 * y[n][m] does not depend on N, on the other tokens, or on an [m0, m1)
 * split at multiples of 16. There is no separate single-token path.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/attn.h"
#include "kernels/kernels.h"

#define SD_INLINE static inline __attribute__((always_inline))

enum { WT_F32 = 0, WT_F16 = 1, WT_BF16 = 2 };
enum { NT_MAX = 2 };

/* ------------------------------------------------------------ helpers */

/* 8 weights w[k..k+8) as floats. */
SD_INLINE __m256 load_w8(const char *w, int k, int wt) {
    if (wt == WT_BF16) /* bf16 -> f32: the 16 bits become the high half */
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(
            _mm_loadu_si128((const __m128i *)((const uint16_t *)w + k))), 16));
    if (wt == WT_F16)
        return _mm256_cvtph_ps(
            _mm_loadu_si128((const __m128i *)((const uint16_t *)w + k)));
    return _mm256_loadu_ps((const float *)w + k);
}

/* Scalar weight w[k] as float. */
SD_INLINE float load_w1(const char *w, int k, int wt) {
    if (wt == WT_BF16) {
        uint32_t u = (uint32_t)((const uint16_t *)w)[k] << 16;
        float f;
        __builtin_memcpy(&f, &u, 4);
        return f;
    }
    if (wt == WT_F16)
        return _cvtsh_ss(((const uint16_t *)w)[k]);
    return ((const float *)w)[k];
}

/* Horizontal sum of one vector. */
SD_INLINE float hsum(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The 4 horizontal sums of a, b, c, d as [sa, sb, sc, sd]. */
SD_INLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd),
                      _mm256_extractf128_ps(abcd, 1));
}

/* Splits nc tokens into near-equal blocks of at most nmax; size of the
 * block starting at t0. */
SD_INLINE int token_block(int nc, int t0, int nmax) {
    int nb = (nc + nmax - 1) / nmax;
    int base = nc / nb, extra = nc % nb;
    return t0 < extra * (base + 1) ? base + 1 : base;
}

/* Tokens per chunk so a chunk of x rows stays in L2 (~256 KB). */
static int token_chunk(size_t row_bytes, int nmax) {
    size_t rb = row_bytes > 0 ? row_bytes : 1;
    int tc = (int)((256u * 1024u) / rb < 4096u ? (256u * 1024u) / rb : 4096u);
    tc -= tc % nmax;
    return tc < nmax ? nmax : tc;
}

/* ------------------------------------------------------------ F32/F16 */

/* Compile-time repetition over rows / tokens: accumulator arrays indexed by
 * literal constants only, so gcc and clang keep them in registers. */
#define ROWS4(M, a) M(0, a) M(1, a) M(2, a) M(3, a)
#define ROWS2(M, a) M(0, a) M(1, a)
#define TOKS2(M, a) M(0, a) M(1, a)

/* Tile y[t*ldy + r] (t < NT, r < MR, MR in {1, 4}, NT <= 2) =
 * sum_k x_t[k] w_r[k]. */
SD_INLINE void mk_f(float *y, size_t ldy, const char *x, size_t xs,
                    const char *w, size_t ws, int K, int MR, int NT, int wt) {
    __m256 acc[4][NT_MAX], wv[4];
    const char *wr[4];
    const float *xr[NT_MAX];
#define MK_ROW(r, _) if (r < MR) wr[r] = w + (size_t)r * ws;
    ROWS4(MK_ROW, 0)
#define MK_TOK(t, _) if (t < NT) xr[t] = (const float *)(x + (size_t)t * xs);
    TOKS2(MK_TOK, 0)
#define MK_ZERO1(r, t) if (r < MR && t < NT) acc[r][t] = _mm256_setzero_ps();
#define MK_ZERO(t, _) ROWS4(MK_ZERO1, t)
    TOKS2(MK_ZERO, 0)
    int k = 0;
    for (; k + 8 <= K; k += 8) {
#define MK_LOADW(r, _) if (r < MR) wv[r] = load_w8(wr[r], k, wt);
        ROWS4(MK_LOADW, 0)
#define MK_FMA1(r, t) if (r < MR) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
#define MK_STEP(t, _)                                                          \
    if (t < NT) {                                                              \
        __m256 xv = _mm256_loadu_ps(xr[t] + k);                                \
        ROWS4(MK_FMA1, t)                                                      \
    }
        TOKS2(MK_STEP, 0)
    }
#define MK_STORE(t, _)                                                         \
    if (t < NT) {                                                              \
        float *yt = y + (size_t)t * ldy;                                       \
        if (MR == 4)                                                           \
            _mm_storeu_ps(yt, hsum4(acc[0][t], acc[1][t], acc[2][t], acc[3][t])); \
        else                                                                   \
            yt[0] = hsum(acc[0][t]);                                           \
        for (int kk = k; kk < K; kk++) /* scalar K tail */                     \
            for (int r = 0; r < MR; r++)                                       \
                yt[r] += xr[t][kk] * load_w1(wr[r], kk, wt);                   \
    }
    TOKS2(MK_STORE, 0)
}

SD_INLINE void mk_f_nt(float *y, size_t ldy, const char *x, size_t xs,
                       const char *w, size_t ws, int K, int MR, int nt,
                       int wt) {
    if (nt == 1)
        mk_f(y, ldy, x, xs, w, ws, K, MR, 1, wt);
    else
        mk_f(y, ldy, x, xs, w, ws, K, MR, 2, wt);
}

/* Full F32/F16 gemm. */
SD_INLINE void gemm_f(float *y, size_t ldy, const void *x, size_t xs,
                      const void *w, size_t ws, int K, int N, int m0, int m1,
                      int wt) {
    const char *xc = (const char *)x, *wc = (const char *)w;
    int tc = token_chunk((size_t)K * sizeof(float), NT_MAX);
    for (int n0 = 0; n0 < N; n0 += tc) {
        int nc = N - n0 < tc ? N - n0 : tc;
        float *yc = y + (size_t)n0 * ldy;
        const char *xn = xc + (size_t)n0 * xs;
        int m = m0;
        for (; m + 4 <= m1; m += 4)
            for (int t0 = 0; t0 < nc;) {
                int nt = token_block(nc, t0, NT_MAX);
                mk_f_nt(yc + (size_t)t0 * ldy + m, ldy, xn + (size_t)t0 * xs,
                        xs, wc + (size_t)m * ws, ws, K, 4, nt, wt);
                t0 += nt;
            }
        for (; m < m1; m++)
            for (int t0 = 0; t0 < nc;) {
                int nt = token_block(nc, t0, NT_MAX);
                mk_f_nt(yc + (size_t)t0 * ldy + m, ldy, xn + (size_t)t0 * xs,
                        xs, wc + (size_t)m * ws, ws, K, 1, nt, wt);
                t0 += nt;
            }
    }
}

static void gemm_f32_avx2(float *y, size_t ldy, const void *x, size_t x_stride,
                          const void *w, size_t w_stride, int K, int N, int m0,
                          int m1) {
    gemm_f(y, ldy, x, x_stride, w, w_stride, K, N, m0, m1, WT_F32);
}

static void gemm_f16_avx2(float *y, size_t ldy, const void *x, size_t x_stride,
                          const void *w, size_t w_stride, int K, int N, int m0,
                          int m1) {
    gemm_f(y, ldy, x, x_stride, w, w_stride, K, N, m0, m1, WT_F16);
}

static void gemm_bf16_avx2(float *y, size_t ldy, const void *x, size_t x_stride,
                           const void *w, size_t w_stride, int K, int N, int m0,
                           int m1) {
    gemm_f(y, ldy, x, x_stride, w, w_stride, K, N, m0, m1, WT_BF16);
}

/* ------------------------------------------------------------ Q8_0 */

/* y (N, ldy) [:, m0:m1] = x (N, K/32 Q8_0 blocks) * W^T, W Q8_0 (M, K),
 * in the stored layout (weights the model could not pack, heads): the
 * reference's arithmetic exactly (kernels_ref.c: per block the exact
 * int32 dot, then sumf += sumi * (d_x d_w), blocks in order), so every
 * table gives the reference's bits and packed and stored Q8_0 weights
 * give the same results. The dot: vpmaddubsw of |w| and sign(x, w), pairs
 * at most 2 * 128 * 127 (no saturation); up to 4 tokens per pass over a
 * W row. Shared by every SIMD table. */
SD_INLINE int32_t hsum_i32x8(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

void sd_gemm_q8_0_avx2(float *y, size_t ldy, const void *x, size_t x_stride, const void *w, size_t w_stride, int K,
                       int N, int m0, int m1) {
    const int nb = K / SD_QK8_0;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int m = m0; m < m1; m++) {
        const sd_block_q8_0 *wm = (const sd_block_q8_0 *)(const void *)((const char *)w + (size_t)m * w_stride);
        for (int t0 = 0; t0 < N; t0 += 4) {
            const int nt = N - t0 < 4 ? N - t0 : 4;
            float sumf[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int b = 0; b < nb; b++) {
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(const void *)wm[b].qs);
                const __m256i aw = _mm256_sign_epi8(wv, wv);
                const float dw = _cvtsh_ss(wm[b].d);
                for (int t = 0; t < nt; t++) {
                    const sd_block_q8_0 *xb =
                        (const sd_block_q8_0 *)(const void *)((const char *)x + (size_t)(t0 + t) * x_stride) + b;
                    const __m256i xv = _mm256_loadu_si256((const __m256i *)(const void *)xb->qs);
                    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv)), ones);
                    const float d = _cvtsh_ss(xb->d) * dw;
                    const float pt = (float)hsum_i32x8(p) * d;
                    sumf[t] = sumf[t] + pt;
                }
            }
            for (int t = 0; t < nt; t++) y[(size_t)(t0 + t) * ldy + (size_t)m] = sumf[t];
        }
    }
}

/* roundf per lane (half away from zero), NaN -> 0, clamped to +-127:
 * exactly the reference's q8_round. */
SD_INLINE __m256 round_q8(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t)); /* |v - t| */
    __m256 up = _mm256_cmp_ps(f, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    __m256 s = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    t = _mm256_add_ps(t, _mm256_and_ps(up, s));
    t = _mm256_and_ps(t, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
    t = _mm256_min_ps(t, _mm256_set1_ps(127.0f));
    return _mm256_max_ps(t, _mm256_set1_ps(-127.0f));
}

/* dst (K/32 blocks) = Q8_0 of x (K); byte-identical to the reference. */
static void quantize_row_q8_0_avx2(void *dst, const float *x, int K) {
    sd_block_q8_0 *y = (sd_block_q8_0 *)dst;
    const __m256 sign = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    for (int i = 0; i < K / SD_QK8_0; i++) {
        __m256 v[4];
        __m256 a = zero;
        for (int j = 0; j < 4; j++) {
            v[j] = _mm256_loadu_ps(x + i * SD_QK8_0 + 8 * j);
            /* vmaxps returns the 2nd operand on NaN: NaN lanes count as 0 */
            a = _mm256_max_ps(_mm256_andnot_ps(sign, v[j]), a);
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        float amax = _mm_cvtss_f32(m);
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = sd_fp32_to_fp16(d);
        __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int j = 0; j < 4; j++)
            q[j] = _mm256_cvttps_epi32(round_q8(_mm256_mul_ps(v[j], vid)));
        /* int32 -> int8 with in-range values; packs interleave lanes */
        __m256i q16a = _mm256_packs_epi32(q[0], q[1]);
        __m256i q16b = _mm256_packs_epi32(q[2], q[3]);
        __m256i q8 = _mm256_packs_epi16(q16a, q16b);
        q8 = _mm256_permutevar8x32_epi32(q8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)y[i].qs, q8);
    }
}

/* ------------------------------------------------------------ vectors */

/* sum a[i]*b[i] (n). */
static float dot_f32_avx2(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8),
                             _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16),
                             _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24),
                             _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* y (n) += a * x (n). */
static void axpy_f32_avx2(float *y, float a, const float *x, int n) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i),
                                                _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += a * x[i];
}

/* y (n) = x * (1/sqrt(mean(x^2) + eps)) * w. */
static void rmsnorm_avx2(float *y, const float *x, const float *w, float eps,
                         int n) {
    float scale = 1.0f / sqrtf(dot_f32_avx2(x, x, n) / (float)n + eps);
    __m256 vs = _mm256_set1_ps(scale);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs),
                                              _mm256_loadu_ps(w + i)));
    for (; i < n; i++)
        y[i] = (x[i] * scale) * w[i];
}

/* exp(x) per lane, Cephes expf (see kernels_avx512.c); input clamped to
 * [-87.3, 88.38] so that 2^n stays a normal float. */
SD_INLINE __m256 exp256(__m256 x) {
    x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365402f));
    __m256 n = _mm256_round_ps(
        _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* g (n) = g / (1 + exp(-g)) * u. */
static void swiglu_avx2(float *g, const float *u, int n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv));
        __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, e));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* The AVX2 tables: "avx2" and "avx2vnni" differ only in their packed
 * gemms (same results). */
#define AVX2_TABLE_COMMON \
    .gemm_f32 = gemm_f32_avx2, \
    .gemm_f16 = gemm_f16_avx2, \
    .gemm_bf16 = gemm_bf16_avx2, \
    .gemm_q4_0 = sd_gemm_q4_0_avx2, \
    .gemm_q4_1 = sd_gemm_q4_1_avx2, \
    .gemm_q5_0 = sd_gemm_q5_0_avx2, \
    .gemm_q5_1 = sd_gemm_q5_1_avx2, \
    .gemm_q4_K = sd_gemm_q4_K_avx2, \
    .gemm_q5_K = sd_gemm_q5_K_avx2, \
    .gemm_q6_K = sd_gemm_q6_K_avx2, \
    .round_bf16_row = sd_round_bf16_row_avx2, \
    .gemm_q8_0 = sd_gemm_q8_0_avx2, \
    .quantize_row_q8_0 = quantize_row_q8_0_avx2, \
    .quantize_row_q8_K = sd_quantize_row_q8_K_avx2, \
    .dot_f32 = dot_f32_avx2, \
    .axpy_f32 = axpy_f32_avx2, \
    .rmsnorm = rmsnorm_avx2, \
    .swiglu = swiglu_avx2, \
    .fp32_to_fp16_row = sd_fp32_to_fp16_row_avx2, \
    .round_f16_row = sd_round_f16_row_avx2, \
    .attn_f16 = sd_attn_f16_avx2, \
    .attn_f32 = sd_attn_f32_avx2, \
    .attn_f32_rows = sd_attn_f32_rows_avx2, \
    .sum_exp = sd_sum_exp_ref,

const sd_kernels sd_kernels_avx2_table = {
    .name = "avx2",
    AVX2_TABLE_COMMON
    .gemm_packed = SD_PACKED_TABLE(avx2),
    .probe_dot = sd_probe_dot_avx2,
    .probe_fma = sd_probe_fma_avx2,
};

const sd_kernels sd_kernels_avx2vnni_table = {
    .name = "avx2vnni",
    AVX2_TABLE_COMMON
    .gemm_packed = SD_PACKED_TABLE(avxvnni),
    .probe_dot = sd_probe_dot_avxvnni,
    .probe_fma = sd_probe_fma_avxvnni,
};
