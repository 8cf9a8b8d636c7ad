/* attn_avx512.c - F16 flash attention with AVX-512 (D multiple of 16;
 * other D fall back to the reference). Same operation order as the
 * reference per element; dot products are summed in a different order. */
#include <immintrin.h>
#include <math.h>

#include "kernels/attn.h"

/* exp(x) for 16 lanes (Cephes expf: range reduction by ln2 in two parts, a
 * degree-6 polynomial, scaling by 2^n); within ~2 ulp of expf for
 * x >= -87, exactly 0 below. Flushing avoids denormals (microcoded, ~100x
 * slower) in the accumulation; weights below 1.6e-38 vanish in the F16
 * accumulator either way. */
static inline __m512 exp16(__m512 x) {
    __mmask16 normal = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f)), _mm512_set1_ps(-88.3762626647949f));
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps(normal, _mm512_scalef_ps(y, fx));
}

static inline __m512 round_f16(__m512 x) {
    return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

#define ATTN_BLOCK 64

/* Sum of each of 16 vectors, as one vector (lane i = sum of v[i]). */
static inline __m512 transpose_sum16(__m512 *v) {
    /* pairwise: 16 -> 8 -> 4 -> 2 -> 1 levels of lane-interleaved adds */
    __m512 a[8], b[4], c[2];
    for (int i = 0; i < 8; i++) {
        __m512 lo = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        __m512 hi = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
        a[i] = _mm512_add_ps(lo, hi); /* lanes: (v2i, v2i+1) pairs interleaved */
    }
    for (int i = 0; i < 4; i++) {
        __m512 lo = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a[2 * i]), _mm512_castps_pd(a[2 * i + 1])));
        __m512 hi = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a[2 * i]), _mm512_castps_pd(a[2 * i + 1])));
        b[i] = _mm512_add_ps(lo, hi);
    }
    for (int i = 0; i < 2; i++) {
        __m512 lo = _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88);
        __m512 hi = _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xdd);
        c[i] = _mm512_add_ps(lo, hi);
    }
    __m512 lo = _mm512_shuffle_f32x4(c[0], c[1], 0x88);
    __m512 hi = _mm512_shuffle_f32x4(c[0], c[1], 0xdd);
    return _mm512_add_ps(lo, hi);
}

/* Accumulates cells [0, nb) of a block for R heads of D = 64 with the F16
 * accumulators held in registers (acc is loaded and stored once per block).
 * Same operation order as the generic loop. */
static inline __attribute__((always_inline)) void accum_d64(
    const int R, float (*acc)[SD_ATTN_MAX_D], float *S, float (*sc)[ATTN_BLOCK],
    uint8_t (*grow)[ATTN_BLOCK], const int *cells, int nb, const uint16_t *V, size_t stride) {
    __m512 a[4][4];
    for (int r = 0; r < R; r++)
        for (int j = 0; j < 4; j++) a[r][j] = _mm512_load_ps(&acc[r][16 * j]);
    for (int b = 0; b < nb; b++) {
        const uint16_t *v = V + (size_t)cells[b] * stride;
        __m512 vf[4];
        for (int j = 0; j < 4; j++) vf[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + 16 * j)));
        for (int r = 0; r < R; r++) {
            float e = sc[r][b], vs = e, ms = 1.0f;
            if (grow[r][b]) {
                ms = e;
                vs = 1.0f;
                __m512 vms = _mm512_set1_ps(ms);
                for (int j = 0; j < 4; j++) a[r][j] = round_f16(_mm512_mul_ps(a[r][j], vms));
            }
            __m512 vvs = _mm512_set1_ps(vs);
            for (int j = 0; j < 4; j++) a[r][j] = round_f16(_mm512_fmadd_ps(vf[j], vvs, a[r][j]));
            S[r] = S[r] * ms + vs;
        }
    }
    for (int r = 0; r < R; r++)
        for (int j = 0; j < 4; j++) _mm512_store_ps(&acc[r][16 * j], a[r][j]);
}

/* Same per-cell order as the reference (running max M, rescale of the F16
 * accumulator when M grows, then acc += v * e^(s - M)); the scores and the
 * exponentials of a block of cells are computed up front, vectorized. */
