/*
 * draft_heads.h - what the trained-heads drafters (`eagle`, `hydra`,
 * `medusa`) share: the target features handed over by the decode loop, the
 * candidate nodes of a draft, the chain / tree builders (draft_heads.c), and
 * the small interface each method implements (draft_eagle.c,
 * draft_hydra.c, draft_medusa.c).
 *
 * Positions: the history is ids[0..n); the target has seen ids[0..n-1) and
 * handed over their features f_0..f_{n-2} (f_t predicted ids[t+1]); ids[n-1]
 * (the last accepted / bonus token) is the root of the draft. A node at
 * depth d (1 = child of the root) proposes the token at position n-1+d.
 *
 * A method computes, for the root and for any candidate node, the logits of
 * the distribution of that node's children; the builders turn those into a
 * chain or tree (greedy or sampled) under the step's budget.
 */
#ifndef SD_SPEC_DRAFT_HEADS_H
#define SD_SPEC_DRAFT_HEADS_H

#include "model/heads.h"
#include "speculative/drafter.h"

enum {
    HD_CAND_MAX = 1280,  /* candidate nodes of one draft                    */
    HD_EVAL_MAX = 16,    /* nodes a method evaluates in one call (tree width) */
};

typedef struct hd_node {
    int32_t tok;
    int parent;     /* candidate index, -1 = the root                       */
    int depth;      /* 1 = child of the root                                */
    int slot;       /* the method's state row once evaluated, else -1       */
    double score;   /* log cumulative draft probability of the path          */
} hd_node;

typedef struct hd_drafter hd_drafter;

typedef struct hd_method {
    const char *name;
    /* The children's distribution depends only on the depth (Medusa): a
     * greedy tree is then the best of the Cartesian product of each
     * depth's top candidates. */
    bool independent;
    /* Optional: a generation starts (ids[0..n) the prompt; the features of
     * all n prompt positions have arrived). */
    sd_status (*begin)(hd_drafter *d, const int32_t *ids, int n);
    /* Brings the method up to the history ids[0..n) and returns the root's
     * logits (V) in *logits (valid until the next call) and the deepest node
     * it can draft this step in *max_depth (0: nothing to draft, e.g. the
     * features are missing). */
    sd_status (*root)(hd_drafter *d, const int32_t *ids, int n, int budget, const float **logits, int *max_depth);
    /* Logits of the children of candidates idx[0..k) (k <= HD_EVAL_MAX,
     * each of depth < max_depth, their ancestors evaluated earlier): row i
     * in logits[i], valid until the next call. Sets the nodes' slot. */
    sd_status (*eval)(hd_drafter *d, const int *idx, int k, const float **logits);
    void (*free)(void *ms);
} hd_method;

struct hd_drafter {
    const sd_heads *h;
    sd_threadpool *pool;          /* borrowed                                */
    const hd_method *m;
    void *ms;                     /* the method's state                      */
    sd_heads_params p;
    int E, V;
    float *feat;                  /* (cap_feat, E) target features by position */
    int n_feat, cap_feat;         /* positions [0, n_feat) are valid         */
    int feat_changed;             /* lowest position rewritten since the last
                                     root() (INT_MAX: none)                  */
    hd_node cand[HD_CAND_MAX];
    int n_cand;
    sd_sampler *smp;              /* sampling: made from the target's settings */
    sd_sampler_params smp_params;
    sd_heads_timing timing;
    /* VocabTrim (p.vocab_subset): those rows of the output matrix (owned),
     * their ids, and compact logits (cap_trim rows of n_trim) */
    sd_weight trim_w;
    void *trim_data;
    void *trim_packed;        /* trim_w packed for the table (or NULL)      */
    int32_t *trim_ids;
    int n_trim;
    float *trim_logits;
    int cap_trim;
};

/* head(z) for z (N, E) into logits (N, V), timed as the output head. */
sd_status hd_logits(hd_drafter *d, const float *z, int N, float *logits);

/* Makes a heads drafter around method m with state ms (freed with m->free
 * on any error). */
sd_status hd_make(const sd_heads *h, sd_threadpool *pool, const sd_heads_params *p, const hd_method *m, void *ms,
                  sd_drafter **out);

/* Checks tree params as sd_drafter_new_model_tree does. */
bool hd_params_ok(const sd_heads_params *p);

/* The methods' constructors of their state (draft_eagle.c, ...). */
sd_status hd_eagle_state(const sd_heads *h, sd_threadpool *pool, int n_ctx, bool q8, void **ms);
sd_status hd_hydra_state(const sd_heads *h, void **ms);
sd_status hd_medusa_state(const sd_heads *h, void **ms);
extern const hd_method hd_eagle_method, hd_hydra_method, hd_medusa_method;

#endif
