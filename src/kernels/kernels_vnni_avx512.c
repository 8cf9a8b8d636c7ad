/*
 * kernels_vnni_avx512.c - the Q8_0 gemm with AVX512-VNNI (vpdpbusd).
 *
 * Compiled with the AVX-512 flags (the Makefile's *_avx512.c rule); VNNI is
 * enabled per function with a target attribute, and the table that uses
 * gemm_q8_0_vnni is handed out by kernels.c only when the CPU reports
 * avx512vnni. Results are bit-identical to gemm_q8_0_avx512
 * (kernels_avx512.c): the same exact int32 sums of 4 consecutive products
 * per lane (8 lanes per block), the same float accumulation and the same
 * reductions - see the Q8_0 notes there. Only the integer dot differs:
 * vpdpbusd multiplies unsigned by signed bytes, so x is offset by 128
 * (x ^ 0x80 = x + 128 in [0, 255]) and 128 * sum(w) is subtracted through
 * the accumulator input: src = -128 * sum4(w) (per W row and block, reused
 * for every token), p = src + sum4((x + 128) w) = sum4(x w), exact.
 */
#include <immintrin.h>

#include "kernels/kernels.h"

#define SD_VNNI static inline __attribute__((always_inline, target("avx512vnni")))

enum { NTV_MAX = 4 };
enum { PFV_DIST = 8192 };

/* -128 * (sum of 4 consecutive w quants) per lane. */
SD_VNNI __m256i negcorr(__m256i wq) {
    __m256i c = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8((char)0x80), wq);
    return _mm256_sub_epi32(_mm256_setzero_si256(), c);
}

SD_VNNI __m256i load_xu(const int8_t *qs) {
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)qs),
                            _mm256_set1_epi8((char)0x80));
}

/* Same as hsum4_256 / hsum8 in kernels_avx512.c (must stay identical). */
SD_VNNI __m128 hsum4_v(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

SD_VNNI float hsum8_v(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

SD_VNNI int token_block_v(int nc, int t0, int nmax) {
    int nb = (nc + nmax - 1) / nmax;
    int base = nc / nb, extra = nc % nb;
    return t0 < extra * (base + 1) ? base + 1 : base;
}

/* Same chunking as kernels_avx512.c's token_chunk (irrelevant to results). */
static int token_chunk_v(size_t row_bytes, int nmax) {
    size_t rb = row_bytes > 0 ? row_bytes : 1;
    int tc = (int)((256u * 1024u) / rb < 4096u ? (256u * 1024u) / rb : 4096u);
    tc -= tc % nmax;
    return tc < nmax ? nmax : tc;
}

#define ROWS4(M, a) M(0, a) M(1, a) M(2, a) M(3, a)
#define TOKS4(M, a) M(0, a) M(1, a) M(2, a) M(3, a)

/* Tile of MR (1 or 4) rows x NT (<= 4) tokens over nb blocks (mk_q8). */
SD_VNNI void mk_q8v(float *y, size_t ldy, const char *x, size_t xs,
                    const char *w, size_t ws, int nb, int MR, int NT) {
    __m256 acc[4][NTV_MAX];
    __m256i wq[4], wc[4];
    float wd[4];
    const sd_block_q8_0 *wr[4];
    const sd_block_q8_0 *xr[NTV_MAX];
#define MV_ROW(r, _) if (r < MR) wr[r] = (const sd_block_q8_0 *)(w + (size_t)r * ws);
    ROWS4(MV_ROW, 0)
#define MV_TOK(t, _) if (t < NT) xr[t] = (const sd_block_q8_0 *)(x + (size_t)t * xs);
    TOKS4(MV_TOK, 0)
#define MV_ZERO1(r, t) if (r < MR && t < NT) acc[r][t] = _mm256_setzero_ps();
#define MV_ZERO(t, _) ROWS4(MV_ZERO1, t)
    TOKS4(MV_ZERO, 0)
    for (int b = 0; b < nb; b++) {
        if (MR > 1) {
            const char *p = w + PFV_DIST + (size_t)b * MR * sizeof(sd_block_q8_0);
            for (int j = 0; j < MR * (int)sizeof(sd_block_q8_0); j += 64)
                _mm_prefetch(p + j, _MM_HINT_T0);
        }
#define MV_LOADW(r, _)                                                         \
    if (r < MR) {                                                              \
        wq[r] = _mm256_loadu_si256((const __m256i *)wr[r][b].qs);              \
        wc[r] = negcorr(wq[r]);                                                \
        wd[r] = _cvtsh_ss(wr[r][b].d);                                         \
    }
        ROWS4(MV_LOADW, 0)
#define MV_FMA1(r, t)                                                          \
    if (r < MR) {                                                              \
        __m256 p = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(wc[r], xu, wq[r]));  \
        acc[r][t] = _mm256_fmadd_ps(p, _mm256_set1_ps(wd[r] * xd), acc[r][t]);   \
    }
#define MV_STEP(t, _)                                                          \
    if (t < NT) {                                                              \
        __m256i xu = load_xu(xr[t][b].qs);                                     \
        float xd = _cvtsh_ss(xr[t][b].d);                                      \
        ROWS4(MV_FMA1, t)                                                      \
    }
        TOKS4(MV_STEP, 0)
    }
#define MV_STORE(t, _)                                                         \
    if (t < NT) {                                                              \
        float *yt = y + (size_t)t * ldy;                                       \
        if (MR == 4)                                                           \
            _mm_storeu_ps(yt, hsum4_v(acc[0][t], acc[1][t], acc[2][t], acc[3][t])); \
        else                                                                   \
            yt[0] = hsum8_v(acc[0][t]);                                        \
    }
    TOKS4(MV_STORE, 0)
}

/* One W row times one token (acc1_q8): a sequential stream of the row. */
SD_VNNI __m256 acc1_q8v(const sd_block_q8_0 *x, const sd_block_q8_0 *w, int nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256i wq = _mm256_loadu_si256((const __m256i *)w[b].qs);
        __m256i p = _mm256_dpbusd_epi32(negcorr(wq), load_xu(x[b].qs), wq);
        __m256 d = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(w[b].d)),
                                 _mm256_set1_ps(_cvtsh_ss(x[b].d)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc);
    }
    return acc;
}

