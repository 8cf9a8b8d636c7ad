/*
 * draft_ngram.c - `ngram-cache` (llama.cpp's lookup decoding,
 * examples/lookup): three n-gram tables (ngram_cache.h) draft a chain.
 *
 *   context: n-grams of sizes 1..4 of the current history, built from the
 *            prompt at begin and updated with every accepted token;
 *   dynamic: what earlier generations of this drafter saw (the context
 *            cache is merged into it at end); loaded from / saved to
 *            dynamic_path when one is given (a missing file starts empty);
 *   static:  2-grams of a corpus, built offline (sd_ngram_cache_build).
 *
 * Drafting follows llama.cpp's common_ngram_cache_draft (ngc_draft). No
 * draft distribution: has_q stays false.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "speculative/drafter.h"
#include "speculative/ngram_cache.h"

typedef struct ng_state {
    ngc_cache context, dynamic, stat;
    ngc_cache *dyn, *st;  /* the dynamic and static caches in use: this
                             drafter's own, or a fork's owner's          */
    bool has_static;
    char *dynamic_path;   /* NULL: nothing saved */
    size_t n_seen;        /* history tokens counted into the context cache */
    bool ctx_broken;      /* an allocation failed while updating: rebuild */
} ng_state;

/* Brings the context cache up to ids[0..n). */
static sd_status ng_sync(ng_state *s, const int32_t *ids, int n) {
    if (n < 0) return SD_ERR_INVALID_ARG;
    if ((size_t)n < s->n_seen || s->ctx_broken) { /* history shrank: start over */
        ngc_clear(&s->context);
        s->n_seen = 0;
        s->ctx_broken = false;
    }
    if ((size_t)n == s->n_seen) return SD_OK;
    sd_status st = ngc_update(&s->context, 1, NGC_MAX, ids, (size_t)n, (size_t)n - s->n_seen);
    if (st != SD_OK) {
        s->ctx_broken = true;
        return st;
    }
    s->n_seen = (size_t)n;
    return SD_OK;
}

static sd_status ng_begin(void *self, const int32_t *ids, int n) {
    ng_state *s = self;
    ngc_clear(&s->context);
    s->n_seen = 0;
    s->ctx_broken = false;
    return ng_sync(s, ids, n);
}

static sd_status ng_draft(void *self, const int32_t *ids, int n, int max, const sd_draft_env *env,
                          sd_draft *out) {
    ng_state *s = self;
    (void)env;
    out->n = 0;
    out->has_q = false;
    if (max > SD_MAX_DRAFT) max = SD_MAX_DRAFT;
    if (!ids || n <= 0 || max <= 0) return SD_OK;
    sd_status st = ng_sync(s, ids, n);
    if (st != SD_OK) return st;
    out->n = ngc_draft(ids, n, max, &s->context, s->dyn, s->has_static ? s->st : NULL, out->tok);
    return SD_OK;
}

static void ng_accept(void *self, const int32_t *ids, int n, int n_accepted) {
    (void)n_accepted;
    (void)ng_sync(self, ids, n); /* a failure is retried (and reported) by draft */
}

static void ng_end(void *self) {
    ng_state *s = self;
    if (!s->ctx_broken) (void)ngc_merge(s->dyn, &s->context);
    ngc_clear(&s->context);
    s->n_seen = 0;
    s->ctx_broken = false;
}

static void ng_free(void *self) {
    ng_state *s = self;
    if (!s) return;
    if (s->dynamic_path) (void)ngc_save(&s->dynamic, s->dynamic_path, NULL, 0);
    ngc_free(&s->context);
    ngc_free(&s->dynamic);
    ngc_free(&s->stat);
    free(s->dynamic_path);
    free(s);
}

static const sd_drafter_ops ng_ops = {ng_begin, ng_draft, ng_accept, ng_end, ng_free, NULL};

sd_status sd_drafter_new_ngram_cache(const char *static_path, const char *dynamic_path,
                                     sd_drafter **out, char *err, size_t err_size) {
    if (!out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    if (err && err_size) err[0] = 0;
    ng_state *s = calloc(1, sizeof *s);
    if (!s) return SD_ERR_NOMEM;
    ngc_init(&s->context);
    ngc_init(&s->dynamic);
    ngc_init(&s->stat);
    s->dyn = &s->dynamic;
    s->st = &s->stat;
    sd_status st = SD_OK;
    if (static_path) {
        st = ngc_load(&s->stat, static_path, 0, err, err_size);
        if (st != SD_OK) goto fail;
        s->has_static = true;
    }
    if (dynamic_path) {
        struct stat sb;
        if (stat(dynamic_path, &sb) == 0 || errno != ENOENT) { /* missing: created on save */
            st = ngc_load(&s->dynamic, dynamic_path, 0, err, err_size);
            if (st != SD_OK) goto fail;
        }
        size_t l = strlen(dynamic_path);
        s->dynamic_path = malloc(l + 1);
        if (!s->dynamic_path) {
            st = SD_ERR_NOMEM;
            goto fail;
        }
        memcpy(s->dynamic_path, dynamic_path, l + 1);
    }
    *out = sd_drafter_make("ngram-cache", &ng_ops, s);
    return *out ? SD_OK : SD_ERR_NOMEM;
fail:
    ng_free(s);
    return st;
}

sd_status sd_drafter_ngram_cache_save(sd_drafter *d, char *err, size_t err_size) {
    if (!d || d->ops != &ng_ops) {
        if (err && err_size) snprintf(err, err_size, "not an ngram-cache drafter");
        return SD_ERR_INVALID_ARG;
    }
    ng_state *s = d->self;
    if (!s->dynamic_path) {
        if (err && err_size) snprintf(err, err_size, "the ngram-cache drafter has no dynamic cache path");
        return SD_ERR_INVALID_ARG;
    }
    return ngc_save(&s->dynamic, s->dynamic_path, err, err_size);
}

sd_status sd_ngram_cache_build(const int32_t *ids, size_t n, const char *path, char *err,
                               size_t err_size) {
    if ((!ids && n) || !path) return SD_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0) {
            if (err && err_size) snprintf(err, err_size, "token id %d at %zu is negative", ids[i], i);
            return SD_ERR_INVALID_ARG;
        }
    }
    ngc_cache c;
    ngc_init(&c);
    sd_status st = ngc_update(&c, NGC_STATIC, NGC_STATIC, ids, n, n);
    if (st == SD_OK) st = ngc_save(&c, path, err, err_size);
    ngc_free(&c);
    return st;
}

sd_status sd_drafter_ngram_cache_fork(sd_drafter *owner, sd_drafter **out) {
    if (!out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    if (!owner || owner->ops != &ng_ops) return SD_ERR_INVALID_ARG;
    const ng_state *o = owner->self;
    ng_state *s = calloc(1, sizeof *s);
    if (!s) return SD_ERR_NOMEM;
    ngc_init(&s->context);
    ngc_init(&s->dynamic);
    ngc_init(&s->stat);
    s->dyn = o->dyn;
    s->st = o->st;
    s->has_static = o->has_static;
    *out = sd_drafter_make("ngram-cache", &ng_ops, s);
    return *out ? SD_OK : SD_ERR_NOMEM;
}