void sd_attn_f16_avx512(float *out, const float *q, int R, int D, float scale, const uint16_t *K,
                        const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis) {
    if (D % 16 != 0 || R > SD_ATTN_MAX_REP || D > SD_ATTN_MAX_D) {
        sd_attn_f16_ref(out, q, R, D, scale, K, V, stride, n_prefix, n_batch, vis);
        return;
    }
    const int nv = D / 16;
    __m512 qf[SD_ATTN_MAX_REP * (SD_ATTN_MAX_D / 16)];
    float acc[SD_ATTN_MAX_REP][SD_ATTN_MAX_D] __attribute__((aligned(64))); /* F16 values */
    float M[SD_ATTN_MAX_REP], S[SD_ATTN_MAX_REP];
    float sc[SD_ATTN_MAX_REP][ATTN_BLOCK] __attribute__((aligned(64)));  /* scores, then e^arg */
    uint8_t grow[SD_ATTN_MAX_REP][ATTN_BLOCK];                           /* new running max */
    int cells[ATTN_BLOCK];
    for (int r = 0; r < R; r++) {
        for (int j = 0; j < nv; j++) {
            qf[r * nv + j] = round_f16(_mm512_loadu_ps(q + (size_t)r * D + 16 * j));
            _mm512_store_ps(&acc[r][16 * j], _mm512_setzero_ps());
        }
        M[r] = -INFINITY;
        S[r] = 0.0f;
    }
    const int n = n_prefix + n_batch;
    int c = 0;
    while (c < n) {
        /* gather up to ATTN_BLOCK visible cells */
        int nb = sd_attn_gather(cells, ATTN_BLOCK, &c, n, n_prefix, vis);
        if (nb == 0) break;
        /* scores: 16 cells at a time per head, the 16 partial sums added up
         * by a transpose */
        for (int b0 = 0; b0 < nb; b0 += 16) {
            int nc = nb - b0 < 16 ? nb - b0 : 16;
            for (int r = 0; r < R; r++) {
                __m512 part[16];
                for (int b = 0; b < 16; b++) {
                    if (b >= nc) { part[b] = _mm512_setzero_ps(); continue; }
                    const uint16_t *k = K + (size_t)cells[b0 + b] * stride;
                    __m512 sum = _mm512_mul_ps(qf[r * nv], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)k)));
                    for (int j = 1; j < nv; j++)
                        sum = _mm512_fmadd_ps(qf[r * nv + j], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + 16 * j))), sum);
                    part[b] = sum;
                }
                _mm512_store_ps(&sc[r][b0], _mm512_mul_ps(transpose_sum16(part), _mm512_set1_ps(scale)));
            }
        }
        /* running max: arg = M_old - s where the max grows (the rescale
         * factor), else s - M (the weight) */
        for (int r = 0; r < R; r++) {
            float m = M[r];
            for (int b = 0; b < nb; b++) {
                float s = sc[r][b];
                if (s > m) {
                    sc[r][b] = m - s;
                    grow[r][b] = 1;
                    m = s;
                } else {
                    sc[r][b] = s - m;
                    grow[r][b] = 0;
                }
            }
            M[r] = m;
            for (int b = 0; b < nb; b += 16) _mm512_store_ps(&sc[r][b], exp16(_mm512_load_ps(&sc[r][b])));
        }
        /* accumulate in cell order */
        if (nv == 4 && R <= 4) {
            switch (R) {
            case 1: accum_d64(1, acc, S, sc, grow, cells, nb, V, stride); break;
            case 2: accum_d64(2, acc, S, sc, grow, cells, nb, V, stride); break;
            case 3: accum_d64(3, acc, S, sc, grow, cells, nb, V, stride); break;
            default: accum_d64(4, acc, S, sc, grow, cells, nb, V, stride); break;
            }
            continue;
        }
        for (int b = 0; b < nb; b++) {
            const uint16_t *v = V + (size_t)cells[b] * stride;
            __m512 vf[SD_ATTN_MAX_D / 16];
            for (int j = 0; j < nv; j++) vf[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + 16 * j)));
            for (int r = 0; r < R; r++) {
                float e = sc[r][b], vs = e, ms = 1.0f;
                float *a = acc[r];
                if (grow[r][b]) {
                    ms = e;
                    vs = 1.0f;
                    __m512 vms = _mm512_set1_ps(ms);
                    for (int j = 0; j < nv; j++)
                        _mm512_store_ps(a + 16 * j, round_f16(_mm512_mul_ps(_mm512_load_ps(a + 16 * j), vms)));
                }
                __m512 vvs = _mm512_set1_ps(vs);
                for (int j = 0; j < nv; j++)
                    _mm512_store_ps(a + 16 * j, round_f16(_mm512_fmadd_ps(vf[j], vvs, _mm512_load_ps(a + 16 * j))));
                S[r] = S[r] * ms + vs;
            }
        }
    }
    for (int r = 0; r < R; r++) {
        __m512 inv = _mm512_set1_ps(S[r] > 0.0f ? 1.0f / S[r] : 0.0f);
        for (int j = 0; j < nv; j++)
            _mm512_storeu_ps(out + (size_t)r * D + 16 * j, _mm512_mul_ps(_mm512_load_ps(&acc[r][16 * j]), inv));
    }
}

