/*
 * draft_aded.c - `aded` (ADED, "Adaptive Draft-Verification for Efficient
 * Large Language Model Decoding"): a tri-gram model of the text drafts a
 * token tree chosen by a Monte-Carlo tree search. Training-free.
 *
 * Model. Two tables map a context to a short list of (successor, weight):
 *   live: counts over the history: (a, b) -> c at every position with two
 *         predecessors, and b -> c (the bigram fallback, stored under the
 *         context (-1, b)); built from the prompt at begin, updated with
 *         every accepted token and kept across the generations of the
 *         drafter (the adaptive matrix: it keeps learning what the target
 *         writes);
 *   base: the same counts over a corpus, made once by the constructor and
 *         normalized per context (weights sum to 1); never changes.
 * Live counts fade: an observation weighs half after half_life more history
 * tokens (recent text predicts code best). Implemented by growing the
 * increment: position p adds inc_p = rate^p (rate = 2^(1 / half_life)), and
 * a live weight divided by the current increment is the faded count; when
 * the increment passes RESCALE every live weight and the increment are
 * scaled down by RESCALE (exact: a power of two).
 * A context keeps at most max_succ successors by the space-saving rule
 * (Metwally et al. 2005): an unseen successor replaces the lightest one and
 * inherits its weight + the increment, so heavy successors stay and new
 * ones get a chance. A weight reaching AGE_CAP increments halves the
 * context's weights (reachable only when counts fade slowly or not at all:
 * a faded count stays below 1.45 * half_life). A table holds
 * at most max_contexts contexts: the live table, when full, forgets all but
 * the tri-grams of the last max_contexts / 4 history tokens; the base table
 * stops adding contexts.
 *
 * Next-token distribution after (a, b): score(c) = live(c) / inc +
 * corpus_weight * base(c) over the lists of context (a, b), or of (-1, b)
 * when neither table has a successor of (a, b) with a positive score;
 * P(c) = score(c) / sum of scores.
 *
 * Search (one per draft). Nodes are tokens; the root is the last history
 * token; a node's children are the topk_children most probable successors
 * of (its parent's token, its token), each with its prior P. A simulation
 * descends from the root to a leaf by PUCT,
 *     argmax_child  Q + c * P * sqrt(N_parent) / (1 + N_child)
 * (Q = 0 for an unvisited child), expands the leaf (unless it is at
 * max_depth), rolls out greedily (most probable successor) down to
 * max_depth and backs up a value. The value is the expected accepted length
 * under the tri-gram model: along the path and its rollout, node i with
 * prior p_i gets S_i = p_i * (1 + S_(i+1)); Q is the mean of S_i divided by
 * the most tokens node i could add (max_depth - depth_i + 1), so Q is in
 * [0, 1] at every depth.
 *
 * Tree. The visited nodes whose path probability (the product of the
 * priors from the root) is at least p_min, ranked by (visits desc, path
 * probability desc, creation order); the first `max` form a subtree (a
 * parent has more visits and at least the path probability of its child)
 * and are emitted depth first, siblings in rank order: node 0 starts the
 * most visited chain, parent[i] < i, siblings distinct. p_min keeps the
 * search's long shots out of the verification: on this machine every
 * verified row costs ~15-20% of a plain step, and a node the tri-gram
 * model gives less than ~0.4 is accepted too rarely to pay for its row
 * (code-btrfs complete, aded:8: 1.32x -> 1.69x with p_min 0.4, one run).
 *
 * Adaptation: the live counts (fading, so the model follows the text being
 * written), and, with adapt, c = c_puct * (1.5 - a) where a in [0, 1] is an
 * exponential average (weight 1/4) of accepted / drafted depth reported by
 * accept(): wider trees while the model is often wrong, deeper chains while
 * it is right.
 *
 * Differences from the released code: fading counts instead of its +0.04
 * boosts of the last 16 tokens' tri-grams, a greedy (deterministic)
 * rollout, Q normalized to [0, 1], and the final tree taken from the visit
 * counts (no extension of leaves).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "speculative/drafter.h"

#define MAX_SUCC 32              /* largest max_succ                          */
#define MAX_CANDS (2 * MAX_SUCC) /* a merged live + base list                 */
#define MAX_TOPK 16              /* largest topk_children                     */
#define MAX_SIMS 4096
#define MAX_CONTEXTS (1 << 24)
#define MIN_CONTEXTS 64
#define AGE_CAP 65536.0f         /* in increments                            */
#define RESCALE 1048576.0f       /* 2^20                                     */
#define MAX_HALF_LIFE (1 << 20) /* rate = 2^(1 / half_life) still differs from 1 in float */

