/*
 * model.h - internal layout of a loaded model.
 *
 * Letters: E = n_embd, H = n_head, Hkv = n_head_kv, D = head_dim, F = n_ff,
 * V = n_vocab. A weight matrix is (rows, cols) = (M, K) row-major in its
 * storage type; GGUF ne = {K, M}.
 */
#ifndef SD_MODEL_H
#define SD_MODEL_H

#include "gguf.h"
#include "kernels/kernels.h"
#include "specdec.h"
#include "vocab.h"

typedef struct sd_weight {
    const void *data;   /* row m at data + m*row_bytes (mapping or owned)   */
    int type;           /* sd_type                                          */
    int64_t rows;       /* M                                                */
    int64_t cols;       /* K                                                */
    size_t row_bytes;
} sd_weight;

typedef struct sd_layer {
    const float *attn_norm;   /* (E)                          */
    sd_weight wq;             /* (H*D, E)                     */
    sd_weight wk;             /* (Hkv*D, E)                   */
    sd_weight wv;             /* (Hkv*D, E)                   */
    const float *bq, *bk, *bv;/* (H*D), (Hkv*D): NULL for llama */
    sd_weight wo;             /* (E, H*D)                     */
    const float *ffn_norm;    /* (E)                          */
    sd_weight w_gate;         /* (F, E)                       */
    sd_weight w_up;           /* (F, E)                       */
    sd_weight w_down;         /* (E, F)                       */
} sd_layer;

typedef enum sd_rope_type {
    SD_ROPE_NORM = 0,   /* GGUF llama: rotate adjacent pairs (2i, 2i+1)    */
    SD_ROPE_NEOX = 1,   /* rotate (i, i + n_rot/2)                          */
} sd_rope_type;

struct sd_model {
    sd_gguf *gguf;            /* the mapping weights point into             */
    sd_vocab *vocab;
    const sd_kernels *kern;
    char arch[32];
    char name[128];
    bool vocab_only;

    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_rot, n_ctx_train;
    float rope_base, norm_eps;
    sd_rope_type rope_type;
    int n_early_exit;
    int early_exit[SD_MAX_EARLY_EXITS];

    sd_weight tok_embd;       /* (V, E)                                     */
    const float *output_norm; /* (E)                                        */
    sd_weight output;         /* (V, E); == tok_embd when tied              */
    sd_layer *layers;         /* (n_layer)                                  */

    void **owned;             /* buffers made at load (F32 norms, quantized) */
    int n_owned, cap_owned;
    size_t weight_bytes, weight_bytes_per_token;
};

/* Dequantizes/converts row `row` of w into out (cols floats). */
void sd_weight_get_row(const sd_weight *w, int64_t row, float *out);

#endif
