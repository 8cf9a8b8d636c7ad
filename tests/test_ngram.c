/*
 * test_ngram.c - the training-free drafters:
 *  1. lookup on synthetic histories: repeats, longest match first, most
 *     recent occurrence, nothing without a match, max respected,
 *     overlapping repetition; the incremental index agrees with a brute
 *     force scan on random histories;
 *  2. ngram-cache drafting follows llama.cpp's thresholds (context lax,
 *     dynamic strict, static weighting and fallback);
 *  3. save/load round trips of dynamic and static caches;
 *  4. corrupt cache files give SD_ERR_FORMAT / SD_ERR_IO, never a crash;
 *  5. end to end with the shipped target: greedy sd_generate with each
 *     drafter equals plain decoding on the benchmark prompts, and drafts
 *     get accepted (SD_TEST_QUICK, the sanitizer runs: a code completion
 *     and an edit prompt, 32 tokens each).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "speculative/drafter.h"
#include "speculative/ngram_cache.h"
#include "specdec.h"
#include "util/check.h"

static char g_tmp[256];

static sd_sampler_params greedy_params(void) {
    sd_sampler_params sp = sd_sampler_default_params();
    sp.temp = 0.0f;
    return sp;
}

/* Drafts after begin(ids[0..n)). */
static int draft_once(sd_drafter *d, const int32_t *ids, int n, int max, int32_t *out) {
    sd_sampler_params sp = greedy_params();
    sd_draft_env env = {.sp = &sp, .rng = NULL};
    sd_draft dr = {0};
    CHECK(d->ops->begin(d->self, ids, n) == SD_OK, "begin");
    CHECK(d->ops->draft(d->self, ids, n, max, &env, &dr) == SD_OK, "draft");
    CHECK(!dr.has_q, "no q");
    CHECK(dr.n >= 0 && dr.n <= max, "draft length %d, max %d", dr.n, max);
    memcpy(out, dr.tok, (size_t)dr.n * sizeof *out);
    d->ops->end(d->self);
    return dr.n;
}

static bool eq(const int32_t *a, const int32_t *b, int n) { return n <= 0 || memcmp(a, b, (size_t)n * sizeof *a) == 0; }

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Expects exactly want[0..nw) drafted by lookup(nmin, nmax) after ids. */
static void expect_lookup(int nmin, int nmax, const int32_t *ids, int n, int max, const int32_t *want,
                          int nw, const char *what) {
    sd_drafter *d = NULL;
    CHECK(sd_drafter_new_lookup(nmin, nmax, &d) == SD_OK && d, "new lookup");
    if (!d) return;
    CHECK(!strcmp(sd_drafter_name(d), "lookup"), "name");
    int32_t out[SD_MAX_DRAFT];
    int got = draft_once(d, ids, n, max, out);
    CHECK(got == nw && eq(out, want, nw), "%s: drafted %d tokens (%d %d %d ...), want %d (%d %d %d ...)", what,
          got, got > 0 ? out[0] : -1, got > 1 ? out[1] : -1, got > 2 ? out[2] : -1, nw, nw > 0 ? want[0] : -1,
          nw > 1 ? want[1] : -1, nw > 2 ? want[2] : -1);
    sd_drafter_free(d);
}

/* Brute force reference of lookup. */
static int lookup_ref(const int32_t *ids, int n, int nmin, int nmax, int max, int32_t *out) {
    for (int g = nmax; g >= nmin; g--) {
        if (g >= n) continue;
        for (int p = n - 1; p >= g; p--) {
            if (memcmp(ids + p - g, ids + n - g, (size_t)g * sizeof *ids) != 0) continue;
            for (int k = 0; k < max; k++) out[k] = p + k < n ? ids[p + k] : out[p + k - n];
            return max;
        }
    }
    return 0;
}

static uint64_t g_rng = 0x1234567;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 11);
}

