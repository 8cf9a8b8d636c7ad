/*
 * quants_avx2.c - AVX2 gemms of the quants.h block formats (Q4_0, Q4_1,
 * Q5_0, Q5_1 against Q8_0/Q8_1 activations; Q4_K, Q5_K, Q6_K against
 * Q8_K) and the BF16 activation rounding. The AVX-512 tables use these
 * kernels as they are.
 *
 * Results equal the scalar references (quants_ref.c) bit for bit: the
 * integer parts are exact, and the float parts follow the order defined in
 * quants.h (32-blocks: 8 float lanes each fed by the exact sum of 4
 * consecutive products, fused multiply-add per block, a fixed horizontal
 * sum; super-blocks: one exact int32 per super-block, then the same scalar
 * float statements as the reference; explicit fmaf where the reference
 * has one, no other expression the compiler could contract).
 *
 * Work order: for each W row, tiles of up to NT_Q tokens; the W block is
 * unpacked once per tile and dotted with every token of the tile (one
 * token: 4 rows per pass over x instead). Each (row, token) result is
 * computed by the same arithmetic whatever the tile, N or the [m0, m1)
 * split: batch invariant.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/quants.h"

#define SD_INLINE static inline __attribute__((always_inline))

enum { NT_Q = 4 };   /* tokens per tile, 32-element block formats */
enum { NT_K = 8 };   /* tokens per tile, super-block formats      */

/* ------------------------------------------------------------ helpers */

/* ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)), the order quants.h defines. */
SD_INLINE float hsum8(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Exact sum of 8 int32 lanes. */
SD_INLINE int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

/* 16 packed bytes -> 32 nibbles in element order (low nibbles = elements
 * 0..15, high nibbles = 16..31), values 0..15. */
SD_INLINE __m256i nibbles32(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i v = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes: 0x10 where bit j of the 32-bit word is set, else 0
 * (the 5th bit of the Q5_0/Q5_1 quants). */
SD_INLINE __m256i bits32_x16(const uint8_t *qh) {
    uint32_t u;
    memcpy(&u, qh, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)u), shuf);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

/* Exact int32 lanes (4 consecutive products each) of signed w by signed x
 * (|w| <= 16: no int16 saturation). */
SD_INLINE __m256i dot_ss(__m256i w, __m256i x) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Same for unsigned w (0..31) by signed x. */
SD_INLINE __m256i dot_us(__m256i w, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
}

/* ------------------------------------------------------------ 32-blocks */

enum { F_Q4_0, F_Q4_1, F_Q5_0, F_Q5_1 };

/* Quants of block b of a W row (signed for Q4_0/Q5_0, unsigned for
 * Q4_1/Q5_1), its d and (Q4_1/Q5_1) m as floats. */
SD_INLINE __m256i unpack32(const char *w, int b, int f, float *d, float *m) {
    switch (f) {
    case F_Q4_0: {
        const sd_block_q4_0 *blk = (const sd_block_q4_0 *)w + b;
        *d = _cvtsh_ss(blk->d);
        return _mm256_sub_epi8(nibbles32(blk->qs), _mm256_set1_epi8(8));
    }
    case F_Q4_1: {
        const sd_block_q4_1 *blk = (const sd_block_q4_1 *)w + b;
        *d = _cvtsh_ss(blk->d);
        *m = _cvtsh_ss(blk->m);
        return nibbles32(blk->qs);
    }
    case F_Q5_0: {
        const sd_block_q5_0 *blk = (const sd_block_q5_0 *)w + b;
        *d = _cvtsh_ss(blk->d);
        __m256i q = _mm256_or_si256(nibbles32(blk->qs), bits32_x16(blk->qh));
        return _mm256_sub_epi8(q, _mm256_set1_epi8(16));
    }
    default: {
        const sd_block_q5_1 *blk = (const sd_block_q5_1 *)w + b;
        *d = _cvtsh_ss(blk->d);
        *m = _cvtsh_ss(blk->m);
        return _mm256_or_si256(nibbles32(blk->qs), bits32_x16(blk->qh));
    }
    }
}

/* One W row (nb blocks) by NT tokens: y[t*ldy] for t < NT. */
SD_INLINE void row_q32(float *y, size_t ldy, const char *x, size_t xs, const char *w, int nb,
                       int NT, int f) {
    const int with_min = f == F_Q4_1 || f == F_Q5_1;
    __m256 acc[NT_Q];
    float summs[NT_Q];
    for (int t = 0; t < NT; t++) {
        acc[t] = _mm256_setzero_ps();
        summs[t] = 0.0f;
    }
    for (int b = 0; b < nb; b++) {
        float dw, mw = 0.0f;
        __m256i q = unpack32(w, b, f, &dw, &mw);
        for (int t = 0; t < NT; t++) {
            const char *xt = x + (size_t)t * xs;
            if (with_min) {
                const sd_block_q8_1 *xb = (const sd_block_q8_1 *)xt + b;
                __m256i xv = _mm256_loadu_si256((const __m256i *)xb->qs);
                float d = dw * _cvtsh_ss(xb->d);
                __m256 p = _mm256_cvtepi32_ps(dot_us(q, xv));
                acc[t] = _mm256_fmadd_ps(p, _mm256_set1_ps(d), acc[t]);
                summs[t] = fmaf(mw, _cvtsh_ss(xb->s), summs[t]);
            } else {
                const sd_block_q8_0 *xb = (const sd_block_q8_0 *)xt + b;
                __m256i xv = _mm256_loadu_si256((const __m256i *)xb->qs);
                float d = dw * _cvtsh_ss(xb->d);
                /* quants.h: sumf += sumi * (d_w d_x), kept in summs */
                const float pt = (float)hsum_i32(dot_ss(q, xv)) * d;
                summs[t] = summs[t] + pt;
            }
        }
    }
    for (int t = 0; t < NT; t++) {
        if (!with_min) {
            y[(size_t)t * ldy] = summs[t];
            continue;
        }
        float s = hsum8(acc[t]);
        s = s + summs[t];
        y[(size_t)t * ldy] = s;
    }
}

/* One token, 4 W rows (ws apart): the x block is loaded once for the 4
 * rows; each row's operations are those of row_q32 with NT = 1 (same
 * bits). */
SD_INLINE void rows4_q32(float *y, const char *x, const char *w, size_t ws, int nb, int f) {
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
            xv = _mm256_loadu_si256((const __m256i *)xb->qs);
            dx = _cvtsh_ss(xb->d);
        }
        for (int r = 0; r < 4; r++) {
            float dw, mw = 0.0f;
            __m256i q = unpack32(w + (size_t)r * ws, b, f, &dw, &mw);
            float d = dw * dx;
            if (!with_min) { /* quants.h: sumf += sumi * (d_w d_x) */
                const float pt = (float)hsum_i32(dot_ss(q, xv)) * d;
                summs[r] = summs[r] + pt;
                continue;
            }
            __m256i p = dot_us(q, xv);
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d), acc[r]);
            summs[r] = fmaf(mw, sx, summs[r]);
        }
    }
    for (int r = 0; r < 4; r++) {
        if (!with_min) {
            y[r] = summs[r];
            continue;
        }
        float sum = hsum8(acc[r]);
        sum = sum + summs[r];
        y[r] = sum;
    }
}

/* y (N, ldy) [:, m0:m1] for the 32-element block format f. */
SD_INLINE void gemm_q32(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws,
                        int K, int N, int m0, int m1, int f) {
    const int nb = K / 32;
    if (N == 1) { /* decode: 4 rows per pass over x */
        int m = m0;
        for (; m + 4 <= m1; m += 4) rows4_q32(y + m, (const char *)x, (const char *)w + (size_t)m * ws, ws, nb, f);
        for (; m < m1; m++) row_q32(y + m, ldy, (const char *)x, xs, (const char *)w + (size_t)m * ws, nb, 1, f);
        return;
    }
    for (int m = m0; m < m1; m++) {
        const char *wm = (const char *)w + (size_t)m * ws;
        for (int t0 = 0; t0 < N; t0 += NT_Q) {
            float *yt = y + (size_t)t0 * ldy + m;
            const char *xt = (const char *)x + (size_t)t0 * xs;
            switch (N - t0 < NT_Q ? N - t0 : NT_Q) {
            case 1: row_q32(yt, ldy, xt, xs, wm, nb, 1, f); break;
            case 2: row_q32(yt, ldy, xt, xs, wm, nb, 2, f); break;
            case 3: row_q32(yt, ldy, xt, xs, wm, nb, 3, f); break;
            default: row_q32(yt, ldy, xt, xs, wm, nb, 4, f); break;
            }
        }
    }
}

