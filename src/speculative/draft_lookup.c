/*
 * draft_lookup.c - `lookup` (prompt lookup decoding): for n from ngram_max
 * down to ngram_min, find the most recent earlier occurrence of the last n
 * tokens of the history and draft the tokens that followed it.
 *
 * An index maps every n-gram of the history (n in [ngram_min, ngram_max])
 * that has a following token to the position of that token, the most recent
 * one; it is kept up to date incrementally (each new history token adds at
 * most ngram_max - ngram_min + 1 n-grams), so a draft costs O(ngram_max).
 * Entries hold a hash, the size and the position; keys are compared against
 * the history itself, so a hash collision never gives a false match.
 *
 * The continuation of a match at follower position p is the sequence
 * history ++ draft from p on: when it reaches the end of the history it
 * keeps following the drafted tokens, i.e. the segment [p, n) repeats
 * (self-overlapping repetitions and loops draft at full length).
 *
 * Tree mode (`tree-lookup`): every entry also links to the previous
 * occurrence of its n-gram (prev[]), so a draft can collect up to
 * LK_MAX_OCC continuations (longest n-gram first, most recent first), merge
 * them into a trie weighted by the n-gram size that found them, and keep
 * the heaviest `max` trie nodes (a node weighs at most its parent, so the
 * kept set is a tree). Siblings in the trie are distinct tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "speculative/draft_lookup.h"

typedef struct lk_entry {
    uint32_t hash;
    int32_t pos;          /* follower position; -1 = empty slot */
    int32_t n;            /* n-gram size: tokens [pos - n, pos)  */
} lk_entry;

enum { LK_MAX_OCC = 8 };

typedef struct lk_state {
    int nmin, nmax;
    lk_entry *slot;
    size_t cap, used;
    int n_indexed;        /* follower positions < n_indexed are indexed */
    bool tree;            /* tree mode: keep prev[] and draft tries       */
    int32_t *prev;        /* (prev_cap, nmax - nmin + 1): previous follower
                             position of the same n-gram, -1 = none       */
    size_t prev_cap;      /* positions prev[] has room for                */
} lk_state;

static uint64_t mix(uint64_t h, int32_t tok) {
    h = (h ^ (uint32_t)tok) * 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

static uint32_t fin(uint64_t h, int n) {
    h = mix(h, n);
    return (uint32_t)(h ^ (h >> 32));
}

/* Hashes of the n-grams ending at `end` (tokens [end - n, end)), n = 1..nmax
 * (fewer if end < nmax): h[n - 1]. Built backwards, so the n-gram of size n
 * extends the one of size n - 1 to the left. */
static int gram_hashes(const int32_t *ids, int end, int nmax, uint32_t *h) {
    uint64_t x = 0x2545F4914F6CDD1Dull;
    int m = end < nmax ? end : nmax;
    for (int n = 1; n <= m; n++) {
        x = mix(x, ids[end - n]);
        h[n - 1] = fin(x, n);
    }
    return m;
}

static bool same(const int32_t *ids, int a, int b, int n) {
    return memcmp(ids + a - n, ids + b - n, (size_t)n * sizeof *ids) == 0;
}

static sd_status grow(lk_state *s) {
    size_t cap = s->cap ? s->cap * 2 : 1024;
    if (cap > SIZE_MAX / sizeof(lk_entry)) return SD_ERR_NOMEM;
    lk_entry *t = malloc(cap * sizeof *t);
    if (!t) return SD_ERR_NOMEM;
    for (size_t i = 0; i < cap; i++) t[i].pos = -1;
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slot[i].pos < 0) continue;
        size_t j = s->slot[i].hash & (cap - 1);
        while (t[j].pos >= 0) j = (j + 1) & (cap - 1);
        t[j] = s->slot[i];
    }
    free(s->slot);
    s->slot = t;
    s->cap = cap;
    return SD_OK;
}

static void reset(lk_state *s) {
    for (size_t i = 0; i < s->cap; i++) s->slot[i].pos = -1;
    s->used = 0;
    s->n_indexed = 0;
}

