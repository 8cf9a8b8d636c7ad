/*
 * quantize.c - weight quantizers and sd_model_quantize (see quantize.h).
 *
 * The k-quant searches follow the method of ggml's reference quantizers
 * (make_qkx2_quants for Q4_K/Q5_K, make_qx_quants for Q6_K); rounding is
 * to nearest, ties to even (ggml's nearest_int) unless stated.
 */
#include "err.h"
#include "model/quantize.h"

#include "model/gguf.h"
#include "model/gguf_write.h"
#include "kernels/kernels.h"
#include "kernels/quants.h"
#include "compute/threadpool.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUP_MAX_EPS 1e-15f

static int nearest_int(float v) { return (int)lrintf(v); }
static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* ------------------------------------------------------------ 32-blocks */

/* The element of x[0..32) of largest magnitude, sign kept (the first of
 * equal magnitudes). */
static float signed_max32(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

/* Q4_0 / Q5_0 (bits 4/5): x ~ d*(q - 2^(bits-1)), d = max / -2^(bits-1)
 * where max is the element of largest magnitude (sign kept). */
static void quant_q4_0(const float *x, sd_block_q4_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        const float max = signed_max32(x);
        const float d = max / -8, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = sd_fp32_to_fp16(d);
        for (int j = 0; j < 16; j++) {
            int q0 = imin(15, (int)(x[j] * id + 8.5f)), q1 = imin(15, (int)(x[16 + j] * id + 8.5f));
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

static void quant_q5_0(const float *x, sd_block_q5_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32) {
        const float max = signed_max32(x);
        const float d = max / -16, id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = sd_fp32_to_fp16(d);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = imin(31, (int)(x[j] * id + 16.5f)), q1 = imin(31, (int)(x[16 + j] * id + 16.5f));
            y[i].qs[j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
            qh |= (uint32_t)(q0 >> 4) << j | (uint32_t)(q1 >> 4) << (j + 16);
        }
        memcpy(y[i].qh, &qh, 4);
    }
}

/* Q4_1 / Q5_1: x ~ d*q + m, m = min, d = (max - min) / (2^bits - 1). */
static void quant_q_1(const float *x, void *dst, int64_t nb, int bits) {
    const int qmax = (1 << bits) - 1;
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float mn = x[0], mx = x[0];
        for (int j = 1; j < 32; j++) {
            if (x[j] < mn) mn = x[j];
            if (x[j] > mx) mx = x[j];
        }
        const float d = (mx - mn) / (float)qmax, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t *qs;
        if (bits == 4) {
            sd_block_q4_1 *y = (sd_block_q4_1 *)dst + i;
            y->d = sd_fp32_to_fp16(d);
            y->m = sd_fp32_to_fp16(mn);
            qs = y->qs;
        } else {
            sd_block_q5_1 *y = (sd_block_q5_1 *)dst + i;
            y->d = sd_fp32_to_fp16(d);
            y->m = sd_fp32_to_fp16(mn);
            qs = y->qs;
        }
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            int q0 = imin(qmax, (int)((x[j] - mn) * id + 0.5f));
            int q1 = imin(qmax, (int)((x[16 + j] - mn) * id + 0.5f));
            qs[j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
            qh |= (uint32_t)(q0 >> 4 & 1) << j | (uint32_t)(q1 >> 4 & 1) << (j + 16);
        }
        if (bits == 5) memcpy(((sd_block_q5_1 *)dst)[i].qh, &qh, 4);
    }
}

/* ------------------------------------------------------------ k-quants */

/* make_qkx2_quants: x (n) ~ scale * L + min with L in [0, nmax], min <= 0,
 * minimizing sum w_i (scale*L_i + min - x_i)^2. Starts from the min/max
 * grid, then tries nstep+1 inverse scales (rmin + rdelta*is + nmax) /
 * (max - min), each followed by the closed-form weighted least-squares fit
 * of scale and min for its L (min clamped to 0 when positive). Returns
 * scale; *neg_min = -min (>= 0). Laux: scratch (n). */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *w, uint8_t *L,
                              float *neg_min, uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float mn = x[0], mx = x[0], sum_w = w[0], sum_x = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx == mn) {
        memset(L, 0, (size_t)n);
        *neg_min = -mn;
        return 0.0f;
    }
    float iscale = (float)nmax / (mx - mn), scale = 1.0f / iscale, best = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - mn))));
        L[i] = (uint8_t)l;
        float diff = scale * (float)l + mn - x[i];
        best += w[i] * diff * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (mx - mn);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - mn))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D <= 0) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * (float)Laux[i] + this_min - x[i];
            err += w[i] * diff * diff;
        }
        if (err < best) {
            memcpy(L, Laux, (size_t)n);
            best = err;
            scale = this_scale;
            mn = this_min;
        }
    }
    *neg_min = -mn;
    return scale;
}