void sd_gemm_q4_0_avx2(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws,
                       int K, int N, int m0, int m1) {
    gemm_q32(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q4_0);
}
void sd_gemm_q4_1_avx2(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws,
                       int K, int N, int m0, int m1) {
    gemm_q32(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q4_1);
}
void sd_gemm_q5_0_avx2(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws,
                       int K, int N, int m0, int m1) {
    gemm_q32(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q5_0);
}
void sd_gemm_q5_1_avx2(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws,
                       int K, int N, int m0, int m1) {
    gemm_q32(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q5_1);
}

/* ------------------------------------------------------------ super-blocks */

enum { F_Q4_K, F_Q5_K, F_Q6_K };

/* One unpacked super-block: 8 chunks of 32 quants (unsigned: 0..31 for
 * Q4_K/Q5_K, 0..63 for Q6_K before its -32 offset), the int16 scale
 * vector of each chunk, 8 mins, d and dmin. */
typedef struct {
    __m256i q[8];
    __m256i sc[8];
    __m256i m16;    /* int16 per Q8_K bsum: Q4_K/Q5_K min j/2, Q6_K scale j */
    float d, dmin;
} kblock;

SD_INLINE void unpack_k(const char *w, int b, int f, kblock *kb) {
    if (f == F_Q6_K) {
        const sd_block_q6_K *blk = (const sd_block_q6_K *)w + b;
        const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
        for (int h = 0; h < 2; h++) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h));
            __m256i c = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)(blk->qh + 32 * h));
            /* 2-bit fields of qh moved to bits 4..5: (hb >> s) & 3, << 4 */
#define QH2(s) _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, s), m3), 4)
            kb->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(a, m4), QH2(0));
            kb->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(c, m4), QH2(2));
            kb->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4), QH2(4));
            kb->q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(c, 4), m4), QH2(6));
#undef QH2
        }
        for (int c = 0; c < 8; c++)
            kb->sc[c] = _mm256_set_m128i(_mm_set1_epi16(blk->scales[2 * c + 1]),
                                         _mm_set1_epi16(blk->scales[2 * c]));
        kb->m16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk->scales));
        kb->d = _cvtsh_ss(blk->d);
        kb->dmin = 0.0f;
        return;
    }
    const uint8_t *scales, *qs;
    uint16_t dh, dmh;
    if (f == F_Q4_K) {
        const sd_block_q4_K *blk = (const sd_block_q4_K *)w + b;
        scales = blk->scales;
        qs = blk->qs;
        dh = blk->d;
        dmh = blk->dmin;
    } else {
        const sd_block_q5_K *blk = (const sd_block_q5_K *)w + b;
        scales = blk->scales;
        qs = blk->qs;
        dh = blk->d;
        dmh = blk->dmin;
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (int k = 0; k < 4; k++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * k));
        kb->q[2 * k] = _mm256_and_si256(v, m4);
        kb->q[2 * k + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    }
    if (f == F_Q5_K) {
        const sd_block_q5_K *blk = (const sd_block_q5_K *)w + b;
        __m256i hb = _mm256_loadu_si256((const __m256i *)blk->qh);
        for (int j = 0; j < 8; j++) {
            /* bit j of qh[l] is the 5th bit of element l of sub-block j */
            __m256i h = _mm256_and_si256(_mm256_srl_epi16(hb, _mm_cvtsi32_si128(j)), one);
            kb->q[j] = _mm256_or_si256(kb->q[j], _mm256_slli_epi16(h, 4));
        }
    }
    uint8_t sm[16]; /* 8 scales, 8 mins */
    sd_scales_mins_k4(scales, sm);
    __m128i v = _mm_loadu_si128((const __m128i *)sm);
    /* mins duplicated per bsum pair (m0, m0, m1, m1, ...) as int16 */
    kb->m16 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(v, v));
    /* scale j in every int16 lane: bytes (j, 0x80) broadcast */
    __m256i s16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(v));
    for (int j = 0; j < 8; j++)
        kb->sc[j] = _mm256_shuffle_epi8(s16, _mm256_set1_epi16((short)(0x8000 | (2 * j))));
    kb->d = _cvtsh_ss(dh);
    kb->dmin = _cvtsh_ss(dmh);
}

