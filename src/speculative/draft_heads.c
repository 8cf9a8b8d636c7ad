/*
 * draft_heads.c - the drafting loop shared by the trained-heads drafters
 * (`eagle`, `hydra`, `medusa`; see draft_heads.h for the positions).
 *
 * Each step the method brings itself up to the history with the features
 * the decode loop handed over (the features hook: after the prefill, every
 * prompt position; after each verification, the root and the accepted
 * drafts) and yields the root's logits; then one of four builders:
 *
 *  - greedy chain: the argmax at each depth while its probability >= p_min;
 *  - greedy tree, path-dependent heads (EAGLE, Hydra): a dynamic tree in the
 *    manner of EAGLE-2. Nodes are scored by their cumulative draft
 *    probability; per level the `width` best nodes of the newest level are
 *    evaluated in one call and propose their `topk` children; finally the
 *    best `budget` nodes with score >= p_min are verified (a node's
 *    ancestors score at least as high, so the set is a tree);
 *  - greedy tree, Medusa: the heads do not see the path, so every node of
 *    depth d has the same candidates (head d's top-k); best-first over that
 *    Cartesian product picks the `budget` best paths' nodes;
 *  - sampling (chain or tree): a static spine: at depth d the spine node's
 *    children are branch[d] draws WITHOUT replacement from q = the head's
 *    softmax under the target's sampler settings (1 for a chain); the first
 *    continues. Which nodes exist never depends on the drawn tokens' values,
 *    and q rows are reported, so the (multi-draft) verifier stays lossless.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "speculative/draft_heads.h"
#include "speculative/draw.h"
#include "speculative/topk.h"

sd_status hd_logits(hd_drafter *d, const float *z, int N, float *logits) {
    double t0 = sd_now_ms();
    sd_status st;
    if (d->n_trim > 0) { /* VocabTrim: (N, n_trim) compact, then scattered */
        if (N > d->cap_trim) {
            float *t = realloc(d->trim_logits, (size_t)N * (size_t)d->n_trim * sizeof(float));
            if (!t) return SD_ERR_NOMEM;
            d->trim_logits = t;
            d->cap_trim = N;
        }
        st = sd_model_head_logits(d->h->target, d->pool, &d->trim_w, z, N, d->trim_logits, (size_t)d->n_trim);
        for (int r = 0; r < N && st == SD_OK; r++) {
            float *l = logits + (size_t)r * d->V;
            const float *c = d->trim_logits + (size_t)r * d->n_trim;
            for (int t = 0; t < d->V; t++) l[t] = -INFINITY;
            for (int i = 0; i < d->n_trim; i++) l[d->trim_ids[i]] = c[i];
        }
    } else {
        st = sd_heads_logits(d->h, d->pool, d->p.q8, z, N, logits);
    }
    d->timing.head_ms += sd_now_ms() - t0;
    d->timing.head_rows += N;
    return st;
}

/* ------------------------------------------------------------ helpers */

static int add_cand(hd_drafter *d, int32_t tok, int parent, int depth, double score) {
    if (d->n_cand >= HD_CAND_MAX) return -1;
    d->cand[d->n_cand] = (hd_node){.tok = tok, .parent = parent, .depth = depth, .slot = -1, .score = score};
    return d->n_cand++;
}

/* Adds the topk children of candidate `parent` (-1 root) from its logits. */
static void add_children(hd_drafter *d, const float *l, int parent, double base, int depth) {
    int32_t tok[16];
    double lp[16];
    int k = sd_draft_top_k(d->h->target->kern, l, d->V, d->p.tree_params.topk, tok, lp);
    for (int i = 0; i < k; i++) add_cand(d, tok[i], parent, depth, base + lp[i]);
}

/* Orders idx by (score desc, index asc); n is small. */
static void sort_by_score(const hd_node *c, int *idx, int n) {
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i;
        while (j > 0 && (c[v].score > c[idx[j - 1]].score || (c[v].score == c[idx[j - 1]].score && v < idx[j - 1]))) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

/* The k-th best score among the candidates (-inf if there are fewer). */
static double kth_score(const hd_drafter *d, int k) {
    double top[SD_MAX_DRAFT];
    int n = 0;
    if (k < 1 || k > SD_MAX_DRAFT || d->n_cand < k) return -INFINITY;
    for (int i = 0; i < d->n_cand; i++) {
        double s = d->cand[i].score;
        if (n == k && !(s > top[n - 1])) continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && s > top[j - 1]) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = s;
    }
    return top[k - 1];
}

