/*
 * quants_vnni_avx512.c - the quants.h gemms with AVX512-VNNI (vpdpbusd on
 * 256-bit vectors), for the "avx512vnni" table.
 *
 * Compiled with the AVX-512 flags (Makefile rule for *_avx512.c); VNNI is
 * enabled per function with a target attribute and the table using these
 * kernels is only handed out when the CPU reports avx512vnni (kernels.c).
 * Same loop structure (one token: 4 rows per pass over x) and float
 * operations as quants_avx2.c; only the
 * exact integer dot products are formed differently, so the results are
 * bit-identical to the AVX2 kernels and to the scalar references:
 *  - signed weights (Q4_0, Q5_0): x is offset to unsigned (x ^ 0x80 =
 *    x + 128) and -128 * sum4(w) is fed in as the accumulator (computed once
 *    per W block, reused for every token): dpbusd gives sum4(x w) exactly;
 *  - unsigned weights (Q4_1, Q5_1, the K types): dpbusd(q, x) directly;
 *    Q6_K's -32 offset uses the Q8_K block sums: sum (q - 32) x over 16
 *    elements = sum q x - 32 * bsum.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/quants.h"

#define SD_VNNI static inline __attribute__((always_inline, target("avx512vnni")))

enum { NT_Q = 4, NT_K = 8 };

/* ------------------------------------------------------------ helpers */

SD_VNNI float hsum8_v(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

SD_VNNI int32_t hsum_i32_v(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

SD_VNNI __m256i nibbles32_v(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* 0x10 where bit j of the 32-bit qh word is set (AVX-512BW mask form). */
SD_VNNI __m256i bits32_x16_v(const uint8_t *qh) {
    uint32_t u;
    memcpy(&u, qh, 4);
    return _mm256_maskz_mov_epi8((__mmask32)u, _mm256_set1_epi8(0x10));
}

/* ------------------------------------------------------------ 32-blocks */

enum { F_Q4_0, F_Q4_1, F_Q5_0, F_Q5_1 };

/* Quants of block b (signed: with the -128*sum4 correction in *corr), d, m. */
SD_VNNI __m256i unpack32_v(const char *w, int b, int f, float *d, float *m, __m256i *corr) {
    __m256i q;
    switch (f) {
    case F_Q4_0: {
        const sd_block_q4_0 *blk = (const sd_block_q4_0 *)w + b;
        *d = _cvtsh_ss(blk->d);
        q = _mm256_sub_epi8(nibbles32_v(blk->qs), _mm256_set1_epi8(8));
        break;
    }
    case F_Q4_1: {
        const sd_block_q4_1 *blk = (const sd_block_q4_1 *)w + b;
        *d = _cvtsh_ss(blk->d);
        *m = _cvtsh_ss(blk->m);
        return nibbles32_v(blk->qs);
    }
    case F_Q5_0: {
        const sd_block_q5_0 *blk = (const sd_block_q5_0 *)w + b;
        *d = _cvtsh_ss(blk->d);
        q = _mm256_sub_epi8(_mm256_or_si256(nibbles32_v(blk->qs), bits32_x16_v(blk->qh)),
                            _mm256_set1_epi8(16));
        break;
    }
    default: {
        const sd_block_q5_1 *blk = (const sd_block_q5_1 *)w + b;
        *d = _cvtsh_ss(blk->d);
        *m = _cvtsh_ss(blk->m);
        return _mm256_or_si256(nibbles32_v(blk->qs), bits32_x16_v(blk->qh));
    }
    }
    __m256i c = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8((char)0x80), q);
    *corr = _mm256_sub_epi32(_mm256_setzero_si256(), c);
    return q;
}

SD_VNNI void row_q32_v(float *y, size_t ldy, const char *x, size_t xs, const char *w, int nb, int NT,
                       int f) {
    const int with_min = f == F_Q4_1 || f == F_Q5_1;
    __m256 acc[NT_Q];
    float summs[NT_Q];
    for (int t = 0; t < NT; t++) {
        acc[t] = _mm256_setzero_ps();
        summs[t] = 0.0f;
    }
    for (int b = 0; b < nb; b++) {
        float dw, mw = 0.0f;
        __m256i corr = _mm256_setzero_si256();
        __m256i q = unpack32_v(w, b, f, &dw, &mw, &corr);
        for (int t = 0; t < NT; t++) {
            const char *xt = x + (size_t)t * xs;
            if (with_min) {
                const sd_block_q8_1 *xb = (const sd_block_q8_1 *)xt + b;
                __m256i xv = _mm256_loadu_si256((const __m256i *)xb->qs);
                float d = dw * _cvtsh_ss(xb->d);
                __m256 p = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), q, xv));
                acc[t] = _mm256_fmadd_ps(p, _mm256_set1_ps(d), acc[t]);
                summs[t] = fmaf(mw, _cvtsh_ss(xb->s), summs[t]);
            } else {
                const sd_block_q8_0 *xb = (const sd_block_q8_0 *)xt + b;
                __m256i xu = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)xb->qs),
                                              _mm256_set1_epi8((char)0x80));
                float d = dw * _cvtsh_ss(xb->d);
                /* quants.h: sumf += sumi * (d_w d_x), kept in summs */
                const float pt = (float)hsum_i32_v(_mm256_dpbusd_epi32(corr, xu, q)) * d;
                summs[t] = summs[t] + pt;
            }
        }
    }
    for (int t = 0; t < NT; t++) {
        if (!with_min) {
            y[(size_t)t * ldy] = summs[t];
            continue;
        }
        float s = hsum8_v(acc[t]);
        s = s + summs[t];
        y[(size_t)t * ldy] = s;
    }
}