/* Super-block tail: sumf + ((dd*isum) - (dm*summ)), as the reference. */
SD_INLINE float kq_add(float sumf, float dd, int32_t isum, float dm, int32_t summ) {
    float a = dd * (float)isum;
    float b = dm * (float)summ;
    float t = a - b;
    return sumf + t;
}

/* sumf of one token after the super-block kb (x its Q8_K block). The
 * Q8_K block sums carry the x side of the Q4_K/Q5_K mins and of Q6_K's -32
 * offset: sum_l (q_l - 32) x_l over a 16-group = sum q x - 32 * bsum. */
SD_INLINE float dot_k(const kblock *kb, const sd_block_q8_K *x, float sumf, int f) {
    __m256i acc = _mm256_setzero_si256();
    for (int c = 0; c < 8; c++) {
        __m256i xv = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * c));
        /* pairs of q x: exact in int16 (|.| <= 2*63*127) */
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(kb->q[c], xv), kb->sc[c]));
    }
    __m256i bm = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x->bsums), kb->m16);
    if (f == F_Q6_K) {
        acc = _mm256_sub_epi32(acc, _mm256_slli_epi32(bm, 5));
        float dd = kb->d * x->d;
        return kq_add(sumf, dd, hsum_i32(acc), 0.0f, 0);
    }
    float dd = kb->d * x->d;
    float dm = kb->dmin * x->d;
    return kq_add(sumf, dd, hsum_i32(acc), dm, hsum_i32(bm));
}

/* y (N, ldy) [:, m0:m1] for the super-block format f. */
SD_INLINE void gemm_k(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws,
                      int K, int N, int m0, int m1, int f) {
    const int nb = K / SD_QK_K;
    kblock kb;
    for (int m = m0; m < m1; m++) {
        const char *wm = (const char *)w + (size_t)m * ws;
        for (int t0 = 0; t0 < N; t0 += NT_K) {
            const int nt = N - t0 < NT_K ? N - t0 : NT_K;
            float sumf[NT_K];
            for (int t = 0; t < nt; t++) sumf[t] = 0.0f;
            for (int b = 0; b < nb; b++) {
                unpack_k(wm, b, f, &kb);
                for (int t = 0; t < nt; t++) {
                    const sd_block_q8_K *xb =
                        (const sd_block_q8_K *)((const char *)x + (size_t)(t0 + t) * xs) + b;
                    sumf[t] = dot_k(&kb, xb, sumf[t], f);
                }
            }
            for (int t = 0; t < nt; t++) y[(size_t)(t0 + t) * ldy + (size_t)m] = sumf[t];
        }
    }
}

void sd_gemm_q4_K_avx2(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws,
                       int K, int N, int m0, int m1) {
    gemm_k(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q4_K);
}
void sd_gemm_q5_K_avx2(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws,
                       int K, int N, int m0, int m1) {
    gemm_k(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q5_K);
}
void sd_gemm_q6_K_avx2(float *y, size_t ldy, const void *x, size_t xs, const void *w, size_t ws,
                       int K, int N, int m0, int m1) {
    gemm_k(y, ldy, x, xs, w, ws, K, N, m0, m1, F_Q6_K);
}

/* ------------------------------------------------------------ BF16 */