/* ------------------------------------------------------------ context tables */

typedef struct tg_ctx {
    int32_t a, b;      /* key (a, b); a = -1: the bigram context of b */
    int32_t n;         /* successors in use, <= max_succ              */
    float total;       /* sum of their weights                        */
} tg_ctx;

typedef struct tg_table {
    int max_succ;
    size_t max_ctx;
    tg_ctx *ctx;       /* (cap)                                          */
    int32_t *succ;     /* (cap, max_succ): row i = successors of ctx[i]  */
    float *w;          /* (cap, max_succ): their weights                 */
    size_t n, cap;     /* contexts used / allocated                      */
    uint32_t *slot;    /* (n_slot) linear probing: ctx index + 1, 0 empty */
    size_t n_slot;     /* power of two or 0; load <= 1/2                 */
} tg_table;

static void tg_init(tg_table *t, int max_succ, size_t max_ctx) {
    memset(t, 0, sizeof *t);
    t->max_succ = max_succ;
    t->max_ctx = max_ctx;
}

static void tg_free(tg_table *t) {
    free(t->ctx);
    free(t->succ);
    free(t->w);
    free(t->slot);
    tg_init(t, t->max_succ, t->max_ctx);
}

static void tg_clear(tg_table *t) {
    t->n = 0;
    if (t->slot) memset(t->slot, 0, t->n_slot * sizeof *t->slot);
}

static size_t tg_hash(int32_t a, int32_t b) {
    uint64_t x = (uint64_t)(uint32_t)a << 32 | (uint32_t)b; /* splitmix64 finalizer */
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return (size_t)(x ^ (x >> 31));
}

/* Index of context (a, b), -1 if absent. */
static long tg_find(const tg_table *t, int32_t a, int32_t b) {
    if (!t->n_slot) return -1;
    size_t mask = t->n_slot - 1;
    for (size_t i = tg_hash(a, b) & mask;; i = (i + 1) & mask) {
        uint32_t s = t->slot[i];
        if (!s) return -1;
        const tg_ctx *c = &t->ctx[s - 1];
        if (c->a == a && c->b == b) return (long)(s - 1);
    }
}

static void tg_link(tg_table *t, size_t i) {
    size_t mask = t->n_slot - 1, j = tg_hash(t->ctx[i].a, t->ctx[i].b) & mask;
    while (t->slot[j]) j = (j + 1) & mask;
    t->slot[j] = (uint32_t)(i + 1);
}

/* Room for k more contexts (the caller keeps n + k <= max_ctx). On NOMEM
 * the table is unchanged (arrays may have grown, cap tells what is usable). */
static sd_status tg_reserve(tg_table *t, size_t k) {
    size_t need = t->n + k;
    if (need > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        if (cap < need) cap = need;
        if (cap > t->max_ctx) cap = t->max_ctx;
        size_t ms = (size_t)t->max_succ;
        if (cap > SIZE_MAX / sizeof(tg_ctx) || cap > SIZE_MAX / (ms * sizeof(float))) return SD_ERR_NOMEM;
        tg_ctx *c = realloc(t->ctx, cap * sizeof *c);
        if (!c) return SD_ERR_NOMEM;
        t->ctx = c;
        int32_t *s = realloc(t->succ, cap * ms * sizeof *s);
        if (!s) return SD_ERR_NOMEM;
        t->succ = s;
        float *w = realloc(t->w, cap * ms * sizeof *w);
        if (!w) return SD_ERR_NOMEM;
        t->w = w;
        t->cap = cap;
    }
    if (need * 2 > t->n_slot) {
        size_t ns = t->n_slot ? t->n_slot : 512;
        while (need * 2 > ns) ns *= 2;
        uint32_t *slot = calloc(ns, sizeof *slot);
        if (!slot) return SD_ERR_NOMEM;
        free(t->slot);
        t->slot = slot;
        t->n_slot = ns;
        for (size_t i = 0; i < t->n; i++) tg_link(t, i);
    }
    return SD_OK;
}

