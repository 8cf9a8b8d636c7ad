/* attn_avx2.c - F16 flash attention with AVX2 + F16C (D multiple of 8;
 * other D fall back to the reference). */
#include <immintrin.h>
#include <math.h>

#include "kernels/attn.h"

static float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void sd_attn_f16_avx2(float *out, const float *q, int R, int D, float scale, const uint16_t *K,
                      const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis) {
    if (D % 8 != 0) {
        sd_attn_f16_ref(out, q, R, D, scale, K, V, stride, n_prefix, n_batch, vis);
        return;
    }
    const int nv = D / 8;
    __m256 qf[SD_ATTN_MAX_REP * (SD_ATTN_MAX_D / 8)];
    uint16_t acc[SD_ATTN_MAX_REP][SD_ATTN_MAX_D] __attribute__((aligned(32)));
    float M[SD_ATTN_MAX_REP], S[SD_ATTN_MAX_REP];
    for (int r = 0; r < R; r++) {
        for (int j = 0; j < nv; j++) {
            __m256 x = _mm256_loadu_ps(q + (size_t)r * D + 8 * j);
            qf[r * nv + j] = _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
            _mm_store_si128((__m128i *)&acc[r][8 * j], _mm_setzero_si128());
        }
        M[r] = -INFINITY;
        S[r] = 0.0f;
    }
    const int n = n_prefix + n_batch;
    for (int c = 0; c < n; c++) {
        if (c >= n_prefix && vis && !vis[c - n_prefix]) continue;
        const uint16_t *k = K + (size_t)c * stride, *v = V + (size_t)c * stride;
        for (int r = 0; r < R; r++) {
            __m256 sum = _mm256_setzero_ps();
            for (int j = 0; j < nv; j++) {
                __m256 kf = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + 8 * j)));
                sum = _mm256_fmadd_ps(qf[r * nv + j], kf, sum);
            }
            float s = hsum256(sum) * scale;
            float ms = 1.0f, vs = 1.0f;
            if (s > M[r]) {
                ms = expf(M[r] - s);
                M[r] = s;
                __m256 vms = _mm256_set1_ps(ms);
                for (int j = 0; j < nv; j++) {
                    __m128i *a = (__m128i *)&acc[r][8 * j];
                    __m256 af = _mm256_mul_ps(_mm256_cvtph_ps(_mm_load_si128(a)), vms);
                    _mm_store_si128(a, _mm256_cvtps_ph(af, _MM_FROUND_TO_NEAREST_INT));
                }
            } else {
                vs = expf(s - M[r]);
            }
            __m256 vvs = _mm256_set1_ps(vs);
            for (int j = 0; j < nv; j++) {
                __m128i *a = (__m128i *)&acc[r][8 * j];
                __m256 vf = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + 8 * j)));
                __m256 af = _mm256_fmadd_ps(vf, vvs, _mm256_cvtph_ps(_mm_load_si128(a)));
                _mm_store_si128(a, _mm256_cvtps_ph(af, _MM_FROUND_TO_NEAREST_INT));
            }
            S[r] = S[r] * ms + vs;
        }
    }
    for (int r = 0; r < R; r++) {
        __m256 inv = _mm256_set1_ps(S[r] > 0.0f ? 1.0f / S[r] : 0.0f);
        for (int j = 0; j < nv; j++) {
            __m256 af = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)&acc[r][8 * j]));
            _mm256_storeu_ps(out + (size_t)r * D + 8 * j, _mm256_mul_ps(af, inv));
        }
    }
}

void sd_fp32_to_fp16_row_avx2(uint16_t *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    sd_fp32_to_fp16_row_ref(y + i, x + i, n - i);
}

void sd_round_f16_row_avx2(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    sd_round_f16_row_ref(x + i, n - i);
}

/* F32-accumulating attention (see attn.h) with AVX2 + F16C: the reference's
 * blocks and per-block operations, with 8-wide dot products and V updates. */
void sd_attn_f32_avx2(float *out, const float *q, int R, int D, float scale, const uint16_t *K,
                      const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis) {
    if (D % 8 != 0 || R > SD_ATTN_MAX_REP || D > SD_ATTN_MAX_D) {
        sd_attn_f32_ref(out, q, R, D, scale, K, V, stride, n_prefix, n_batch, vis);
        return;
    }
    const int nv = D / 8;
    float acc[SD_ATTN_MAX_REP][SD_ATTN_MAX_D] __attribute__((aligned(32)));
    float M[SD_ATTN_MAX_REP], S[SD_ATTN_MAX_REP];
    float sc[SD_ATTN_F32_BLOCK];
    int cells[SD_ATTN_F32_BLOCK];
    for (int r = 0; r < R; r++) {
        for (int d = 0; d < D; d++) acc[r][d] = 0.0f;
        M[r] = -INFINITY;
        S[r] = 0.0f;
    }
    const int n = n_prefix + n_batch;
    int c = 0;
    while (c < n) {
        int nb = sd_attn_gather(cells, SD_ATTN_F32_BLOCK, &c, n, n_prefix, vis);
        if (nb == 0) break;
        for (int r = 0; r < R; r++) {
            const float *qr = q + (size_t)r * D;
            float bmax = -INFINITY;
            for (int b = 0; b < nb; b++) {
                const uint16_t *k = K + (size_t)cells[b] * stride;
                __m256 sum = _mm256_setzero_ps();
                for (int j = 0; j < nv; j++)
                    sum = _mm256_fmadd_ps(_mm256_loadu_ps(qr + 8 * j),
                                          _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + 8 * j))), sum);
                sc[b] = hsum256(sum) * scale;
                if (sc[b] > bmax) bmax = sc[b];
            }
            float m_new = bmax > M[r] ? bmax : M[r];
            float ms = expf(M[r] - m_new);
            S[r] *= ms;
            __m256 vms = _mm256_set1_ps(ms);
            for (int j = 0; j < nv; j++) _mm256_store_ps(&acc[r][8 * j], _mm256_mul_ps(_mm256_load_ps(&acc[r][8 * j]), vms));
            M[r] = m_new;
            for (int b = 0; b < nb; b++) {
                float p = expf(sc[b] - m_new);
                S[r] += p;
                const uint16_t *v = V + (size_t)cells[b] * stride;
                __m256 pb = _mm256_set1_ps(p);
                for (int j = 0; j < nv; j++)
                    _mm256_store_ps(&acc[r][8 * j],
                                    _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + 8 * j))), pb,
                                                    _mm256_load_ps(&acc[r][8 * j])));
            }
        }
    }
    for (int r = 0; r < R; r++) {
        __m256 inv = _mm256_set1_ps(S[r] > 0.0f ? 1.0f / S[r] : 0.0f);
        for (int j = 0; j < nv; j++)
            _mm256_storeu_ps(out + (size_t)r * D + 8 * j, _mm256_mul_ps(_mm256_load_ps(&acc[r][8 * j]), inv));
    }
}

void sd_attn_f32_rows_avx2(const sd_attn_row *rows, int n_rows, int R, int D, float scale,
                           const uint16_t *K, const uint16_t *V, size_t stride, int n_prefix) {
    for (int i = 0; i < n_rows; i++)
        sd_attn_f32_avx2(rows[i].out, rows[i].q, R, D, scale, K, V, stride, n_prefix, rows[i].n_batch, rows[i].vis);
}
