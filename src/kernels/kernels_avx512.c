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
enum { NTQ_MAX = 4 };       /* tokens per Q8_0 tile    */
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

/* ------------------------------------------------------------ Q8_0 */

/* Q8_0 arithmetic, shared bit for bit with kernels_vnni_avx512.c (the
 * AVX512-VNNI table, which must produce identical results): per block of
 * 32, the exact int32 sums of 4 consecutive products
 *     p[j] = sum_{i<4} w[4j+i] x[4j+i]            (8 lanes, j < 8)
 * (what vpdpbusd computes natively), then
 *     acc[j] = fma((float)p[j], d_w * d_x, acc[j])  (blocks ascending)
 * and at the end the 8 lanes reduced with hsum4_256 (4 rows at once) or
 * hsum8 (a single row). Here, without VNNI: quants split into the int16
 * pairs {4j, 4j+1} (A) and {4j+2, 4j+3} (B), p = madd(A_w, A_x) +
 * madd(B_w, B_x) - exact for every int8, -128 included. */

/* The A / B int16 halves of one block's 32 quants (see above). */
typedef struct {
    __m256i a, b;
} q8_ab;

SD_INLINE q8_ab q8_split(const int8_t *qs) {
    /* per 128-bit lane: even 16-bit words first, then odd words */
    const __m256i shuf = _mm256_setr_epi8(
        0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
        0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    __m256i q = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)qs), shuf);
    q = _mm256_permute4x64_epi64(q, 0xd8); /* qwords 0 2 1 3 */
    q8_ab r;
    r.a = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
    r.b = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1));
    return r;
}

SD_INLINE __m256i q8_dot(q8_ab w, q8_ab x) {
    return _mm256_add_epi32(_mm256_madd_epi16(w.a, x.a), _mm256_madd_epi16(w.b, x.b));
}

/* The 4 horizontal sums of 8-lane a, b, c, d as [sa, sb, sc, sd]. */
SD_INLINE __m128 hsum4_256(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* Horizontal sum of 8 lanes. */
SD_INLINE float hsum8(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#define TOKS4Q(M, a) M(0, a) M(1, a) M(2, a) M(3, a)

/* Tile of MR (1 or 4) rows x NT (<= 4) tokens over nb Q8_0 blocks. */
SD_INLINE void mk_q8(float *y, size_t ldy, const char *x, size_t xs,
                     const char *w, size_t ws, int nb, int MR, int NT) {
    __m256 acc[4][NTQ_MAX], wd[4];
    q8_ab wq[4];
    const sd_block_q8_0 *wr[4];
    const sd_block_q8_0 *xr[NTQ_MAX];
#define MQ_ROW(r, _) if (r < MR) wr[r] = (const sd_block_q8_0 *)(w + (size_t)r * ws);
    ROWS4(MQ_ROW, 0)
#define MQ_TOK(t, _) if (t < NT) xr[t] = (const sd_block_q8_0 *)(x + (size_t)t * xs);
    TOKS4Q(MQ_TOK, 0)
#define MQ_ZERO1(r, t) if (r < MR && t < NT) acc[r][t] = _mm256_setzero_ps();
#define MQ_ZERO(t, _) ROWS4(MQ_ZERO1, t)
    TOKS4Q(MQ_ZERO, 0)
    for (int b = 0; b < nb; b++) {
        if (MR > 1) { /* linear prefetch, see PF_DIST */
            const char *p = w + PF_DIST + (size_t)b * MR * sizeof(sd_block_q8_0);
            for (int j = 0; j < MR * (int)sizeof(sd_block_q8_0); j += 64)
                _mm_prefetch(p + j, _MM_HINT_T0);
        }
#define MQ_LOADW(r, _)                                                         \
    if (r < MR) {                                                              \
        wq[r] = q8_split(wr[r][b].qs);                                         \
        wd[r] = _mm256_set1_ps(_cvtsh_ss(wr[r][b].d));                         \
    }
        ROWS4(MQ_LOADW, 0)
#define MQ_FMA1(r, t)                                                          \
    if (r < MR) {                                                              \
        __m256 p = _mm256_cvtepi32_ps(q8_dot(wq[r], xq));                      \
        acc[r][t] = _mm256_fmadd_ps(p, _mm256_mul_ps(wd[r], xd), acc[r][t]);   \
    }
#define MQ_STEP(t, _)                                                          \
    if (t < NT) {                                                              \
        q8_ab xq = q8_split(xr[t][b].qs);                                      \
        __m256 xd = _mm256_set1_ps(_cvtsh_ss(xr[t][b].d));                     \
        ROWS4(MQ_FMA1, t)                                                      \
    }
        TOKS4Q(MQ_STEP, 0)
    }
#define MQ_STORE(t, _)                                                         \
    if (t < NT) {                                                              \
        float *yt = y + (size_t)t * ldy;                                       \
        if (MR == 4)                                                           \
            _mm_storeu_ps(yt, hsum4_256(acc[0][t], acc[1][t], acc[2][t], acc[3][t])); \
        else                                                                   \
            yt[0] = hsum8(acc[0][t]);                                          \
    }
    TOKS4Q(MQ_STORE, 0)
}

/* One W row times one token over nb blocks, in the order of mk_q8's
 * accumulators (see acc1_f): a sequential stream of the row. The same
 * exact quad sums as q8_dot, computed without the A / B split (nothing to
 * amortize here): pair sums with one zmm vpmaddwd, then adjacent pairs
 * added and packed to 8 lanes. */
SD_INLINE __m256 acc1_q8(const sd_block_q8_0 *x, const sd_block_q8_0 *w, int nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m512i wq = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)w[b].qs));
        __m512i xq = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)x[b].qs));
        __m512i p2 = _mm512_madd_epi16(wq, xq);
        __m256i p = _mm512_cvtepi64_epi32(_mm512_add_epi32(p2, _mm512_srli_epi64(p2, 32)));
        __m256 d = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(w[b].d)),
                                 _mm256_set1_ps(_cvtsh_ss(x[b].d)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc);
    }
    return acc;
}