/* Q4_K / Q5_K super-block of 256 (bits 4/5). */
static void quant_qk45(const float *x, void *dst, int64_t nb, int bits) {
    const int nmax = (1 << bits) - 1;
    uint8_t L[SD_QK_K], Laux[32];
    float w[32], mins[8], scales[8];
    for (int64_t i = 0; i < nb; i++, x += SD_QK_K) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            const float *xs = x + 32 * j;
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
            float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
            scales[j] = bits == 4 ? make_qkx2_quants(32, nmax, xs, w, L + 32 * j, &mins[j], Laux, -1.0f, 0.1f, 20)
                                  : make_qkx2_quants(32, nmax, xs, w, L + 32 * j, &mins[j], Laux, -0.5f, 0.1f, 15);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
        const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
        uint8_t sc[SD_K_SCALE_SIZE] = {0};
        for (int j = 0; j < 8; j++) {
            int ls = imin(63, nearest_int(inv_scale * scales[j]));
            int lm = imin(63, nearest_int(inv_min * mins[j]));
            if (j < 4) {
                sc[j] = (uint8_t)ls;
                sc[j + 4] = (uint8_t)lm;
            } else {
                sc[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
                sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
                sc[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        uint16_t hd = sd_fp32_to_fp16(max_scale / 63.0f), hm = sd_fp32_to_fp16(max_min / 63.0f);
        /* quants again against the quantized scales and mins */
        for (int j = 0; j < 8; j++) {
            uint8_t s6, m6;
            sd_scale_min_k4(j, sc, &s6, &m6);
            const float d = sd_fp16_to_fp32(hd) * s6;
            if (d == 0.0f) continue;
            const float dm = sd_fp16_to_fp32(hm) * m6;
            for (int l = 0; l < 32; l++)
                L[32 * j + l] = (uint8_t)imax(0, imin(nmax, nearest_int((x[32 * j + l] + dm) / d)));
        }
        if (bits == 4) {
            sd_block_q4_K *y = (sd_block_q4_K *)dst + i;
            y->d = hd;
            y->dmin = hm;
            memcpy(y->scales, sc, sizeof sc);
            /* sub-blocks 2k (low nibbles) and 2k+1 (high) share qs[32k..32k+32) */
            for (int j = 0; j < SD_QK_K; j += 64)
                for (int l = 0; l < 32; l++) y->qs[j / 2 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
        } else {
            sd_block_q5_K *y = (sd_block_q5_K *)dst + i;
            y->d = hd;
            y->dmin = hm;
            memcpy(y->scales, sc, sizeof sc);
            memset(y->qh, 0, sizeof y->qh);
            /* 5th bit of element l of sub-block j at bit j of qh[l] */
            for (int j = 0; j < SD_QK_K; j += 64) {
                const int u1 = 1 << (j / 32), u2 = 2 << (j / 32);
                for (int l = 0; l < 32; l++) {
                    int l1 = L[j + l], l2 = L[j + l + 32];
                    if (l1 > 15) { l1 -= 16; y->qh[l] |= (uint8_t)u1; }
                    if (l2 > 15) { l2 -= 16; y->qh[l] |= (uint8_t)u2; }
                    y->qs[j / 2 + l] = (uint8_t)(l1 | l2 << 4);
                }
            }
        }
    }
}

/* make_qx_quants with weights x^2: x (n) ~ scale * (L - nmax), L - nmax in
 * [-nmax, nmax - 1]; the inverse scale -nmax/max (max: signed element of
 * largest magnitude) and 18 neighbours -(nmax + 0.1 is)/max are tried and
 * the one with the best weighted least-squares fit kept. Returns scale. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -(float)nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void quant_q6_K(const float *x, sd_block_q6_K *y, int64_t nb) {
    int8_t L[SD_QK_K];
    float scales[SD_QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += SD_QK_K) {
        float max_scale = 0, max_abs = 0;
        for (int ib = 0; ib < SD_QK_K / 16; ib++) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            if (fabsf(scales[ib]) > max_abs) {
                max_abs = fabsf(scales[ib]);
                max_scale = scales[ib];
            }
        }
        if (max_abs < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -128.0f / max_scale;
        y[i].d = sd_fp32_to_fp16(1.0f / iscale);
        for (int ib = 0; ib < SD_QK_K / 16; ib++)
            y[i].scales[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < SD_QK_K / 16; j++) {
            const float d = sd_fp16_to_fp32(y[i].d) * (float)y[i].scales[j];
            if (d == 0.0f) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (int8_t)(imax(-32, imin(31, nearest_int(x[16 * j + l] / d))) + 32);
        }
        /* per 128 elements: ql holds the low nibbles of quarters 0/2 and
         * 1/3, qh the 2 high bits of all four quarters */
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < SD_QK_K; j += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; l++) {
                const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
                ql[l] = (uint8_t)((q1 & 0xF) | (q3 & 0xF) << 4);
                ql[l + 32] = (uint8_t)((q2 & 0xF) | (q4 & 0xF) << 4);
                qh[l] = (uint8_t)((q1 >> 4) | (q2 >> 4) << 2 | (q3 >> 4) << 4 | (q4 >> 4) << 6);
            }
    }
}

int sd_quantize_row(int type, const float *x, void *dst, int64_t n) {
    const sd_type_info *ti = sd_type_get_info(type);
    if (!ti || !x || !dst || n < 0 || n % ti->block_size != 0 || n > INT32_MAX) return -1;
    const int64_t nb = n / ti->block_size;
    switch (type) {
    case SD_TYPE_F32: memcpy(dst, x, (size_t)n * sizeof(float)); return 0;
    case SD_TYPE_F16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = sd_fp32_to_fp16(x[i]);
        return 0;
    case SD_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i] = sd_fp32_to_bf16(x[i]);
        return 0;
    case SD_TYPE_Q8_0: sd_kernels_ref()->quantize_row_q8_0(dst, x, (int)n); return 0;
    case SD_TYPE_Q4_0: quant_q4_0(x, dst, nb); return 0;
    case SD_TYPE_Q5_0: quant_q5_0(x, dst, nb); return 0;
    case SD_TYPE_Q4_1: quant_q_1(x, dst, nb, 4); return 0;
    case SD_TYPE_Q5_1: quant_q_1(x, dst, nb, 5); return 0;
    case SD_TYPE_Q4_K: quant_qk45(x, dst, nb, 4); return 0;
    case SD_TYPE_Q5_K: quant_qk45(x, dst, nb, 5); return 0;
    case SD_TYPE_Q6_K: quant_q6_K(x, dst, nb); return 0;
    default: return -1;
    }
}

