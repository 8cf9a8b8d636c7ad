/*
 * attn.h - attention over an F16 KV cache with llama.cpp's CPU flash-
 * attention numerics: queries rounded to F16, scores in F32 (dot of F16
 * values), online softmax, the V accumulator held in F16 and rescaled as the
 * running maximum grows, normalized at the end. Matching these roundings is
 * what puts our log-probs within 0.01 of the reference outputs.
 *
 * Letters: R = query heads sharing one KV head (n_rep), D = head_dim.
 */
#ifndef SD_ATTN_H
#define SD_ATTN_H

#include <stddef.h>
#include <stdint.h>

#define SD_ATTN_MAX_REP 16
#define SD_ATTN_MAX_D 256

/* Gathers into cells (capacity cap) the next visible cells from *c on:
 * cells [0, n_prefix) are all visible, cell n_prefix + j is visible iff vis
 * is NULL or vis[j] != 0; n = n_prefix + n_batch. Advances *c past the
 * cells it looked at; returns how many it gathered (0 = none left). */
static inline int sd_attn_gather(int *cells, int cap, int *c, int n, int n_prefix,
                                 const uint8_t *vis) {
    int nb = 0;
    for (; *c < n && nb < cap; (*c)++)
        if (*c < n_prefix || !vis || vis[*c - n_prefix]) cells[nb++] = *c;
    return nb;
}

/* out (R, D) = softmax(q K^T * scale) V over the visible cells, where cells
 * [0, n_prefix) are all visible and cells n_prefix + j for j < n_batch are
 * visible iff vis == NULL or vis[j] != 0.
 * q: (R, D) F32 (rounded to F16 inside). K, V: F16 rows, cell c at
 * K + c*stride. A row that sees no cell gets zeros. R <= SD_ATTN_MAX_REP,
 * D <= SD_ATTN_MAX_D. */
typedef void (*sd_attn_fn)(float *out, const float *q, int R, int D, float scale,
                           const uint16_t *K, const uint16_t *V, size_t stride,
                           int n_prefix, int n_batch, const uint8_t *vis);

/* The default attention: same contract, F32 accumulation (faster and more
 * accurate than the llama.cpp-compatible kernel above): scores are formed
 * for blocks of SD_ATTN_F32_BLOCK visible cells, the running max and the F32
 * accumulators are rescaled once per block. The block partition depends
 * only on the row's visible cells, so a row's result does not depend on
 * the batch it is in. */
#define SD_ATTN_F32_BLOCK 128
void sd_attn_f32_ref(float *out, const float *q, int R, int D, float scale, const uint16_t *K,
                     const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis);
void sd_attn_f32_avx512(float *out, const float *q, int R, int D, float scale, const uint16_t *K,
                        const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis);
/* Several query rows of one sequence and KV head at once: row i attends to
 * cells [0, n_prefix) and its visible batch cells (n_batch, vis as above).
 * Full prefix blocks are processed for all rows together (each K/V block is
 * converted once); every row's result is bit-identical to the single-row
 * kernel's. */
typedef struct sd_attn_row {
    float *out;             /* (R, D) */
    const float *q;         /* (R, D) */
    int n_batch;
    const uint8_t *vis;
} sd_attn_row;
typedef void (*sd_attn_rows_fn)(const sd_attn_row *rows, int n_rows, int R, int D, float scale,
                                const uint16_t *K, const uint16_t *V, size_t stride, int n_prefix);
void sd_attn_f32_rows_ref(const sd_attn_row *rows, int n_rows, int R, int D, float scale,
                          const uint16_t *K, const uint16_t *V, size_t stride, int n_prefix);
void sd_attn_f32_rows_avx512(const sd_attn_row *rows, int n_rows, int R, int D, float scale,
                             const uint16_t *K, const uint16_t *V, size_t stride, int n_prefix);
void sd_attn_f32_avx2(float *out, const float *q, int R, int D, float scale, const uint16_t *K,
                      const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis);
void sd_attn_f32_rows_avx2(const sd_attn_row *rows, int n_rows, int R, int D, float scale,
                           const uint16_t *K, const uint16_t *V, size_t stride, int n_prefix);
/* The F32 attention of the kernel table called table_name ("ref", "avx2",
 * "avx512", "avx512vnni"); NULL for an unknown name or a table the CPU (as
 * capped by SPECDEC_CPU_CAP) cannot run (sd_kernels_by_name). The same
 * functions are the tables' attn_f32 / attn_f32_rows entries. */
sd_attn_fn sd_attn_f32_for(const char *table_name);
sd_attn_rows_fn sd_attn_f32_rows_for(const char *table_name);

void sd_attn_f16_ref(float *out, const float *q, int R, int D, float scale, const uint16_t *K,
                     const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis);
void sd_attn_f16_avx2(float *out, const float *q, int R, int D, float scale, const uint16_t *K,
                      const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis);
void sd_attn_f16_avx512(float *out, const float *q, int R, int D, float scale, const uint16_t *K,
                        const uint16_t *V, size_t stride, int n_prefix, int n_batch, const uint8_t *vis);

/* sum_i exp(x[i] - m) */
float sd_sum_exp_ref(const float *x, int n, float m);
float sd_sum_exp_avx512(const float *x, int n, float m);

/* F32 -> F16 (round to nearest even), n values; and x rounded to the
 * nearest F16 value in place. One version per table. */
void sd_fp32_to_fp16_row_ref(uint16_t *y, const float *x, size_t n);
void sd_fp32_to_fp16_row_avx2(uint16_t *y, const float *x, size_t n);
void sd_fp32_to_fp16_row_avx512(uint16_t *y, const float *x, size_t n);
void sd_round_f16_row_ref(float *x, size_t n);
void sd_round_f16_row_avx2(float *x, size_t n);
void sd_round_f16_row_avx512(float *x, size_t n);

#endif