/* One token, 4 W rows (ws apart): the x block is loaded once for the 4
 * rows; each row's operations are those of row_q32_v with NT = 1, so the
 * results are the same bits. */
SD_VNNI void rows4_q32_v(float *y, const char *x, const char *w, size_t ws, int nb, int f) {
    const int with_min = f == F_Q4_1 || f == F_Q5_1;
    __m256 acc[4];
    float summs[4];
    for (int r = 0; r < 4; r++) {
        acc[r] = _mm256_setzero_ps();
        summs[r] = 0.0f;
    }
    for (int b = 0; b < nb; b++) {
        __m256i xv;
        float dx, sx = 0.0f;
        if (with_min) {
            const sd_block_q8_1 *xb = (const sd_block_q8_1 *)x + b;
            xv = _mm256_loadu_si256((const __m256i *)xb->qs);
            dx = _cvtsh_ss(xb->d);
            sx = _cvtsh_ss(xb->s);
        } else {
            const sd_block_q8_0 *xb = (const sd_block_q8_0 *)x + b;
            xv = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)xb->qs), _mm256_set1_epi8((char)0x80));
            dx = _cvtsh_ss(xb->d);
        }
        for (int r = 0; r < 4; r++) {
            float dw, mw = 0.0f;
            __m256i corr = _mm256_setzero_si256();
            __m256i q = unpack32_v(w + (size_t)r * ws, b, f, &dw, &mw, &corr);
            float d = dw * dx;
            if (!with_min) { /* quants.h: sumf += sumi * (d_w d_x) */
                const float pt = (float)hsum_i32_v(_mm256_dpbusd_epi32(corr, xv, q)) * d;
                summs[r] = summs[r] + pt;
                continue;
            }
            __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, xv);
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d), acc[r]);
            summs[r] = fmaf(mw, sx, summs[r]);
        }
    }
    for (int r = 0; r < 4; r++) {
        if (!with_min) {
            y[r] = summs[r];
            continue;
        }
        float sum = hsum8_v(acc[r]);
        sum = sum + summs[r];
        y[r] = sum;
    }
}

