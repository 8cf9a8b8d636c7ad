/*
 * kernels_avx512.c - AVX-512 (F, BW, VL, DQ) + FMA + F16C kernels.
 *
 * Compiled with the AVX-512 flags (see Makefile); reached only through
 * sd_kernels_avx512() / sd_kernels_avx512_plain(), which check the CPU
 * first. Two tables: "avx512" (this file only) and "avx512vnni", the same
 * with the Q8_0 gemm of kernels_vnni_avx512.c (bit-identical results).
 *
 * gemm layout (all weight types): W (M, K) row-major, x (N, K), y (N, ldy).
 * Register blocking: a microkernel computes an MR x NT tile of outputs (MR
 * rows of W times NT tokens) with MR*NT zmm accumulators, streaming K in
 * steps of 16 (F32/F16) or 32 (Q8_0 blocks): each weight vector is loaded
 * (and converted) once per tile and reused across the NT tokens. Loop order:
 * token chunk (x chunk stays in L2) > W row block > token block (the W row
 * block, <= 8 rows x K, stays in L1 across token blocks) > k.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/attn.h"
#include "kernels/kernels.h"

#define SD_INLINE static inline __attribute__((always_inline))

enum { WT_F32 = 0, WT_F16 = 1, WT_BF16 = 2 };
enum { NT_MAX = 6 };        /* tokens per F32/F16 tile */
/* Software prefetch distance (bytes) for W streamed by a row-block tile:
 * interleaved rows defeat the hardware prefetcher on DRAM streams; a
 * linear prefetch 8 KB ahead restores ~17 GB/s per core. */
enum { PF_DIST = 8192 };

/* ------------------------------------------------------------ helpers */

/* 16 weights w[k..k+16) as floats; mask variant loads only lanes in mk. */
SD_INLINE __m512 load_w16(const char *w, int k, int wt) {
    if (wt == WT_BF16) /* bf16 -> f32: the 16 bits become the high half */
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(
            _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + k))), 16));
    if (wt == WT_F16)
        return _mm512_cvtph_ps(
            _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + k)));
    return _mm512_loadu_ps((const float *)w + k);
}

SD_INLINE __m512 load_w16_mask(const char *w, int k, __mmask16 mk, int wt) {
    if (wt == WT_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(
            _mm256_maskz_loadu_epi16(mk, (const uint16_t *)w + k)), 16));
    if (wt == WT_F16)
        return _mm512_cvtph_ps(
            _mm256_maskz_loadu_epi16(mk, (const uint16_t *)w + k));
    return _mm512_maskz_loadu_ps(mk, (const float *)w + k);
}

/* The 4 horizontal sums of a, b, c, d as one vector [sa, sb, sc, sd]. */
SD_INLINE __m128 hsum4(__m512 a, __m512 b, __m512 c, __m512 d) {
    __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a),
                              _mm512_extractf32x8_ps(a, 1));
    __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b),
                              _mm512_extractf32x8_ps(b, 1));
    __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c),
                              _mm512_extractf32x8_ps(c, 1));
    __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d),
                              _mm512_extractf32x8_ps(d, 1));
    __m256 ab = _mm256_hadd_ps(a8, b8);
    __m256 cd = _mm256_hadd_ps(c8, d8);
    __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd),
                      _mm256_extractf128_ps(abcd, 1));
}

/* Splits nc tokens into ceil(nc/nmax) blocks of near-equal size; returns the
 * size of block i starting at token t0 (caller walks t0 += size). */
SD_INLINE int token_block(int nc, int t0, int nmax) {
    int nb = (nc + nmax - 1) / nmax;
    int base = nc / nb, extra = nc % nb;
    /* the first `extra` blocks have base+1 tokens */
    int big = extra * (base + 1);
    return t0 < big ? base + 1 : base;
}

/* Tokens per chunk so that a chunk of x rows (row_bytes each) stays in L2
 * (~256 KB); a multiple of nmax. */
static int token_chunk(size_t row_bytes, int nmax) {
    size_t rb = row_bytes > 0 ? row_bytes : 1;
    int tc = (int)((256u * 1024u) / rb < 4096u ? (256u * 1024u) / rb : 4096u);
    tc -= tc % nmax;
    return tc < nmax ? nmax : tc;
}

/* ------------------------------------------------------------ F32/F16 */

/* Compile-time repetition: arrays of accumulators indexed only by literal
 * constants, so both gcc and clang keep them in registers (clang does not
 * scalarize arrays indexed by loops it unrolls late). M(i, a) for i < n. */
