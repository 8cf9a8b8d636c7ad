/*
 * draft_medusa.c - `medusa`: independent draft heads (Medusa; definitions
 * in ../shared/models/README.md).
 *
 * With the history ids[0..n), f = f_{n-2} is the target's last feature;
 * head k (z_k = f + silu(W_k f + b_k), then the target's output head)
 * predicts the token at position n-2+1+k, i.e. the drafted token of depth
 * k. The heads see neither the root token nor the path, so one step runs
 * every head once (one output-head pass over n_medusa rows) and every node
 * of depth d has the same candidates: the greedy tree is chosen from the
 * Cartesian product of the heads' top tokens (draft_heads.c).
 */
#include <stdlib.h>
#include <string.h>

#include "speculative/draft_heads.h"

typedef struct md_state {
    float *z;             /* (n_medusa, E)                                   */
    float *logits;        /* (n_medusa, V): row k-1 = head k                 */
} md_state;

static void md_free(void *ms) {
    md_state *s = ms;
    if (!s) return;
    free(s->z);
    free(s->logits);
    free(s);
}

sd_status hd_medusa_state(const sd_heads *h, void **ms) {
    *ms = NULL;
    md_state *s = calloc(1, sizeof *s);
    if (!s) return SD_ERR_NOMEM;
    s->z = malloc((size_t)h->n_medusa * (size_t)h->n_embd * sizeof(float));
    s->logits = malloc((size_t)h->n_medusa * (size_t)h->n_vocab * sizeof(float));
    if (!s->z || !s->logits) {
        md_free(s);
        return SD_ERR_NOMEM;
    }
    *ms = s;
    return SD_OK;
}

static sd_status md_root(hd_drafter *d, const int32_t *ids, int n, int budget, const float **logits,
                         int *max_depth) {
    md_state *s = d->ms;
    (void)ids;
    *max_depth = 0;
    if (n < 2 || d->n_feat < n - 1) return SD_OK; /* no feature of position n-2 */
    const float *f = d->feat + (size_t)(n - 2) * d->E;
    int depth = d->h->n_medusa;
    if (d->p.tree && depth > d->p.tree_params.depth) depth = d->p.tree_params.depth;
    if (!d->p.tree && depth > budget) depth = budget;
    sd_status st = SD_OK;
    for (int k = 1; k <= depth && st == SD_OK; k++) st = sd_heads_medusa(d->h, d->pool, k, f, 1, s->z + (size_t)(k - 1) * d->E);
    if (st == SD_OK) st = hd_logits(d, s->z, depth, s->logits);
    if (st != SD_OK) return st;
    *logits = s->logits;
    *max_depth = depth;
    return SD_OK;
}

static sd_status md_eval(hd_drafter *d, const int *idx, int k, const float **logits) {
    md_state *s = d->ms;
    for (int i = 0; i < k; i++) {
        const int depth = d->cand[idx[i]].depth; /* its children: head depth+1 */
        if (depth < 1 || depth >= d->h->n_medusa) return SD_ERR_INVALID_ARG;
        d->cand[idx[i]].slot = depth;
        logits[i] = s->logits + (size_t)depth * d->V;
    }
    return SD_OK;
}

const hd_method hd_medusa_method = {"medusa", true, NULL, md_root, md_eval, md_free};
