/*
 * drafter.h - the one interface every drafter implements (one file each:
 * draft_model.c, draft_lookup.c, draft_ngram.c, ...).
 *
 * The decode loop (decode.c) owns the accepted history: ids[0..n) = prompt
 * + generated tokens. Each step it asks the drafter for up to `max` tokens
 * continuing the history, verifies them with one target forward, appends the
 * accepted drafts and one bonus token to the history and reports back.
 *
 * A draft is a chain or a token tree. Node i continues its parent: parent[i]
 * = -1 means the root (the last accepted token, which the target has not
 * seen yet), else an earlier node (parent[i] < i). A chain has parent[i] =
 * i - 1. Siblings hold distinct tokens, in the order they were drawn.
 *
 * q (has_q): row i is the distribution node i was drawn from (the drafter's
 * distribution at node i's parent; siblings have equal rows). Siblings are
 * draws WITHOUT replacement from that distribution, in sibling order; the
 * multi-draft verifier relies on it. Without q (a deterministic drafter)
 * every node is treated as a one-hot proposal.
 */
#ifndef SD_SPEC_DRAFTER_H
#define SD_SPEC_DRAFTER_H

#include "specdec.h"

#define SD_MAX_DRAFT 64

typedef struct sd_draft {
    int n;                       /* drafted nodes                          */
    int32_t tok[SD_MAX_DRAFT];   /* (n)                                    */
    int32_t parent[SD_MAX_DRAFT];/* (n) -1 = root; only read when is_tree  */
    bool is_tree;                /* false: a chain (parent[i] = i - 1)     */
    int layer_begin;             /* self-speculation (chains only): > 0
                                    when the drafter already ran the
                                    target's layers [0, layer_begin) for the
                                    rows [root, tok[0..n)) on the decode
                                    loop's own context (their cells follow
                                    the history in those layers); the loop
                                    then verifies from layer_begin on      */
    const float *embd;           /* (n + 1, n_embd) states entering
                                    layer_begin, owned by the drafter      */
    bool has_q;                  /* q below is valid                       */
    float *q;                    /* (SD_MAX_DRAFT, n_vocab), owned by the
                                    decode loop; row i = distribution tok[i]
                                    was drawn from                         */
} sd_draft;

/* What this step's tokens cost, for a drafter that decides itself when to
 * stop (spec/stop.h); the decode loop fills it under --draft-max auto.
 * verify_ms[r]: the target's verification of r rows at this context
 * (r = 1..max_rows; [0] unused); node_ms / call_ms: this drafter's measured
 * cost per drafted token / per call. */
typedef struct sd_draft_costs {
    double verify_ms[SD_MAX_DRAFT + 2];
    int max_rows;
    double node_ms, call_ms;
} sd_draft_costs;

/* What a drafter may use to draft: the target's sampler settings (a model
 * drafter draws from q = its distribution under the same settings; greedy
 * drafts take the argmax), a generator for its own draws, and under
 * --draft-max auto the step's costs (NULL otherwise: the drafter's fixed
 * rule, e.g. its p_min, decides). */
typedef struct sd_draft_env {
    const sd_sampler_params *sp;
    sd_rng *rng;
    const sd_draft_costs *costs;
} sd_draft_env;

typedef struct sd_drafter_ops {
    /* Starts a generation: ids[0..n) is the prompt. */
    sd_status (*begin)(void *self, const int32_t *ids, int n);
    /* Drafts up to max (<= SD_MAX_DRAFT) nodes continuing ids[0..n) into
     * out (out->n may be 0); out->is_tree, parent and has_q arrive false /
     * unset and are the drafter's to set. */
    sd_status (*draft)(void *self, const int32_t *ids, int n, int max, const sd_draft_env *env,
                       sd_draft *out);
    /* After verification: ids[0..n) is the new history, which ends with the
     * n_accepted accepted drafts and the bonus token. A tree drafter finds
     * the accepted path by following those tokens down its tree (siblings
     * are distinct). */
    void (*accept)(void *self, const int32_t *ids, int n, int n_accepted);
    /* Ends a generation (keeps what persists across generations, e.g. a
     * dynamic n-gram cache). */
    void (*end)(void *self);
    void (*free)(void *self);
    /* Optional (NULL: not wanted): the target's hidden states (after its
     * last layer, before output_norm; n_embd floats per row) of n_rows
     * consecutive accepted positions pos0..pos0+n_rows-1: all prompt
     * positions after the prefill, then after every verification the rows
     * of the root and the accepted drafts. Called before begin() / accept()
     * of the same step. Trained heads (EAGLE, Hydra, Medusa) draft from them. */
    void (*features)(void *self, const float *h, int n_rows, int pos0);
} sd_drafter_ops;

struct sd_drafter {
    const char *name;            /* "draft", "lookup", "ngram-cache", ... */
    const sd_drafter_ops *ops;
    void *self;
    bool stops_itself;           /* a confidence rule ends its chains (the
                                    draft model, self): auto's probes may
                                    offer it the whole budget (auto.h)     */
};

/* SD_OK if a and b share one vocabulary (size, special ids, every token's
 * text); else SD_ERR_MISMATCH with the first difference in err. */
sd_status sd_check_same_vocab(const sd_model *a, const sd_model *b, char *err, size_t err_size);

/* The KV context of a draft model that drafts for target: checks that the
 * two share one vocabulary (sd_check_same_vocab), then makes a context of
 * n_ctx cells on pool (NULL: single-threaded) whose output head is limited
 * to vocab_subset[0..n_subset) when n_subset > 0 (VocabTrim). *out is the
 * caller's (sd_ctx_free). Errors: SD_ERR_MISMATCH, SD_ERR_INVALID_ARG
 * (n_ctx or the subset; err says which), SD_ERR_NOMEM. */
sd_status sd_draft_ctx_new(const sd_model *draft, const sd_model *target, sd_threadpool *pool, int n_ctx,
                           const int32_t *vocab_subset, int n_subset, sd_ctx **out, char *err, size_t err_size);

/* Monotonic clock in milliseconds (timing of drafts and steps). */
double sd_now_ms(void);

/* Wraps an implementation; NULL on NOMEM (self is then freed with ops). */
sd_drafter *sd_drafter_make(const char *name, const sd_drafter_ops *ops, void *self);

#endif