/* ------------------------------------------------------------ type mixes */

/* llama.cpp's llama_ftype values. Plain q4_k / q5_k are the _M mixes, as
 * llama.cpp's quantize tool treats them. */
static const sd_quant_mix k_mixes[] = {
    {"f32", 0, SD_TYPE_F32, 0},     {"f16", 1, SD_TYPE_F16, 0},     {"bf16", 32, SD_TYPE_BF16, 0},
    {"q8_0", 7, SD_TYPE_Q8_0, 0},   {"q4_0", 2, SD_TYPE_Q4_0, 0},   {"q4_1", 3, SD_TYPE_Q4_1, 0},
    {"q5_0", 8, SD_TYPE_Q5_0, 0},   {"q5_1", 9, SD_TYPE_Q5_1, 0},
    {"q4_k", 15, SD_TYPE_Q4_K, 1},  {"q4_k_m", 15, SD_TYPE_Q4_K, 1}, {"q4_k_s", 14, SD_TYPE_Q4_K, 0},
    {"q5_k", 17, SD_TYPE_Q5_K, 1},  {"q5_k_m", 17, SD_TYPE_Q5_K, 1}, {"q5_k_s", 16, SD_TYPE_Q5_K, 0},
    {"q6_k", 18, SD_TYPE_Q6_K, 0},
};