/* The chosen candidates (sel[i] != 0) into out, in creation order (parents
 * are created before their children). */
static void emit_tree(hd_drafter *d, const uint8_t *sel, sd_draft *out) {
    int map[HD_CAND_MAX];
    out->n = 0;
    for (int i = 0; i < d->n_cand && out->n < SD_MAX_DRAFT; i++) {
        map[i] = -1;
        if (!sel[i]) continue;
        int p = d->cand[i].parent;
        if (p >= 0 && map[p] < 0) continue; /* cannot happen: parents score higher */
        map[i] = out->n;
        out->tok[out->n] = d->cand[i].tok;
        out->parent[out->n] = p >= 0 ? map[p] : -1;
        out->n++;
    }
    out->is_tree = true;
}

/* ------------------------------------------------------------ builders */

static sd_status chain_greedy(hd_drafter *d, const float *l, int max, int max_depth, sd_draft *out) {
    const sd_kernels *kern = d->h->target->kern;
    int prev = -1;
    for (int depth = 1; depth <= max_depth && out->n < max; depth++) {
        int32_t tok = sd_argmax(l, d->V);
        float p = 1.0f / kern->sum_exp(l, d->V, l[tok]);
        if (p < d->p.p_min) break;
        int c = add_cand(d, tok, prev, depth, 0.0);
        if (c < 0) break;
        out->tok[out->n++] = tok;
        if (depth == max_depth || out->n >= max) break;
        sd_status st = d->m->eval(d, &c, 1, &l);
        if (st != SD_OK) return st;
        prev = c;
    }
    return SD_OK;
}

static sd_status tree_dynamic(hd_drafter *d, const float *root, int max, int max_depth, sd_draft *out) {
    const sd_tree_params *tp = &d->p.tree_params;
    add_children(d, root, -1, 0.0, 1);
    const double lmin = log(tp->p_min > 0.0f ? (double)tp->p_min : 1e-30);
    int level0 = 0, level1 = d->n_cand; /* candidates of the newest level */
    const int width = tp->width < HD_EVAL_MAX ? tp->width : HD_EVAL_MAX;
    for (int depth = 1; depth < max_depth; depth++) {
        int idx[HD_CAND_MAX], n = 0;
        for (int i = level0; i < level1; i++)
            if (d->cand[i].score >= lmin) idx[n++] = i;
        sort_by_score(d->cand, idx, n);
        if (n > width) n = width;
        if (n > max) n = max;
        /* a node whose score is not above the budget-th best candidate's
         * cannot get a child into the verified set (children score no
         * higher, and lose ties): do not evaluate it */
        const double cut = kth_score(d, max);
        while (n > 0 && !(d->cand[idx[n - 1]].score > cut)) n--;
        if (n == 0 || d->n_cand + n * tp->topk > HD_CAND_MAX) break;
        const float *rows[HD_EVAL_MAX];
        sd_status st = d->m->eval(d, idx, n, rows);
        if (st != SD_OK) return st;
        level0 = d->n_cand;
        for (int i = 0; i < n; i++) add_children(d, rows[i], idx[i], d->cand[idx[i]].score, depth + 1);
        level1 = d->n_cand;
    }
    int idx[HD_CAND_MAX], n = 0;
    for (int i = 0; i < d->n_cand; i++)
        if (d->cand[i].score >= lmin) idx[n++] = i;
    sort_by_score(d->cand, idx, n);
    if (n > max) n = max;
    uint8_t sel[HD_CAND_MAX] = {0};
    for (int i = 0; i < n; i++) sel[idx[i]] = 1;
    emit_tree(d, sel, out);
    return SD_OK;
}

/* Medusa: candidates of depth dd are the topk of head dd whatever the path;
 * best-first over the product: take the best open node, open its children. */
