/* attn_ref.c - scalar reference of the F16 flash-attention kernel. */
#include <math.h>
#include <string.h>

#include "kernels/attn.h"
#include "kernels/kernels.h"

void sd_fp32_to_fp16_row_ref(uint16_t *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = sd_fp32_to_fp16(x[i]);
}

void sd_round_f16_row_ref(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = sd_fp16_to_fp32(sd_fp32_to_fp16(x[i]));
}

void sd_attn_f16_ref(float *out, const float *q, int R, int D, float scale, const uint16_t *K,
                     const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis) {
    float qf[SD_ATTN_MAX_REP][SD_ATTN_MAX_D];   /* q rounded to F16 */
    uint16_t acc[SD_ATTN_MAX_REP][SD_ATTN_MAX_D]; /* F16 accumulators */
    float M[SD_ATTN_MAX_REP], S[SD_ATTN_MAX_REP];
    for (int r = 0; r < R; r++) {
        for (int d = 0; d < D; d++) {
            qf[r][d] = sd_fp16_to_fp32(sd_fp32_to_fp16(q[(size_t)r * D + d]));
            acc[r][d] = 0;
        }
        M[r] = -INFINITY;
        S[r] = 0.0f;
    }
    const int n = n_prefix + n_batch;
    for (int c = 0; c < n; c++) {
        if (c >= n_prefix && vis && !vis[c - n_prefix]) continue;
        const uint16_t *k = K + (size_t)c * stride, *v = V + (size_t)c * stride;
        for (int r = 0; r < R; r++) {
            float s = 0.0f;
            for (int d = 0; d < D; d++) s += qf[r][d] * sd_fp16_to_fp32(k[d]);
            s *= scale;
            float ms = 1.0f, vs = 1.0f;
            if (s > M[r]) {
                ms = expf(M[r] - s);
                M[r] = s;
                for (int d = 0; d < D; d++) acc[r][d] = sd_fp32_to_fp16(sd_fp16_to_fp32(acc[r][d]) * ms);
            } else {
                vs = expf(s - M[r]);
            }
            for (int d = 0; d < D; d++)
                acc[r][d] = sd_fp32_to_fp16(fmaf(sd_fp16_to_fp32(v[d]), vs, sd_fp16_to_fp32(acc[r][d])));
            S[r] = S[r] * ms + vs;
        }
    }
    for (int r = 0; r < R; r++) {
        float inv = S[r] > 0.0f ? 1.0f / S[r] : 0.0f;
        for (int d = 0; d < D; d++) out[(size_t)r * D + d] = sd_fp16_to_fp32(acc[r][d]) * inv;
    }
}

void sd_attn_f32_ref(float *out, const float *q, int R, int D, float scale, const uint16_t *K,
                     const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis) {
    float acc[SD_ATTN_MAX_REP][SD_ATTN_MAX_D];
    float M[SD_ATTN_MAX_REP], S[SD_ATTN_MAX_REP];
    float sc[SD_ATTN_MAX_REP][SD_ATTN_F32_BLOCK];
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
            float bmax = -INFINITY;
            for (int b = 0; b < nb; b++) {
                const uint16_t *k = K + (size_t)cells[b] * stride;
                float s = 0.0f;
                for (int d = 0; d < D; d++) s += q[(size_t)r * D + d] * sd_fp16_to_fp32(k[d]);
                sc[r][b] = s * scale;
                if (sc[r][b] > bmax) bmax = sc[r][b];
            }
            float m_new = bmax > M[r] ? bmax : M[r];
            float ms = expf(M[r] - m_new); /* 0 on the first block (M = -inf) */
            S[r] *= ms;
            for (int d = 0; d < D; d++) acc[r][d] *= ms;
            M[r] = m_new;
            for (int b = 0; b < nb; b++) {
                float p = expf(sc[r][b] - m_new);
                S[r] += p;
                const uint16_t *v = V + (size_t)cells[b] * stride;
                for (int d = 0; d < D; d++) acc[r][d] += p * sd_fp16_to_fp32(v[d]);
            }
        }
    }
    for (int r = 0; r < R; r++) {
        float inv = S[r] > 0.0f ? 1.0f / S[r] : 0.0f;
        for (int d = 0; d < D; d++) out[(size_t)r * D + d] = acc[r][d] * inv;
    }
}

sd_attn_fn sd_attn_f32_for(const char *table_name) {
    const sd_kernels *t = sd_kernels_by_name(table_name);
    return t ? t->attn_f32 : NULL;
}

void sd_attn_f32_rows_ref(const sd_attn_row *rows, int n_rows, int R, int D, float scale,
                          const uint16_t *K, const uint16_t *V, size_t stride, int n_prefix) {
    for (int i = 0; i < n_rows; i++)
        sd_attn_f32_ref(rows[i].out, rows[i].q, R, D, scale, K, V, stride, n_prefix, rows[i].n_batch, rows[i].vis);
}

sd_attn_rows_fn sd_attn_f32_rows_for(const char *table_name) {
    const sd_kernels *t = sd_kernels_by_name(table_name);
    return t ? t->attn_f32_rows : NULL;
}

float sd_sum_exp_ref(const float *x, int n, float m) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += expf(x[i] - m);
    return s;
}
