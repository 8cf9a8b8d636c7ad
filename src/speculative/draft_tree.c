/*
 * draft_tree.c - `tree-draft`: the draft model drafts a token TREE that the
 * target verifies in one forward (tree attention mask).
 *
 * Greedy (temp <= 0), a dynamic tree in the manner of EAGLE-2: nodes are
 * scored by their cumulative draft probability (the product of the draft's
 * probabilities along the path, a proxy for the chance the target accepts
 * the whole path). Level by level, the `width` best nodes of the newest
 * level are expanded in ONE draft forward (earlier levels sit in the draft's
 * KV cache as a masked tail), each proposing its `topk` most likely
 * children. Finally the best `max` nodes by score with score >= p_min form
 * the tree; a node's ancestors score at least as high, so the chosen set is
 * always a tree.
 *
 * Under --draft-max auto (env->costs), greedy trees size themselves by the
 * calibrated rule of spec/stop.h: a node's value is the learned acceptance
 * of its local draft probability times its parent's; a level expands only
 * candidates the rule would verify (at most `width`), and the tree keeps
 * the nodes of highest value while they raise the step's expected tokens
 * per ms; nodes on a path of local probabilities >= SURE_P (what the chain
 * drafter would draft) are always kept. Verification reports every node's
 * outcome back to the calibration.
 *
 * Sampling (temp > 0), a static "spine" tree: at depth d the spine node
 * draws branch[d] children WITHOUT replacement from q (the draft's
 * distribution under the target's sampler settings) and the first one drawn
 * continues the spine. Which nodes exist never depends on the drawn tokens'
 * own values, so the multi-draft verifier (verify.h) keeps the target's
 * distribution exactly.
 *
 * After verification the draft cache keeps the accepted path's cells
 * (sd_ctx_kv_keep); the rest of the history is decoded on the next step.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "speculative/draft_tree.h"
#include "speculative/draw.h"
#include "speculative/stop.h"
#include "speculative/topk.h"

enum { CAND_MAX = SD_TREE_MAX_CAND };
#define SURE_P 0.5f /* the chain drafter's default p_min */

typedef struct tnode {
    int32_t tok;
    int parent;     /* candidate index, -1 = root */
    int depth;      /* 1 = child of the root */
    int cell;       /* KV cell in the draft cache, -1 = not evaluated */
    double score;   /* log cumulative draft probability */
} tnode;

typedef struct dt_state {
    const sd_model *model;
    sd_ctx *ctx;
    int V;
    int n_valid;            /* history tokens whose KV is in ctx (a prefix) */
    int n_hist_at_draft;    /* history length when the tree was drafted     */
    sd_tree_params tp;
    sd_sampler *smp;        /* sampling: made with the target's settings    */
    tnode cand[CAND_MAX];
    int n_cand;
    bool greedy_cands;      /* cand[] holds a greedy draft's candidates     */
    /* the cost rule (auto): calibration, and the last tree for its report */
    sd_stop stop;
    int n_obs;                        /* nodes of the last sized tree, 0 = none */
    int obs_cand[SD_MAX_DRAFT];       /* (n_obs) candidate index of each node   */
    int32_t obs_parent[SD_MAX_DRAFT]; /* (n_obs) node parents (-1 = root)       */
    float obs_conf[SD_MAX_DRAFT];     /* (n_obs) local draft probabilities      */
    bool obs_alt[SD_MAX_DRAFT];       /* (n_obs) not the parent's first child   */
    /* scratch of the rule, per candidate */
    int r_parent[CAND_MAX], r_keep[CAND_MAX];
    float r_conf[CAND_MAX];
    bool r_sure[CAND_MAX], r_alt[CAND_MAX];
    double r_v[CAND_MAX];
} dt_state;

static sd_status dt_begin(void *self, const int32_t *ids, int n) {
    dt_state *d = self;
    sd_ctx_kv_clear(d->ctx);
    d->n_valid = 0;
    d->n_cand = 0;
    if (n > sd_ctx_n_ctx(d->ctx)) return SD_ERR_CTX_FULL;
    sd_batch b = sd_batch_simple(ids, n);
    sd_status st = sd_ctx_decode(d->ctx, &b);
    if (st == SD_OK) d->n_valid = n;
    return st;
}