SD_VNNI void gemm_q32_v(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws, int K,
                        int N, int m0, int m1, int f) {
    const int nb = K / 32;
    if (N == 1) { /* decode: 4 rows per pass over x */
        int m = m0;
        for (; m + 4 <= m1; m += 4) rows4_q32_v(y + m, (const char *)x, (const char *)w + (size_t)m * ws, ws, nb, f);
        for (; m < m1; m++) row_q32_v(y + m, ldy, (const char *)x, xs, (const char *)w + (size_t)m * ws, nb, 1, f);
        return;
    }
    for (int m = m0; m < m1; m++) {
        const char *wm = (const char *)w + (size_t)m * ws;
        for (int t0 = 0; t0 < N; t0 += NT_Q) {
            float *yt = y + (size_t)t0 * ldy + m;
            const char *xt = (const char *)x + (size_t)t0 * xs;
            switch (N - t0 < NT_Q ? N - t0 : NT_Q) {
            case 1: row_q32_v(yt, ldy, xt, xs, wm, nb, 1, f); break;
            case 2: row_q32_v(yt, ldy, xt, xs, wm, nb, 2, f); break;
            case 3: row_q32_v(yt, ldy, xt, xs, wm, nb, 3, f); break;
            default: row_q32_v(yt, ldy, xt, xs, wm, nb, 4, f); break;
            }
        }
    }
}

#define VNNI_GEMM(NAME, F)                                                                   \
    __attribute__((target("avx512vnni"))) void NAME(float *y, size_t ldy, const void *x,     \
                                                    size_t xs, const void *w, size_t ws,     \
                                                    int K, int N, int m0, int m1) {          \
        F;                                                                                   \
    }

VNNI_GEMM(sd_gemm_q4_0_vnni, gemm_q32_v(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q4_0))
VNNI_GEMM(sd_gemm_q4_1_vnni, gemm_q32_v(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q4_1))
VNNI_GEMM(sd_gemm_q5_0_vnni, gemm_q32_v(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q5_0))
VNNI_GEMM(sd_gemm_q5_1_vnni, gemm_q32_v(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q5_1))

/* ------------------------------------------------------------ super-blocks */

enum { F_Q4_K, F_Q5_K, F_Q6_K };

/* Unpacked super-block: 8 chunks of 32 unsigned quants; int32 lane scales
 * per chunk (Q4_K/Q5_K: the sub-block scale in all 8 lanes; Q6_K: the two
 * 16-element scales, lanes 0-3 and 4-7); mins (Q4_K/Q5_K) or the 16 scales
 * (Q6_K, for the -32 * bsum term); d, dmin. */
typedef struct {
    __m256i q[8];
    __m256i sc[8];
    __m256i m16;    /* int16 per Q8_K bsum: Q4_K/Q5_K min j/2, Q6_K scale j */
    float d, dmin;
} kblock_v;

SD_VNNI void unpack_k_v(const char *w, int b, int f, kblock_v *kb) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    if (f == F_Q6_K) {
        const sd_block_q6_K *blk = (const sd_block_q6_K *)w + b;
        const __m256i m3 = _mm256_set1_epi8(3);
        for (int h = 0; h < 2; h++) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h));
            __m256i c = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)(blk->qh + 32 * h));
#define QH2(s) _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, s), m3), 4)
            kb->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(a, m4), QH2(0));
            kb->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(c, m4), QH2(2));
            kb->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4), QH2(4));
            kb->q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), m4), QH2(6));
