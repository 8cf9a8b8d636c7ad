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