#define ROWS4(M, a) M(0, a) M(1, a) M(2, a) M(3, a)
#define TOKS4(M, a) M(0, a) M(1, a) M(2, a) M(3, a)
#define TOKS6(M, a) M(0, a) M(1, a) M(2, a) M(3, a) M(4, a) M(5, a)

/* Tile y[t*ldy + r] (t < NT, r < MR) = sum_k x_t[k] * w_r[k] for MR (1 or
 * 4) rows of W at w (stride ws bytes) and NT (<= 6) tokens at x (stride xs
 * bytes). pf: prefetch the W bytes PF_DIST ahead (linear). */
SD_INLINE void mk_f(float *y, size_t ldy, const char *x, size_t xs,
                    const char *w, size_t ws, int K, int MR, int NT, int wt,
                    int pf) {
    __m512 acc[4][NT_MAX], wv[4];
    const char *wr[4];
    const float *xr[NT_MAX];
#define MK_ROW(r, _) if (r < MR) wr[r] = w + (size_t)r * ws;
    ROWS4(MK_ROW, 0)
#define MK_TOK(t, _) if (t < NT) xr[t] = (const float *)(x + (size_t)t * xs);
    TOKS6(MK_TOK, 0)
#define MK_ZERO1(r, t) if (r < MR && t < NT) acc[r][t] = _mm512_setzero_ps();
#define MK_ZERO(t, _) ROWS4(MK_ZERO1, t)
    TOKS6(MK_ZERO, 0)
#define MK_FMA1(r, t) if (r < MR) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        if (pf) { /* linear prefetch PF_DIST ahead: MR*16 weights a step */
            const char *p = w + PF_DIST + (size_t)k * (size_t)MR * (wt != WT_F32 ? 2 : 4);
            int nbytes = MR * (wt != WT_F32 ? 32 : 64);
            for (int j = 0; j < nbytes; j += 64)
                _mm_prefetch(p + j, _MM_HINT_T0);
        }
#define MK_LOADW(r, _) if (r < MR) wv[r] = load_w16(wr[r], k, wt);
        ROWS4(MK_LOADW, 0)
#define MK_STEP(t, _)                                                          \
    if (t < NT) {                                                              \
        __m512 xv = _mm512_loadu_ps(xr[t] + k);                                \
        ROWS4(MK_FMA1, t)                                                       \
    }
        TOKS6(MK_STEP, 0)
    }
    if (k < K) {
        __mmask16 mk = (__mmask16)((1u << (K - k)) - 1u);
#define MK_LOADWM(r, _) if (r < MR) wv[r] = load_w16_mask(wr[r], k, mk, wt);
        ROWS4(MK_LOADWM, 0)
#define MK_STEPM(t, _)                                                         \
    if (t < NT) {                                                              \
        __m512 xv = _mm512_maskz_loadu_ps(mk, xr[t] + k);                      \
        ROWS4(MK_FMA1, t)                                                       \
    }
        TOKS6(MK_STEPM, 0)
    }
#define MK_STORE(t, _)                                                         \
    if (t < NT) {                                                              \
        float *yt = y + (size_t)t * ldy;                                       \
        if (MR == 4)                                                           \
            _mm_storeu_ps(yt, hsum4(acc[0][t], acc[1][t], acc[2][t], acc[3][t])); \
        else                                                                   \
            yt[0] = _mm512_reduce_add_ps(acc[0][t]);                           \
    }
    TOKS6(MK_STORE, 0)
}

/* The accumulator of one W row times one token, in exactly the order of a
 * tile's (r, t) accumulator in mk_f: k ascending in 16-lane steps, then the
 * masked tail. Used for single tokens so that a row's result does not
 * depend on how many tokens share the call (batch invariance: speculative
 * verification then reproduces plain decoding bit for bit). */
SD_INLINE __m512 acc1_f(const float *x, const char *w, int K, int wt) {
    __m512 acc = _mm512_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) acc = _mm512_fmadd_ps(load_w16(w, k, wt), _mm512_loadu_ps(x + k), acc);
    if (k < K) {
        __mmask16 mk = (__mmask16)((1u << (K - k)) - 1u);
        acc = _mm512_fmadd_ps(load_w16_mask(w, k, mk, wt), _mm512_maskz_loadu_ps(mk, x + k), acc);
    }
    return acc;
}

/* mk_f with a run-time token count nt in [1, NT_MAX] turned into a
 * compile-time one. */