/* Adds candidate children of node `parent` from its logits. */
static void add_children(dt_state *d, const float *l, int parent, double base, int depth) {
    int32_t tok[16];
    double lp[16];
    int k = sd_draft_top_k(d->model->kern, l, d->V, d->tp.topk, tok, lp);
    for (int i = 0; i < k && d->n_cand < CAND_MAX; i++)
        d->cand[d->n_cand++] = (tnode){.tok = tok[i], .parent = parent, .depth = depth, .cell = -1,
                                       .score = base + lp[i]};
}

/* Evaluates candidates idx[0..n) in one draft forward: their ancestors are
 * cached tree cells (the masked tail). Row i's logits: sd_ctx_logits(i). */
static sd_status eval_nodes(dt_state *d, const int *idx, int n, int n_hist) {
    enum { NMAX = 16 };
    int32_t tok[NMAX], pos[NMAX];
    uint8_t out[NMAX];
    const int n_tail = sd_ctx_kv_min(d->ctx) - n_hist;
    const int w = n_tail + n;
    uint8_t *mask = calloc((size_t)n * (size_t)w, 1);
    if (!mask) return SD_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        const tnode *c = &d->cand[idx[i]];
        tok[i] = c->tok;
        pos[i] = n_hist - 1 + c->depth;
        out[i] = 1;
        mask[(size_t)i * w + n_tail + i] = 1;
        for (int a = c->parent; a >= 0; a = d->cand[a].parent)
            if (d->cand[a].cell >= 0) mask[(size_t)i * w + (d->cand[a].cell - n_hist)] = 1;
    }
    sd_batch b = sd_batch_simple(tok, n);
    b.pos = pos;
    b.mask = mask;
    b.n_tail = n_tail;
    b.output = out;
    sd_status st = sd_ctx_decode(d->ctx, &b);
    free(mask);
    if (st != SD_OK) return st;
    for (int i = 0; i < n; i++) d->cand[idx[i]].cell = n_hist + n_tail + i;
    return SD_OK;
}

static int cmp_score(const void *a, const void *b, void *ctx) {
    const tnode *c = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (c[i].score != c[j].score) return c[i].score > c[j].score ? -1 : 1;
    return (i > j) - (i < j);
}