static sd_status tree_cartesian(hd_drafter *d, const float *root, int max, int max_depth, sd_draft *out) {
    const sd_tree_params *tp = &d->p.tree_params;
    enum { DMAX = SD_TREE_MAX_DEPTH };
    int32_t tok[DMAX][16];
    double lp[DMAX][16];
    int nk[DMAX] = {0};
    if (max_depth > DMAX) max_depth = DMAX;
    const double lmin = log(tp->p_min > 0.0f ? (double)tp->p_min : 1e-30);
    const float *l = root;
    for (int dd = 0; dd < max_depth; dd++) {
        if (dd > 0) { /* any node of depth dd gives head dd+1's logits */
            int c = add_cand(d, 0, -1, dd, 0.0);
            if (c < 0) break;
            sd_status st = d->m->eval(d, &c, 1, &l);
            d->n_cand--;
            if (st != SD_OK) return st;
        }
        nk[dd] = sd_draft_top_k(d->h->target->kern, l, d->V, tp->topk, tok[dd], lp[dd]);
    }
    d->n_cand = 0;
    uint8_t sel[HD_CAND_MAX] = {0};
    for (int i = 0; i < nk[0]; i++) add_cand(d, tok[0][i], -1, 1, lp[0][i]);
    int n_sel = 0;
    while (n_sel < max) {
        int best = -1;
        for (int i = 0; i < d->n_cand; i++)
            if (!sel[i] && d->cand[i].score >= lmin && (best < 0 || d->cand[i].score > d->cand[best].score)) best = i;
        if (best < 0) break;
        sel[best] = 1;
        n_sel++;
        const int dd = d->cand[best].depth; /* children come from head dd+1 */
        if (dd < max_depth)
            for (int i = 0; i < nk[dd]; i++) add_cand(d, tok[dd][i], best, dd + 1, d->cand[best].score + lp[dd][i]);
    }
    emit_tree(d, sel, out);
    return SD_OK;
}

/* Sampling: a spine of branch[d] children per depth (1 for chains). */
static sd_status spine_sample(hd_drafter *d, const float *l, int max, int max_depth, const sd_draft_env *env,
                              sd_draft *out) {
    const sd_tree_params *tp = &d->p.tree_params;
    const bool tree = d->p.tree;
    const float p_min = tree ? tp->p_min : d->p.p_min;
    int spine = -1; /* candidate index == output index here */
    for (int depth = 1; depth <= max_depth && out->n < max; depth++) {
        float *q = out->q + (size_t)out->n * d->V;
        sd_sampler_dist(d->smp, l, q);
        float mx = 0.0f;
        for (int t = 0; t < d->V; t++) mx = q[t] > mx ? q[t] : mx;
        if (mx < p_min) break; /* the head's own confidence; decided before drawing */
        int b = tree ? tp->branch[depth - 1 < SD_TREE_MAX_DEPTH ? depth - 1 : SD_TREE_MAX_DEPTH - 1] : 1;
        if (b < 1) b = 1;
        int32_t taken[16];
        int first = -1;
        for (int i = 0; i < b && i < 16 && out->n < max; i++) {
            int32_t t = sd_draw_without(q, d->V, taken, i, env->rng);
            if (t < 0) break;
            taken[i] = t;
            if (i > 0) memcpy(out->q + (size_t)out->n * d->V, q, (size_t)d->V * sizeof(float));
            int c = add_cand(d, t, spine, depth, 0.0);
            if (c < 0) break;
            out->tok[out->n] = t;
            out->parent[out->n] = spine;
            out->n++;
            if (i == 0) first = c;
        }
        if (first < 0 || depth == max_depth || out->n >= max) break;
        sd_status st = d->m->eval(d, &first, 1, &l);
        if (st != SD_OK) return st;
        spine = first;
    }
    out->has_q = out->n > 0;
    out->is_tree = tree;
    return SD_OK;
}

/* ------------------------------------------------------------ drafter ops */

static void hd_features(void *self, const float *h, int n_rows, int pos0) {
    hd_drafter *d = self;
    if (pos0 < 0 || n_rows < 0 || pos0 > d->n_feat || (long)pos0 + n_rows > INT_MAX / 2) {
        d->n_feat = pos0 >= 0 && pos0 < d->n_feat ? pos0 : d->n_feat; /* a gap: keep the known prefix */
        return;
    }
    const int need = pos0 + n_rows;
    if (need > d->cap_feat) {
        int cap = d->cap_feat ? d->cap_feat : 256;
        while (cap < need) cap *= 2;
        float *f = realloc(d->feat, (size_t)cap * (size_t)d->E * sizeof(float));
        if (!f) { /* out of memory: keep what fits; drafting stops */
            d->n_feat = pos0;
            if (pos0 < d->feat_changed) d->feat_changed = pos0;
            return;
        }
        d->feat = f;
        d->cap_feat = cap;
    }
    memcpy(d->feat + (size_t)pos0 * d->E, h, (size_t)n_rows * (size_t)d->E * sizeof(float));
    d->n_feat = need;
    if (pos0 < d->feat_changed) d->feat_changed = pos0;
}

static sd_status hd_begin(void *self, const int32_t *ids, int n) {
    hd_drafter *d = self;
    d->n_cand = 0; /* (EAGLE's rows of the prompt: prefill time, not drafting) */
    return d->m->begin ? d->m->begin(d, ids, n) : SD_OK;
}