SD_INLINE void mk_f_nt(float *y, size_t ldy, const char *x, size_t xs,
                       const char *w, size_t ws, int K, int MR, int nt,
                       int wt, int pf) {
    switch (nt) {
    case 1: mk_f(y, ldy, x, xs, w, ws, K, MR, 1, wt, pf); break;
    case 2: mk_f(y, ldy, x, xs, w, ws, K, MR, 2, wt, pf); break;
    case 3: mk_f(y, ldy, x, xs, w, ws, K, MR, 3, wt, pf); break;
    case 4: mk_f(y, ldy, x, xs, w, ws, K, MR, 4, wt, pf); break;
    case 5: mk_f(y, ldy, x, xs, w, ws, K, MR, 5, wt, pf); break;
    default: mk_f(y, ldy, x, xs, w, ws, K, MR, 6, wt, pf); break;
    }
}

#ifndef F1_PF_ROWS
#define F1_PF_ROWS 4
#endif

/* Rows [m0, m1) of W times tokens [0, nc) of x: one token row by row
 * (sequential stream), else blocks of MR = 4 rows (then 1) x <= 6 tokens. */
SD_INLINE void gemm_f_chunk(float *y, size_t ldy, const char *x, size_t xs,
                            const char *w, size_t ws, int K, int nc, int m0,
                            int m1, int wt) {
    int m = m0;
    if (nc == 1) { /* rows one after another: a sequential stream */
        const float *x0 = (const float *)x;
        for (; m + 4 <= m1; m += 4) {
            const char *wm = w + (size_t)m * ws;
            /* the group F1_PF_ROWS rows ahead, into L2: the hardware
             * prefetcher alone left a one-token F16 forward at ~60% of the
             * read bandwidth (Zen 5) */
            if (m + F1_PF_ROWS + 4 <= m1)
                for (size_t o = 0; o < 4 * ws; o += 64) _mm_prefetch(wm + F1_PF_ROWS * ws + o, _MM_HINT_T1);
            __m512 a0 = acc1_f(x0, wm, K, wt), a1 = acc1_f(x0, wm + ws, K, wt);
            __m512 a2 = acc1_f(x0, wm + 2 * ws, K, wt), a3 = acc1_f(x0, wm + 3 * ws, K, wt);
            _mm_storeu_ps(y + m, hsum4(a0, a1, a2, a3));
        }
        for (; m < m1; m++) y[m] = _mm512_reduce_add_ps(acc1_f(x0, w + (size_t)m * ws, K, wt));
        return;
    }
    for (; m + 4 <= m1; m += 4)
        for (int t0 = 0; t0 < nc;) {
            int nt = token_block(nc, t0, NT_MAX);
            mk_f_nt(y + (size_t)t0 * ldy + m, ldy, x + (size_t)t0 * xs, xs,
                    w + (size_t)m * ws, ws, K, 4, nt, wt, 1);
            t0 += nt;
        }
    for (; m < m1; m++)
        for (int t0 = 0; t0 < nc;) {
            int nt = token_block(nc, t0, NT_MAX);
            mk_f_nt(y + (size_t)t0 * ldy + m, ldy, x + (size_t)t0 * xs, xs,
                    w + (size_t)m * ws, ws, K, 1, nt, wt, 0);
            t0 += nt;
        }
}

/* Full F32/F16 gemm: token chunks that keep x in L2. */
SD_INLINE void gemm_f(float *y, size_t ldy, const void *x, size_t xs,
                      const void *w, size_t ws, int K, int N, int m0, int m1,
                      int wt) {
    int tc = token_chunk((size_t)K * sizeof(float), NT_MAX);
    for (int n0 = 0; n0 < N; n0 += tc) {
        int nc = N - n0 < tc ? N - n0 : tc;
        gemm_f_chunk(y + (size_t)n0 * ldy, ldy, (const char *)x + (size_t)n0 * xs,
                     xs, (const char *)w, ws, K, nc, m0, m1, wt);
    }
}

static void gemm_f32_avx512(float *y, size_t ldy, const void *x,
                            size_t x_stride, const void *w, size_t w_stride,
                            int K, int N, int m0, int m1) {
    gemm_f(y, ldy, x, x_stride, w, w_stride, K, N, m0, m1, WT_F32);
}

static void gemm_f16_avx512(float *y, size_t ldy, const void *x,
                            size_t x_stride, const void *w, size_t w_stride,
                            int K, int N, int m0, int m1) {
    gemm_f(y, ldy, x, x_stride, w, w_stride, K, N, m0, m1, WT_F16);
}

static void gemm_bf16_avx512(float *y, size_t ldy, const void *x,
                             size_t x_stride, const void *w, size_t w_stride,
                             int K, int N, int m0, int m1) {
    gemm_f(y, ldy, x, x_stride, w, w_stride, K, N, m0, m1, WT_BF16);
}

