/*
 * model.h - internal layout of a loaded model.
 *
 * Letters: E = n_embd, H = n_head, Hkv = n_head_kv, D = head_dim, F = n_ff,
 * V = n_vocab. A weight matrix is (rows, cols) = (M, K) row-major in its
 * storage type; GGUF ne = {K, M}.
 */
#ifndef SD_MODEL_H
#define SD_MODEL_H

#include "model/gguf.h"
#include "kernels/kernels.h"
#include "specdec.h"
#include "tokenizer/vocab.h"

typedef struct sd_weight {
    const void *data;   /* row m at data + m*row_bytes (mapping or owned)   */
    const void *packed; /* the same rows in packed.h's layout for the
                           table's gemm_packed (owned), or NULL; a copy
                           that changes data or rows must reset it          */
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
    const float *rope_freqs;  /* (n_rot / 2) divisors of each pair's frequency
                                 (rope_freqs.weight, Llama 3.1+), or NULL   */
    float rope_freq_scale;    /* 1 / rope.scaling.factor under linear
                                 scaling, else 1                            */
    int n_early_exit;
    int early_exit[SD_MAX_EARLY_EXITS];

    sd_weight tok_embd;       /* (V, E)                                     */
    const float *output_norm; /* (E)                                        */
    sd_weight output;         /* (V, E); == tok_embd when tied              */
    sd_layer *layers;         /* (n_layer)                                  */

    const sd_gguf_tensor **bound; /* while loading: the tensors bound so far */
    int64_t n_bound;
    void **owned;             /* buffers made at load (F32 norms, quantized) */
    int n_owned, cap_owned;
    size_t weight_bytes, weight_bytes_per_token;
};

/* Dequantizes/converts row `row` of w into out (cols floats). */
void sd_weight_get_row(const sd_weight *w, int64_t row, float *out);

/* *q = a Q8_0 copy of w whose data the caller owns (*owned, free()); w
 * itself (and *owned NULL) when w is Q8_0 already or its rows are not
 * whole Q8_0 blocks. For drafting heads, which need not be exact. */
sd_status sd_weight_q8_copy(const sd_weight *w, sd_weight *q, void **owned);

/* True for the weight types a model's (or heads') matrices may have: F32,
 * F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K (every one
 * sd_weight_matmul and sd_weight_gemm run). */
bool sd_weight_type_ok(int type);

/* Gives w a packed copy (w->packed, owned by m) when the model's table has
 * a packed gemm for w's type and w's rows are whole 16-row groups; else
 * leaves w as it is. */
sd_status sd_weight_pack(sd_model *m, sd_weight *w);
/* The same for a weight someone else owns: *owned = the packed buffer
 * (the caller frees it) and w->packed set, or *owned = NULL and w as it
 * was. SD_ERR_NOMEM. */
sd_status sd_weight_pack_copy(const sd_kernels *kern, sd_weight *w, void **owned);

/* The matmul of one weight in the layout the kernels read: y (N, ldy)
 * columns [m0, m1) = x W^T, x in w's activation format (xq: Q8_0 for Q8_0,
 * Q4_0 and Q5_0; Q8_K for the K types; Q8_1 for Q4_1, Q5_1; F32 rounded as
 * the type needs for the float types) with x_stride bytes per row. Packed
 * weights: m0, m1 multiples of 16. */
void sd_weight_matmul(const sd_kernels *kern, const sd_weight *w, const void *x, size_t x_stride, int N,
                      float *y, size_t ldy, int m0, int m1);

/* y (N, ldy) = x (N, K) W^T for w (M, K) of any weight type the model
 * loader takes, on the pool's threads (pool NULL: this thread); x is F32,
 * converted inside to the type's activation format as forward.c does
 * (Q8_0 for Q8_0 / Q4_0 / Q5_0, Q8_1 for Q4_1 / Q5_1, Q8_K for the
 * K-quants, BF16-rounded for BF16; F32 and F16 weights take x as it is).
 * SD_ERR_UNSUPPORTED for other types, SD_ERR_NOMEM. */
sd_status sd_weight_gemm(const sd_kernels *kern, sd_threadpool *pool, const sd_weight *w, const float *x, int N,
                         float *y, size_t ldy);

/* logits (N, ldl >= out->rows) = out(output_norm(z)) for states z (N, E):
 * m's final norm, then the output matrix `out` (m->output, or a copy of
 * it or of a subset of its rows), computed as the forward pass computes
 * its logits (F16 weights take F16-rounded activations), so with
 * m->output the logits are bit-identical to the forward's. */
sd_status sd_model_head_logits(const sd_model *m, sd_threadpool *pool, const sd_weight *out, const float *z,
                               int N, float *logits, size_t ldl);

#endif