void sd_fp32_to_fp16_row_avx512(uint16_t *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(y + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    sd_fp32_to_fp16_row_ref(y + i, x + i, n - i);
}

void sd_round_f16_row_avx512(float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    sd_round_f16_row_ref(x + i, n - i);
}

/* ---- F32-accumulating attention (see attn.h)
 *
 * Per block of visible cells and per query vector (one head of one row):
 *   scores:  with q and k_c in chunks of 8 dims, a = q_0 k_0 + q_2 k_2 + ...
 *            and b = q_1 k_1 + q_3 k_3 + ... (FMA chains, 8 lanes), then
 *            s_c = tree(a + b) * scale, the lanes summed as
 *            ((l0 + l2) + (l1 + l3)) + ((l4 + l6) + (l5 + l7));
 *   softmax: block max, M_new = max(M, block max), rescale factor
 *            ms = exp(M - M_new), S = S ms + the sum of p_c = exp(s_c - M_new)
 *            (exp16; partial sums over 16-lane vectors, then added);
 *   P V:     acc = acc ms, then acc += v_c p_c (FMA) in cell order.
 * The query vectors of a call are processed in groups that share the K and
 * V row loads and conversions (exact), but each query vector's operations
 * are the same whatever group it is in and whatever other rows are in the
 * call: batch invariance. The groups keep queries, partial scores and
 * accumulators in registers; D = 32, 64, 128 have kernels specialized for
 * their register budget. The score loops (and P V for small groups) use
 * 8-lane vectors: same FMA throughput, and on Zen 4 the 16-lane F16
 * conversions and shuffles they would need cost more than the FMAs. */

#define QMAX 48 /* query vectors per call of the block routine */
#define AI static inline __attribute__((always_inline))
/* Full unrolling of the loops over queries and dims (constant trip
 * counts) keeps the arrays of vectors in registers. */
#if defined(__clang__)
#define UNROLL _Pragma("clang loop unroll(full)")
#else
#define UNROLL _Pragma("GCC unroll 16")
#endif

typedef struct attn_q {
    const float *q;                /* query (D floats)             */
    float acc[SD_ATTN_MAX_D] __attribute__((aligned(64)));
    float M, S;                    /* running max, running sum     */
    float bmax, ms;                /* this block's max, rescale    */
} attn_q;

/* One level of the 8-lane sum tree of the scores. */
AI __m256 hadd_ps(__m256 a, __m256 b) { return _mm256_add_ps(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b)); }
AI __m256 hadd_pd(__m256 a, __m256 b) {
    __m256d x = _mm256_castps_pd(a), y = _mm256_castps_pd(b);
    return _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(x, y)), _mm256_castpd_ps(_mm256_unpackhi_pd(x, y)));
}
AI __m256 hadd_128(__m256 a, __m256 b) {
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
}

#define GMAX 6

/* The 8-lane partial dot products of G queries (qv[g * N8 + j]: dims
 * 8j..8j+7) with the K rows ka and kb: for each row and query, the even
 * and the odd chunks in two chains, then added. The chains of the two rows
 * and the G queries are interleaved (independent operations adjacent). */