static void test_lookup(void) {
    {
        const int32_t h[] = {1, 2, 3, 4, 5, 1, 2, 3};
        const int32_t w2[] = {4, 5};
        const int32_t w7[] = {4, 5, 1, 2, 3, 4, 5};
        expect_lookup(1, 3, h, N(h), 2, w2, 2, "repeat, max 2");
        expect_lookup(1, 3, h, N(h), 7, w7, 7, "repeat runs into the suffix and continues");
        expect_lookup(1, 3, h, N(h), 1, w2, 1, "max 1");
    }
    {
        const int32_t h[] = {7, 2, 3, 40, 8, 2, 3, 50, 7, 2, 3};
        const int32_t w3[] = {40, 8, 2};
        const int32_t w2[] = {50, 7, 2};
        expect_lookup(1, 3, h, N(h), 3, w3, 3, "longest match preferred");
        expect_lookup(1, 2, h, N(h), 3, w2, 3, "ngram_max 2: the most recent 2-gram");
    }
    {
        const int32_t h[] = {1, 2, 10, 1, 2, 20, 1, 2};
        const int32_t w[] = {20, 1, 2, 20};
        expect_lookup(2, 2, h, N(h), 4, w, 4, "most recent occurrence");
    }
    {
        const int32_t h[] = {1, 2, 3, 4};
        expect_lookup(1, 4, h, N(h), 8, NULL, 0, "no match");
        const int32_t h2[] = {1, 2, 3, 1};
        const int32_t w[] = {2, 3, 1};
        expect_lookup(2, 4, h2, N(h2), 8, NULL, 0, "no 2-gram match");
        expect_lookup(1, 4, h2, N(h2), 3, w, 3, "1-gram match");
        const int32_t h3[] = {9};
        expect_lookup(1, 4, h3, 1, 8, NULL, 0, "one token");
    }
    {
        const int32_t h[] = {5, 5, 5, 5};
        const int32_t w[] = {5, 5, 5, 5, 5, 5, 5, 5};
        expect_lookup(1, 3, h, N(h), 8, w, 8, "loop of one token");
        const int32_t h2[] = {1, 2, 1, 2, 1};
        const int32_t w2[] = {2, 1, 2, 1, 2, 1};
        expect_lookup(1, 3, h2, N(h2), 6, w2, 6, "overlapping repetition");
        const int32_t h3[] = {1, 2, 3, 1, 2, 3, 1, 2};
        const int32_t w3[SD_MAX_DRAFT] = {0};
        int32_t w3b[SD_MAX_DRAFT];
        for (int i = 0; i < SD_MAX_DRAFT; i++) w3b[i] = (i % 3 == 0) ? 3 : (i % 3 == 1) ? 1 : 2;
        (void)w3;
        expect_lookup(1, 16, h3, N(h3), SD_MAX_DRAFT, w3b, SD_MAX_DRAFT, "period 3, full length");
    }
    /* invalid arguments */
    sd_drafter *d = NULL;
    CHECK(sd_drafter_new_lookup(0, 3, &d) == SD_ERR_INVALID_ARG && !d, "ngram_min 0");
    CHECK(sd_drafter_new_lookup(3, 2, &d) == SD_ERR_INVALID_ARG && !d, "min > max");
    CHECK(sd_drafter_new_lookup(1, 17, &d) == SD_ERR_INVALID_ARG && !d, "max 17");
    CHECK(sd_drafter_new_lookup(1, 3, NULL) == SD_ERR_INVALID_ARG, "NULL out");

    /* incremental index == brute force, random histories over small alphabets */
    int bad = 0, drafted = 0, total = 0;
    sd_sampler_params sp = greedy_params();
    sd_draft_env env = {.sp = &sp, .rng = NULL};
    for (int trial = 0; trial < 60; trial++) {
        int nmin = 1 + (int)(rnd() % 3), nmax = nmin + (int)(rnd() % 6);
        int alpha = 2 + (int)(rnd() % 6), len = 200 + (int)(rnd() % 400);
        int32_t *h = malloc((size_t)len * sizeof *h);
        for (int i = 0; i < len; i++) h[i] = (int32_t)(rnd() % (uint32_t)alpha);
        /* some copied spans */
        for (int r = 0; r < 5; r++) {
            int a = (int)(rnd() % (uint32_t)(len / 2)), b = a + 1 + (int)(rnd() % (uint32_t)(len / 2 - 1)), l = 1 + (int)(rnd() % 20);
            for (int i = 0; i < l && b + i < len; i++) h[b + i] = h[a + i];
        }
        d = NULL;
        if (sd_drafter_new_lookup(nmin, nmax, &d) != SD_OK) { free(h); CHECK(0, "new"); continue; }
        int n = 1 + (int)(rnd() % 10);
        d->ops->begin(d->self, h, n);
        while (n < len) {
            sd_draft dr = {0};
            int max = 1 + (int)(rnd() % 16);
            int32_t ref[SD_MAX_DRAFT];
            CHECK(d->ops->draft(d->self, h, n, max, &env, &dr) == SD_OK, "draft");
            int nr = lookup_ref(h, n, nmin, nmax, max, ref);
            if (dr.n != nr || !eq(dr.tok, ref, nr)) bad++;
            drafted += dr.n > 0;
            total++;
            int step = 1 + (int)(rnd() % 4);
            n = n + step < len ? n + step : len;
            d->ops->accept(d->self, h, n, 0);
        }
        d->ops->end(d->self);
        sd_drafter_free(d);
        free(h);
    }
    CHECK(bad == 0, "lookup index disagrees with brute force in %d of %d drafts", bad, total);
    /* a coverage floor (fixed seed, exact count): measured 8039 of 8923
     * non-empty; the floor (half) only says the comparison saw drafts */
    CHECK(drafted > total / 2, "random histories: %d of %d drafts non-empty", drafted, total);
    fprintf(stderr, "lookup vs brute force: %d drafts, %d non-empty, %d mismatches\n", total, drafted, bad);
}

/* ------------------------------------------------------------ ngram-cache */

