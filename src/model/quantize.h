/*
 * quantize.h - weight quantizers (F32 rows -> ggml block formats) and
 * `specdec quantize`: a GGUF model re-encoded with a llama.cpp-style type
 * mix.
 *
 * Row quantizers follow ggml's reference quantizers (quantize_row_*_ref):
 *  - Q4_0/Q5_0: d = signed max-magnitude / -8 (-16), q = trunc(x/d + 8.5
 *    (16.5)) capped; Q4_1/Q5_1: d = (max - min) / 15 (31), m = min;
 *    Q8_0: d = amax / 127, q = round(x/d).
 *  - Q4_K/Q5_K: per 32-element sub-block a weighted least-squares search
 *    of scale and min (make_qkx2_quants: weights av|x| + |x_i|, 20 resp.
 *    15 trial inverse scales), then the 8 scales and mins quantized to 6
 *    bits against the super-block's d/dmin and the quants recomputed with
 *    the quantized scales.
 *  - Q6_K: per 16-element sub-block make_qx_quants (weights x^2, 18 trial
 *    scales around -32/max), scales quantized to int8 against d.
 *  - F16/BF16: round to nearest even; F32: copy.
 * All take finite inputs (sd_model_quantize rejects tensors with NaN/Inf).
 */
#ifndef SD_QUANTIZE_H
#define SD_QUANTIZE_H

#include "specdec.h"

#include <stddef.h>
#include <stdint.h>

/* dst = x (n elements, n a multiple of type's block size) encoded as type
 * (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K).
 * Returns 0, or -1 for another type or a bad n (dst untouched). */
int sd_quantize_row(int type, const float *x, void *dst, int64_t n);

/* The target mixes of `specdec quantize` (names as on its command line). */
typedef struct sd_quant_mix {
    const char *name;     /* "q4_k_m"                                        */
    int ftype;            /* llama.cpp's llama_ftype (general.file_type)     */
    int type;             /* default type of 2-D weight matrices (sd_type)   */
    int more_bits;        /* 1: attn_v and ffn_down of some layers to Q6_K
                             (llama.cpp's use_more_bits, the _M mixes)       */
} sd_quant_mix;

/* The mix named name (case-insensitive) or NULL. */
const sd_quant_mix *sd_quant_mix_find(const char *name);
/* Comma-separated list of the mix names (for usage messages). */
const char *sd_quant_mix_names(void);

/* Type a tensor gets under mix (llama.cpp's llama_tensor_get_type rules
 * for the types above): tensors not ending in "weight" and 1-D tensors
 * stay as they are (1-D F16/BF16 become F32); output.weight (or
 * token_embd.weight when the model has no output.weight) Q6_K unless the
 * mix is Q8_0 or a float type; the _M mixes' attn_v/ffn_down rule; then
 * the fallback for rows that are not a multiple of the block (Q4_K->Q5_0,
 * Q5_K->Q5_1, Q6_K->Q8_0, 32-blocks->F16). i_layer/n_layer: the tensor's
 * layer index and the number of such tensors (for use_more_bits). */
int sd_quant_tensor_type(const sd_quant_mix *mix, const char *name, uint32_t n_dims,
                         const int64_t *ne, int in_type, int has_output, int i_layer, int n_layer);

typedef struct sd_quantize_stats {
    int64_t n_tensors;             /* tensors written                         */
    int64_t n_quantized;           /* tensors whose type changed              */
    int64_t n_fallback;            /* of those, matrices given a type other than
                                      the mix's own (output and _M rules, row-
                                      size fallbacks)                         */
    uint64_t bytes_in, bytes_out;  /* tensor data                             */
    int64_t count_by_type[SD_TYPE_COUNT]; /* output tensors per type          */
} sd_quantize_stats;

/* Reads the GGUF in, writes out with every kv copied (general.file_type set
 * to mix->ftype, general.quantization_version = 2) and every tensor in
 * order, re-encoded per sd_quant_tensor_type. n_threads (>= 1) quantize
 * rows in parallel. Errors (SD_ERR_IO for files, SD_ERR_FORMAT for a bad
 * or tensor-less input, SD_ERR_UNSUPPORTED for an input type that cannot
 * be dequantized, SD_ERR_NOMEM) come with a message in err; no partial
 * output file is left. stats may be NULL. */
sd_status sd_model_quantize(const char *in, const char *out, const sd_quant_mix *mix, int n_threads,
                            sd_quantize_stats *stats, char *err, size_t err_size);

/* Progress of sd_model_quantize_ex, for a caller that shows it (the library
 * prints nothing): done and total are bytes of input tensor data (total: the
 * whole file's, fixed for the run). Called on the thread that called
 * sd_model_quantize_ex (never on a worker), once after each tensor has been
 * converted or copied, so done grows to total; writing the output file
 * follows the last call. A tensor that fails ends the run without a call. */
typedef void (*sd_quantize_progress_fn)(void *user, int64_t done, int64_t total);

/* sd_model_quantize with progress(user, done, total) after each tensor;
 * progress NULL: exactly sd_model_quantize. */
sd_status sd_model_quantize_ex(const char *in, const char *out, const sd_quant_mix *mix, int n_threads,
                               sd_quantize_progress_fn progress, void *user, sd_quantize_stats *stats,
                               char *err, size_t err_size);

#endif