/* Adds inc to successor c of context i (space-saving when the list is full;
 * halves the list when a weight reaches AGE_CAP * inc). */
static void tg_bump(tg_table *t, size_t i, int32_t c, float inc) {
    tg_ctx *x = &t->ctx[i];
    int32_t *s = t->succ + i * (size_t)t->max_succ;
    float *w = t->w + i * (size_t)t->max_succ;
    int j = 0;
    while (j < x->n && s[j] != c) j++;
    if (j == x->n) {
        if (x->n < t->max_succ) {
            w[x->n++] = 0.0f;
        } else {
            j = 0; /* the lightest (first of equals) gives its place and weight */
            for (int k = 1; k < x->n; k++)
                if (w[k] < w[j]) j = k;
        }
        s[j] = c;
    }
    w[j] += inc;
    x->total += inc;
    if (w[j] >= AGE_CAP * inc) {
        x->total = 0.0f;
        for (int k = 0; k < x->n; k++) x->total += (w[k] *= 0.5f);
    }
}

/* Adds inc to (a, b) -> c; the context must exist or fit (tg_reserve). */
static void tg_add(tg_table *t, int32_t a, int32_t b, int32_t c, float inc) {
    long i = tg_find(t, a, b);
    if (i < 0) {
        i = (long)t->n++;
        t->ctx[i] = (tg_ctx){a, b, 0, 0.0f};
        tg_link(t, (size_t)i);
    }
    tg_bump(t, (size_t)i, c, inc);
}

/* Multiplies every weight by f. */
static void tg_scale(tg_table *t, float f) {
    for (size_t i = 0; i < t->n; i++) {
        t->ctx[i].total *= f;
        float *w = t->w + i * (size_t)t->max_succ;
        for (int k = 0; k < t->ctx[i].n; k++) w[k] *= f;
    }
}

/* Weights of every context -> sum 1. */
static void tg_normalize(tg_table *t) {
    for (size_t i = 0; i < t->n; i++) {
        tg_ctx *x = &t->ctx[i];
        float *w = t->w + i * (size_t)t->max_succ, tot = 0.0f;
        if (!(x->total > 0.0f)) continue;
        for (int k = 0; k < x->n; k++) tot += (w[k] /= x->total);
        x->total = tot;
    }
}

/* ------------------------------------------------------------ drafter state */

typedef struct mc_node {
    int32_t tok, prev;  /* token and the one before it: children continue (prev, tok) */
    int32_t parent;     /* node index; -1 for the root                     */
    int32_t child0;     /* first child (children are contiguous), -1: none */
    int32_t n_child;
    int32_t depth;      /* tokens after the root (root 0)                  */
    int32_t visits;     /* N                                               */
    bool expanded;
    float prior;        /* P(tok | parent's context)                       */
    float path_p;       /* product of priors from the root                 */
    float value;        /* sum of backed-up values (Q = value / visits)    */
} mc_node;

typedef struct rank_key {
    int32_t visits;
    float path_p;
    int32_t idx;
} rank_key;

typedef struct cand {
    int32_t tok;
    float p;
} cand;

typedef struct ad_state {
    sd_aded_params p;
    tg_table live, base;
    bool has_base;      /* a corpus was counted (and corpus_weight > 0)     */
    size_t n_seen;      /* history positions counted into live              */
    float rate;         /* 2^(1 / half_life), 1 without fading              */
    float inc;          /* weight of the last counted position (1..RESCALE) */
    mc_node *node;      /* (node_cap) the search tree of the current draft  */
    rank_key *key;      /* (node_cap) ranking scratch                       */
    int node_cap, n_node;
    float acc_ema;      /* recent accepted / drafted depth, in [0, 1]        */
    int last_depth;     /* depth of the last draft; 0 once accepted         */
} ad_state;

/* ------------------------------------------------------------ counting */