static void expect_ng(sd_drafter *d, const int32_t *ids, int n, int max, const int32_t *want, int nw,
                      const char *what) {
    int32_t out[SD_MAX_DRAFT];
    int got = draft_once(d, ids, n, max, out);
    CHECK(got == nw && eq(out, want, nw), "%s: drafted %d tokens (%d %d %d ...), want %d (%d %d %d ...)", what,
          got, got > 0 ? out[0] : -1, got > 1 ? out[1] : -1, got > 2 ? out[2] : -1, nw, nw > 0 ? want[0] : -1,
          nw > 1 ? want[1] : -1, nw > 2 ? want[2] : -1);
}

static sd_drafter *new_ng(const char *stat, const char *dyn) {
    sd_drafter *d = NULL;
    char err[256] = "";
    sd_status st = sd_drafter_new_ngram_cache(stat, dyn, &d, err, sizeof err);
    CHECK(st == SD_OK && d, "new ngram-cache (%s, %s): %s %s", stat ? stat : "-", dyn ? dyn : "-", sd_status_str(st), err);
    return d;
}

/* A whole generation with prompt ids (no drafting): fills the context cache,
 * merged into the dynamic cache at end. */
static void feed(sd_drafter *d, const int32_t *ids, int n) {
    d->ops->begin(d->self, ids, 1);
    for (int i = 2; i <= n; i++) d->ops->accept(d->self, ids, i, 0);
    d->ops->end(d->self);
}

static void test_ngram_draft(void) {
    sd_drafter *d = new_ng(NULL, NULL);
    if (!d) return;
    CHECK(!strcmp(sd_drafter_name(d), "ngram-cache"), "name");
    {   /* 4-grams need one sample (lax): the repetition is followed */
        const int32_t h[] = {1, 2, 3, 1, 2, 3, 1, 2};
        const int32_t w[] = {3, 1, 2, 3, 1};
        expect_ng(d, h, N(h), 5, w, 5, "context 4-grams");
    }
    {   /* 1-gram: sample >= 2 and >= 66% */
        const int32_t h1[] = {5, 6, 5, 7, 5};
        expect_ng(d, h1, N(h1), 4, NULL, 0, "1-gram at 50% < 66%");
        const int32_t h2[] = {5, 6, 5, 6, 5, 7, 5};
        const int32_t w2[] = {6, 5};
        expect_ng(d, h2, N(h2), 2, w2, 2, "1-gram at 2/3 >= 66%, then a 2-gram");
        const int32_t h3[] = {5, 6, 5, 6, 5, 7, 5, 8, 5};
        expect_ng(d, h3, N(h3), 4, NULL, 0, "1-gram at 2/4");
        const int32_t h4[] = {3, 4, 3};
        expect_ng(d, h4, N(h4), 4, NULL, 0, "1-gram with one sample");
        const int32_t h5[] = {1, 2, 9, 4, 1, 2};
        expect_ng(d, h5, N(h5), 4, NULL, 0, "2-gram with one sample");
        const int32_t h6[] = {1, 2, 9, 4, 1, 2, 9, 8, 1, 2};
        const int32_t w6[] = {9};
        expect_ng(d, h6, N(h6), 1, w6, 1, "2-gram with two samples");
        const int32_t h7[] = {1, 2, 9, 4, 1, 2, 8, 5, 1, 2};
        const int32_t w7[] = {8};
        expect_ng(d, h7, N(h7), 1, w7, 1, "2-gram at 50% (lax) drafts, the lowest id on a tie");
    }
    CHECK(sd_drafter_ngram_cache_save(d, NULL, 0) == SD_ERR_INVALID_ARG, "save without a path");
    sd_drafter_free(d);

    /* dynamic cache: strict thresholds across generations */
    d = new_ng(NULL, NULL);
    if (!d) return;
    {
        const int32_t g1[] = {1, 2, 3, 1, 2, 3};
        feed(d, g1, N(g1));
        const int32_t p[] = {9, 1, 2};
        expect_ng(d, p, N(p), 4, NULL, 0, "dynamic 2-gram with two samples < strict 3");
        /* the context cache of that prompt was merged as well: {1,2} -> 3 now has 2 + 0 */
        const int32_t g2[] = {1, 2, 3, 7, 7};
        feed(d, g2, N(g2));
        const int32_t w[] = {3};
        expect_ng(d, p, N(p), 1, w, 1, "dynamic 2-gram with three samples");
    }
    sd_drafter_free(d);

    /* static cache: fallback and weighting */
    char sp[300], sp2[300];
    snprintf(sp, sizeof sp, "%s/static.ngc", g_tmp);
    snprintf(sp2, sizeof sp2, "%s/static2.ngc", g_tmp);
    const int32_t corpus[] = {1, 2, 3, 1, 2, 3, 4, 2, 5, 7, 2, 5, 7, 8};
    char err[256] = "";
    CHECK(sd_ngram_cache_build(corpus, N(corpus), sp, err, sizeof err) == SD_OK, "build: %s", err);
    const int32_t w2[] = {2, 5, 7, 2, 5, 7};
    CHECK(sd_ngram_cache_build(w2, N(w2), sp2, err, sizeof err) == SD_OK, "build: %s", err);
    const int32_t neg[] = {1, -2};
    CHECK(sd_ngram_cache_build(neg, 2, sp2, err, sizeof err) == SD_ERR_INVALID_ARG, "negative id");
    d = new_ng(sp, NULL);
    if (d) {
        const int32_t p[] = {8, 9, 1, 2};
        const int32_t w[] = {3, 1};  /* {1,2}: 3 x2; {2,3}: 1, 4 at 50%; {3,1}: one sample */
        expect_ng(d, p, N(p), 4, w, 2, "static 2-grams");
        sd_drafter_free(d);
    }
    {
        const int32_t h[] = {1, 2, 5, 6, 1, 2, 5, 7, 1, 2, 5};
        d = new_ng(NULL, NULL);
        const int32_t w6[] = {6};
        if (d) expect_ng(d, h, N(h), 1, w6, 1, "3-gram tie without static: lowest id");
        sd_drafter_free(d);
        d = new_ng(sp2, NULL);
        const int32_t w7[] = {7};
        if (d) expect_ng(d, h, N(h), 1, w7, 1, "3-gram tie broken by the static count");
        sd_drafter_free(d);
    }
}