AI void dots2(const int G, const int N8, __m256 *pa, __m256 *pb, const __m256 *qv, const uint16_t *ka,
              const uint16_t *kb) {
#define CVT8(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
    __m256 a0[GMAX], a1[GMAX], b0[GMAX], b1[GMAX];
    {
        const __m256 x0 = CVT8(ka), x1 = CVT8(ka + 8), y0 = CVT8(kb), y1 = CVT8(kb + 8);
        UNROLL for (int g = 0; g < G; g++) {
            const __m256 *q = qv + g * N8;
            a0[g] = _mm256_mul_ps(q[0], x0);
            a1[g] = _mm256_mul_ps(q[1], x1);
            b0[g] = _mm256_mul_ps(q[0], y0);
            b1[g] = _mm256_mul_ps(q[1], y1);
        }
    }
    UNROLL for (int j = 2; j < N8; j += 2) {
        const __m256 x0 = CVT8(ka + 8 * j), x1 = CVT8(ka + 8 * j + 8);
        const __m256 y0 = CVT8(kb + 8 * j), y1 = CVT8(kb + 8 * j + 8);
        UNROLL for (int g = 0; g < G; g++) {
            const __m256 *q = qv + g * N8;
            a0[g] = _mm256_fmadd_ps(q[j], x0, a0[g]);
            a1[g] = _mm256_fmadd_ps(q[j + 1], x1, a1[g]);
            b0[g] = _mm256_fmadd_ps(q[j], y0, b0[g]);
            b1[g] = _mm256_fmadd_ps(q[j + 1], y1, b1[g]);
        }
    }
#undef CVT8
    UNROLL for (int g = 0; g < G; g++) {
        pa[g] = _mm256_add_ps(a0[g], a1[g]);
        pb[g] = _mm256_add_ps(b0[g], b1[g]);
    }
}

/* Scores (unscaled) of 8 cells for G queries: out[g] lane i = q_g . k_cells[i],
 * the 8 lanes of each partial summed by a fixed tree (the same for every
 * lane position: a cell's score does not depend on the other cells). */
AI void qk8(const int G, const int N8, __m256 *out, const __m256 *qv, const uint16_t *K, size_t stride,
            const int *cells) {
    __m256 b[GMAX][2];
    UNROLL for (int h = 0; h < 2; h++) {
        __m256 a[GMAX][2];
        UNROLL for (int pr = 0; pr < 2; pr++) {
            const int i = 4 * h + 2 * pr;
            __m256 p0[GMAX], p1[GMAX];
            dots2(G, N8, p0, p1, qv, K + (size_t)cells[i] * stride, K + (size_t)cells[i + 1] * stride);
            UNROLL for (int g = 0; g < G; g++) a[g][pr] = hadd_ps(p0[g], p1[g]);
        }
        UNROLL for (int g = 0; g < G; g++) b[g][h] = hadd_pd(a[g][0], a[g][1]);
    }
    UNROLL for (int g = 0; g < G; g++) out[g] = hadd_128(b[g][0], b[g][1]);
}

AI float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* Scores of the block for queries qs[0..G) (cells padded to a multiple of
 * 16 with a visible cell; the padding lanes get -inf), and their max. */
AI void qk_group(const int G, const int NV, attn_q *qs, float (*sc)[SD_ATTN_F32_BLOCK], float scale,
                 const uint16_t *K, size_t stride, const int *cells, int nb) {
    const int N8 = 2 * NV;
    __m256 qv[GMAX * 32], vmax[GMAX];
    UNROLL for (int g = 0; g < G; g++) {
        UNROLL for (int j = 0; j < N8; j++) qv[g * N8 + j] = _mm256_loadu_ps(qs[g].q + 8 * j);
        vmax[g] = _mm256_set1_ps(-INFINITY);
    }
    const __m256 vscale = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
    int b0 = 0;
    for (; b0 < nb; b0 += 8) {
        __m256 s[GMAX];
        qk8(G, N8, s, qv, K, stride, cells + b0);
        const int ncb = nb - b0 < 8 ? nb - b0 : 8;
        const __mmask8 live = (__mmask8)((1u << ncb) - 1u);
        UNROLL for (int g = 0; g < G; g++) {
            __m256 x = _mm256_mask_mov_ps(ninf, live, _mm256_mul_ps(s[g], vscale));
            _mm256_store_ps(&sc[g][b0], x);
            vmax[g] = _mm256_max_ps(vmax[g], x);
        }
    }
    if (b0 & 8)
        UNROLL for (int g = 0; g < G; g++) _mm256_store_ps(&sc[g][b0], ninf);
    UNROLL for (int g = 0; g < G; g++) qs[g].bmax = hmax8(vmax[g]);
}

