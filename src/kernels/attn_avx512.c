/* attn_avx512.c - F16 flash attention with AVX-512 (D multiple of 16;
 * other D fall back to the reference). Same operation order as the
 * reference per element; dot products are summed in a different order. */
#include <immintrin.h>
#include <math.h>

#include "kernels/attn.h"

void sd_attn_f16_avx512(float *out, const float *q, int R, int D, float scale, const uint16_t *K,
                        const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis) {
    if (D % 16 != 0) {
        sd_attn_f16_ref(out, q, R, D, scale, K, V, stride, n_prefix, n_batch, vis);
        return;
    }
    const int nv = D / 16;
    __m512 qf[SD_ATTN_MAX_REP * (SD_ATTN_MAX_D / 16)];
    uint16_t acc[SD_ATTN_MAX_REP][SD_ATTN_MAX_D] __attribute__((aligned(64)));
    float M[SD_ATTN_MAX_REP], S[SD_ATTN_MAX_REP];
    for (int r = 0; r < R; r++) {
        for (int j = 0; j < nv; j++) {
            __m512 x = _mm512_loadu_ps(q + (size_t)r * D + 16 * j);
            qf[r * nv + j] = _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
            _mm256_store_si256((__m256i *)&acc[r][16 * j], _mm256_setzero_si256());
        }
        M[r] = -INFINITY;
        S[r] = 0.0f;
    }
    const int n = n_prefix + n_batch;
    for (int c = 0; c < n; c++) {
        if (c >= n_prefix && vis && !vis[c - n_prefix]) continue;
        const uint16_t *k = K + (size_t)c * stride, *v = V + (size_t)c * stride;
        for (int r = 0; r < R; r++) {
            __m512 sum = _mm512_setzero_ps();
            for (int j = 0; j < nv; j++) {
                __m512 kf = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(k + 16 * j)));
                sum = _mm512_fmadd_ps(qf[r * nv + j], kf, sum);
            }
            float s = _mm512_reduce_add_ps(sum) * scale;
            float ms = 1.0f, vs = 1.0f;
            if (s > M[r]) {
                ms = expf(M[r] - s);
                M[r] = s;
                __m512 vms = _mm512_set1_ps(ms);
                for (int j = 0; j < nv; j++) {
                    __m256i *a = (__m256i *)&acc[r][16 * j];
                    __m512 af = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_load_si256(a)), vms);
                    _mm256_store_si256(a, _mm512_cvtps_ph(af, _MM_FROUND_TO_NEAREST_INT));
                }
            } else {
                vs = expf(s - M[r]);
            }
            __m512 vvs = _mm512_set1_ps(vs);
            for (int j = 0; j < nv; j++) {
                __m256i *a = (__m256i *)&acc[r][16 * j];
                __m512 vf = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(v + 16 * j)));
                __m512 af = _mm512_fmadd_ps(vf, vvs, _mm512_cvtph_ps(_mm256_load_si256(a)));
                _mm256_store_si256(a, _mm512_cvtps_ph(af, _MM_FROUND_TO_NEAREST_INT));
            }
            S[r] = S[r] * ms + vs;
        }
    }
    for (int r = 0; r < R; r++) {
        __m512 inv = _mm512_set1_ps(S[r] > 0.0f ? 1.0f / S[r] : 0.0f);
        for (int j = 0; j < nv; j++) {
            __m512 af = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)&acc[r][16 * j]));
            _mm512_storeu_ps(out + (size_t)r * D + 16 * j, _mm512_mul_ps(af, inv));
        }
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