const sd_quant_mix *sd_quant_mix_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof k_mixes / sizeof k_mixes[0]; i++)
        if (strcasecmp(name, k_mixes[i].name) == 0) return &k_mixes[i];
    return NULL;
}

const char *sd_quant_mix_names(void) {
    return "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k (= q4_k_m), q4_k_s, q5_k (= q5_k_m), "
           "q5_k_s, q6_k";
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && memcmp(s + n - m, suf, m) == 0;
}

static int is_float_type(int t) { return t == SD_TYPE_F32 || t == SD_TYPE_F16 || t == SD_TYPE_BF16; }

/* llama.cpp's use_more_bits: the first and last eighth of the layers and
 * every third in between. */
static int use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

int sd_quant_tensor_type(const sd_quant_mix *mix, const char *name, uint32_t n_dims,
                         const int64_t *ne, int in_type, int has_output, int i_layer, int n_layer) {
    if (n_dims < 2 || !ends_with(name, "weight"))
        return n_dims < 2 && (in_type == SD_TYPE_F16 || in_type == SD_TYPE_BF16) ? SD_TYPE_F32 : in_type;
    int t = mix->type;
    if (!is_float_type(t)) {
        if (!strcmp(name, "output.weight") || (!has_output && !strcmp(name, "token_embd.weight"))) {
            if (ne[0] % SD_QK_K != 0) t = SD_TYPE_Q8_0;
            else if (t != SD_TYPE_Q8_0) t = SD_TYPE_Q6_K;
        } else if (mix->more_bits && i_layer >= 0 && n_layer > 0 &&
                   (ends_with(name, ".attn_v.weight") || ends_with(name, ".ffn_down.weight")) &&
                   use_more_bits(i_layer, n_layer)) {
            t = SD_TYPE_Q6_K;
        }
    }
    const sd_type_info *ti = sd_type_get_info(t);
    if (ne[0] % ti->block_size != 0) {
        switch (t) {
        case SD_TYPE_Q4_K: t = SD_TYPE_Q5_0; break;
        case SD_TYPE_Q5_K: t = SD_TYPE_Q5_1; break;
        case SD_TYPE_Q6_K: t = SD_TYPE_Q8_0; break;
        default: t = SD_TYPE_F16; break;
        }
        if (ne[0] % sd_type_get_info(t)->block_size != 0) t = SD_TYPE_F16;
    }
    return t;
}


/* Layer index of "blk.N.<...>" or -1. */
static int layer_of(const char *name) {
    if (strncmp(name, "blk.", 4) != 0 || !isdigit((unsigned char)name[4])) return -1;
    long v = strtol(name + 4, NULL, 10);
    return v >= 0 && v < 1000000 ? (int)v : -1;
}

/* One tensor's rows converted in parallel: rows [0, n_rows) of ne0
 * elements from src (in_type) to dst (out_type); bad[ith] set when a
 * thread saw a non-finite value or failed. */