/* acc = acc * ms + sum over the block's cells (in order) of v_c p_c for
 * dims [d0, d0 + 16 NV) of queries qs[0..G), the accumulators in
 * registers: as 16-lane vectors, or for small groups as 8-lane vectors
 * with each V chunk used by the G queries as soon as it is converted
 * (faster on Zen 4 when G < 4). The operations on each element are the
 * same either way. */
AI void pv_group(const int G, const int NV, attn_q *qs, float (*sc)[SD_ATTN_F32_BLOCK], const uint16_t *V,
                 size_t stride, const int *cells, int nb, const int d0) {
    if (G * 2 * NV <= 24) {
        const int N8 = 2 * NV;
        __m256 a[24];
        UNROLL for (int g = 0; g < G; g++) {
            const __m256 vms = _mm256_set1_ps(qs[g].ms);
            UNROLL for (int j = 0; j < N8; j++) a[g * N8 + j] = _mm256_mul_ps(_mm256_load_ps(&qs[g].acc[d0 + 8 * j]), vms);
        }
        for (int b = 0; b < nb; b++) {
            const uint16_t *v = V + (size_t)cells[b] * stride + d0;
            __m256 p[GMAX];
            UNROLL for (int g = 0; g < G; g++) p[g] = _mm256_broadcast_ss(&sc[g][b]);
            UNROLL for (int j = 0; j < N8; j++) {
                const __m256 vj = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + 8 * j)));
                UNROLL for (int g = 0; g < G; g++) a[g * N8 + j] = _mm256_fmadd_ps(vj, p[g], a[g * N8 + j]);
            }
        }
        UNROLL for (int g = 0; g < G; g++)
            UNROLL for (int j = 0; j < N8; j++) _mm256_store_ps(&qs[g].acc[d0 + 8 * j], a[g * N8 + j]);
        return;
    }
    __m512 a[GMAX * 16];
    UNROLL for (int g = 0; g < G; g++) {
        const __m512 vms = _mm512_set1_ps(qs[g].ms);
        UNROLL for (int j = 0; j < NV; j++) a[g * NV + j] = _mm512_mul_ps(_mm512_load_ps(&qs[g].acc[d0 + 16 * j]), vms);
    }
    for (int b = 0; b < nb; b++) {
        const uint16_t *v = V + (size_t)cells[b] * stride + d0;
        __m512 vf[16];
        UNROLL for (int j = 0; j < NV; j++) vf[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + 16 * j)));
        UNROLL for (int g = 0; g < G; g++) {
            const __m512 p = _mm512_set1_ps(sc[g][b]);
            UNROLL for (int j = 0; j < NV; j++) a[g * NV + j] = _mm512_fmadd_ps(vf[j], p, a[g * NV + j]);
        }
    }
    UNROLL for (int g = 0; g < G; g++)
        UNROLL for (int j = 0; j < NV; j++) _mm512_store_ps(&qs[g].acc[d0 + 16 * j], a[g * NV + j]);
}

/* exp(x) for x <= 0 or -inf (scores minus their running max): exp16
 * without the clamps; lanes below -87 are 0. */
static inline __m512 exp16_neg(__m512 x) {
    __mmask16 normal = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_GE_OQ);
    __m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_scalef_ps(normal, y, fx);
}

/* Softmax of the block scores of queries qs[0..nq) (in place: scores ->
 * weights): running max and sum updated, the accumulators' rescale factor
 * in ms. */
static void softmax_block(attn_q *qs, int nq, float (*sc)[SD_ATTN_F32_BLOCK], int nb) {
    const int nb16 = (nb + 15) & ~15;
    /* rescale factors exp(M_old - M_new), 16 queries at a time; 0 on the
     * first block (M_old = -inf) */
    float arg[QMAX + 15] __attribute__((aligned(64)));
    for (int r = 0; r < nq; r++) {
        attn_q *a = &qs[r];
        float m_new = a->bmax > a->M ? a->bmax : a->M;
        arg[r] = a->M - m_new;
        a->M = m_new;
    }
    for (int r = nq; r & 15; r++) arg[r] = 0.0f;
    for (int r = 0; r < nq; r += 16) _mm512_store_ps(&arg[r], exp16_neg(_mm512_load_ps(&arg[r])));
    for (int r = 0; r < nq; r++) {
        qs[r].S *= arg[r];
        qs[r].ms = arg[r];
    }
    for (int r = 0; r < nq; r++) {
        __m512 vm = _mm512_set1_ps(qs[r].M), vsum = _mm512_setzero_ps();
        for (int b = 0; b < nb16; b += 16) {
            __m512 e = exp16_neg(_mm512_sub_ps(_mm512_load_ps(&sc[r][b]), vm));
            _mm512_store_ps(&sc[r][b], e);
            vsum = _mm512_add_ps(vsum, e);
        }
        qs[r].S += _mm512_reduce_add_ps(vsum);
    }
}

