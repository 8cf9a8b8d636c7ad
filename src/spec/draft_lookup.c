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
 */
#include <stdlib.h>
#include <string.h>

#include "spec/drafter.h"

typedef struct lk_entry {
    uint32_t hash;
    int32_t pos;          /* follower position; -1 = empty slot */
    int32_t n;            /* n-gram size: tokens [pos - n, pos)  */
} lk_entry;

typedef struct lk_state {
    int nmin, nmax;
    lk_entry *slot;
    size_t cap, used;
    int n_indexed;        /* follower positions < n_indexed are indexed */
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
        int m = gram_hashes(ids, p, s->nmax, h);
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

static void lk_accept(void *self, const int32_t *ids, int n, int n_accepted) {
    (void)n_accepted;
    (void)index_to(self, ids, n); /* a failure is retried (and reported) by draft */
}

static void lk_end(void *self) { reset(self); }

static void lk_free(void *self) {
    lk_state *s = self;
    if (!s) return;
    free(s->slot);
    free(s);
}

static const sd_drafter_ops lk_ops = {lk_begin, lk_draft, lk_accept, lk_end, lk_free};

sd_status sd_drafter_new_lookup(int ngram_min, int ngram_max, sd_drafter **out) {
    if (!out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    if (ngram_min < 1 || ngram_max < ngram_min || ngram_max > 16) return SD_ERR_INVALID_ARG;
    lk_state *s = calloc(1, sizeof *s);
    if (!s) return SD_ERR_NOMEM;
    s->nmin = ngram_min;
    s->nmax = ngram_max;
    *out = sd_drafter_make("lookup", &lk_ops, s);
    return *out ? SD_OK : SD_ERR_NOMEM;
}