/* Q8_0: every table uses sd_gemm_q8_0_avx2 (the reference's bits) for
 * weights in the stored layout, and packed.h's kernels for packed ones. */


/* roundf(v) (half away from zero) per lane, NaN -> 0, clamped to +-127:
 * exactly the reference's q8_round. */
SD_INLINE __m512 round_q8(__m512 v) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_abs_ps(_mm512_sub_ps(v, t)); /* exact */
    __mmask16 up = _mm512_cmp_ps_mask(f, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    __m512 s = _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0f)), one);
    t = _mm512_mask_add_ps(t, up, t, s);
    t = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), t);
    t = _mm512_min_ps(t, _mm512_set1_ps(127.0f));
    return _mm512_max_ps(t, _mm512_set1_ps(-127.0f));
}

/* dst (K/32 blocks) = Q8_0 of x (K); byte-identical to the reference. */
static void quantize_row_q8_0_avx512(void *dst, const float *x, int K) {
    sd_block_q8_0 *y = (sd_block_q8_0 *)dst;
    const __m512 zero = _mm512_setzero_ps();
    for (int i = 0; i < K / SD_QK8_0; i++) {
        __m512 x0 = _mm512_loadu_ps(x + i * SD_QK8_0);
        __m512 x1 = _mm512_loadu_ps(x + i * SD_QK8_0 + 16);
        /* vmaxps returns the 2nd operand on NaN: NaN lanes count as 0 */
        __m512 a = _mm512_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), zero),
                                 _mm512_max_ps(_mm512_abs_ps(x1), zero));
        float amax = _mm512_reduce_max_ps(a);
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = sd_fp32_to_fp16(d);
        __m512 vid = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvttps_epi32(round_q8(_mm512_mul_ps(x0, vid)));
        __m512i q1 = _mm512_cvttps_epi32(round_q8(_mm512_mul_ps(x1, vid)));
        _mm_storeu_si128((__m128i *)y[i].qs, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(y[i].qs + 16), _mm512_cvtepi32_epi8(q1));
    }
}

/* ------------------------------------------------------------ vectors */

/* sum a[i]*b[i] (n). */
static float dot_f32_avx512(const float *a, const float *b, int n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16),
                             _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32),
                             _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48),
                             _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 mk = (__mmask16)((1u << (n - i)) - 1u);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, a + i),
                             _mm512_maskz_loadu_ps(mk, b + i), s1);
    }
    return _mm512_reduce_add_ps(
        _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* y (n) += a * x (n). */
static void axpy_f32_avx512(float *y, float a, const float *x, int n) {
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i),
                                                _mm512_loadu_ps(y + i)));
        _mm512_storeu_ps(y + i + 16,
                         _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i + 16),
                                         _mm512_loadu_ps(y + i + 16)));
    }
    for (; i < n; i += 16) {
        __mmask16 mk = n - i >= 16 ? (__mmask16)0xffff
                                   : (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(
            y + i, mk,
            _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(mk, x + i),
                            _mm512_maskz_loadu_ps(mk, y + i)));
    }
}

/* y (n) = x * (1/sqrt(mean(x^2) + eps)) * w. */
static void rmsnorm_avx512(float *y, const float *x, const float *w, float eps,
                           int n) {
    float ss = dot_f32_avx512(x, x, n);
    float scale = 1.0f / sqrtf(ss / (float)n + eps);
    __m512 vs = _mm512_set1_ps(scale);
    for (int i = 0; i < n; i += 16) {
        __mmask16 mk = n - i >= 16 ? (__mmask16)0xffff
                                   : (__mmask16)((1u << (n - i)) - 1u);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + i), vs);
        _mm512_mask_storeu_ps(y + i, mk,
                              _mm512_mul_ps(v, _mm512_maskz_loadu_ps(mk, w + i)));
    }
}

/* exp(x) per lane, Cephes expf: x = n ln2 + r, |r| <= ln2/2, degree-7
 * polynomial, 2^n applied with vscalefps (handles overflow to inf and
 * underflow to 0). Max relative error ~2 ulp. */