#undef QH2
        }
        for (int c = 0; c < 8; c++)
            kb->sc[c] = _mm256_set_m128i(_mm_set1_epi32(blk->scales[2 * c + 1]), _mm_set1_epi32(blk->scales[2 * c]));
        kb->m16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk->scales));
        kb->d = _cvtsh_ss(blk->d);
        kb->dmin = 0.0f;
        return;
    }
    const uint8_t *scales, *qs;
    uint16_t dh, dmh;
    if (f == F_Q4_K) {
        const sd_block_q4_K *blk = (const sd_block_q4_K *)w + b;
        scales = blk->scales; qs = blk->qs; dh = blk->d; dmh = blk->dmin;
    } else {
        const sd_block_q5_K *blk = (const sd_block_q5_K *)w + b;
        scales = blk->scales; qs = blk->qs; dh = blk->d; dmh = blk->dmin;
    }
    for (int k = 0; k < 4; k++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * k));
        kb->q[2 * k] = _mm256_and_si256(v, m4);
        kb->q[2 * k + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    if (f == F_Q5_K) {
        const sd_block_q5_K *blk = (const sd_block_q5_K *)w + b;
        __m256i hb = _mm256_loadu_si256((const __m256i *)blk->qh);
        for (int j = 0; j < 8; j++) {
            /* bit j of qh[l] -> 16, as a byte mask */
            __mmask32 mk = _mm256_test_epi8_mask(hb, _mm256_set1_epi8((char)(1u << j)));
            kb->q[j] = _mm256_or_si256(kb->q[j], _mm256_maskz_mov_epi8(mk, _mm256_set1_epi8(0x10)));
        }
    }
    uint8_t sm[16]; /* 8 scales, 8 mins */
    sd_scales_mins_k4(scales, sm);
    __m128i v = _mm_loadu_si128((const __m128i *)sm);
    kb->m16 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(v, v)); /* m0, m0, m1, m1, ... */
    __m256i s32 = _mm256_cvtepu8_epi32(v);                   /* the 8 scales */
    for (int j = 0; j < 8; j++) kb->sc[j] = _mm256_permutexvar_epi32(_mm256_set1_epi32(j), s32);
    kb->d = _cvtsh_ss(dh);
    kb->dmin = _cvtsh_ss(dmh);
}

SD_VNNI float kq_add_v(float sumf, float dd, int32_t isum, float dm, int32_t summ) {
    float a = dd * (float)isum;
    float b = dm * (float)summ;
    float t = a - b;
    return sumf + t;
}

SD_VNNI float dot_k_v(const kblock_v *kb, const sd_block_q8_K *x, float sumf, int f) {
    __m256i acc = _mm256_setzero_si256();
    for (int c = 0; c < 8; c++) {
        __m256i xv = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
        __m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), kb->q[c], xv);
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(p, kb->sc[c]));
    }
    /* bsums times the mins (Q4_K/Q5_K) or the scales (Q6_K) */
    __m256i bm = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x->bsums), kb->m16);
    if (f == F_Q6_K) {
        /* sum sc (q - 32) x = sum sc q x - 32 sum sc bsum */
        acc = _mm256_sub_epi32(acc, _mm256_slli_epi32(bm, 5));
        float dd = kb->d * x->d;
        return kq_add_v(sumf, dd, hsum_i32_v(acc), 0.0f, 0);
    }
    float dd = kb->d * x->d;
    float dm = kb->dmin * x->d;
    return kq_add_v(sumf, dd, hsum_i32_v(acc), dm, hsum_i32_v(bm));
}

SD_VNNI void gemm_k_v(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws, int K, int N,
                      int m0, int m1, int f) {
    const int nb = K / SD_QK_K;
    kblock_v kb;
    for (int m = m0; m < m1; m++) {
        const char *wm = (const char *)w + (size_t)m * ws;
        for (int t0 = 0; t0 < N; t0 += NT_K) {
            const int nt = N - t0 < NT_K ? N - t0 : NT_K;
            float sumf[NT_K];
            for (int t = 0; t < nt; t++) sumf[t] = 0.0f;
            for (int b = 0; b < nb; b++) {
                unpack_k_v(wm, b, f, &kb);
                for (int t = 0; t < nt; t++) {
                    const sd_block_q8_K *xb =
                        (const sd_block_q8_K *)((const char *)x + (size_t)(t0 + t) * xs) + b;
                    sumf[t] = dot_k_v(&kb, xb, sumf[t], f);
                }
            }
            for (int t = 0; t < nt; t++) y[(size_t)(t0 + t) * ldy + (size_t)m] = sumf[t];
        }
    }
}

VNNI_GEMM(sd_gemm_q4_K_vnni, gemm_k_v(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q4_K))
VNNI_GEMM(sd_gemm_q5_K_vnni, gemm_k_v(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q5_K))
VNNI_GEMM(sd_gemm_q6_K_vnni, gemm_k_v(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q6_K))