/* New contexts position p of ids would add to t. */
static size_t new_contexts(const tg_table *t, const int32_t *ids, size_t p) {
    size_t k = tg_find(t, -1, ids[p - 1]) < 0;
    if (p >= 2 && ids[p - 2] >= 0) k += tg_find(t, ids[p - 2], ids[p - 1]) < 0;
    return k;
}

/* Counts position p (p >= 1, ids valid there) into the live table with the
 * next increment; room reserved. */
static void count_pos(ad_state *s, const int32_t *ids, size_t p) {
    tg_table *t = &s->live;
    s->inc *= s->rate;
    if (s->inc > RESCALE) {
        tg_scale(t, 1.0f / RESCALE);
        s->inc *= 1.0f / RESCALE;
    }
    tg_add(t, -1, ids[p - 1], ids[p], s->inc);
    if (p >= 2 && ids[p - 2] >= 0) tg_add(t, ids[p - 2], ids[p - 1], ids[p], s->inc);
}

static bool countable(const int32_t *ids, size_t p) { return p >= 1 && ids[p] >= 0 && ids[p - 1] >= 0; }

/* The live table is full: keep only positions [p - max_ctx / 4, p). Each
 * position adds <= 2 contexts, so this fills at most half the table. */
static sd_status live_forget(ad_state *s, const int32_t *ids, size_t p) {
    tg_table *t = &s->live;
    size_t keep = t->max_ctx / 4, from = p > keep ? p - keep : 0;
    tg_clear(t);
    s->inc = 1.0f; /* only ratios to the increment matter */
    for (size_t q = from; q < p; q++) {
        if (!countable(ids, q)) continue;
        sd_status st = tg_reserve(t, 2);
        if (st != SD_OK) return st;
        count_pos(s, ids, q);
    }
    return SD_OK;
}

static sd_status live_count(ad_state *s, const int32_t *ids, size_t p) {
    tg_table *t = &s->live;
    if (!countable(ids, p)) return SD_OK;
    size_t k = new_contexts(t, ids, p);
    if (t->n + k > t->max_ctx) {
        sd_status st = live_forget(s, ids, p);
        if (st != SD_OK) return st;
        k = new_contexts(t, ids, p);
    }
    sd_status st = tg_reserve(t, k);
    if (st != SD_OK) return st;
    count_pos(s, ids, p);
    return SD_OK;
}

/* Brings the live table up to ids[0..n). A failed position is retried by
 * the next call (nothing of it was counted). */
static sd_status live_sync(ad_state *s, const int32_t *ids, int n) {
    size_t m = (size_t)n;
    if (m < s->n_seen) s->n_seen = m; /* history shrank: count from here on */
    while (s->n_seen < m) {
        sd_status st = live_count(s, ids, s->n_seen);
        if (st != SD_OK) return st;
        s->n_seen++;
    }
    return SD_OK;
}

/* Adds (a, b) -> c to the base table unless it is new and the table is full. */
static sd_status base_add(tg_table *t, int32_t a, int32_t b, int32_t c) {
    if (tg_find(t, a, b) < 0) {
        if (t->n >= t->max_ctx) return SD_OK;
        sd_status st = tg_reserve(t, 1);
        if (st != SD_OK) return st;
    }
    tg_add(t, a, b, c, 1.0f);
    return SD_OK;
}

/* Counts the corpus (ids >= 0, checked) into the base table, normalized. */
static sd_status base_build(ad_state *s, const int32_t *ids, size_t n) {
    for (size_t p = 1; p < n; p++) {
        sd_status st = base_add(&s->base, -1, ids[p - 1], ids[p]);
        if (st == SD_OK && p >= 2) st = base_add(&s->base, ids[p - 2], ids[p - 1], ids[p]);
        if (st != SD_OK) return st;
    }
    tg_normalize(&s->base);
    return SD_OK;
}

/* ------------------------------------------------------------ distribution */

/* Merges context i of t (weights * scale) into cs[0..*nc). */
static void merge_list(const tg_table *t, long i, float scale, cand *cs, int *nc) {
    const int32_t *s = t->succ + (size_t)i * (size_t)t->max_succ;
    const float *w = t->w + (size_t)i * (size_t)t->max_succ;
    for (int k = 0; k < t->ctx[i].n; k++) {
        int j = 0;
        while (j < *nc && cs[j].tok != s[k]) j++;
        if (j == *nc) cs[(*nc)++] = (cand){s[k], 0.0f};
        cs[j].p += scale * w[k];
    }
}

