/*
 * draft_eagle.c - `eagle`: a one-layer draft transformer over the target's
 * features (EAGLE; definitions in ../shared/models/README.md).
 *
 * Row i of the EAGLE block, at position i, is g_i = W_fc [f_i; E(x_{i+1})] +
 * b_fc; the block runs causally over the rows (its own KV cache: an sd_ctx
 * of the one-layer model heads->eagle) and row i outputs fhat_{i+1}, whose
 * head(fhat_{i+1}) predicts x_{i+2}.
 *
 * Cache: rows 0..n_valid-1 are computed from the target's own features
 * (f_i, accepted x_{i+1}); they are kept across steps. With the history
 * ids[0..n), the target has handed over f_0..f_{n-2}: the step first appends
 * the missing rows up to i = n-2 in one batch, whose last output fhat_{n-1}
 * is the root: head(fhat_{n-1}) predicts x_n, the first drafted token.
 * Drafted nodes then become rows after them: the node at depth d holding
 * token t is the row (fhat of its parent, t) at position n-2+d; it sees the
 * verified rows and its ancestors' rows (a tree mask over the tail) and its
 * output fhat predicts its children. A level of the tree is one batch.
 * Draft rows are dropped at the next step: the accepted ones come back as
 * rows of real features (as EAGLE does).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "compute/ctx.h"
#include "speculative/draft_heads.h"

enum { EG_SLOTS = SD_TREE_MAX_DEPTH * HD_EVAL_MAX + SD_MAX_DRAFT };

typedef struct eg_state {
    sd_ctx *ctx;          /* the EAGLE block's KV cache                     */
    int n_valid;          /* rows from target features: cells [0, n_valid)  */
    bool have_root;       /* root_h is fhat_{n_valid} (row n_valid-1's output) */
    float *root_h;        /* (E)                                            */
    float *slot_h;        /* (EG_SLOTS, E) fhat of the evaluated nodes; slot s
                             is cell base + s                               */
    int n_slots, base;    /* this step's evaluated nodes; base = n_valid    */
    float *logits;        /* (HD_EVAL_MAX, V)                               */
    float *par;           /* (HD_EVAL_MAX, E) parents' fhat                 */
    float *g;             /* (HD_EVAL_MAX, E) rows entering the block       */
} eg_state;

static void eg_free(void *ms) {
    eg_state *s = ms;
    if (!s) return;
    sd_ctx_free(s->ctx);
    free(s->root_h);
    free(s->slot_h);
    free(s->logits);
    free(s->par);
    free(s->g);
    free(s);
}

sd_status hd_eagle_state(const sd_heads *h, sd_threadpool *pool, int n_ctx, bool q8, void **ms) {
    *ms = NULL;
    eg_state *s = calloc(1, sizeof *s);
    if (!s) return SD_ERR_NOMEM;
    const size_t E = (size_t)h->n_embd, V = (size_t)h->n_vocab;
    s->root_h = malloc(E * sizeof(float));
    s->slot_h = malloc((size_t)EG_SLOTS * E * sizeof(float));
    s->logits = malloc((size_t)HD_EVAL_MAX * V * sizeof(float));
    s->par = malloc((size_t)HD_EVAL_MAX * E * sizeof(float));
    s->g = malloc((size_t)HD_EVAL_MAX * E * sizeof(float));
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = n_ctx;
    cp.pool = pool;
    sd_status st = s->root_h && s->slot_h && s->logits && s->par && s->g ? SD_OK : SD_ERR_NOMEM;
    if (st == SD_OK) st = sd_ctx_new(q8 ? &h->eagle_q8 : &h->eagle, &cp, &s->ctx);
    if (st != SD_OK) {
        eg_free(s);
        return st;
    }
    *ms = s;
    return SD_OK;
}

/* Appends the rows i in [n_valid, upto) from the target's features f_i and
 * the tokens ids[i+1] in one batch; root_h becomes its last output. */
static sd_status catch_up(hd_drafter *d, eg_state *s, const int32_t *ids, int upto) {
    if (d->feat_changed < s->n_valid) { /* features rewritten under our rows */
        s->n_valid = d->feat_changed;
        s->have_root = false;
    }
    d->feat_changed = INT_MAX;
    if (upto > d->n_feat) upto = d->n_feat;
    if (upto <= s->n_valid) return SD_OK;
    sd_ctx_kv_truncate(s->ctx, s->n_valid);
    s->have_root = false;
    const int N = upto - s->n_valid;
    if (s->n_valid + N > sd_ctx_n_ctx(s->ctx)) return SD_ERR_CTX_FULL;
    int32_t *tok = malloc((size_t)N * sizeof *tok);
    float *g = malloc((size_t)N * (size_t)d->E * sizeof(float));
    sd_status st = tok && g ? SD_OK : SD_ERR_NOMEM;
    if (st == SD_OK) {
        for (int i = 0; i < N; i++) tok[i] = ids[s->n_valid + i + 1];
        st = sd_heads_eagle_fc(d->h, d->pool, d->p.q8, d->feat + (size_t)s->n_valid * d->E, tok, N, g);
    }
    if (st == SD_OK) {
        sd_batch b = sd_batch_simple(NULL, N);
        b.embd = g;
        b.out_flags = SD_OUTPUT_HIDDEN; /* the last row only */
        st = sd_ctx_decode(s->ctx, &b);
    }
    if (st == SD_OK) {
        memcpy(s->root_h, sd_ctx_hidden(s->ctx, 0), (size_t)d->E * sizeof(float));
        s->n_valid = upto;
        s->have_root = true;
    }
    free(tok);
    free(g);
    return st;
}