typedef struct qjob {
    const uint8_t *src;
    uint8_t *dst;
    int in_type, out_type;
    int64_t ne0, n_rows;
    size_t in_rs, out_rs;
    float *scratch;      /* (nth, ne0) */
    int bad[64];
} qjob;

static void qjob_run(void *arg, int ith, int nth) {
    qjob *j = arg;
    float *row = j->scratch + (size_t)ith * (size_t)j->ne0;
    int64_t r0 = j->n_rows * ith / nth, r1 = j->n_rows * (ith + 1) / nth;
    for (int64_t r = r0; r < r1; r++) {
        if (sd_dequantize_row(j->in_type, row, j->src + (size_t)r * j->in_rs, (int)j->ne0) != 0) {
            j->bad[ith] = 2;
            return;
        }
        for (int64_t k = 0; k < j->ne0; k++)
            if (!isfinite(row[k])) {
                j->bad[ith] = 1;
                return;
            }
        if (sd_quantize_row(j->out_type, row, j->dst + (size_t)r * j->out_rs, j->ne0) != 0) {
            j->bad[ith] = 2;
            return;
        }
    }
}

sd_status sd_model_quantize(const char *in, const char *out, const sd_quant_mix *mix, int n_threads,
                            sd_quantize_stats *stats, char *err, size_t err_size) {
    return sd_model_quantize_ex(in, out, mix, n_threads, NULL, NULL, stats, err, err_size);
}