SD_INLINE __m512 exp512(__m512 x) {
    x = _mm512_min_ps(x, _mm512_set1_ps(88.7228394f));
    x = _mm512_max_ps(x, _mm512_set1_ps(-103.9720840f));
    __m512 n = _mm512_roundscale_ps(
        _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* g (n) = g / (1 + exp(-g)) * u. */
static void swiglu_avx512(float *g, const float *u, int n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int i = 0; i < n; i += 16) {
        __mmask16 mk = n - i >= 16 ? (__mmask16)0xffff
                                   : (__mmask16)((1u << (n - i)) - 1u);
        __m512 gv = _mm512_maskz_loadu_ps(mk, g + i);
        __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        __m512 s = _mm512_div_ps(gv, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(g + i, mk,
                              _mm512_mul_ps(s, _mm512_maskz_loadu_ps(mk, u + i)));
    }
}

const sd_kernels sd_kernels_avx512_table = {
    .name = "avx512",
    .gemm_f32 = gemm_f32_avx512,
    .gemm_f16 = gemm_f16_avx512,
    .gemm_bf16 = gemm_bf16_avx512,
    /* the quants.h formats: the AVX2 kernels (same results as the ref) */
    .gemm_q4_0 = sd_gemm_q4_0_avx2,
    .gemm_q4_1 = sd_gemm_q4_1_avx2,
    .gemm_q5_0 = sd_gemm_q5_0_avx2,
    .gemm_q5_1 = sd_gemm_q5_1_avx2,
    .gemm_q4_K = sd_gemm_q4_K_avx2,
    .gemm_q5_K = sd_gemm_q5_K_avx2,
    .gemm_q6_K = sd_gemm_q6_K_avx2,
    .round_bf16_row = sd_round_bf16_row_avx2,
    .gemm_q8_0 = sd_gemm_q8_0_avx2, /* the reference's bits (kernels_avx2.c) */
    .quantize_row_q8_0 = quantize_row_q8_0_avx512,
    .quantize_row_q8_K = sd_quantize_row_q8_K_avx2,
    .dot_f32 = dot_f32_avx512,
    .axpy_f32 = axpy_f32_avx512,
    .rmsnorm = rmsnorm_avx512,
    .swiglu = swiglu_avx512,
    .fp32_to_fp16_row = sd_fp32_to_fp16_row_avx512,
    .round_f16_row = sd_round_f16_row_avx512,
    .attn_f16 = sd_attn_f16_avx512,
    .attn_f32 = sd_attn_f32_avx512,
    .attn_f32_rows = sd_attn_f32_rows_avx512,
    .sum_exp = sd_sum_exp_avx512,
    .gemm_packed = SD_PACKED_TABLE(avx512),
    .probe_dot = sd_probe_dot_avx512,
    .probe_fma = sd_probe_fma_avx512,
};


/* The avx512 table with the VNNI Q8_0 gemm: kernels.c hands it out only
 * when the CPU has avx512vnni. */
const sd_kernels sd_kernels_avx512vnni_table = {
    .name = "avx512vnni",
    .gemm_f32 = gemm_f32_avx512,
    .gemm_f16 = gemm_f16_avx512,
    .gemm_bf16 = gemm_bf16_avx512,
    /* the quants.h formats with VNNI (same results as the ref) */
    .gemm_q4_0 = sd_gemm_q4_0_vnni,
    .gemm_q4_1 = sd_gemm_q4_1_vnni,
    .gemm_q5_0 = sd_gemm_q5_0_vnni,
    .gemm_q5_1 = sd_gemm_q5_1_vnni,
    .gemm_q4_K = sd_gemm_q4_K_vnni,
    .gemm_q5_K = sd_gemm_q5_K_vnni,
    .gemm_q6_K = sd_gemm_q6_K_vnni,
    .round_bf16_row = sd_round_bf16_row_avx2,
    .gemm_q8_0 = sd_gemm_q8_0_avx2, /* the reference's bits (kernels_avx2.c) */
    .quantize_row_q8_0 = quantize_row_q8_0_avx512,
    .quantize_row_q8_K = sd_quantize_row_q8_K_avx2,
    .dot_f32 = dot_f32_avx512,
    .axpy_f32 = axpy_f32_avx512,
    .rmsnorm = rmsnorm_avx512,
    .swiglu = swiglu_avx512,
    .fp32_to_fp16_row = sd_fp32_to_fp16_row_avx512,
    .round_f16_row = sd_round_f16_row_avx512,
    .attn_f16 = sd_attn_f16_avx512,
    .attn_f32 = sd_attn_f32_avx512,
    .attn_f32_rows = sd_attn_f32_rows_avx512,
    .sum_exp = sd_sum_exp_avx512,
    .gemm_packed = SD_PACKED_TABLE(avx512vnni),
    .probe_dot = sd_probe_dot_avx512vnni,
    .probe_fma = sd_probe_fma_avx512vnni,
};