SD_VNNI void mk_q8v_nt(float *y, size_t ldy, const char *x, size_t xs,
                       const char *w, size_t ws, int nb, int MR, int nt) {
    switch (nt) {
    case 1: mk_q8v(y, ldy, x, xs, w, ws, nb, MR, 1); break;
    case 2: mk_q8v(y, ldy, x, xs, w, ws, nb, MR, 2); break;
    case 3: mk_q8v(y, ldy, x, xs, w, ws, nb, MR, 3); break;
    default: mk_q8v(y, ldy, x, xs, w, ws, nb, MR, 4); break;
    }
}

/* y (N, ldy) [:, m0:m1] = x (N, K/32 Q8_0 blocks) * W^T: the loop structure
 * of gemm_q8_0_avx512. */
__attribute__((target("avx512vnni")))
void sd_gemm_q8_0_vnni(float *y, size_t ldy, const void *x, size_t x_stride,
                       const void *w, size_t w_stride, int K, int N, int m0,
                       int m1) {
    const char *xc = (const char *)x, *wc = (const char *)w;
    int nb = K / SD_QK8_0;
    int tc = token_chunk_v((size_t)nb * sizeof(sd_block_q8_0), NTV_MAX);
    for (int n0 = 0; n0 < N; n0 += tc) {
        int nc = N - n0 < tc ? N - n0 : tc;
        float *yc = y + (size_t)n0 * ldy;
        const char *xn = xc + (size_t)n0 * x_stride;
        int m = m0;
        if (nc == 1) { /* one token: row by row, a sequential stream */
            const sd_block_q8_0 *x0 = (const sd_block_q8_0 *)xn;
            for (; m + 4 <= m1; m += 4) {
                const char *wm = wc + (size_t)m * w_stride;
                __m256 a0 = acc1_q8v(x0, (const sd_block_q8_0 *)wm, nb);
                __m256 a1 = acc1_q8v(x0, (const sd_block_q8_0 *)(wm + w_stride), nb);
                __m256 a2 = acc1_q8v(x0, (const sd_block_q8_0 *)(wm + 2 * w_stride), nb);
                __m256 a3 = acc1_q8v(x0, (const sd_block_q8_0 *)(wm + 3 * w_stride), nb);
                _mm_storeu_ps(yc + m, hsum4_v(a0, a1, a2, a3));
            }
            for (; m < m1; m++)
                yc[m] = hsum8_v(acc1_q8v(x0, (const sd_block_q8_0 *)(wc + (size_t)m * w_stride), nb));
            continue;
        }
        for (; m + 4 <= m1; m += 4)
            for (int t0 = 0; t0 < nc;) {
                int nt = token_block_v(nc, t0, NTV_MAX);
                mk_q8v_nt(yc + (size_t)t0 * ldy + m, ldy,
                          xn + (size_t)t0 * x_stride, x_stride,
                          wc + (size_t)m * w_stride, w_stride, nb, 4, nt);
                t0 += nt;
            }
        for (; m < m1; m++)
            for (int t0 = 0; t0 < nc;) {
                int nt = token_block_v(nc, t0, NTV_MAX);
                mk_q8v_nt(yc + (size_t)t0 * ldy + m, ldy,
                          xn + (size_t)t0 * x_stride, x_stride,
                          wc + (size_t)m * w_stride, w_stride, nb, 1, nt);
                t0 += nt;
            }
    }
}