/* Same content. */
static bool cache_eq(const ngc_cache *a, const ngc_cache *b) {
    if (a->n != b->n) return false;
    for (size_t i = 0; i < a->cap; i++) {
        const ngc_entry *e = &a->slot[i];
        if (!e->used) continue;
        const ngc_part *p = ngc_find(b, &e->key);
        if (!p || p->n != e->part.n || memcmp(p->tc, e->part.tc, (size_t)p->n * sizeof *p->tc) != 0) return false;
    }
    return true;
}

static void test_save_load(void) {
    char path[300], err[256] = "";
    snprintf(path, sizeof path, "%s/rt.ngc", g_tmp);
    enum { LEN = 3000 };
    int32_t *ids = malloc(LEN * sizeof *ids);
    for (int i = 0; i < LEN; i++) ids[i] = (int32_t)(rnd() % 50);
    ngc_cache a, b;
    ngc_init(&a);
    ngc_init(&b);
    CHECK(ngc_update(&a, 1, 4, ids, LEN, LEN) == SD_OK, "update");
    CHECK(a.n > 2000, "%zu n-grams", a.n); /* a size floor: 7725 contexts (fixed seed) */
    CHECK(ngc_save(&a, path, err, sizeof err) == SD_OK, "save: %s", err);
    CHECK(ngc_load(&b, path, 50, err, sizeof err) == SD_OK, "load: %s", err);
    CHECK(cache_eq(&a, &b) && cache_eq(&b, &a), "round trip of a 1..4-gram cache");
    CHECK(ngc_load(&b, path, 49, err, sizeof err) == SD_ERR_FORMAT && b.n == 0, "token 49 outside a 49-token vocab");
    /* merge doubles every count */
    ngc_cache c;
    ngc_init(&c);
    CHECK(ngc_merge(&c, &a) == SD_OK && ngc_merge(&c, &a) == SD_OK, "merge");
    ngc_key k = ngc_make_key(ids, 2);
    const ngc_part *pa = ngc_find(&a, &k), *pc = ngc_find(&c, &k);
    CHECK(pa && pc && pa->n == pc->n && pc->tc[0].count == 2 * pa->tc[0].count, "merged counts");
    ngc_free(&c);

    /* static: sd_ngram_cache_build == 2-grams of the ids */
    CHECK(sd_ngram_cache_build(ids, LEN, path, err, sizeof err) == SD_OK, "build: %s", err);
    ngc_clear(&a);
    CHECK(ngc_update(&a, 2, 2, ids, LEN, LEN) == SD_OK, "update 2");
    CHECK(ngc_load(&b, path, 0, err, sizeof err) == SD_OK, "load static: %s", err);
    CHECK(cache_eq(&a, &b) && cache_eq(&b, &a), "static round trip (%zu vs %zu)", a.n, b.n);
    CHECK(sd_ngram_cache_build(ids, 0, path, err, sizeof err) == SD_OK, "empty build");
    CHECK(ngc_load(&b, path, 0, err, sizeof err) == SD_OK && b.n == 0, "empty cache loads");

    /* dynamic: a drafter with a path saves at free; a new one loads it and drafts the same */
    char dyn[300];
    snprintf(dyn, sizeof dyn, "%s/dyn.ngc", g_tmp);
    remove(dyn);
    sd_drafter *d = new_ng(NULL, dyn);
    int32_t out1[SD_MAX_DRAFT], out2[SD_MAX_DRAFT];
    const int32_t g[] = {4, 5, 6, 4, 5, 6, 4, 5, 6, 4, 5, 6, 4, 5, 6};
    const int32_t p[] = {1, 4, 5};
    int n1 = 0;
    if (d) {
        feed(d, g, N(g));
        CHECK(sd_drafter_ngram_cache_save(d, err, sizeof err) == SD_OK, "save: %s", err);
        struct stat sb;
        CHECK(stat(dyn, &sb) == 0 && sb.st_size > 24, "dynamic file written");
        sd_drafter *d2 = new_ng(NULL, dyn);
        if (d2) {
            n1 = draft_once(d, p, N(p), 8, out1);
            CHECK(n1 == 8, "dynamic drafts %d", n1);
            int n2 = draft_once(d2, p, N(p), 8, out2);
            CHECK(n2 == n1 && eq(out1, out2, n1), "reloaded dynamic cache drafts the same (%d, %d)", n1, n2);
            sd_drafter_free(d2); /* saves its cache (g + p) */
        }
        feed(d, p, N(p));
        const int32_t q[] = {77, 78, 79};
        feed(d, q, N(q));
        sd_drafter_free(d); /* saves g + p + p + q */
    }
    CHECK(ngc_load(&b, dyn, 0, err, sizeof err) == SD_OK && b.n > 0, "dynamic file loads: %s", err);
    ngc_key kq = ngc_make_key((const int32_t[]){77, 78}, 2);
    CHECK(ngc_find(&b, &kq) != NULL, "the last generation is in the saved dynamic cache");
    /* a dynamic path that does not exist yet is fine; a static one is not */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing.ngc", g_tmp);
    sd_drafter *d2 = NULL;
    err[0] = 0;
    CHECK(sd_drafter_new_ngram_cache(missing, NULL, &d2, err, sizeof err) == SD_ERR_IO && !d2 && err[0],
          "missing static file");
    ngc_free(&a);
    ngc_free(&b);
    free(ids);
}