sd_status sd_model_quantize_ex(const char *in, const char *out, const sd_quant_mix *mix, int n_threads,
                               sd_quantize_progress_fn progress, void *user, sd_quantize_stats *stats,
                               char *err, size_t err_size) {
    if (!in || !out || !mix) return sd_fail(SD_ERR_INVALID_ARG, err, err_size, "NULL argument");
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 64) n_threads = 64;
    sd_quantize_stats st_local;
    if (!stats) stats = &st_local;
    memset(stats, 0, sizeof *stats);
    sd_gguf *g = NULL;
    sd_gguf_writer *w = NULL;
    sd_threadpool *pool = NULL;
    float *scratch = NULL;
    sd_status st = sd_gguf_open(in, &g, err, err_size);
    if (st) return st;
    const int64_t n_t = sd_gguf_n_tensors(g);
    if (n_t == 0) {
        st = sd_fail(SD_ERR_FORMAT, err, err_size, "%s: the file holds no tensors (a vocabulary-only file?)", in);
        goto done;
    }
    /* model facts for the mix rules */
    int has_output = sd_gguf_find_tensor(g, "output.weight") != NULL;
    int n_attn_v = 0, n_ffn_down = 0;
    int64_t max_ne0 = 1;
    uint64_t bytes_total = 0; /* for progress */
    for (int64_t i = 0; i < n_t; i++) {
        const sd_gguf_tensor *t = sd_gguf_tensor_at(g, i);
        if (ends_with(t->name, ".attn_v.weight")) n_attn_v++;
        if (ends_with(t->name, ".ffn_down.weight")) n_ffn_down++;
        if (t->ne[0] > max_ne0) max_ne0 = t->ne[0];
        bytes_total += t->size;
    }
    if (max_ne0 > INT32_MAX || (uint64_t)max_ne0 * (uint64_t)n_threads > SIZE_MAX / sizeof(float)) {
        st = sd_fail(SD_ERR_UNSUPPORTED, err, err_size, "%s: rows of %lld elements are too long", in,
                   (long long)max_ne0);
        goto done;
    }
    if ((st = sd_gguf_writer_new(&w)) || !(scratch = malloc((size_t)max_ne0 * (size_t)n_threads * sizeof(float)))) {
        st = sd_fail(SD_ERR_NOMEM, err, err_size, "out of memory");
        goto done;
    }
    if (n_threads > 1 && (st = sd_threadpool_new(n_threads, &pool)) != SD_OK) {
        st = sd_fail(st, err, err_size, "cannot start %d threads", n_threads);
        goto done;
    }
    if ((st = sd_gguf_writer_copy_kvs(w, g)) ||
        (st = sd_gguf_writer_set_u32(w, "general.quantization_version", 2)) ||
        (st = sd_gguf_writer_set_u32(w, "general.file_type", (uint32_t)mix->ftype))) {
        st = sd_fail(st, err, err_size, "%s: %s", in, sd_gguf_writer_error(w));
        goto done;
    }
    for (int64_t i = 0; i < n_t; i++) {
        const sd_gguf_tensor *t = sd_gguf_tensor_at(g, i);
        int il = layer_of(t->name);
        int nl = ends_with(t->name, ".attn_v.weight") ? n_attn_v : n_ffn_down;
        int ot = sd_quant_tensor_type(mix, t->name, t->n_dims, t->ne, t->type, has_output, il, nl);
        /* rows: ne1*ne2*ne3 (may overflow only when ne0 == 0: rejected) */
        int64_t n_rows = 0;
        if (t->ne[0] == 0 || __builtin_mul_overflow(t->ne[1], t->ne[2], &n_rows) ||
            __builtin_mul_overflow(n_rows, t->ne[3], &n_rows)) {
            st = sd_fail(SD_ERR_FORMAT, err, err_size, "%s: tensor '%s' has an empty or oversized shape", in, t->name);
            goto done;
        }
        stats->bytes_in += t->size;
        if (ot == t->type) {
            st = sd_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size, false);
        } else {
            size_t out_rs = sd_type_row_size(ot, t->ne[0]);
            uint64_t out_size = (uint64_t)out_rs * (uint64_t)n_rows;
            if (sd_quant_block_size(t->type) == 0 && !is_float_type(t->type)) {
                st = sd_fail(SD_ERR_UNSUPPORTED, err, err_size, "%s: tensor '%s': cannot convert type %s",
                           in, t->name, sd_type_get_info(t->type)->name);
                goto done;
            }
            uint8_t *dst = malloc(out_size ? (size_t)out_size : 1);
            if (!dst) {
                st = sd_fail(SD_ERR_NOMEM, err, err_size, "out of memory for tensor '%s'", t->name);
                goto done;
            }
            qjob j = {t->data, dst, t->type, ot, t->ne[0], n_rows,
                      sd_type_row_size(t->type, t->ne[0]), out_rs, scratch, {0}};
            if (n_rows > 0) sd_threadpool_run(pool, qjob_run, &j);
            int bad = 0;
            for (int k = 0; k < 64; k++) bad = bad > j.bad[k] ? bad : j.bad[k];
            if (bad) {
                free(dst);
                st = bad == 1 ? sd_fail(SD_ERR_FORMAT, err, err_size, "%s: tensor '%s' holds NaN or Inf values", in, t->name)
                              : sd_fail(SD_ERR_UNSUPPORTED, err, err_size, "%s: tensor '%s': cannot convert %s to %s",
                                      in, t->name, sd_type_get_info(t->type)->name, sd_type_get_info(ot)->name);
                goto done;
            }
            stats->n_quantized++;
            if (ot != mix->type && !is_float_type(ot) && t->n_dims >= 2) stats->n_fallback++;
            st = sd_gguf_writer_add_tensor(w, t->name, ot, t->n_dims, t->ne, dst, out_size, true);
        }
        if (st) {
            st = sd_fail(st, err, err_size, "%s", sd_gguf_writer_error(w));
            goto done;
        }
        stats->n_tensors++;
        if (ot >= 0 && ot < SD_TYPE_COUNT) stats->count_by_type[ot]++;
        stats->bytes_out += (uint64_t)sd_type_row_size(ot, t->ne[0]) * (uint64_t)n_rows;
        if (progress) progress(user, (int64_t)stats->bytes_in, (int64_t)bytes_total);
    }
    st = sd_gguf_writer_write(w, out, err, err_size);
done:
    free(scratch);
    sd_threadpool_free(pool);
    sd_gguf_writer_free(w);
    sd_gguf_close(g);
    return st;
}
