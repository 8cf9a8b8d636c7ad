/*
 * ctx.h - internal layout of a context: KV cache, scratch, outputs.
 *
 * KV cache: for each layer, K and V are (n_ctx, Hkv*D) F16 (as llama.cpp
 * stores them), one row per cell; K rows are stored already rotated (RoPE at the cell's position), so
 * cells can be moved without recomputation. n_cells[l] cells are valid in
 * layer l (layers differ only between partial-layer decodes).
 *
 * VocabTrim (sd_ctx_params.vocab_subset): the context owns a compact copy
 * of the output-head rows of its subset ids (in the weight's own type and
 * in slots that make the same kernel give the same bits: see subset_init in
 * ctx.c), S rows including up to 3 zero padding rows; the head runs over
 * them into sub_logits (n_out, S), which is scattered into logits. In a
 * subset context every logits entry outside the subset is -INFINITY from
 * allocation on (outputs_reserve fills new buffers; only subset columns are
 * ever written), so a decode writes S values per output row, not V.
 */
#ifndef SD_CTX_H
#define SD_CTX_H

#include "model/model.h"
#include "compute/threadpool.h"

#define SD_FWD_PROFILE_SLOTS 24
typedef struct sd_scratch {
    size_t cap_rows;       /* rows the buffers below hold                   */
    float *x;              /* (N, E)  residual stream                        */
    float *xn;             /* (N, max(E, H*D, F))  normed input of a matmul  */
    /* A matmul input in the formats its weights read, one set per input
     * width so that rows of one set never overlap whatever thread writes
     * them: set 0 the inputs of q/k/v, gate/up and the head (from xn),
     * set 1 that of wo (attention output), set 2 that of down (SwiGLU). */
    struct sd_prep {
        void *xq;          /* (N, blocks of max(E, H*D, F)) Q8_0 copy of a matmul input */
        void *xq1;         /* (N, blocks of max(E, H*D, F)) Q8_1 copy (Q4_1, Q5_1 weights) */
        void *xqk;         /* (N, blocks of max(E, H*D, F)) Q8_K copy (k-quant weights)  */
        float *xr;         /* (N, max(E, H*D, F)) F16-rounded copy of a matmul input    */
        float *xb;         /* (N, max(E, H*D, F)) BF16-rounded copy of a matmul input   */
    } prep[3];
    float *q;              /* (N, H*D)                                      */
    float *k;              /* (N, Hkv*D)                                    */
    float *v;              /* (N, Hkv*D)                                    */
    float *att;            /* (N, H*D)   attention output                   */
    float *tmp;            /* (N, E)     projection output                  */
    float *gate;           /* (N, F)                                        */
    float *up;             /* (N, F)                                        */
    float *rope;           /* (N, n_rot) cos/sin pairs per row              */
#ifdef SD_FWD_PROFILE
    /* Developer build only (make BUILD=build-prof EXTRA_CFLAGS=-DSD_FWD_PROFILE):
     * seconds per forward phase and thread, accumulated (bench/bench_fwd_profile.c). */
    double prof[2][SD_FWD_PROFILE_SLOTS];
#endif
} sd_scratch;

struct sd_ctx {
    const sd_model *model;
    sd_threadpool *pool;
    int n_ctx;
    bool attn_compat;      /* llama.cpp-compatible attention numerics        */
    int split;             /* forward work split (bench and tests only; 0 after
                              sd_ctx_new): 0 auto, 1 columns, 2 rows          */
    int *n_cells;          /* (n_layer) valid cells per layer                */
    uint16_t *k_cache;     /* (n_layer, n_ctx, Hkv*D) F16                    */
    uint16_t *v_cache;     /* (n_layer, n_ctx, Hkv*D) F16                    */
    sd_scratch s;

    int n_out;             /* outputs of the last decode                     */
    size_t cap_out;        /* rows the output buffers hold                   */
    float *logits;         /* (n_out, V)                                    */
    float *hidden;         /* (n_out, E)                                    */
    bool out_logits, out_hidden;

    /* VocabTrim; n_sub == 0: the full head (none of these allocated).   */
    int n_sub;             /* S: compact rows, padding included              */
    int32_t *sub_ids;      /* (S) token id of each compact row; -1: padding  */
    void *sub_rows;        /* (S, row_bytes) copy of model->output rows       */
    void *sub_packed;      /* sub_rows packed (packed.h) when the head is     */
    sd_weight sub_output;  /* (S, E) view of sub_rows                        */
    float *sub_logits;     /* (cap_sub, S) head output before the scatter    */
    size_t cap_sub;        /* rows sub_logits holds                          */
};

#endif