static bool better(cand x, cand y) { return x.p > y.p || (x.p == y.p && x.tok < y.tok); }

/* Successors of context (a, b) from both tables, scored; returns the count
 * and their total score in *tot. */
static int context_scores(const ad_state *s, int32_t a, int32_t b, cand *cs, float *tot) {
    int nc = 0;
    long li = tg_find(&s->live, a, b), bi = s->has_base ? tg_find(&s->base, a, b) : -1;
    if (li >= 0) merge_list(&s->live, li, 1.0f / s->inc, cs, &nc);
    if (bi >= 0) merge_list(&s->base, bi, s->p.corpus_weight, cs, &nc);
    *tot = 0.0f;
    for (int j = 0; j < nc; j++) *tot += cs[j].p;
    return nc;
}

/* The k most probable tokens after (a, b) (a < 0: unknown), best first
 * (ties: lower id), probabilities over every kept successor; tokens of
 * probability 0 (faded to nothing) are left out. Returns the count (0: the
 * model knows nothing after b). */
static int next_dist(const ad_state *s, int32_t a, int32_t b, int k, cand *out) {
    cand cs[MAX_CANDS];
    float tot = 0.0f;
    int nc = a >= 0 ? context_scores(s, a, b, cs, &tot) : 0;
    if (!(tot > 0.0f)) nc = context_scores(s, -1, b, cs, &tot); /* the bigram of b */
    if (!(tot > 0.0f)) return 0;
    if (k > nc) k = nc;
    int m = 0;
    for (int r = 0; r < k; r++) { /* partial selection sort */
        int best = r;
        for (int j = r + 1; j < nc; j++)
            if (better(cs[j], cs[best])) best = j;
        cand c = cs[best];
        cs[best] = cs[r];
        cs[r] = c;
        float p = c.p / tot;
        if (!(p > 0.0f)) break;
        out[m++] = (cand){c.tok, p};
    }
    return m;
}

/* ------------------------------------------------------------ search */

/* Creates the children of node u: the topk successors of (prev, tok). */
static void expand(ad_state *s, int u) {
    mc_node *x = &s->node[u];
    x->expanded = true;
    if (x->depth >= s->p.max_depth) return;
    cand cs[MAX_TOPK];
    int k = next_dist(s, x->prev, x->tok, s->p.topk_children, cs);
    if (k > s->node_cap - s->n_node) k = s->node_cap - s->n_node; /* cannot happen */
    x->child0 = s->n_node;
    x->n_child = k;
    for (int j = 0; j < k; j++) {
        s->node[s->n_node++] = (mc_node){
            .tok = cs[j].tok, .prev = x->tok, .parent = u, .child0 = -1, .depth = x->depth + 1,
            .prior = cs[j].p, .path_p = x->path_p * cs[j].p,
        };
    }
}

/* PUCT: the child of x maximizing Q + c * P * sqrt(N_x) / (1 + N_child). */
static int select_child(const ad_state *s, const mc_node *x, float c) {
    float sq = sqrtf((float)x->visits), best_score = -INFINITY;
    int best = x->child0;
    for (int j = x->child0; j < x->child0 + x->n_child; j++) {
        const mc_node *y = &s->node[j];
        float q = y->visits ? y->value / (float)y->visits : 0.0f;
        float score = q + c * y->prior * sq / (1.0f + (float)y->visits);
        if (score > best_score) {
            best_score = score;
            best = j;
        }
    }
    return best;
}

/* Greedy continuation of x down to max_depth: the expected number of its
 * tokens accepted, S = p1 * (1 + p2 * (1 + ...)). */
static float rollout(const ad_state *s, const mc_node *x) {
    float pr[SD_MAX_DRAFT];
    int m = 0;
    int32_t a = x->prev, b = x->tok;
    for (int d = x->depth; d < s->p.max_depth; d++) {
        cand c;
        if (!next_dist(s, a, b, 1, &c)) break;
        pr[m++] = c.p;
        a = b;
        b = c.tok;
    }
    float v = 0.0f;
    while (m > 0) v = pr[--m] * (1.0f + v);
    return v;
}