/* Indexes every follower position in [n_indexed, n). */
static sd_status index_to(lk_state *s, const int32_t *ids, int n) {
    if (n < s->n_indexed) reset(s); /* history shrank: start over */
    uint32_t h[16];
    for (int p = s->n_indexed; p < n; p++) {
        if ((s->used + (size_t)(s->nmax - s->nmin + 1)) * 2 > s->cap) {
            sd_status st = grow(s);
            if (st != SD_OK) return st;
        }
        if (s->tree && (size_t)p >= s->prev_cap) {
            size_t cap = s->prev_cap ? s->prev_cap * 2 : 1024;
            while (cap <= (size_t)p) cap *= 2;
            size_t G = (size_t)(s->nmax - s->nmin + 1);
            if (cap > SIZE_MAX / sizeof(int32_t) / G) return SD_ERR_NOMEM;
            int32_t *t = realloc(s->prev, cap * G * sizeof *t);
            if (!t) return SD_ERR_NOMEM;
            s->prev = t;
            s->prev_cap = cap;
        }
        int m = gram_hashes(ids, p, s->nmax, h);
        if (s->tree)
            for (int g = s->nmin; g <= s->nmax; g++) s->prev[(size_t)p * (size_t)(s->nmax - s->nmin + 1) + (size_t)(g - s->nmin)] = -1;
        for (int g = s->nmin; g <= m; g++) {
            size_t mask = s->cap - 1, i = h[g - 1] & mask;
            for (;; i = (i + 1) & mask) {
                lk_entry *e = &s->slot[i];
                if (e->pos < 0) {
                    e->hash = h[g - 1];
                    e->pos = p;
                    e->n = g;
                    s->used++;
                    break;
                }
                if (e->hash == h[g - 1] && e->n == g && same(ids, e->pos, p, g)) {
                    if (s->tree) s->prev[(size_t)p * (size_t)(s->nmax - s->nmin + 1) + (size_t)(g - s->nmin)] = e->pos;
                    e->pos = p; /* more recent */
                    break;
                }
            }
        }
        s->n_indexed = p + 1;
    }
    return SD_OK;
}

/* Most recent follower position of the n-gram ids[n_hist - g, n_hist), -1 if none. */
static int find(const lk_state *s, const int32_t *ids, int n_hist, int g, uint32_t h) {
    if (!s->cap) return -1;
    size_t mask = s->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const lk_entry *e = &s->slot[i];
        if (e->pos < 0) return -1;
        if (e->hash == h && e->n == g && same(ids, e->pos, n_hist, g)) return e->pos;
    }
}

static sd_status lk_begin(void *self, const int32_t *ids, int n) {
    lk_state *s = self;
    reset(s);
    return n > 0 && ids ? index_to(s, ids, n) : SD_OK;
}

static sd_status lk_draft_tree(lk_state *s, const int32_t *ids, int n, int max, int len, sd_draft *out,
                               double *w, double *w_root);

static sd_status lk_draft(void *self, const int32_t *ids, int n, int max, const sd_draft_env *env,
                          sd_draft *out) {
    lk_state *s = self;
    (void)env;
    out->n = 0;
    out->has_q = false;
    if (max > SD_MAX_DRAFT) max = SD_MAX_DRAFT;
    if (!ids || n < 2 || max <= 0) return SD_OK;
    sd_status st = index_to(s, ids, n);
    if (st != SD_OK) return st;
    if (s->tree) return lk_draft_tree(s, ids, n, max, max, out, NULL, NULL);
    uint32_t h[16];
    int m = gram_hashes(ids, n, s->nmax, h);
    for (int g = m; g >= s->nmin; g--) {
        int p = find(s, ids, n, g, h[g - 1]);
        if (p < 0) continue;
        for (int k = 0; k < max; k++) {
            int q = p + k;   /* q < n + k: a history or an earlier draft token */
            out->tok[k] = q < n ? ids[q] : out->tok[q - n];
        }
        out->n = max;
        break;
    }
    return SD_OK;
}

/* Trie of continuations: node weights, children by first-child / next-
 * sibling links. Node 0 is the root. */
typedef struct lk_trie {
    int32_t tok[SD_MAX_DRAFT * LK_MAX_OCC + 1];
    int parent[SD_MAX_DRAFT * LK_MAX_OCC + 1];
    int first[SD_MAX_DRAFT * LK_MAX_OCC + 1], next[SD_MAX_DRAFT * LK_MAX_OCC + 1];
    double w[SD_MAX_DRAFT * LK_MAX_OCC + 1];
    int n;
} lk_trie;

static void trie_add(lk_trie *t, const int32_t *ids, int n, int p, int len, double w) {
    int cur = 0;
    int32_t seq[SD_MAX_DRAFT];
    for (int k = 0; k < len; k++) {
        int q = p + k; /* past the history: the continuation repeats itself */
        seq[k] = q < n ? ids[q] : seq[q - n];
        int c = t->first[cur];
        while (c >= 0 && t->tok[c] != seq[k]) c = t->next[c];
        if (c < 0) {
            if (t->n >= SD_MAX_DRAFT * LK_MAX_OCC + 1) return;
            c = t->n++;
            t->tok[c] = seq[k];
            t->parent[c] = cur;
            t->first[c] = -1;
            t->next[c] = t->first[cur];
            t->first[cur] = c;
            t->w[c] = 0.0;
        }
        t->w[c] += w;
        cur = c;
    }
}

/* The trie of up to LK_MAX_OCC continuations of `len` tokens, cut to its
 * `max` heaviest nodes; w (optional): the kept nodes' weights, *w_root the
 * total weight of the continuations collected. */
