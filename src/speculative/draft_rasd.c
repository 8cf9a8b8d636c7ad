/*
 * draft_rasd.c - `rasd` (Retrieval-Augmented Speculative Decoding, Quan et
 * al. 2025): a retrieval tree and the draft model's tree, fused into ONE
 * token tree that the target verifies in one forward.
 *
 * The rasd state owns two sub-drafters and forwards begin / draft / accept /
 * end / free to both:
 *   model:  `tree-draft` (draft_tree.c), the draft model's dynamic tree;
 *           its candidates (every top-k child it considered, with the log
 *           cumulative draft probability) are read with
 *           sd_tree_draft_candidates();
 *   lookup: `tree-lookup` (draft_lookup.c), up to 8 continuations of
 *           earlier occurrences of the history's last n-grams (prompt and
 *           generated text) merged into a trie with the support of each node
 *           (sd_lookup_tree_draft_weighted()).
 * and optionally a corpus datastore: (n-gram -> next token counts) of a
 * corpus of token ids (ngram_cache.h), built once by the constructor; its
 * tree grows best first from the history's longest matching n-gram.
 *
 * Retrieval support: a history trie node with weight w under a parent with
 * weight w_p (w = summed n-gram sizes of the occurrences through the node)
 * gets logit rho = alpha * logit(w / (w_p + kappa)): agreement among the
 * occurrences nears 1, a split one stays low; a corpus node gets rho =
 * corpus_w * count / (total + kappa_c). Pruning and fusion (draft_rasd.h):
 * a retrieval node that the draft tree also holds is merged into it (a
 * trie union: common prefixes become one path, siblings stay distinct) and
 * gains confidence; one that the draft model saw but did not rank in its
 * top-k is discounted by how confident the draft was elsewhere; the fused
 * trie keeps its `max` best nodes by estimated path acceptance with score
 * >= p_min (the tree-draft's p_min on the same scale).
 *
 * Skipping the draft model: the retrieval trees are fused and scored alone
 * first; when that tree already expects at least skip * max accepted
 * drafts (a long, well-supported copy), it is the step's draft and the
 * draft model does not run (nor hear of this step's acceptance: its next
 * draft decodes the tokens it missed in one batch). On the shipped pair
 * and bench prompts this leaves tokens per step unchanged and removes
 * about a third of the draft model's time.
 *
 * Each sub-drafter's accept() finds its own accepted path by following the
 * accepted tokens down its own tree: tree-draft keeps the KV cells of the
 * path's prefix that it evaluated and stops at the first token its tree
 * does not hold (a retrieval node); tree-lookup just indexes the new
 * history. So the fused tree needs no bookkeeping here.
 *
 * Sampling (temp > 0): a fused tree would break the multi-draft verifier's
 * premise that siblings are draws without replacement from q (retrieval
 * siblings are not draws, and merging changes which tokens exist), so the
 * model tree's own draft is returned unchanged (with its q). Retrieval then
 * does not contribute; the output distribution stays exactly the target's.
 * (A tree verified with one-hot proposals, has_q = false, would also be
 * lossless, but loses the draft model's q where it is right.)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "speculative/draft_lookup.h"
#include "speculative/draft_rasd.h"
#include "speculative/ngram_cache.h"

enum {
    RASD_LOOKUP_NODES = SD_MAX_DRAFT, /* history trie nodes asked for        */
    RASD_CORPUS_NODES = 48,           /* corpus tree nodes per draft          */
    RASD_CORPUS_TOPK = 3,             /* successors per expanded corpus node  */
    RASD_MAX_RET = RASD_LOOKUP_NODES + RASD_CORPUS_NODES,
};

/* Largest corpus (tokens): at most 4 n-grams per token are counted, so the
 * datastore stays within a few hundred MB even for a corpus of distinct
 * n-grams. */
#define RASD_MAX_CORPUS ((size_t)1 << 20)

sd_rasd_tune sd_rasd_default_tune(void) {
    sd_rasd_tune t = {.beta = 1.75, .alpha = 1.5, .kappa = 0.5, .mu = 3.5, .p_min = 0.05, .kappa_c = 4.0,
                      .corpus_w = 0.5, .skip = 0.625};
    return t;
}

/* ------------------------------------------------------------------ fusion */