/* Backs tail (the rollout value below path[len]) up path[1..len] and the root. */
static void backup(ad_state *s, const int *path, int len, float tail) {
    float v = tail;
    for (int i = len; i >= 1; i--) {
        mc_node *x = &s->node[path[i]];
        v = x->prior * (1.0f + v);
        x->visits++;
        x->value += v / (float)(s->p.max_depth - x->depth + 1);
    }
    s->node[0].visits++;
}

/* Runs n_sims simulations from the root = ids[n - 1] (ids[n - 1] >= 0). */
static void search(ad_state *s, const int32_t *ids, int n) {
    int32_t prev = n >= 2 && ids[n - 2] >= 0 ? ids[n - 2] : -1;
    s->node[0] = (mc_node){.tok = ids[n - 1], .prev = prev, .parent = -1, .child0 = -1, .prior = 1.0f,
                           .path_p = 1.0f};
    s->n_node = 1;
    float c = s->p.c_puct * (s->p.adapt ? 1.5f - s->acc_ema : 1.0f);
    int path[SD_MAX_DRAFT + 1];
    for (int sim = 0; sim < s->p.n_sims; sim++) {
        int u = 0, len = 0;
        while (s->node[u].expanded && s->node[u].n_child > 0) {
            u = select_child(s, &s->node[u], c);
            path[++len] = u;
        }
        if (!s->node[u].expanded) expand(s, u);
        backup(s, path, len, rollout(s, &s->node[u]));
        if (s->node[0].n_child == 0) break; /* nothing follows the root */
    }
}

/* ------------------------------------------------------------ tree output */