/* ------------------------------------------------------------ corrupt files */

static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void test_corrupt(void) {
    char path[300], err[256];
    snprintf(path, sizeof path, "%s/ok.ngc", g_tmp);
    /* a small valid file: entries of 2-grams */
    const int32_t ids[] = {1, 2, 3, 1, 2, 4, 1, 2, 3};
    CHECK(sd_ngram_cache_build(ids, N(ids), path, err, sizeof err) == SD_OK, "build");
    size_t size = 0;
    uint8_t *good = (uint8_t *)test_read_file(path, &size);
    CHECK(good && size > 24, "read back");
    if (!good) return;
    ngc_cache c;
    ngc_init(&c);
    CHECK(ngc_load_mem(&c, good, size, 10, err, sizeof err) == SD_OK, "valid: %s", err);
    uint8_t *buf = malloc(size + 64);
    int n_trunc_ok = 0;
    for (size_t l = 0; l < size; l++) {
        memcpy(buf, good, l);
        sd_status st = ngc_load_mem(&c, buf, l, 0, err, sizeof err);
        if (st == SD_ERR_FORMAT && c.n == 0) n_trunc_ok++;
    }
    CHECK(n_trunc_ok == (int)size, "truncations refused: %d of %zu", n_trunc_ok, size);

    /* offsets: header 24; first entry key at 24..40, n_tokens at 40, pairs at 44 */
    struct {
        const char *what;
        size_t off;
        uint32_t v;
        bool hi;   /* also write v at off + 4 (64-bit) */
        int n_vocab;
    } muts[] = {
        {"bad magic", 0, 0x474E4453u ^ 1u, false, 0},
        {"version 2", 4, 2, false, 0},
        {"ngram_max 3", 8, 3, false, 0},
        {"reserved", 12, 1, false, 0},
        {"huge entry count", 16, 0xFFFFFFFFu, true, 0},
        {"entry count 2^32", 20, 1, false, 0},
        {"entry count + 1", 16, 0, false, 0},   /* patched below */
        {"negative key token", 24, (uint32_t)-5, false, 0},
        {"empty key", 24, (uint32_t)-1, false, 0},
        {"key with a gap", 36, 7, false, 0},
        {"key padding -2", 32, (uint32_t)-2, false, 0},
        {"key token out of vocab", 24, 10, false, 10},
        {"zero tokens", 40, 0, false, 0},
        {"huge token count", 40, 0xFFFFFFFFu, false, 0},
        {"token count 2^31 - 1", 40, 0x7FFFFFFFu, false, 0},
        {"negative token", 44, (uint32_t)-3, false, 0},
        {"token out of vocab", 44, 1000, false, 10},
        {"zero count", 48, 0, false, 0},
        {"negative count", 48, (uint32_t)-1, false, 0},
    };
    uint64_t n_entries = (uint64_t)good[16] | (uint64_t)good[17] << 8;
    for (int i = 0; i < N(muts); i++) {
        memcpy(buf, good, size);
        if (!strcmp(muts[i].what, "entry count + 1")) put32(buf + 16, (uint32_t)n_entries + 1);
        else put32(buf + muts[i].off, muts[i].v);
        if (muts[i].hi) put32(buf + muts[i].off + 4, muts[i].v);
        err[0] = 0;
        sd_status st = ngc_load_mem(&c, buf, size, muts[i].n_vocab, err, sizeof err);
        CHECK(st == SD_ERR_FORMAT && c.n == 0 && err[0], "%s: %s (%s)", muts[i].what, sd_status_str(st), err);
    }
    /* trailing bytes */
    memcpy(buf, good, size);
    buf[size] = 0;
    CHECK(ngc_load_mem(&c, buf, size + 1, 0, err, sizeof err) == SD_ERR_FORMAT, "trailing byte");
    /* a file with two tokens in a part, swapped: unsorted; and a duplicate key */
    {
        ngc_cache t;
        ngc_init(&t);
        ngc_key k = ngc_make_key(ids, 2);
        ngc_add(&t, &k, 3, 1);
        ngc_add(&t, &k, 5, 2);
        CHECK(ngc_save(&t, path, err, sizeof err) == SD_OK, "save");
        size_t s2 = 0;
        uint8_t *f2 = (uint8_t *)test_read_file(path, &s2);
        CHECK(f2 && s2 == 24 + 20 + 16, "two-token file %zu", s2);
        if (f2 && s2 == 60) {
            uint8_t *m = malloc(2 * s2);
            memcpy(m, f2, s2);
            put32(m + 44, 5);
            put32(m + 52, 3);
            CHECK(ngc_load_mem(&c, m, s2, 0, err, sizeof err) == SD_ERR_FORMAT, "unsorted tokens");
            memcpy(m, f2, s2);
            put32(m + 52, 3);
            CHECK(ngc_load_mem(&c, m, s2, 0, err, sizeof err) == SD_ERR_FORMAT, "repeated token");
            memcpy(m, f2, s2);
            memcpy(m + s2, f2 + 24, s2 - 24);
            put32(m + 16, 2);
            CHECK(ngc_load_mem(&c, m, 2 * s2 - 24, 0, err, sizeof err) == SD_ERR_FORMAT, "duplicate key");
            memcpy(m, f2, s2);
            CHECK(ngc_load_mem(&c, m, s2, 0, err, sizeof err) == SD_OK && c.n == 1, "the original loads");
            free(m);
        }
        free(f2);
        ngc_free(&t);
    }
    /* random corruption: never a crash, and a result that is empty or valid */
    int n_ok = 0;
    for (int r = 0; r < 3000; r++) {
        memcpy(buf, good, size);
        int flips = 1 + (int)(rnd() % 4);
        for (int f = 0; f < flips; f++) buf[rnd() % size] ^= (uint8_t)(1u << (rnd() % 8));
        sd_status st = ngc_load_mem(&c, buf, size, 0, err, sizeof err);
        if (st == SD_OK) n_ok++;
        else CHECK(c.n == 0 && st == SD_ERR_FORMAT, "random flips: %s", sd_status_str(st));
    }
    fprintf(stderr, "random bit flips: %d of 3000 still valid\n", n_ok);

    /* through the public API: files */
    char bad[300];
    snprintf(bad, sizeof bad, "%s/bad.ngc", g_tmp);
    FILE *f = fopen(bad, "wb");
    if (f) {
        memcpy(buf, good, size);
        put32(buf + 40, 0x7FFFFFFFu);
        fwrite(buf, 1, size, f);
        fclose(f);
    }
    sd_drafter *d = NULL;
    err[0] = 0;
    CHECK(sd_drafter_new_ngram_cache(bad, NULL, &d, err, sizeof err) == SD_ERR_FORMAT && !d && err[0],
          "corrupt static file: %s", err);
    err[0] = 0;
    CHECK(sd_drafter_new_ngram_cache(NULL, bad, &d, err, sizeof err) == SD_ERR_FORMAT && !d && err[0],
          "corrupt dynamic file: %s", err);
    CHECK(sd_drafter_new_ngram_cache(g_tmp, NULL, &d, err, sizeof err) == SD_ERR_IO && !d, "a directory");
    CHECK(ngc_load(&c, "/nonexistent/x.ngc", 0, err, sizeof err) == SD_ERR_IO, "missing file");
    f = fopen(bad, "wb");
    if (f) fclose(f);
    CHECK(sd_drafter_new_ngram_cache(bad, NULL, &d, err, sizeof err) == SD_ERR_FORMAT && !d, "empty file");
    CHECK(sd_drafter_ngram_cache_save(NULL, err, sizeof err) == SD_ERR_INVALID_ARG, "save NULL");
    sd_drafter *lk = NULL;
    if (sd_drafter_new_lookup(1, 2, &lk) == SD_OK) {
        CHECK(sd_drafter_ngram_cache_save(lk, err, sizeof err) == SD_ERR_INVALID_ARG, "save of a lookup drafter");
        sd_drafter_free(lk);
    }
    ngc_free(&c);
    free(buf);
    free(good);
}

