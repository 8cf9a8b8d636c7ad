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

/* ---- F32-accumulating attention (see attn.h) */

#define QMAX 32 /* query vectors per call of the block routine */

typedef struct attn_q {
    __m512 qf[SD_ATTN_MAX_D / 16];  /* query                     */
    float acc[SD_ATTN_MAX_D] __attribute__((aligned(64)));
    float M, S;                    /* running max, running sum  */
} attn_q;

/* One block of nb (<= SD_ATTN_F32_BLOCK) cells for nq query vectors: the
 * scores by 16-cell transposes, the block max and rescale, one exp pass,
 * then the weighted V rows added in cell order. Every query vector gets the
 * same operations whether it is processed alone or with others (K/V rows
 * are converted once per block and shared; the conversion is exact). */
static void block_f32(attn_q *qs, int nq, int nv, float scale, const uint16_t *K, const uint16_t *V,
                      size_t stride, const int *cells, int nb) {
    float sc[QMAX][SD_ATTN_F32_BLOCK] __attribute__((aligned(64)));
    float kf[16][SD_ATTN_MAX_D] __attribute__((aligned(64)));
    const int nb16 = (nb + 15) & ~15;
    for (int b0 = 0; b0 < nb; b0 += 16) {
        int ncb = nb - b0 < 16 ? nb - b0 : 16;
        for (int b = 0; b < ncb; b++) {
            const uint16_t *k = K + (size_t)cells[b0 + b] * stride;
            for (int j = 0; j < nv; j++)
                _mm512_store_ps(&kf[b][16 * j], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + 16 * j))));
        }
        for (int r = 0; r < nq; r++) {
            const __m512 *qf = qs[r].qf;
            __m512 part[16];
            for (int b = 0; b < 16; b++) {
                if (b >= ncb) { part[b] = _mm512_setzero_ps(); continue; }
                __m512 sum = _mm512_mul_ps(qf[0], _mm512_load_ps(&kf[b][0]));
                for (int j = 1; j < nv; j++) sum = _mm512_fmadd_ps(qf[j], _mm512_load_ps(&kf[b][16 * j]), sum);
                part[b] = sum;
            }
            __m512 s16 = _mm512_mul_ps(transpose_sum16(part), _mm512_set1_ps(scale));
            s16 = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), (__mmask16)((1u << ncb) - 1u), s16);
            _mm512_store_ps(&sc[r][b0], s16);
        }
    }
    for (int r = 0; r < nq; r++) {
        attn_q *a = &qs[r];
        __m512 vmax = _mm512_set1_ps(-INFINITY);
        for (int b = 0; b < nb16; b += 16) vmax = _mm512_max_ps(vmax, _mm512_load_ps(&sc[r][b]));
        float bmax = _mm512_reduce_max_ps(vmax);
        float m_new = bmax > a->M ? bmax : a->M;
        float ms = expf(a->M - m_new);
        a->S *= ms;
        __m512 vms = _mm512_set1_ps(ms);
        for (int j = 0; j < nv; j++) _mm512_store_ps(&a->acc[16 * j], _mm512_mul_ps(_mm512_load_ps(&a->acc[16 * j]), vms));
        a->M = m_new;
        __m512 vm = _mm512_set1_ps(m_new), vsum = _mm512_setzero_ps();
        for (int b = 0; b < nb16; b += 16) {
            __m512 e = exp16(_mm512_sub_ps(_mm512_load_ps(&sc[r][b]), vm));
            _mm512_store_ps(&sc[r][b], e);
            vsum = _mm512_add_ps(vsum, e);
        }
        a->S += _mm512_reduce_add_ps(vsum);
    }
    if (nv == 4) {
        /* D = 64: per query, the accumulator in registers across a
         * sub-block of V rows converted once (same per-cell order) */
        float vbuf[32][64] __attribute__((aligned(64)));
        for (int b0 = 0; b0 < nb; b0 += 32) {
            int ncb = nb - b0 < 32 ? nb - b0 : 32;
            for (int b = 0; b < ncb; b++) {
                const uint16_t *v = V + (size_t)cells[b0 + b] * stride;
                for (int j = 0; j < 4; j++)
                    _mm512_store_ps(&vbuf[b][16 * j], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + 16 * j))));
            }
            for (int r = 0; r < nq; r++) {
                float *acc = qs[r].acc;
                __m512 a0 = _mm512_load_ps(acc), a1 = _mm512_load_ps(acc + 16);
                __m512 a2 = _mm512_load_ps(acc + 32), a3 = _mm512_load_ps(acc + 48);
                const float *p = &sc[r][b0];
                for (int b = 0; b < ncb; b++) {
                    __m512 pb = _mm512_set1_ps(p[b]);
                    a0 = _mm512_fmadd_ps(_mm512_load_ps(&vbuf[b][0]), pb, a0);
                    a1 = _mm512_fmadd_ps(_mm512_load_ps(&vbuf[b][16]), pb, a1);
                    a2 = _mm512_fmadd_ps(_mm512_load_ps(&vbuf[b][32]), pb, a2);
                    a3 = _mm512_fmadd_ps(_mm512_load_ps(&vbuf[b][48]), pb, a3);
                }
                _mm512_store_ps(acc, a0);
                _mm512_store_ps(acc + 16, a1);
                _mm512_store_ps(acc + 32, a2);
                _mm512_store_ps(acc + 48, a3);
            }
        }
        return;
    }
    for (int b = 0; b < nb; b++) {
        const uint16_t *v = V + (size_t)cells[b] * stride;
        __m512 vf[SD_ATTN_MAX_D / 16];
        for (int j = 0; j < nv; j++) vf[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + 16 * j)));
        for (int r = 0; r < nq; r++) {
            __m512 pb = _mm512_set1_ps(sc[r][b]);
            float *acc = qs[r].acc;
            for (int j = 0; j < nv; j++)
                _mm512_store_ps(&acc[16 * j], _mm512_fmadd_ps(vf[j], pb, _mm512_load_ps(&acc[16 * j])));
        }
    }
}