#define GROUPS(GM, CALL)                                                  \
    for (int g0 = 0; g0 < nq; g0 += (GM)) {                               \
        switch (nq - g0 < (GM) ? nq - g0 : (GM)) {                        \
        case 1: CALL(1); break;                                           \
        case 2: if ((GM) >= 2) CALL(2); break;                            \
        case 3: if ((GM) >= 3) CALL(3); break;                            \
        case 4: if ((GM) >= 4) CALL(4); break;                            \
        case 5: if ((GM) >= 5) CALL(5); break;                            \
        default: if ((GM) >= 6) CALL(6); break;                           \
        }                                                                 \
    }

/* One block of nb visible cells for nq query vectors, NV = D / 16 a
 * constant: query groups of up to GQ (scores) and GP (P V) vectors. cells
 * is padded to a multiple of 16 with its last cell. */
AI void block_reg(const int NV, const int GQ, const int GP, attn_q *qs, int nq, float scale, const uint16_t *K,
                  const uint16_t *V, size_t stride, int *cells, int nb) {
    float sc[QMAX][SD_ATTN_F32_BLOCK] __attribute__((aligned(64)));
    const int nb16 = (nb + 15) & ~15;
    for (int b = nb; b < nb16; b++) cells[b] = cells[nb - 1];
#define QK(G) qk_group(G, NV, qs + g0, sc + g0, scale, K, stride, cells, nb)
    GROUPS(GQ, QK)
#undef QK
    softmax_block(qs, nq, sc, nb);
#define PV(G) pv_group(G, NV, qs + g0, sc + g0, V, stride, cells, nb, 0)
    GROUPS(GP, PV)
#undef PV
}

static void block_d32(attn_q *qs, int nq, float scale, const uint16_t *K, const uint16_t *V, size_t stride,
                      int *cells, int nb) {
    block_reg(2, 6, 6, qs, nq, scale, K, V, stride, cells, nb);
}
static void block_d64(attn_q *qs, int nq, float scale, const uint16_t *K, const uint16_t *V, size_t stride,
                      int *cells, int nb) {
    block_reg(4, 4, 6, qs, nq, scale, K, V, stride, cells, nb);
}
static void block_d128(attn_q *qs, int nq, float scale, const uint16_t *K, const uint16_t *V, size_t stride,
                       int *cells, int nb) {
    block_reg(8, 2, 3, qs, nq, scale, K, V, stride, cells, nb);
}

/* The scores of queries qs[0..G) for any D (N8 = D / 8 chunks, not a
 * constant): the same operations as qk_group, the queries in memory. */