/* ------------------------------------------------------------ end to end */

typedef struct prompt {
    char task[16];
    int32_t *ids;
    int n, max_tokens;
    int32_t *ref;
    int n_ref;
} prompt;

/* Reads up to cap prompts of file, every stride-th (0, stride, 2 stride...),
 * each to generate at most max_tokens (its own if smaller). */
static int load_prompts(const char *file, const sd_vocab *v, prompt *ps, int cap, int stride, int max_tokens) {
    char path[1024];
    snprintf(path, sizeof path, "%s/bench/%s", test_shared_dir(), file);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "open %s", path);
    if (!f) return 0;
    int n = 0;
    char *line = NULL;
    size_t lcap = 0;
    for (int k = 0; n < cap && getline(&line, &lcap, f) > 0; k++) {
        if (k % stride != 0) continue;
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o) continue;
        const char *text = json_string_value(json_object_get(o, "prompt"));
        const char *task = json_string_value(json_object_get(o, "task"));
        json_int_t mt = json_integer_value(json_object_get(o, "max_tokens"));
        if (text && task && mt > 0 && mt <= 4096) {
            size_t len = strlen(text);
            prompt *p = &ps[n];
            snprintf(p->task, sizeof p->task, "%s", task);
            p->ids = malloc((len + 8) * sizeof *p->ids);
            p->n = sd_tokenize(v, text, len, p->ids, (int)len + 8, sd_vocab_add_bos(v), false);
            p->max_tokens = (int)mt < max_tokens ? (int)mt : max_tokens;
            if (p->n > 0) n++;
            else free(p->ids);
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    return n;
}