static void q_init(attn_q *a, const float *q, int nv) {
    for (int j = 0; j < nv; j++) {
        a->qf[j] = _mm512_loadu_ps(q + 16 * j);
        _mm512_store_ps(&a->acc[16 * j], _mm512_setzero_ps());
    }
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
static void row_tail(attn_q *qs, int R, int nv, float scale, const uint16_t *K, const uint16_t *V,
                     size_t stride, int from, int n_prefix, int n_batch, const uint8_t *vis) {
    int cells[SD_ATTN_F32_BLOCK];
    const int n = n_prefix + n_batch;
    int c = from;
    while (c < n) {
        int nb = sd_attn_gather(cells, SD_ATTN_F32_BLOCK, &c, n, n_prefix, vis);
        if (nb == 0) break;
        block_f32(qs, R, nv, scale, K, V, stride, cells, nb);
    }
}

void sd_attn_f32_rows_avx512(const sd_attn_row *rows, int n_rows, int R, int D, float scale,
                             const uint16_t *K, const uint16_t *V, size_t stride, int n_prefix) {
    if (D % 16 != 0 || R > SD_ATTN_MAX_REP || D > SD_ATTN_MAX_D || R > QMAX) {
        sd_attn_f32_rows_ref(rows, n_rows, R, D, scale, K, V, stride, n_prefix);
        return;
    }
    const int nv = D / 16;
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
            block_f32(qs, nr * R, nv, scale, K, V, stride, cells, SD_ATTN_F32_BLOCK);
        }
        for (int i = 0; i < nr; i++) {
            const sd_attn_row *row = &rows[r0 + i];
            row_tail(&qs[i * R], R, nv, scale, K, V, stride, full, n_prefix, row->n_batch, row->vis);
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