/* x (n) rounded to BF16 values in place: byte-identical to
 * sd_round_bf16_row_ref (nearest even; NaN -> quiet NaN). */
void sd_round_bf16_row_avx2(float *x, size_t n) {
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(x + i));
        __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
        __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
        r = _mm256_and_si256(r, hi);
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
        __m256i qn = _mm256_or_si256(_mm256_and_si256(u, hi), _mm256_set1_epi32(0x00400000));
        r = _mm256_blendv_epi8(r, qn, nan);
        _mm256_storeu_si256((__m256i *)(x + i), r);
    }
    if (i < n) sd_round_bf16_row_ref(x + i, n - i);
}

/* sd_quantize_row_q8_K (quants_ref.c) with AVX2, byte for byte: amax is the
 * largest |x| (NaN ignored: vmaxps returns its second operand when the
 * first is NaN), max the first element with |x| = amax (the reference's
 * strict > keeps the first), iscale = -127 / max, q = round-to-nearest-even
 * of iscale x (vcvtps2dq under the default rounding, as nearest_int's magic
 * add for |v| <= 2^22), NaN lanes 0, q <= 127, bsums of 16, d = 1 / iscale.
 * Activations enter every K-quant matmul through this (forward.c), up to
 * 70 K values per row of a 226 M model: the scalar loop cost ~2.6 ns each. */
void sd_quantize_row_q8_K_avx2(void *dst, const float *x, int K) {
    sd_block_q8_K *y = (sd_block_q8_K *)dst;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int i = 0; i < K / SD_QK_K; i++) {
        const float *xb = x + (size_t)i * SD_QK_K;
        __m256 am = _mm256_setzero_ps();
        for (int j = 0; j < SD_QK_K; j += 8) am = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(xb + j)), am);
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(am), _mm256_extractf128_ps(am, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        memset(y[i].bsums, 0, sizeof y[i].bsums);
        if (amax == 0.0f || !isfinite(amax)) {
            y[i].d = 0.0f;
            memset(y[i].qs, 0, SD_QK_K);
            continue;
        }
        float max = 0.0f;
        const __m256 va = _mm256_set1_ps(amax);
        for (int j = 0; j < SD_QK_K; j += 8) {
            const __m256 v = _mm256_loadu_ps(xb + j);
            const int mk = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v), va, _CMP_EQ_OQ));
            if (mk) {
                max = xb[j + __builtin_ctz((unsigned)mk)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
        const __m256i top = _mm256_set1_epi32(127);
        const __m256 inf = _mm256_set1_ps(INFINITY);
        for (int j = 0; j < SD_QK_K; j += 16) {
            __m256 v0 = _mm256_mul_ps(vs, _mm256_loadu_ps(xb + j));
            __m256 v1 = _mm256_mul_ps(vs, _mm256_loadu_ps(xb + j + 8));
            /* NaN -> 0 as the reference; +-inf (iscale overflows when
             * |max| < 127 / FLT_MAX) -> 0 too: nearest_int's magic add
             * gives -2^22 there, whose low byte the int8 store keeps */
            v0 = _mm256_and_ps(v0, _mm256_cmp_ps(_mm256_andnot_ps(sign, v0), inf, _CMP_LT_OQ));
            v1 = _mm256_and_ps(v1, _mm256_cmp_ps(_mm256_andnot_ps(sign, v1), inf, _CMP_LT_OQ));
            const __m256i q0 = _mm256_min_epi32(_mm256_cvtps_epi32(v0), top);
            const __m256i q1 = _mm256_min_epi32(_mm256_cvtps_epi32(v1), top);
            /* 16 values in [-128, 127]: pack to bytes in order */
            const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8); /* 16 x int16 in order */
            const __m128i b = _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
            _mm_storeu_si128((__m128i *)(void *)(y[i].qs + j), b);
            __m256i s = _mm256_add_epi32(q0, q1);
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
            y[i].bsums[j / 16] = (int16_t)_mm_cvtsi128_si32(s4);
        }
        y[i].d = 1.0f / iscale;
    }
}