AI void qk_generic(const int G, attn_q *qs, float (*sc)[SD_ATTN_F32_BLOCK], const int N8, float scale,
                   const uint16_t *K, size_t stride, const int *cells, int nb) {
#define CVT8(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define Q8(g, j) _mm256_loadu_ps(qs[g].q + 8 * (j))
    const __m256 vscale = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
    __m256 vmax[GMAX];
    UNROLL for (int g = 0; g < G; g++) vmax[g] = ninf;
    int b0 = 0;
    for (; b0 < nb; b0 += 8) {
        __m256 p[GMAX][8];
        for (int i = 0; i < 8; i += 2) {
            const uint16_t *ka = K + (size_t)cells[b0 + i] * stride, *kb = K + (size_t)cells[b0 + i + 1] * stride;
            __m256 a0[GMAX], a1[GMAX], c0[GMAX], c1[GMAX];
            {
                const __m256 x0 = CVT8(ka), x1 = CVT8(ka + 8), y0 = CVT8(kb), y1 = CVT8(kb + 8);
                UNROLL for (int g = 0; g < G; g++) {
                    a0[g] = _mm256_mul_ps(Q8(g, 0), x0);
                    a1[g] = _mm256_mul_ps(Q8(g, 1), x1);
                    c0[g] = _mm256_mul_ps(Q8(g, 0), y0);
                    c1[g] = _mm256_mul_ps(Q8(g, 1), y1);
                }
            }
            for (int j = 2; j < N8; j += 2) {
                const __m256 x0 = CVT8(ka + 8 * j), x1 = CVT8(ka + 8 * j + 8);
                const __m256 y0 = CVT8(kb + 8 * j), y1 = CVT8(kb + 8 * j + 8);
                UNROLL for (int g = 0; g < G; g++) {
                    a0[g] = _mm256_fmadd_ps(Q8(g, j), x0, a0[g]);
                    a1[g] = _mm256_fmadd_ps(Q8(g, j + 1), x1, a1[g]);
                    c0[g] = _mm256_fmadd_ps(Q8(g, j), y0, c0[g]);
                    c1[g] = _mm256_fmadd_ps(Q8(g, j + 1), y1, c1[g]);
                }
            }
            UNROLL for (int g = 0; g < G; g++) {
                p[g][i] = _mm256_add_ps(a0[g], a1[g]);
                p[g][i + 1] = _mm256_add_ps(c0[g], c1[g]);
            }
        }
        const int ncb = nb - b0 < 8 ? nb - b0 : 8;
        UNROLL for (int g = 0; g < G; g++) {
            const __m256 t = hadd_128(hadd_pd(hadd_ps(p[g][0], p[g][1]), hadd_ps(p[g][2], p[g][3])),
                                      hadd_pd(hadd_ps(p[g][4], p[g][5]), hadd_ps(p[g][6], p[g][7])));
            const __m256 x = _mm256_mask_mov_ps(ninf, (__mmask8)((1u << ncb) - 1u), _mm256_mul_ps(t, vscale));
            _mm256_store_ps(&sc[g][b0], x);
            vmax[g] = _mm256_max_ps(vmax[g], x);
        }
    }
    if (b0 & 8)
        UNROLL for (int g = 0; g < G; g++) _mm256_store_ps(&sc[g][b0], ninf);
    UNROLL for (int g = 0; g < G; g++) qs[g].bmax = hmax8(vmax[g]);
#undef CVT8
#undef Q8
}

/* Any other D (multiple of 16): the same operations; the scores query by
 * query, P V in slices of 64 dims with the accumulators in registers. */
static void block_generic(attn_q *qs, int nq, const int nv, float scale, const uint16_t *K, const uint16_t *V,
                          size_t stride, int *cells, int nb) {
    float sc[QMAX][SD_ATTN_F32_BLOCK] __attribute__((aligned(64)));
    const int nb16 = (nb + 15) & ~15;
    for (int b = nb; b < nb16; b++) cells[b] = cells[nb - 1];
#define QK(G) qk_generic(G, qs + g0, sc + g0, 2 * nv, scale, K, stride, cells, nb)
    GROUPS(3, QK)
#undef QK
    softmax_block(qs, nq, sc, nb);
    for (int j0 = 0; j0 < nv; j0 += 4) {
#define PV1(G) pv_group(G, 1, qs + g0, sc + g0, V, stride, cells, nb, 16 * j0)
#define PV2(G) pv_group(G, 2, qs + g0, sc + g0, V, stride, cells, nb, 16 * j0)
#define PV3(G) pv_group(G, 3, qs + g0, sc + g0, V, stride, cells, nb, 16 * j0)
#define PV4(G) pv_group(G, 4, qs + g0, sc + g0, V, stride, cells, nb, 16 * j0)
        switch (nv - j0 < 4 ? nv - j0 : 4) {
        case 1: GROUPS(3, PV1) break;
        case 2: GROUPS(3, PV2) break;
        case 3: GROUPS(3, PV3) break;
        default: GROUPS(3, PV4) break;
        }
#undef PV1
#undef PV2
#undef PV3
#undef PV4
    }
}

typedef struct attn_job {
    int nv;
    float scale;
    const uint16_t *K, *V;
    size_t stride;
} attn_job;

/* One block of nb (<= SD_ATTN_F32_BLOCK) visible cells for nq (<= QMAX)
 * query vectors. cells has room for SD_ATTN_F32_BLOCK entries (padding). */