static sd_status lk_draft_tree(lk_state *s, const int32_t *ids, int n, int max, int len, sd_draft *out,
                               double *w, double *w_root) {
    lk_trie *t = malloc(sizeof *t);
    if (!t) return SD_ERR_NOMEM;
    t->n = 1;
    t->first[0] = -1;
    t->w[0] = 0.0;
    uint32_t h[16];
    const int G = s->nmax - s->nmin + 1;
    int m = gram_hashes(ids, n, s->nmax, h), n_occ = 0;
    int32_t seen[LK_MAX_OCC];
    for (int g = m; g >= s->nmin && n_occ < LK_MAX_OCC; g--) {
        for (int p = find(s, ids, n, g, h[g - 1]); p >= 0 && n_occ < LK_MAX_OCC;
             p = s->prev[(size_t)p * (size_t)G + (size_t)(g - s->nmin)]) {
            bool dup = false; /* found already by a longer n-gram */
            for (int i = 0; i < n_occ; i++) dup |= seen[i] == p;
            if (dup) continue;
            seen[n_occ++] = p;
            trie_add(t, ids, n, p, len, (double)g);
            t->w[0] += (double)g;
        }
    }
    /* the `max` heaviest nodes (ties: creation order), parents first */
    bool *keep = calloc((size_t)t->n, sizeof *keep);
    int *map = malloc((size_t)t->n * sizeof *map);
    if (!keep || !map) { free(t); free(keep); free(map); return SD_ERR_NOMEM; }
    for (int k = 0; k < max; k++) {
        int best = -1;
        for (int i = 1; i < t->n; i++)
            if (!keep[i] && (t->parent[i] == 0 || keep[t->parent[i]]) && (best < 0 || t->w[i] > t->w[best])) best = i;
        if (best < 0) break;
        keep[best] = true;
    }
    out->n = 0;
    for (int i = 1; i < t->n; i++) { /* creation order: parents precede children */
        if (!keep[i]) continue;
        map[i] = out->n;
        if (w) w[out->n] = t->w[i];
        out->tok[out->n] = t->tok[i];
        out->parent[out->n] = t->parent[i] == 0 ? -1 : map[t->parent[i]];
        out->n++;
    }
    out->is_tree = true;
    if (w_root) *w_root = t->w[0];
    free(t); free(keep); free(map);
    return SD_OK;
}

static void lk_accept(void *self, const int32_t *ids, int n, int n_accepted) {
    (void)n_accepted;
    (void)index_to(self, ids, n); /* a failure is retried (and reported) by draft */
}

static void lk_end(void *self) { reset(self); }

static void lk_free(void *self) {
    lk_state *s = self;
    if (!s) return;
    free(s->slot);
    free(s->prev);
    free(s);
}

static const sd_drafter_ops lk_ops = {lk_begin, lk_draft, lk_accept, lk_end, lk_free, NULL};

sd_status sd_lookup_tree_draft_weighted(sd_drafter *d, const int32_t *ids, int n, int max, int len,
                                        sd_draft *out, double *w, double *w_root) {
    if (!d || d->ops != &lk_ops || !out || !w || !w_root) return SD_ERR_INVALID_ARG;
    lk_state *s = d->self;
    if (!s->tree) return SD_ERR_INVALID_ARG;
    out->n = 0;
    out->has_q = false;
    *w_root = 0.0;
    if (max > SD_MAX_DRAFT) max = SD_MAX_DRAFT;
    if (len > SD_MAX_DRAFT) len = SD_MAX_DRAFT;
    if (!ids || n < 2 || max <= 0 || len <= 0) return SD_OK;
    sd_status st = index_to(s, ids, n);
    if (st != SD_OK) return st;
    return lk_draft_tree(s, ids, n, max, len, out, w, w_root);
}

static sd_status new_lookup(int ngram_min, int ngram_max, bool tree, sd_drafter **out) {
    if (!out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    if (ngram_min < 1 || ngram_max < ngram_min || ngram_max > 16) return SD_ERR_INVALID_ARG;
    lk_state *s = calloc(1, sizeof *s);
    if (!s) return SD_ERR_NOMEM;
    s->nmin = ngram_min;
    s->nmax = ngram_max;
    s->tree = tree;
    *out = sd_drafter_make(tree ? "tree-lookup" : "lookup", &lk_ops, s);
    return *out ? SD_OK : SD_ERR_NOMEM;
}

sd_status sd_drafter_new_lookup(int ngram_min, int ngram_max, sd_drafter **out) {
    return new_lookup(ngram_min, ngram_max, false, out);
}

sd_status sd_drafter_new_lookup_tree(int ngram_min, int ngram_max, sd_drafter **out) {
    return new_lookup(ngram_min, ngram_max, true, out);
}