static sd_status hd_draft(void *self, const int32_t *ids, int n, int max, const sd_draft_env *env, sd_draft *out) {
    hd_drafter *d = self;
    double t0 = sd_now_ms();
    out->n = 0;
    out->has_q = false;
    d->n_cand = 0;
    if (max > SD_MAX_DRAFT) max = SD_MAX_DRAFT;
    const bool greedy = env->sp->temp <= 0.0f;
    sd_status st = SD_OK;
    if (!greedy && (!d->smp || memcmp(&d->smp_params, env->sp, sizeof d->smp_params) != 0)) {
        sd_sampler_free(d->smp);
        d->smp = NULL;
        if ((st = sd_sampler_new(env->sp, d->V, &d->smp)) != SD_OK) return st;
        d->smp_params = *env->sp;
    }
    const float *root = NULL;
    int max_depth = 0;
    if (max > 0) st = d->m->root(d, ids, n, max, &root, &max_depth);
    if (st == SD_OK && max_depth > 0) {
        if (!greedy) st = spine_sample(d, root, max, max_depth, env, out);
        else if (!d->p.tree) st = chain_greedy(d, root, max, max_depth, out);
        else if (d->m->independent) st = tree_cartesian(d, root, max, max_depth, out);
        else st = tree_dynamic(d, root, max, max_depth, out);
    }
    if (st != SD_OK) out->n = 0;
    d->timing.n_draft++;
    d->timing.draft_ms += sd_now_ms() - t0;
    return st;
}

static void hd_accept(void *self, const int32_t *ids, int n, int n_accepted) {
    (void)ids, (void)n, (void)n_accepted;
    ((hd_drafter *)self)->n_cand = 0; /* the accepted rows' features arrive by the hook */
}

static void hd_end(void *self) { (void)self; }

static void hd_free(void *self) {
    hd_drafter *d = self;
    if (!d) return;
    if (d->m && d->m->free) d->m->free(d->ms);
    sd_sampler_free(d->smp);
    free(d->feat);
    free(d->trim_data);
    free(d->trim_packed);
    free(d->trim_ids);
    free(d->trim_logits);
    free(d);
}

static const sd_drafter_ops hd_ops = {hd_begin, hd_draft, hd_accept, hd_end, hd_free, hd_features};

/* ------------------------------------------------------------ public */

bool hd_params_ok(const sd_heads_params *p) {
    const sd_tree_params *t = &p->tree_params;
    if (!(p->p_min >= 0.0f && p->p_min <= 1.0f)) return false;
    if (t->depth < 1 || t->depth > SD_TREE_MAX_DEPTH || t->width < 1 || t->width > HD_EVAL_MAX || t->topk < 1 ||
        t->topk > 16 || !(t->p_min >= 0.0f && t->p_min <= 1.0f))
        return false;
    for (int i = 0; i < SD_TREE_MAX_DEPTH; i++)
        if (t->branch[i] < 0 || t->branch[i] > 16) return false;
    return true;
}

sd_status hd_make(const sd_heads *h, sd_threadpool *pool, const sd_heads_params *p, const hd_method *m, void *ms,
                  sd_drafter **out) {
    hd_drafter *d = calloc(1, sizeof *d);
    if (!d) {
        m->free(ms);
        return SD_ERR_NOMEM;
    }
    d->h = h;
    d->pool = pool;
    d->m = m;
    d->ms = ms;
    d->p = *p;
    d->E = h->n_embd;
    d->V = h->n_vocab;
    d->feat_changed = INT_MAX;
    if (p->vocab_subset && p->n_vocab_subset > 0) { /* VocabTrim: copy those output rows */
        const sd_weight *src = p->q8 ? &h->output_q8 : &h->target->output;
        const int K = p->n_vocab_subset;
        d->p.vocab_subset = NULL; /* not kept: the caller's array */
        d->trim_ids = malloc((size_t)K * sizeof *d->trim_ids);
        d->trim_data = malloc((size_t)K * src->row_bytes);
        if (!d->trim_ids || !d->trim_data) {
            hd_free(d);
            return SD_ERR_NOMEM;
        }
        for (int i = 0; i < K; i++) {
            d->trim_ids[i] = p->vocab_subset[i];
            memcpy((char *)d->trim_data + (size_t)i * src->row_bytes,
                   (const char *)src->data + (size_t)p->vocab_subset[i] * src->row_bytes, src->row_bytes);
        }
        d->trim_w = *src;
        d->trim_w.data = d->trim_data;
        d->trim_w.packed = NULL; /* src's packed rows are all V of them */
        d->trim_w.rows = K;
        d->n_trim = K;
        if (sd_weight_pack_copy(h->target->kern, &d->trim_w, &d->trim_packed) != SD_OK) {
            hd_free(d);
            return SD_ERR_NOMEM;
        }
    }
    *out = sd_drafter_make(m->name, &hd_ops, d);
    if (!*out) {
        hd_free(d);
        return SD_ERR_NOMEM;
    }
    return SD_OK;
}