static void block_f32(const attn_job *J, attn_q *qs, int nq, int *cells, int nb) {
    switch (J->nv) {
    case 2: block_d32(qs, nq, J->scale, J->K, J->V, J->stride, cells, nb); break;
    case 4: block_d64(qs, nq, J->scale, J->K, J->V, J->stride, cells, nb); break;
    case 8: block_d128(qs, nq, J->scale, J->K, J->V, J->stride, cells, nb); break;
    default: block_generic(qs, nq, J->nv, J->scale, J->K, J->V, J->stride, cells, nb); break;
    }
}

static void q_init(attn_q *a, const float *q, int nv) {
    a->q = q;
    for (int j = 0; j < nv; j++) _mm512_store_ps(&a->acc[16 * j], _mm512_setzero_ps());
    a->M = -INFINITY;
    a->S = 0.0f;
}

static void q_finish(const attn_q *a, float *out, int nv) {
    __m512 inv = _mm512_set1_ps(a->S > 0.0f ? 1.0f / a->S : 0.0f);
    for (int j = 0; j < nv; j++) _mm512_storeu_ps(out + 16 * j, _mm512_mul_ps(_mm512_load_ps(&a->acc[16 * j]), inv));
}

/* The cells a row sees after the shared full prefix blocks: prefix cells
 * [from, n_prefix) and its visible batch cells, in blocks (the same blocks
 * the row gets when processed alone). */
static void row_tail(const attn_job *J, attn_q *qs, int R, int from, int n_prefix, int n_batch,
                     const uint8_t *vis) {
    int cells[SD_ATTN_F32_BLOCK];
    const int n = n_prefix + n_batch;
    int c = from;
    while (c < n) {
        int nb = sd_attn_gather(cells, SD_ATTN_F32_BLOCK, &c, n, n_prefix, vis);
        if (nb == 0) break;
        block_f32(J, qs, R, cells, nb);
    }
}

void sd_attn_f32_rows_avx512(const sd_attn_row *rows, int n_rows, int R, int D, float scale,
                             const uint16_t *K, const uint16_t *V, size_t stride, int n_prefix) {
    if (D % 16 != 0 || R > SD_ATTN_MAX_REP || D > SD_ATTN_MAX_D || R > QMAX) {
        sd_attn_f32_rows_ref(rows, n_rows, R, D, scale, K, V, stride, n_prefix);
        return;
    }
    const int nv = D / 16;
    const attn_job J = {.nv = nv, .scale = scale, .K = K, .V = V, .stride = stride};
    const int rows_per = QMAX / R;
    attn_q qs[QMAX];
    int cells[SD_ATTN_F32_BLOCK];
    for (int r0 = 0; r0 < n_rows; r0 += rows_per) {
        int nr = n_rows - r0 < rows_per ? n_rows - r0 : rows_per;
        for (int i = 0; i < nr; i++)
            for (int h = 0; h < R; h++) q_init(&qs[i * R + h], rows[r0 + i].q + (size_t)h * D, nv);
        /* full blocks of the shared prefix, for all rows at once */
        const int full = n_prefix / SD_ATTN_F32_BLOCK * SD_ATTN_F32_BLOCK;
        for (int c0 = 0; c0 < full; c0 += SD_ATTN_F32_BLOCK) {
            for (int b = 0; b < SD_ATTN_F32_BLOCK; b++) cells[b] = c0 + b;
            block_f32(&J, qs, nr * R, cells, SD_ATTN_F32_BLOCK);
        }
        for (int i = 0; i < nr; i++) {
            const sd_attn_row *row = &rows[r0 + i];
            row_tail(&J, &qs[i * R], R, full, n_prefix, row->n_batch, row->vis);
            for (int h = 0; h < R; h++) q_finish(&qs[i * R + h], row->out + (size_t)h * D, nv);
        }
    }
}

void sd_attn_f32_avx512(float *out, const float *q, int R, int D, float scale, const uint16_t *K,
                        const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis) {
    sd_attn_row row = {.out = out, .q = q, .n_batch = n_batch, .vis = vis};
    sd_attn_f32_rows_avx512(&row, 1, R, D, scale, K, V, stride, n_prefix);
}

float sd_sum_exp_avx512(const float *x, int n, float m) {
    __m512 vm = _mm512_set1_ps(m), acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_add_ps(acc, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm)));
    float s = _mm512_reduce_add_ps(acc);
    return s + sd_sum_exp_ref(x + i, n - i, m);
}