SD_INLINE void mk_q8_nt(float *y, size_t ldy, const char *x, size_t xs,
                        const char *w, size_t ws, int nb, int MR, int nt) {
    switch (nt) {
    case 1: mk_q8(y, ldy, x, xs, w, ws, nb, MR, 1); break;
    case 2: mk_q8(y, ldy, x, xs, w, ws, nb, MR, 2); break;
    case 3: mk_q8(y, ldy, x, xs, w, ws, nb, MR, 3); break;
    default: mk_q8(y, ldy, x, xs, w, ws, nb, MR, 4); break;
    }
}

/* y (N, ldy) [:, m0:m1] = x (N, K/32 Q8_0 blocks) * W^T, W Q8_0 (M, K). */
static void gemm_q8_0_avx512(float *y, size_t ldy, const void *x,
                             size_t x_stride, const void *w, size_t w_stride,
                             int K, int N, int m0, int m1) {
    const char *xc = (const char *)x, *wc = (const char *)w;
    int nb = K / SD_QK8_0;
    int tc = token_chunk((size_t)nb * sizeof(sd_block_q8_0), NTQ_MAX);
    for (int n0 = 0; n0 < N; n0 += tc) {
        int nc = N - n0 < tc ? N - n0 : tc;
        float *yc = y + (size_t)n0 * ldy;
        const char *xn = xc + (size_t)n0 * x_stride;
        int m = m0;
        if (nc == 1) { /* one token: row by row, a sequential stream */
            const sd_block_q8_0 *x0 = (const sd_block_q8_0 *)xn;
            for (; m + 4 <= m1; m += 4) {
                const char *wm = wc + (size_t)m * w_stride;
                __m256 a0 = acc1_q8(x0, (const sd_block_q8_0 *)wm, nb);
                __m256 a1 = acc1_q8(x0, (const sd_block_q8_0 *)(wm + w_stride), nb);
                __m256 a2 = acc1_q8(x0, (const sd_block_q8_0 *)(wm + 2 * w_stride), nb);
                __m256 a3 = acc1_q8(x0, (const sd_block_q8_0 *)(wm + 3 * w_stride), nb);
                _mm_storeu_ps(yc + m, hsum4_256(a0, a1, a2, a3));
            }
            for (; m < m1; m++)
                yc[m] = hsum8(acc1_q8(x0, (const sd_block_q8_0 *)(wc + (size_t)m * w_stride), nb));
            continue;
        }
        for (; m + 4 <= m1; m += 4)
            for (int t0 = 0; t0 < nc;) {
                int nt = token_block(nc, t0, NTQ_MAX);
                mk_q8_nt(yc + (size_t)t0 * ldy + m, ldy,
                         xn + (size_t)t0 * x_stride, x_stride,
                         wc + (size_t)m * w_stride, w_stride, nb, 4, nt);
                t0 += nt;
            }
        for (; m < m1; m++)
            for (int t0 = 0; t0 < nc;) {
                int nt = token_block(nc, t0, NTQ_MAX);
                mk_q8_nt(yc + (size_t)t0 * ldy + m, ldy,
                         xn + (size_t)t0 * x_stride, x_stride,
                         wc + (size_t)m * w_stride, w_stride, nb, 1, nt);
                t0 += nt;
            }
    }
}

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
    .gemm_q8_0 = gemm_q8_0_avx512,
    .quantize_row_q8_0 = quantize_row_q8_0_avx512,
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
};

/* kernels_vnni_avx512.c */
void sd_gemm_q8_0_vnni(float *y, size_t ldy, const void *x, size_t x_stride,
                       const void *w, size_t w_stride, int K, int N, int m0,
                       int m1);

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
    .gemm_q8_0 = sd_gemm_q8_0_vnni,
    .quantize_row_q8_0 = quantize_row_q8_0_avx512,
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
};