typedef struct acc_stats {
    int64_t gen, steps, drafted, accepted;
} acc_stats;

static const char *k_tasks[3] = {"complete", "edit", "docs"};
static int task_index(const char *t) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(t, k_tasks[i])) return i;
    return 0;
}

/* quick (SD_TEST_QUICK, the sanitizer runs): code prompts 0 and 12 (a
 * completion and an edit), 32 tokens each. */
static void test_end_to_end(bool quick) {
    char path[1024];
    snprintf(path, sizeof path, "%s/kernel-c-target.gguf", test_model_dir());
    sd_model *m = NULL;
    char err[256] = "";
    sd_status st = sd_model_load(path, NULL, &m, err, sizeof err);
    CHECK(st == SD_OK, "load %s: %s", path, err);
    if (st != SD_OK) return;
    const sd_vocab *v = sd_model_vocab(m);
    const int V = sd_vocab_n_tokens(v);
    prompt ps[40];
    /* SD_TEST_NGRAM_PROMPTS=k: only the first k prompts of each file (quick runs) */
    const char *lim = getenv("SD_TEST_NGRAM_PROMPTS");
    int n_code = 24, n_docs = 12, stride = 1, max_tokens = 4096;
    if (lim && atoi(lim) > 0) {
        n_code = atoi(lim) < n_code ? atoi(lim) : n_code;
        n_docs = atoi(lim) < n_docs ? atoi(lim) : n_docs;
    } else if (quick) {
        n_code = 2, n_docs = 0, stride = 12, max_tokens = 32;
    }
    int np = load_prompts("code-btrfs.jsonl", v, ps, n_code, stride, max_tokens);
    CHECK(np == n_code, "%d code prompts", np);
    int nd = load_prompts("docs-filesystems.jsonl", v, ps + np, n_docs, stride, max_tokens);
    CHECK(nd == n_docs, "%d docs prompts", nd);
    np += nd;
    int max_len = 0;
    for (int i = 0; i < np; i++) max_len = ps[i].n + ps[i].max_tokens > max_len ? ps[i].n + ps[i].max_tokens : max_len;
    sd_threadpool *pool = NULL;
    sd_threadpool_new(2, &pool);
    sd_ctx_params cp = sd_ctx_default_params();
    cp.pool = pool;
    cp.n_ctx = max_len + 8;
    sd_ctx *ctx = NULL;
    CHECK(sd_ctx_new(m, &cp, &ctx) == SD_OK, "ctx");
    sd_sampler_params sp = greedy_params();
    sd_sampler *smp = NULL;
    CHECK(sd_sampler_new(&sp, V, &smp) == SD_OK, "sampler");
    if (!ctx || !smp) goto done;
    struct timespec ts0, ts1;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    /* plain decoding */
    acc_stats plain[3] = {{0}};
    for (int i = 0; i < np; i++) {
        prompt *p = &ps[i];
        sd_gen_params gp = sd_gen_default_params();
        gp.n_predict = p->max_tokens;
        gp.ignore_eos = true;
        p->ref = malloc((size_t)p->max_tokens * sizeof *p->ref);
        sd_spec_stats s;
        st = sd_generate(ctx, smp, NULL, p->ids, p->n, &gp, p->ref, &p->n_ref, &s);
        CHECK(st == SD_OK && p->n_ref == p->max_tokens, "plain %d: %s, %d tokens", i, sd_status_str(st), p->n_ref);
        int t = task_index(p->task);
        plain[t].gen += s.n_generated;
        plain[t].steps += s.steps;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    double plain_ms = (double)(ts1.tv_sec - ts0.tv_sec) * 1e3 + (double)(ts1.tv_nsec - ts0.tv_nsec) / 1e6;
    fprintf(stderr, "plain decoding of %d prompts: %.0f ms\n", np, plain_ms);

    struct {
        const char *name;
        int kind;     /* 0 lookup, 1 ngram-cache */
        int draft_max;
    } cfg[] = {{"lookup(1,4)", 0, 1}, {"lookup(1,4)", 0, 4}, {"lookup(1,4)", 0, 16}, {"ngram-cache", 1, 4}};
    for (int c = 0; c < N(cfg); c++) {
        sd_drafter *d = NULL;
        if (cfg[c].kind == 0) CHECK(sd_drafter_new_lookup(1, 4, &d) == SD_OK, "lookup");
        else d = new_ng(NULL, NULL);   /* one drafter: the dynamic cache grows over the prompts */
        if (!d) continue;
        acc_stats a[3] = {{0}};
        int mismatches = 0;
        clock_gettime(CLOCK_MONOTONIC, &ts0);
        for (int i = 0; i < np; i++) {
            prompt *p = &ps[i];
            sd_gen_params gp = sd_gen_default_params();
            gp.n_predict = p->max_tokens;
            gp.ignore_eos = true;
            gp.draft_max = cfg[c].draft_max;
            int32_t *out = malloc((size_t)p->max_tokens * sizeof *out);
            int n_out = 0;
            sd_spec_stats s;
            st = sd_generate(ctx, smp, d, p->ids, p->n, &gp, out, &n_out, &s);
            bool same = st == SD_OK && n_out == p->n_ref && eq(out, p->ref, n_out);
            if (!same) {
                mismatches++;
                int k = 0;
                while (k < n_out && k < p->n_ref && out[k] == p->ref[k]) k++;
                fprintf(stderr, "%s draft_max %d prompt %d: %s, %d tokens, first difference at %d\n", cfg[c].name,
                        cfg[c].draft_max, i, sd_status_str(st), n_out, k);
            }
            int t = task_index(p->task);
            a[t].gen += s.n_generated;
            a[t].steps += s.steps;
            a[t].drafted += s.drafted;
            a[t].accepted += s.accepted;
            free(out);
        }
        clock_gettime(CLOCK_MONOTONIC, &ts1);
        double ms = (double)(ts1.tv_sec - ts0.tv_sec) * 1e3 + (double)(ts1.tv_nsec - ts0.tv_nsec) / 1e6;
        CHECK(mismatches == 0, "%s draft_max %d: %d prompts differ from plain decoding", cfg[c].name,
              cfg[c].draft_max, mismatches);
        acc_stats all = {0};
        for (int t = 0; t < 3; t++) {
            all.gen += a[t].gen; all.steps += a[t].steps; all.drafted += a[t].drafted; all.accepted += a[t].accepted;
        }
        CHECK(all.accepted > 0, "%s draft_max %d: nothing accepted", cfg[c].name, cfg[c].draft_max);
        fprintf(stderr, "%-12s draft_max %2d: %6.0f ms (plain %.0f)", cfg[c].name, cfg[c].draft_max, ms, plain_ms);
        for (int t = 0; t <= 3; t++) {
            acc_stats *x = t < 3 ? &a[t] : &all;
            int n_prompts = 0;
            for (int i = 0; i < np; i++) n_prompts += t == 3 || task_index(ps[i].task) == t;
            fprintf(stderr, " | %s: tok/step %.2f acc %.1f%%", t < 3 ? k_tasks[t] : "all",
                    x->steps ? (double)(x->gen - n_prompts) / (double)x->steps : 0.0,
                    x->drafted ? 100.0 * (double)x->accepted / (double)x->drafted : 0.0);
        }
        fprintf(stderr, "\n");
        sd_drafter_free(d);
    }
done:
    for (int i = 0; i < np; i++) {
        free(ps[i].ids);
        free(ps[i].ref);
    }
    sd_sampler_free(smp);
    sd_ctx_free(ctx);
    sd_threadpool_free(pool);
    sd_model_free(m);
}

static void rm_tmp(void) {
    const char *names[] = {"static.ngc", "static2.ngc", "rt.ngc", "dyn.ngc", "ok.ngc", "bad.ngc"};
    char p[400];
    for (int i = 0; i < N(names); i++) {
        snprintf(p, sizeof p, "%s/%s", g_tmp, names[i]);
        remove(p);
    }
    rmdir(g_tmp);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/test_ngram.XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_lookup();
    test_ngram_draft();
    test_save_load();
    test_corrupt();
    rm_tmp();
    test_end_to_end(getenv("SD_TEST_QUICK") != NULL);
    return check_report("test_ngram");
}
