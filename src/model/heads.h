/*
 * heads.h - internal layout of loaded draft heads (sd_heads) and the
 * numerics every heads drafter shares (src/model/heads.c).
 *
 * Letters: E = n_embd (the target's width, also the heads'), V = n_vocab,
 * N = rows. f is a target feature (its hidden state after the last block,
 * before output_norm), E(x) the target's token_embd row of token x, and
 * head(z) = output(output_norm(z)) with the target's tensors.
 *
 *   Medusa k (1..n_medusa): z = f + silu(W_k f + b_k)                 W_k (E, E)
 *   Hydra  k (1..n_hydra):  z = f + silu(W_k [f; E(x1); ..; E(xk)] + b_k) W_k (E, (k+1)E)
 *   EAGLE: g = W_fc [f; E(x)] + b_fc (W_fc (E, 2E)), then one llama block
 *          (its own KV cache) over the g rows gives the next feature fhat.
 *
 * The EAGLE block runs through the regular forward pass: `eagle` below is a
 * one-layer sd_model whose layer is eagle.blk.0 and whose vocabulary,
 * token_embd, output_norm and output are borrowed from the target; its
 * contexts are fed g rows as embeddings (sd_batch.embd at layer 0) and give
 * fhat as SD_OUTPUT_HIDDEN. It must never be passed to sd_model_free.
 */
#ifndef SD_HEADS_H
#define SD_HEADS_H

#include "model/model.h"

struct sd_heads {
    sd_gguf *gguf;              /* the mapping the weights point into        */
    const sd_model *target;     /* borrowed                                  */
    char target_name[128];      /* specdec-heads.target                      */
    int n_embd, n_vocab;
    int n_medusa, n_hydra;
    sd_weight medusa_w[SD_HEADS_MAX];   /* (E, E)                            */
    const float *medusa_b[SD_HEADS_MAX];/* (E)                               */
    sd_weight hydra_w[SD_HEADS_MAX];    /* head k: (E, (k+1) E)              */
    const float *hydra_b[SD_HEADS_MAX]; /* (E)                               */
    bool has_eagle;
    sd_weight eagle_fc;         /* (E, 2E)                                   */
    const float *eagle_fc_b;    /* (E)                                       */
    sd_model eagle;             /* one layer: eagle_layer (see above)        */
    sd_layer eagle_layer;
    size_t bytes;               /* weight bytes of the heads' tensors        */
    /* Q8_0 copies for faster drafting (sd_heads_params.q8): the target's
     * output matrix, W_fc and a one-layer model over a Q8_0 copy of the
     * EAGLE block (the others borrowed as in `eagle`); a matrix already
     * quantized (a Q4_K_M target's Q6_K output, a quantized heads file) is
     * used as it is */
    sd_weight output_q8;
    sd_weight eagle_fc_q8;
    sd_model eagle_q8;
    sd_layer eagle_layer_q8;
    void *owned[64];            /* F32 copies of the vectors, Q8_0 copies    */
    int n_owned;
};

/* logits (N, V) = output(output_norm(z)) for z (N, E) (sd_model_head_logits
 * with the target's output or its Q8_0 copy; for a trimmed head call that
 * directly), computed exactly as
 * the target's forward pass computes its logits (so head(f) of a target
 * feature reproduces the target's logits bit for bit); q8: with the Q8_0
 * copy of the output matrix instead. */
sd_status sd_heads_logits(const sd_heads *h, sd_threadpool *pool, bool q8, const float *z, int N, float *logits);

/* z (N, E) of Medusa head k (1-based) for features f (N, E). */
sd_status sd_heads_medusa(const sd_heads *h, sd_threadpool *pool, int k, const float *f, int N, float *z);

/* z (N, E) of Hydra head k (1-based); in (N, (k+1) E) rows [f; E(x1); ..;
 * E(xk)]. */
sd_status sd_heads_hydra(const sd_heads *h, sd_threadpool *pool, int k, const float *in, int N, float *z);

/* Writes the target's token_embd row of tok into out (E). */
void sd_heads_embed(const sd_heads *h, int32_t tok, float *out);

/* g (N, E) = W_fc [f; E(tok)] + b_fc for feature rows f (N, E) and tokens
 * tok (N); q8: with the Q8_0 copy of W_fc. */
sd_status sd_heads_eagle_fc(const sd_heads *h, sd_threadpool *pool, bool q8, const float *f, const int32_t *tok,
                            int N, float *g);

#endif