/* A node of the fused trie; node 0 is the root (the last accepted token). */
typedef struct fnode {
    int32_t tok;
    int parent;       /* fused index, -1 for the root                  */
    int first, next;  /* first child, next sibling; -1 = none          */
    bool cand;        /* a draft candidate                             */
    bool expanded;    /* the draft model expanded it (the root: n_dc>0) */
    double qd;        /* cand: the draft's conditional probability     */
    double rho;       /* retrieval support, 0 = none                   */
    double rest;      /* expanded: draft mass outside its candidates   */
    double score;     /* estimated probability the path is accepted    */
} fnode;

static double clamp01(double x) { return x > 0.0 ? (x < 1.0 ? x : 1.0) : 0.0; } /* NaN -> 0 */

static double logit(double p) {
    p = p < 1e-9 ? 1e-9 : p > 1.0 - 1e-9 ? 1.0 - 1e-9 : p;
    return log(p / (1.0 - p));
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* The child of p with token tok, created if missing (-1 if f is full). */
static int child_of(fnode *f, int *n, int cap, int p, int32_t tok) {
    for (int c = f[p].first; c >= 0; c = f[c].next)
        if (f[c].tok == tok) return c;
    if (*n >= cap) return -1;
    int c = (*n)++;
    f[c] = (fnode){.tok = tok, .parent = p, .first = -1, .next = f[p].first};
    f[p].first = c;
    return c;
}

/* Whether node a ranks before node b: higher score, then lower index (a
 * parent never scores lower than its child and has a lower index, so it
 * always ranks first). */
static bool ranks_before(const fnode *f, int a, int b) {
    return f[a].score > f[b].score || (f[a].score == f[b].score && a < b);
}

/* Inserts node v into best[0..*n), kept sorted by rank and cut to max. */
static void keep_best(const fnode *f, int *best, int *n, int max, int v) {
    if (*n == max && !ranks_before(f, v, best[max - 1])) return;
    int j = *n < max ? (*n)++ : max - 1;
    while (j > 0 && ranks_before(f, v, best[j - 1])) {
        best[j] = best[j - 1];
        j--;
    }
    best[j] = v;
}

sd_status sd_rasd_fuse(const sd_tree_cand *dc, int n_dc, const sd_rasd_rnode *rn, int n_rn,
                       const sd_rasd_tune *t, int max, sd_draft *out, double *expected) {
    out->n = 0;
    if (expected) *expected = 0.0;
    out->is_tree = true;
    out->has_q = false;
    if (max > SD_MAX_DRAFT) max = SD_MAX_DRAFT;
    if (n_dc < 0 || !dc) n_dc = 0;
    if (n_rn < 0 || !rn) n_rn = 0;
    if (max <= 0 || n_dc + n_rn == 0) return SD_OK;
    const int cap = 1 + n_dc + n_rn;
    fnode *f = malloc((size_t)cap * sizeof *f);
    int *map = malloc((size_t)(n_dc > n_rn ? n_dc : n_rn) * sizeof *map);
    if (!f || !map) {
        free(f); free(map);
        return SD_ERR_NOMEM;
    }
    int n = 1;
    f[0] = (fnode){.tok = -1, .parent = -1, .first = -1, .next = -1, .expanded = n_dc > 0, .score = 1.0};

    /* 1. the draft tree: conditional probabilities from cumulative ones */
    for (int i = 0; i < n_dc; i++) {
        int pp = dc[i].parent;
        int p = pp < 0 ? 0 : pp < i ? map[pp] : -1;
        map[i] = p < 0 ? -1 : child_of(f, &n, cap, p, dc[i].tok);
        if (map[i] < 0) continue;
        double lp_parent = pp < 0 ? 0.0 : dc[pp].logp;
        fnode *c = &f[map[i]];
        double qd = clamp01(exp(dc[i].logp - lp_parent));
        c->qd = c->cand && c->qd > qd ? c->qd : qd;
        c->cand = true;
        c->expanded |= dc[i].expanded;
    }
    for (int i = 0; i < n; i++) {
        if (!f[i].expanded) continue;
        double s = 0.0;
        for (int c = f[i].first; c >= 0; c = f[c].next) s += f[c].qd;
        f[i].rest = clamp01(1.0 - s);
    }

    /* 2. the retrieval trees, merged by longest common prefix */
    for (int i = 0; i < n_rn; i++) {
        int pp = rn[i].parent;
        int p = pp < 0 ? 0 : pp < i ? map[pp] : -1;
        map[i] = p < 0 ? -1 : child_of(f, &n, cap, p, rn[i].tok);
        if (map[i] < 0) continue;
        fnode *c = &f[map[i]];
        c->rho = 1.0 - (1.0 - c->rho) * (1.0 - clamp01(rn[i].rho));
    }

    /* 3. scores, parents first (a node is always created after its parent),
     *    and the `max` best nodes with S >= p_min */
    int best[SD_MAX_DRAFT], m = 0;
    for (int i = 1; i < n; i++) {
        const fnode *p = &f[f[i].parent];
        fnode *c = &f[i];
        double a;
        const double ad = c->cand ? pow(c->qd, t->beta) : 0.0;
        if (c->cand) a = 1.0 - (1.0 - ad) * (1.0 - c->rho);
        else if (p->expanded) a = sigmoid(logit(c->rho) - t->mu * (1.0 - p->rest));
        else a = c->rho;
        c->score = p->score * clamp01(a);
        if (c->score >= t->p_min && c->score > 0.0) keep_best(f, best, &m, max, i);
    }

    /* 4. emitted in creation order (parents first) */
    for (int i = 0; i < n; i++) f[i].first = -2; /* reused: output index, -2 = not kept */
    f[0].first = -1;
    for (int k = 0; k < m; k++) f[best[k]].first = -1;
    for (int i = 1; i < n && out->n < max; i++) {
        if (f[i].first != -1) continue;
        int po = f[f[i].parent].first;
        if (f[i].parent != 0 && po < 0) continue; /* cannot happen: parents rank higher */
        f[i].first = out->n;
        if (expected) *expected += f[i].score;
        out->tok[out->n] = f[i].tok;
        out->parent[out->n] = f[i].parent == 0 ? -1 : po;
        out->n++;
    }
    free(f); free(map);
    return SD_OK;
}

/* ----------------------------------------------------------------- drafter */

typedef struct rasd_state {
    sd_drafter *model;       /* tree-draft (owned)                            */
    sd_drafter *lookup;      /* tree-lookup (owned)                           */
    ngc_cache corpus;        /* corpus (n-gram -> next token counts)          */
    bool has_corpus;
    int c_nmin, c_nmax;      /* corpus n-gram sizes                           */
    sd_rasd_tune tune;
    bool model_drafted;      /* the draft model drafted this step            */
    sd_tree_cand cand[SD_TREE_MAX_CAND]; /* the draft model's candidates     */
    sd_rasd_rnode rn[RASD_MAX_RET];      /* retrieval nodes of this step     */
    double w[RASD_LOOKUP_NODES];         /* history trie weights              */
} rasd_state;

static sd_status rasd_begin(void *self, const int32_t *ids, int n) {
    rasd_state *s = self;
    sd_status st = s->model->ops->begin(s->model->self, ids, n);
    sd_status sl = s->lookup->ops->begin(s->lookup->self, ids, n);
    return st != SD_OK ? st : sl;
}

/* The corpus tree continuing ids[0..n): best first (by the product of rho
 * along the path), each expansion adds the RASD_CORPUS_TOPK most frequent
 * successors of the longest n-gram (history + path) the corpus holds; at
 * most cap nodes, depth <= len. Writes rn (parents index into rn, -1 =
 * root); returns the node count. */
static int corpus_tree(const rasd_state *s, const int32_t *ids, int n, int len, int cap, sd_rasd_rnode *rn) {
    double cum[RASD_CORPUS_NODES];
    int depth[RASD_CORPUS_NODES];
    bool done[RASD_CORPUS_NODES];
    if (cap > RASD_CORPUS_NODES) cap = RASD_CORPUS_NODES;
    int nn = 0;
    for (int node = -1;;) { /* node: the one to expand, -1 = the root */
        int32_t ctx[NGC_MAX];
        int nc = 0, d = node < 0 ? 0 : depth[node];
        for (int a = node; a >= 0 && nc < s->c_nmax; a = rn[a].parent) ctx[NGC_MAX - 1 - nc++] = rn[a].tok;
        for (int h = n - 1; h >= 0 && nc < s->c_nmax; h--) ctx[NGC_MAX - 1 - nc++] = ids[h];
        const ngc_part *part = NULL;
        for (int g = nc; g >= s->c_nmin && !part; g--) {
            ngc_key k = ngc_make_key(ctx + NGC_MAX - g, g);
            part = ngc_find(&s->corpus, &k);
            if (part && part->n <= 0) part = NULL;
        }
        if (part) {
            int32_t top[RASD_CORPUS_TOPK];
            int nt = 0;
            double total = 0.0;
            for (int i = 0; i < part->n; i++) {
                const ngc_tc *e = &part->tc[i];
                total += (double)e->count;
                if (nt == RASD_CORPUS_TOPK && e->count <= part->tc[top[nt - 1]].count) continue;
                int j = nt < RASD_CORPUS_TOPK ? nt++ : nt - 1;
                while (j > 0 && e->count > part->tc[top[j - 1]].count) {
                    top[j] = top[j - 1];
                    j--;
                }
                top[j] = i;
            }
            double base = node < 0 ? 1.0 : cum[node];
            for (int i = 0; i < nt && nn < cap; i++) {
                double rho = s->tune.corpus_w * (double)part->tc[top[i]].count / (total + s->tune.kappa_c);
                rn[nn] = (sd_rasd_rnode){.tok = part->tc[top[i]].tok, .parent = node, .rho = clamp01(rho)};
                cum[nn] = base * rn[nn].rho;
                depth[nn] = d + 1;
                done[nn] = depth[nn] >= len;
                nn++;
            }
        }
        if (node >= 0) done[node] = true;
        node = -1;
        for (int i = 0; i < nn; i++)
            if (!done[i] && (node < 0 || cum[i] > cum[node])) node = i;
        if (node < 0 || nn >= cap || cum[node] < s->tune.p_min) break;
    }
    return nn;
}

static sd_status rasd_draft(void *self, const int32_t *ids, int n, int max, const sd_draft_env *env,
                            sd_draft *out) {
    rasd_state *s = self;
    out->n = 0;
    s->model_drafted = false;
    if (max > SD_MAX_DRAFT) max = SD_MAX_DRAFT;
    /* sampling: the model tree's own draft (siblings drawn from q) */
    if (env->sp->temp > 0.0f) {
        s->model_drafted = true;
        return s->model->ops->draft(s->model->self, ids, n, max, env, out);
    }
    if (max <= 0) return SD_OK;

    /* history retrieval: continuations as long as the budget */
    double w_root = 0.0;
    sd_draft sub = {.q = out->q};
    sd_status st = sd_lookup_tree_draft_weighted(s->lookup, ids, n, RASD_LOOKUP_NODES, max, &sub, s->w, &w_root);
    if (st != SD_OK) return st;
    int n_rn = 0;
    for (int i = 0; i < sub.n; i++) {
        double wp = sub.parent[i] < 0 ? w_root : s->w[sub.parent[i]];
        double frac = s->w[i] / (wp + s->tune.kappa);
        s->rn[n_rn++] = (sd_rasd_rnode){.tok = sub.tok[i], .parent = sub.parent[i],
                                        .rho = sigmoid(s->tune.alpha * logit(frac))};
    }
    /* corpus retrieval, appended (its parents shifted past the history trie) */
    if (s->has_corpus && n > 0) {
        int nc = corpus_tree(s, ids, n, max, RASD_CORPUS_NODES, s->rn + n_rn);
        for (int i = n_rn; i < n_rn + nc; i++)
            if (s->rn[i].parent >= 0) s->rn[i].parent += n_rn;
        n_rn += nc;
    }
    /* retrieval alone expects to carry the step: skip the draft model */
    double expected = 0.0;
    if (n_rn > 0 && s->tune.skip <= 1.0) {
        if ((st = sd_rasd_fuse(NULL, 0, s->rn, n_rn, &s->tune, max, out, &expected)) != SD_OK) return st;
        if (expected >= s->tune.skip * max) return SD_OK;
    }
    /* the draft model's tree and candidates, then the fusion */
    sub = (sd_draft){.q = out->q};
    sd_draft_env fixed = *env; /* the fusion sizes the tree: the model's full candidate levels */
    fixed.costs = NULL;
    if ((st = s->model->ops->draft(s->model->self, ids, n, max, &fixed, &sub)) != SD_OK) return st;
    s->model_drafted = true;
    int n_dc = sd_tree_draft_candidates(s->model, s->cand, SD_TREE_MAX_CAND);
    if (n_dc > SD_TREE_MAX_CAND) n_dc = SD_TREE_MAX_CAND;
    return sd_rasd_fuse(s->cand, n_dc, s->rn, n_rn, &s->tune, max, out, NULL);
}

static void rasd_accept(void *self, const int32_t *ids, int n, int n_accepted) {
    rasd_state *s = self;
    /* a skipped draft model decodes the missed tokens on its next draft */
    if (s->model_drafted) s->model->ops->accept(s->model->self, ids, n, n_accepted);
    s->model_drafted = false;
    s->lookup->ops->accept(s->lookup->self, ids, n, n_accepted);
}

static void rasd_end(void *self) {
    rasd_state *s = self;
    s->model->ops->end(s->model->self);
    s->lookup->ops->end(s->lookup->self);
}

static void rasd_free(void *self) {
    rasd_state *s = self;
    if (!s) return;
    sd_drafter_free(s->model);
    sd_drafter_free(s->lookup);
    ngc_free(&s->corpus);
    free(s);
}

static const sd_drafter_ops rasd_ops = {rasd_begin, rasd_draft, rasd_accept, rasd_end, rasd_free, NULL};

sd_status sd_rasd_set_tune(sd_drafter *d, const sd_rasd_tune *t) {
    if (!d || d->ops != &rasd_ops || !t) return SD_ERR_INVALID_ARG;
    ((rasd_state *)d->self)->tune = *t;
    return SD_OK;
}


sd_status sd_drafter_new_rasd(const sd_model *draft, const sd_model *target, sd_threadpool *pool, int n_ctx,
                              const sd_tree_params *tp, int ngram_min, int ngram_max, const int32_t *corpus_ids,
                              size_t n_corpus, sd_drafter **out, char *err, size_t err_size) {
    if (err && err_size) err[0] = 0;
    if (!out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    if (!draft || !target) return SD_ERR_INVALID_ARG;
    if (ngram_min < 1 || ngram_max < ngram_min || ngram_max > 16)
        return sd_fail(SD_ERR_INVALID_ARG, err, err_size, "n-gram sizes must satisfy 1 <= min <= max <= 16");
    if (n_corpus > 0 && !corpus_ids) return sd_fail(SD_ERR_INVALID_ARG, err, err_size, "corpus ids missing");
    if (n_corpus > RASD_MAX_CORPUS)
        return sd_fail(SD_ERR_INVALID_ARG, err, err_size, "corpus has %zu tokens, more than 2^20", n_corpus);
    const int V = sd_vocab_n_tokens(sd_model_vocab(target));
    for (size_t i = 0; i < n_corpus; i++)
        if (corpus_ids[i] < 0 || corpus_ids[i] >= V)
            return sd_fail(SD_ERR_INVALID_ARG, err, err_size, "corpus token %zu is outside the vocabulary", i);
    rasd_state *s = calloc(1, sizeof *s);
    if (!s) return SD_ERR_NOMEM;
    ngc_init(&s->corpus);
    s->tune = sd_rasd_default_tune();
    /* a draft-only path scores (cumulative draft probability)^beta: the
     * tree-draft's p_min on that scale keeps its tree when nothing is
     * retrieved */
    s->tune.p_min = pow(tp ? tp->p_min : sd_tree_default_params().p_min, s->tune.beta);
    s->c_nmin = ngram_min < NGC_MAX ? ngram_min : NGC_MAX;
    s->c_nmax = ngram_max < NGC_MAX ? ngram_max : NGC_MAX;
    sd_status st = sd_drafter_new_model_tree(draft, target, pool, n_ctx, tp, &s->model, err, err_size);
    if (st == SD_OK) st = sd_drafter_new_lookup_tree(ngram_min, ngram_max, &s->lookup);
    if (st == SD_OK && n_corpus > 0) {
        st = ngc_update(&s->corpus, s->c_nmin, s->c_nmax, corpus_ids, n_corpus, n_corpus);
        s->has_corpus = st == SD_OK;
    }
    if (st != SD_OK) {
        rasd_free(s);
        return st;
    }
    *out = sd_drafter_make("rasd", &rasd_ops, s);
    return *out ? SD_OK : SD_ERR_NOMEM;
}