/* Insertion sort of idx by (score desc, index asc): n is small. */
static void sort_by_score(const tnode *c, int *idx, int n) {
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i;
        while (j > 0 && cmp_score(&v, &idx[j - 1], (void *)c) < 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

/* Expands candidates idx[0..n) of depth `depth` in one draft forward: their
 * topk children become the newest level [*level0, *level1). *grown is
 * false when nothing was expanded (n == 0, or no room left). */
static sd_status expand_level(dt_state *d, const int *idx, int n, int n_hist, int depth, int *level0, int *level1,
                              bool *grown) {
    *grown = false;
    if (n == 0 || d->n_cand + n * d->tp.topk > CAND_MAX) return SD_OK;
    if (sd_ctx_kv_min(d->ctx) + n > sd_ctx_n_ctx(d->ctx)) return SD_OK;
    sd_status st = eval_nodes(d, idx, n, n_hist);
    if (st != SD_OK) return st;
    *level0 = d->n_cand;
    for (int i = 0; i < n; i++) add_children(d, sd_ctx_logits(d->ctx, i), idx[i], d->cand[idx[i]].score, depth + 1);
    *level1 = d->n_cand;
    *grown = true;
    return SD_OK;
}

/* The tree of the candidates keep[0..m) (a subtree: every parent kept),
 * emitted in creation order (parents first); with `record`, each node's
 * rule inputs are kept for the calibration (dt_accept). */
static void emit_kept(dt_state *d, const int *keep, int m, bool record, sd_draft *out) {
    int map[CAND_MAX];
    for (int i = 0; i < d->n_cand; i++) map[i] = -1;
    for (int k = 0; k < m; k++) map[keep[k]] = 0;
    out->n = 0;
    for (int i = 0; i < d->n_cand && out->n < SD_MAX_DRAFT; i++) {
        if (map[i] < 0) continue;
        const int p = d->cand[i].parent;
        if (p >= 0 && map[p] < 0) { map[i] = -1; continue; } /* cannot happen: parents rank higher */
        map[i] = out->n;
        out->tok[out->n] = d->cand[i].tok;
        out->parent[out->n] = p >= 0 ? map[p] : -1;
        if (record) {
            d->obs_cand[out->n] = i;
            d->obs_parent[out->n] = out->parent[out->n];
            d->obs_conf[out->n] = d->r_conf[i];
            d->obs_alt[out->n] = d->r_alt[i];
        }
        out->n++;
    }
    d->n_obs = record ? out->n : 0;
    out->is_tree = true;
}

/* The rule's choice among the candidates so far (spec/stop.h): returns m
 * and d->r_keep[0..m), best first. */
static int rule_select(dt_state *d, const sd_draft_costs *c, double spent_ms, int max) {
    for (int i = 0; i < d->n_cand; i++) {
        const tnode *x = &d->cand[i];
        const double base = x->parent >= 0 ? d->cand[x->parent].score : 0.0;
        d->r_parent[i] = x->parent;
        d->r_conf[i] = (float)exp(x->score - base);
        d->r_alt[i] = i > 0 && d->cand[i - 1].parent == x->parent; /* siblings are made in rank order */
        d->r_sure[i] = d->r_conf[i] >= SURE_P && (x->parent < 0 || d->r_sure[x->parent]);
    }
    return sd_stop_tree_select(&d->stop, c, spent_ms, d->n_cand, d->r_parent, d->r_conf, d->r_alt, d->r_sure, max,
                               d->r_v, d->r_keep);
}

/* Greedy tree under the cost rule (see the top of the file). */
static sd_status draft_greedy_sized(dt_state *d, int n_hist, int max, const sd_draft_costs *c, double t0,
                                    sd_draft *out) {
    add_children(d, sd_ctx_logits(d->ctx, 0), -1, 0.0, 1);
    int level0 = 0, level1 = d->n_cand;
    bool grown = true;
    for (int depth = 1; grown && depth < SD_TREE_MAX_DEPTH; depth++) { /* the rule ends it */
        const int m = rule_select(d, c, sd_now_ms() - t0, max);
        int idx[CAND_MAX], n = 0;
        for (int k = 0; k < m && n < d->tp.width; k++)
            if (d->r_keep[k] >= level0 && d->r_keep[k] < level1) idx[n++] = d->r_keep[k];
        sd_status st = expand_level(d, idx, n, n_hist, depth, &level0, &level1, &grown);
        if (st != SD_OK) return st;
    }
    emit_kept(d, d->r_keep, rule_select(d, c, sd_now_ms() - t0, max), true, out);
    return SD_OK;
}

static sd_status draft_greedy(dt_state *d, int n_hist, int max, sd_draft *out) {
    add_children(d, sd_ctx_logits(d->ctx, 0), -1, 0.0, 1);
    const double lmin = log(d->tp.p_min > 0.0f ? (double)d->tp.p_min : 1e-30);
    int level0 = 0, level1 = d->n_cand; /* candidates of the newest level */
    bool grown = true;
    for (int depth = 1; grown && depth < d->tp.depth; depth++) {
        int idx[CAND_MAX], n = 0;
        for (int i = level0; i < level1; i++)
            if (d->cand[i].score >= lmin) idx[n++] = i;
        sort_by_score(d->cand, idx, n);
        if (n > d->tp.width) n = d->tp.width;
        sd_status st = expand_level(d, idx, n, n_hist, depth, &level0, &level1, &grown);
        if (st != SD_OK) return st;
    }
    /* the best `max` candidates with score >= lmin */
    int idx[CAND_MAX], n = 0;
    for (int i = 0; i < d->n_cand; i++)
        if (d->cand[i].score >= lmin) idx[n++] = i;
    sort_by_score(d->cand, idx, n);
    emit_kept(d, idx, n < max ? n : max, false, out);
    return SD_OK;
}

static sd_status draft_sample(dt_state *d, int n_hist, int max, const sd_draft_env *env, sd_draft *out) {
    sd_status st;
    if (!d->smp && (st = sd_sampler_new(env->sp, d->V, &d->smp)) != SD_OK) return st;
    const float *l = sd_ctx_logits(d->ctx, 0);
    int spine = -1; /* candidate index of the spine node (-1 = root) */
    out->n = 0;
    for (int depth = 1; depth <= d->tp.depth && out->n < max; depth++) {
        float *q = out->q + (size_t)out->n * d->V;
        sd_sampler_dist(d->smp, l, q);
        float mx = 0.0f;
        for (int t = 0; t < d->V; t++) mx = q[t] > mx ? q[t] : mx;
        if (mx < d->tp.p_min) break; /* stop on the draft's own confidence */
        int b = d->tp.branch[depth - 1 < SD_TREE_MAX_DEPTH ? depth - 1 : SD_TREE_MAX_DEPTH - 1];
        if (b < 1) b = 1;
        int32_t taken[16];
        int first = -1;
        for (int i = 0; i < b && i < 16 && out->n < max; i++) {
            int32_t t = sd_draw_without(q, d->V, taken, i, env->rng);
            if (t < 0) break;
            taken[i] = t;
            if (i > 0) memcpy(out->q + (size_t)out->n * d->V, q, (size_t)d->V * sizeof(float));
            out->tok[out->n] = t;
            out->parent[out->n] = spine; /* candidate index == node index here */
            d->cand[d->n_cand] = (tnode){.tok = t, .parent = spine, .depth = depth, .cell = -1, .score = 0};
            if (i == 0) first = d->n_cand;
            d->n_cand++;
            out->n++;
        }
        if (first < 0 || depth == d->tp.depth || out->n >= max) break;
        if (sd_ctx_kv_min(d->ctx) + 1 > sd_ctx_n_ctx(d->ctx)) break;
        if ((st = eval_nodes(d, &first, 1, n_hist)) != SD_OK) return st;
        spine = first;
        l = sd_ctx_logits(d->ctx, 0);
    }
    /* candidate index == output index here (one candidate per node) */
    out->has_q = out->n > 0;
    out->is_tree = true;
    return SD_OK;
}

static sd_status dt_draft(void *self, const int32_t *ids, int n, int max, const sd_draft_env *env,
                          sd_draft *out) {
    dt_state *d = self;
    const double t0 = sd_now_ms();
    out->n = 0;
    d->n_cand = 0;
    d->n_obs = 0;
    d->greedy_cands = false;
    d->n_hist_at_draft = 0;
    if (n <= d->n_valid) { /* history shrank? start over */
        sd_ctx_kv_clear(d->ctx);
        d->n_valid = 0;
    }
    sd_ctx_kv_truncate(d->ctx, d->n_valid);
    if (max > SD_MAX_DRAFT) max = SD_MAX_DRAFT;
    if (n + d->tp.depth + 1 > sd_ctx_n_ctx(d->ctx) || max <= 0) return SD_OK;
    sd_batch b = sd_batch_simple(ids + d->n_valid, n - d->n_valid);
    sd_status st = sd_ctx_decode(d->ctx, &b);
    if (st != SD_OK) return st;
    d->n_valid = n;
    d->n_hist_at_draft = n;
    if (env->sp->temp > 0.0f) return draft_sample(d, n, max, env, out);
    d->greedy_cands = true;
    if (env->costs) return draft_greedy_sized(d, n, max, env->costs, t0, out);
    return draft_greedy(d, n, max, out);
}

/* Keeps the cached cells of the accepted path (followed by its tokens). */
static void dt_accept(void *self, const int32_t *ids, int n, int n_accepted) {
    dt_state *d = self;
    const int h = d->n_hist_at_draft;
    int32_t cells[SD_MAX_DRAFT];
    int path[SD_MAX_DRAFT], n_path = 0; /* candidates of the accepted path */
    int nk = 0;
    if (h > 0 && n_accepted >= 0 && h + n_accepted + 1 == n) {
        int cur = -1;
        for (int k = 0; k < n_accepted && k < SD_MAX_DRAFT; k++) {
            int found = -1;
            for (int i = 0; i < d->n_cand; i++)
                if (d->cand[i].parent == cur && d->cand[i].tok == ids[h + k]) { found = i; break; }
            if (found < 0) break;
            path[n_path++] = found;
            cur = found;
        }
        for (int k = 0; k < n_path && d->cand[path[k]].cell >= 0; k++) cells[nk++] = d->cand[path[k]].cell;
    }
    if (d->n_obs > 0 && h > 0 && n_accepted >= 0) { /* the rule's calibration */
        bool on[SD_MAX_DRAFT];
        for (int i = 0; i < d->n_obs; i++) {
            on[i] = false;
            for (int k = 0; k < n_path; k++) on[i] = on[i] || d->obs_cand[i] == path[k];
        }
        sd_stop_observe_tree(&d->stop, d->n_obs, d->obs_parent, d->obs_conf, d->obs_alt, on);
    }
    d->n_obs = 0;
    if (h > 0 && sd_ctx_kv_keep(d->ctx, h, cells, nk) == SD_OK) {
        d->n_valid = h + nk;
    } else {
        sd_ctx_kv_truncate(d->ctx, h < d->n_valid ? h : d->n_valid);
        if (h < d->n_valid) d->n_valid = h;
    }
    d->n_cand = 0;
    d->greedy_cands = false;
}

static void dt_end(void *self) { (void)self; }

static void dt_free(void *self) {
    dt_state *d = self;
    if (!d) return;
    sd_ctx_free(d->ctx);
    sd_sampler_free(d->smp);
    free(d);
}

static const sd_drafter_ops dt_ops = {dt_begin, dt_draft, dt_accept, dt_end, dt_free, NULL};

int sd_tree_draft_candidates(const sd_drafter *dr, sd_tree_cand *out, int cap) {
    if (!dr || dr->ops != &dt_ops) return 0;
    const dt_state *d = dr->self;
    if (!d->greedy_cands) return 0;
    for (int i = 0; i < d->n_cand && i < cap; i++)
        out[i] = (sd_tree_cand){.tok = d->cand[i].tok, .parent = d->cand[i].parent,
                                .expanded = d->cand[i].cell >= 0, .logp = d->cand[i].score};
    return d->n_cand;
}

sd_tree_params sd_tree_default_params(void) {
    sd_tree_params p = {.depth = 6, .width = 2, .topk = 3, .p_min = 0.1f,
                        .branch = {3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}};
    return p;
}

sd_status sd_drafter_new_model_tree(const sd_model *draft, const sd_model *target, sd_threadpool *pool,
                                    int n_ctx, const sd_tree_params *tp, sd_drafter **out, char *err,
                                    size_t err_size) {
    return sd_drafter_new_model_tree_ex(draft, target, pool, n_ctx, tp, NULL, 0, out, err, err_size);
}

sd_status sd_drafter_new_model_tree_ex(const sd_model *draft, const sd_model *target, sd_threadpool *pool,
                                       int n_ctx, const sd_tree_params *tp, const int32_t *vocab_subset,
                                       int n_subset, sd_drafter **out, char *err, size_t err_size) {
    if (!draft || !target || !out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    sd_tree_params p = tp ? *tp : sd_tree_default_params();
    if (p.depth < 1 || p.depth > SD_TREE_MAX_DEPTH || p.width < 1 || p.width > 16 || p.topk < 1 ||
        p.topk > 16 || !(p.p_min >= 0.0f && p.p_min <= 1.0f))
        return SD_ERR_INVALID_ARG;
    for (int i = 0; i < SD_TREE_MAX_DEPTH; i++)
        if (p.branch[i] < 0 || p.branch[i] > 16) return SD_ERR_INVALID_ARG;
    dt_state *d = calloc(1, sizeof *d);
    if (!d) return SD_ERR_NOMEM;
    d->model = draft;
    d->tp = p;
    sd_stop_init(&d->stop);
    d->V = sd_vocab_n_tokens(sd_model_vocab(draft));
    sd_status st = sd_draft_ctx_new(draft, target, pool, n_ctx, vocab_subset, n_subset, &d->ctx, err, err_size);
    if (st != SD_OK) {
        dt_free(d);
        return st;
    }
    *out = sd_drafter_make("tree-draft", &dt_ops, d);
    if (*out) (*out)->stops_itself = true; /* the cost rule under auto */
    return *out ? SD_OK : SD_ERR_NOMEM;
}
