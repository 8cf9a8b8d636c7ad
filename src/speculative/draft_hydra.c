/*
 * draft_hydra.c - `hydra`: sequentially dependent draft heads (Hydra;
 * definitions in ../shared/models/README.md).
 *
 * With the history ids[0..n), f = f_{n-2} is the target's last feature and
 * ids[n-1] the root. Head k sees [f; E(ids[n-1]); E(d_1); ..; E(d_{k-1})],
 * the root and the k-1 drafted tokens on the node's path, and predicts d_k:
 * the root's children come from head 1, the children of a node at depth d
 * from head d+1, so the tree is at most n_hydra deep. A level of the tree
 * is one head over all its nodes' rows; no state is kept across steps.
 */
#include <stdlib.h>
#include <string.h>

#include "speculative/draft_heads.h"

typedef struct hy_state {
    int32_t root_tok;     /* ids[n-1] of this step                           */
    const float *f;       /* f_{n-2} (inside the drafter's feature buffer)   */
    float *in;            /* (HD_EVAL_MAX, (n_hydra + 1) E) head inputs       */
    float *z;             /* (HD_EVAL_MAX, E)                                */
    float *logits;        /* (HD_EVAL_MAX, V)                                */
} hy_state;

static void hy_free(void *ms) {
    hy_state *s = ms;
    if (!s) return;
    free(s->in);
    free(s->z);
    free(s->logits);
    free(s);
}

sd_status hd_hydra_state(const sd_heads *h, void **ms) {
    *ms = NULL;
    hy_state *s = calloc(1, sizeof *s);
    if (!s) return SD_ERR_NOMEM;
    const size_t E = (size_t)h->n_embd;
    s->in = malloc((size_t)HD_EVAL_MAX * (size_t)(h->n_hydra + 1) * E * sizeof(float));
    s->z = malloc((size_t)HD_EVAL_MAX * E * sizeof(float));
    s->logits = malloc((size_t)HD_EVAL_MAX * (size_t)h->n_vocab * sizeof(float));
    if (!s->in || !s->z || !s->logits) {
        hy_free(s);
        return SD_ERR_NOMEM;
    }
    *ms = s;
    return SD_OK;
}

/* Row [f; E(root); E(path of node c)] for head depth+1 (c = -1: the root). */
static void fill_row(hd_drafter *d, hy_state *s, int c, int depth, float *row) {
    const int E = d->E;
    memcpy(row, s->f, (size_t)E * sizeof(float));
    sd_heads_embed(d->h, s->root_tok, row + E);
    for (int a = c, k = depth; a >= 0 && k >= 1; a = d->cand[a].parent, k--)
        sd_heads_embed(d->h, d->cand[a].tok, row + (size_t)(k + 1) * E);
}

/* Head `head` (1-based) over rows of nodes idx[0..k) of depth head-1. */
static sd_status run_head(hd_drafter *d, hy_state *s, int head, const int *idx, int k, float *logits) {
    const size_t W = (size_t)(head + 1) * (size_t)d->E;
    for (int i = 0; i < k; i++) fill_row(d, s, idx ? idx[i] : -1, head - 1, s->in + (size_t)i * W);
    sd_status st = sd_heads_hydra(d->h, d->pool, head, s->in, k, s->z);
    if (st == SD_OK) st = hd_logits(d, s->z, k, logits);
    return st;
}

static sd_status hy_root(hd_drafter *d, const int32_t *ids, int n, int budget, const float **logits,
                         int *max_depth) {
    hy_state *s = d->ms;
    *max_depth = 0;
    if (n < 2 || d->n_feat < n - 1) return SD_OK; /* no feature of position n-2 */
    s->f = d->feat + (size_t)(n - 2) * d->E;
    s->root_tok = ids[n - 1];
    sd_status st = run_head(d, s, 1, NULL, 1, s->logits);
    if (st != SD_OK) return st;
    *logits = s->logits;
    int depth = d->h->n_hydra;
    if (d->p.tree && depth > d->p.tree_params.depth) depth = d->p.tree_params.depth;
    if (!d->p.tree && depth > budget) depth = budget;
    *max_depth = depth;
    return SD_OK;
}

static sd_status hy_eval(hd_drafter *d, const int *idx, int k, const float **logits) {
    hy_state *s = d->ms;
    if (k < 1 || k > HD_EVAL_MAX) return SD_ERR_INVALID_ARG;
    /* runs of nodes of one depth share a head */
    for (int i0 = 0; i0 < k;) {
        const int depth = d->cand[idx[i0]].depth;
        int i1 = i0 + 1;
        while (i1 < k && d->cand[idx[i1]].depth == depth) i1++;
        if (depth < 1 || depth >= d->h->n_hydra) return SD_ERR_INVALID_ARG;
        sd_status st = run_head(d, s, depth + 1, idx + i0, i1 - i0, s->logits + (size_t)i0 * d->V);
        if (st != SD_OK) return st;
        i0 = i1;
    }
    for (int i = 0; i < k; i++) {
        d->cand[idx[i]].slot = i;
        logits[i] = s->logits + (size_t)i * d->V;
    }
    return SD_OK;
}

const hd_method hd_hydra_method = {"hydra", false, NULL, hy_root, hy_eval, hy_free};