sd_heads_params sd_heads_default_params(const char *method) {
    /* Measured on the shipped pair (bench, 2 threads): the target's
     * verification of k rows costs ~1.3-2.5x one row and a draft step
     * (EAGLE: its block + the 8192 x 384 head) ~0.15-0.2 ms, so small, deep,
     * confident trees win; the Q8_0 copies cut a draft step by ~20% (fewer
     * bytes; the target's weights also stay in cache better) */
    sd_heads_params p = {.tree = true, .p_min = 0.0f, .tree_params = sd_tree_default_params(), .q8 = true};
    p.tree_params.width = 3;
    p.tree_params.topk = 3;
    p.tree_params.p_min = 0.1f;
    if (method && (!strcmp(method, "medusa") || !strcmp(method, "hydra"))) p.tree_params.depth = 4;
    else p.tree_params.depth = 8; /* eagle */
    return p;
}

/* A VocabTrim subset: none, or 1..V distinct ids in [0, V). */
static bool subset_ok(const sd_heads_params *p, int V) {
    if (!p->vocab_subset) return p->n_vocab_subset == 0;
    if (p->n_vocab_subset < 1 || p->n_vocab_subset > V) return false;
    uint8_t *seen = calloc((size_t)V, 1);
    if (!seen) return false;
    bool ok = true;
    for (int i = 0; i < p->n_vocab_subset && ok; i++) {
        int32_t t = p->vocab_subset[i];
        ok = t >= 0 && t < V && !seen[t];
        if (ok) seen[t] = 1;
    }
    free(seen);
    return ok;
}

static sd_status make_method(const char *name, const sd_heads *h, sd_threadpool *pool, int n_ctx,
                             const sd_heads_params *params, sd_drafter **out) {
    if (!out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    if (!h || n_ctx < 0) return SD_ERR_INVALID_ARG;
    sd_heads_params p = params ? *params : sd_heads_default_params(name);
    if (!hd_params_ok(&p)) return SD_ERR_INVALID_ARG;
    if (!subset_ok(&p, h->n_vocab)) return SD_ERR_INVALID_ARG;
    void *ms = NULL;
    const hd_method *m;
    sd_status st;
    if (!strcmp(name, "eagle")) {
        if (!h->has_eagle) return SD_ERR_UNSUPPORTED;
        m = &hd_eagle_method;
        st = hd_eagle_state(h, pool, n_ctx, p.q8, &ms);
    } else if (!strcmp(name, "hydra")) {
        if (h->n_hydra == 0) return SD_ERR_UNSUPPORTED;
        m = &hd_hydra_method;
        st = hd_hydra_state(h, &ms);
    } else {
        if (h->n_medusa == 0) return SD_ERR_UNSUPPORTED;
        m = &hd_medusa_method;
        st = hd_medusa_state(h, &ms);
    }
    if (st != SD_OK) return st;
    return hd_make(h, pool, &p, m, ms, out);
}

sd_status sd_drafter_new_eagle(const sd_heads *heads, sd_threadpool *pool, int n_ctx, const sd_heads_params *params,
                               sd_drafter **out) {
    return make_method("eagle", heads, pool, n_ctx, params, out);
}

sd_status sd_drafter_new_hydra(const sd_heads *heads, sd_threadpool *pool, const sd_heads_params *params,
                               sd_drafter **out) {
    return make_method("hydra", heads, pool, 0, params, out);
}

sd_status sd_drafter_new_medusa(const sd_heads *heads, sd_threadpool *pool, const sd_heads_params *params,
                                sd_drafter **out) {
    return make_method("medusa", heads, pool, 0, params, out);
}

sd_status sd_drafter_heads_timing(const sd_drafter *dr, sd_heads_timing *out) {
    if (!dr || !out || dr->ops != &hd_ops) return SD_ERR_INVALID_ARG;
    *out = ((const hd_drafter *)dr->self)->timing;
    return SD_OK;
}