static int rank_cmp(const void *x, const void *y) {
    const rank_key *a = x, *b = y;
    if (a->visits != b->visits) return a->visits > b->visits ? -1 : 1;
    if (a->path_p != b->path_p) return a->path_p > b->path_p ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* Emits the selected children of node u (and their subtrees) depth first;
 * up = u's index in out (-1: the root). */
static void emit(const ad_state *s, const rank_key *sel, int m, int u, int32_t up, sd_draft *out) {
    for (int j = 0; j < m; j++) {
        const mc_node *x = &s->node[sel[j].idx];
        if (x->parent != u || out->n >= m) continue;
        int i = out->n++;
        out->tok[i] = x->tok;
        out->parent[i] = up;
        emit(s, sel, m, sel[j].idx, i, out);
    }
}

/* The first max visited nodes by rank, as a tree in out. */
static void build_tree(ad_state *s, int max, sd_draft *out) {
    int nk = 0;
    for (int i = 1; i < s->n_node; i++)
        if (s->node[i].visits > 0 && s->node[i].path_p >= s->p.p_min) s->key[nk++] = (rank_key){s->node[i].visits, s->node[i].path_p, i};
    qsort(s->key, (size_t)nk, sizeof *s->key, rank_cmp);
    int m = nk < max ? nk : max;
    emit(s, s->key, m, 0, -1, out);
    s->last_depth = 0;
    for (int j = 0; j < m; j++)
        if (s->node[s->key[j].idx].depth > s->last_depth) s->last_depth = s->node[s->key[j].idx].depth;
}

/* ------------------------------------------------------------ ops */

static sd_status ad_begin(void *self, const int32_t *ids, int n) {
    ad_state *s = self;
    if (n < 0 || (!ids && n > 0)) return SD_ERR_INVALID_ARG;
    s->n_seen = 0;
    s->last_depth = 0;
    return live_sync(s, ids, n);
}

static sd_status ad_draft(void *self, const int32_t *ids, int n, int max, const sd_draft_env *env,
                          sd_draft *out) {
    ad_state *s = self;
    (void)env;
    out->n = 0;
    out->has_q = false;
    out->is_tree = true;
    s->last_depth = 0;
    if (n < 0 || (!ids && n > 0)) return SD_ERR_INVALID_ARG;
    if (max > SD_MAX_DRAFT) max = SD_MAX_DRAFT;
    if (n == 0 || max <= 0) return SD_OK;
    sd_status st = live_sync(s, ids, n);
    if (st != SD_OK) return st;
    if (ids[n - 1] < 0) return SD_OK;
    search(s, ids, n);
    build_tree(s, max, out);
    return SD_OK;
}

static void ad_accept(void *self, const int32_t *ids, int n, int n_accepted) {
    ad_state *s = self;
    if (s->last_depth > 0 && n_accepted >= 0) {
        float r = n_accepted >= s->last_depth ? 1.0f : (float)n_accepted / (float)s->last_depth;
        s->acc_ema = 0.75f * s->acc_ema + 0.25f * r;
    }
    s->last_depth = 0;
    if (n >= 0 && (ids || n == 0)) (void)live_sync(s, ids, n); /* a failure is retried by draft */
}

static void ad_end(void *self) {
    ad_state *s = self;
    s->n_seen = 0; /* the live table stays: later generations learn from it */
    s->last_depth = 0;
}

static void ad_free(void *self) {
    ad_state *s = self;
    if (!s) return;
    tg_free(&s->live);
    tg_free(&s->base);
    free(s->node);
    free(s->key);
    free(s);
}

static const sd_drafter_ops ad_ops = {ad_begin, ad_draft, ad_accept, ad_end, ad_free, NULL};

sd_aded_params sd_aded_default_params(void) {
    return (sd_aded_params){
        .n_sims = 128, .max_depth = 8, .c_puct = 4.0f, .topk_children = 4, .max_succ = 12,
        .max_contexts = 1 << 18, .half_life = 256, .corpus_weight = 0.5f, .adapt = true,
        .p_min = 0.4f,
    };
}

static bool params_ok(const sd_aded_params *p) {
    return p->n_sims >= 1 && p->n_sims <= MAX_SIMS && p->max_depth >= 1 && p->max_depth <= SD_MAX_DRAFT &&
           p->c_puct >= 0.0f && p->c_puct <= 100.0f && p->topk_children >= 1 && p->topk_children <= MAX_TOPK &&
           p->max_succ >= 1 && p->max_succ <= MAX_SUCC && p->max_contexts >= MIN_CONTEXTS &&
           p->max_contexts <= MAX_CONTEXTS && p->half_life >= 0 && p->half_life <= MAX_HALF_LIFE &&
           p->corpus_weight >= 0.0f && p->corpus_weight <= 1e6f && p->p_min >= 0.0f && p->p_min <= 1.0f;
}

sd_status sd_drafter_new_aded(const sd_aded_params *params, const int32_t *corpus_ids, size_t n_corpus,
                              sd_drafter **out) {
    if (!out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    sd_aded_params p = params ? *params : sd_aded_default_params();
    if (!params_ok(&p) || (!corpus_ids && n_corpus > 0)) return SD_ERR_INVALID_ARG;
    for (size_t i = 0; i < n_corpus; i++)
        if (corpus_ids[i] < 0) return SD_ERR_INVALID_ARG;
    ad_state *s = calloc(1, sizeof *s);
    if (!s) return SD_ERR_NOMEM;
    s->p = p;
    tg_init(&s->live, p.max_succ, (size_t)p.max_contexts);
    tg_init(&s->base, p.max_succ, (size_t)p.max_contexts);
    s->acc_ema = 0.5f;
    s->rate = p.half_life > 0 ? exp2f(1.0f / (float)p.half_life) : 1.0f;
    s->inc = 1.0f;
    s->node_cap = 1 + p.n_sims * p.topk_children; /* each simulation expands <= 1 node */
    s->node = malloc((size_t)s->node_cap * sizeof *s->node);
    s->key = malloc((size_t)s->node_cap * sizeof *s->key);
    sd_status st = s->node && s->key ? SD_OK : SD_ERR_NOMEM;
    if (st == SD_OK && n_corpus > 0 && p.corpus_weight > 0.0f) {
        st = base_build(s, corpus_ids, n_corpus);
        s->has_base = true;
    }
    if (st != SD_OK) {
        ad_free(s);
        return st;
    }
    *out = sd_drafter_make("aded", &ad_ops, s);
    return *out ? SD_OK : SD_ERR_NOMEM;
}