static sd_status eg_begin(hd_drafter *d, const int32_t *ids, int n) {
    eg_state *s = d->ms;
    sd_ctx_kv_clear(s->ctx);
    s->n_valid = 0;
    s->have_root = false;
    d->feat_changed = INT_MAX;
    /* rows 0..n-2 of the prompt now (prefill); row n-1 waits for x_n */
    sd_status st = catch_up(d, s, ids, n - 1);
    return st == SD_ERR_CTX_FULL ? SD_OK : st;
}

static sd_status eg_root(hd_drafter *d, const int32_t *ids, int n, int budget, const float **logits,
                         int *max_depth) {
    eg_state *s = d->ms;
    *max_depth = 0;
    if (n < 2) return SD_OK;
    if (s->n_valid > n - 1) { /* the history shrank: start over */
        s->n_valid = 0;
        s->have_root = false;
    }
    sd_status st = catch_up(d, s, ids, n - 1);
    if (st == SD_ERR_CTX_FULL) return SD_OK; /* no room: plain decoding */
    if (st != SD_OK) return st;
    if (s->n_valid != n - 1 || !s->have_root) return SD_OK; /* features missing */
    sd_ctx_kv_truncate(s->ctx, s->n_valid);
    s->base = s->n_valid;
    s->n_slots = 0;
    if ((st = hd_logits(d, s->root_h, 1, s->logits)) != SD_OK) return st;
    *logits = s->logits;
    /* deepest node: the tree's depth or the chain's budget, within the cache
     * (a level adds up to `width` rows) and the slots */
    int depth = d->p.tree ? d->p.tree_params.depth : budget;
    const int per_level = d->p.tree ? d->p.tree_params.width : 1;
    const int room = sd_ctx_n_ctx(s->ctx) - s->base;
    if (depth > room / per_level) depth = room / per_level;
    if (depth * per_level > EG_SLOTS) depth = EG_SLOTS / per_level;
    *max_depth = depth;
    return SD_OK;
}

static sd_status eg_eval(hd_drafter *d, const int *idx, int k, const float **logits) {
    eg_state *s = d->ms;
    const int E = d->E;
    if (k < 1 || k > HD_EVAL_MAX || s->n_slots + k > EG_SLOTS) return SD_ERR_INVALID_ARG;
    const int n_tail = sd_ctx_kv_len(s->ctx, 0) - s->base;
    if (n_tail != s->n_slots) return SD_ERR_INVALID_ARG;
    int32_t tok[HD_EVAL_MAX], pos[HD_EVAL_MAX];
    uint8_t out[HD_EVAL_MAX];
    const int w = n_tail + k;
    uint8_t *mask = calloc((size_t)k * (size_t)w, 1);
    if (!mask) return SD_ERR_NOMEM;
    for (int i = 0; i < k; i++) {
        const hd_node *c = &d->cand[idx[i]];
        const float *ph = c->parent < 0 ? s->root_h : s->slot_h + (size_t)d->cand[c->parent].slot * E;
        memcpy(s->par + (size_t)i * E, ph, (size_t)E * sizeof(float));
        tok[i] = c->tok;
        pos[i] = s->base - 1 + c->depth;
        out[i] = 1;
        mask[(size_t)i * w + n_tail + i] = 1;
        for (int a = c->parent; a >= 0; a = d->cand[a].parent) mask[(size_t)i * w + d->cand[a].slot] = 1;
    }
    sd_status st = sd_heads_eagle_fc(d->h, d->pool, d->p.q8, s->par, tok, k, s->g);
    if (st == SD_OK) {
        sd_batch b = sd_batch_simple(NULL, k);
        b.embd = s->g;
        b.pos = pos;
        b.mask = mask;
        b.n_tail = n_tail;
        b.output = out;
        b.out_flags = SD_OUTPUT_HIDDEN;
        st = sd_ctx_decode(s->ctx, &b);
    }
    free(mask);
    if (st != SD_OK) return st;
    float *hk = s->slot_h + (size_t)s->n_slots * E;
    for (int i = 0; i < k; i++) {
        memcpy(hk + (size_t)i * E, sd_ctx_hidden(s->ctx, i), (size_t)E * sizeof(float));
        d->cand[idx[i]].slot = s->n_slots + i;
    }
    s->n_slots += k;
    if ((st = hd_logits(d, hk, k, s->logits)) != SD_OK) return st;
    for (int i = 0; i < k; i++) logits[i] = s->logits + (size_t)i * d->V;
    return SD_OK;
}

const hd_method hd_eagle_method = {"eagle", false, eg_begin, eg_root, eg_eval, eg_free};
