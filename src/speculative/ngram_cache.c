/*
 * ngram_cache.c - n-gram count tables and llama.cpp's n-gram cache drafting
 * rules (common/ngram-cache.cpp), with a validated file format. See
 * ngram_cache.h.
 */
#include "err.h"
#include "speculative/ngram_cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NGC_MAGIC "SDNG"
#define NGC_VERSION 1u
#define NGC_HEADER 24u
#define NGC_ENTRY_MIN (4u * NGC_MAX + 4u + 8u)   /* key + n_tokens + one pair */

/* ---------------------------------------------------------------- table */

void ngc_init(ngc_cache *c) { memset(c, 0, sizeof *c); }

void ngc_free(ngc_cache *c) {
    if (!c) return;
    for (size_t i = 0; i < c->cap; i++)
        if (c->slot[i].used) free(c->slot[i].part.tc);
    free(c->slot);
    ngc_init(c);
}

void ngc_clear(ngc_cache *c) {
    for (size_t i = 0; i < c->cap; i++) {
        if (c->slot[i].used) free(c->slot[i].part.tc);
        memset(&c->slot[i], 0, sizeof c->slot[i]);
    }
    c->n = 0;
}

ngc_key ngc_make_key(const int32_t *ids, int n) {
    ngc_key k;
    for (int i = 0; i < NGC_MAX; i++) k.t[i] = i < n ? ids[i] : -1;
    return k;
}

static uint32_t key_hash(const ngc_key *k) {
    uint64_t h = 0x84222325cbf29ce4ull;
    for (int i = 0; i < NGC_MAX; i++) {
        h ^= (uint32_t)k->t[i];
        h *= 0x9E3779B97F4A7C15ull;
        h ^= h >> 31;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static bool key_eq(const ngc_key *a, const ngc_key *b) { return memcmp(a->t, b->t, sizeof a->t) == 0; }

static ngc_entry *find_slot(const ngc_cache *c, const ngc_key *k, uint32_t h) {
    if (!c->cap) return NULL;
    size_t mask = c->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        ngc_entry *e = &c->slot[i];
        if (!e->used) return NULL;
        if (e->hash == h && key_eq(&e->key, k)) return e;
    }
}

/* Room for `extra` more keys at a load factor <= 3/4. */
static sd_status reserve(ngc_cache *c, size_t extra) {
    size_t need = c->n + extra;
    if (need > SIZE_MAX / 8) return SD_ERR_NOMEM;
    if (c->cap && need * 4 <= c->cap * 3) return SD_OK;
    size_t cap = c->cap ? c->cap : 64;
    while (need * 4 > cap * 3) cap *= 2;
    if (cap > SIZE_MAX / sizeof(ngc_entry)) return SD_ERR_NOMEM;
    ngc_entry *s = calloc(cap, sizeof *s);
    if (!s) return SD_ERR_NOMEM;
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->slot[i].used) continue;
        size_t j = c->slot[i].hash & (cap - 1);
        while (s[j].used) j = (j + 1) & (cap - 1);
        s[j] = c->slot[i];
    }
    free(c->slot);
    c->slot = s;
    c->cap = cap;
    return SD_OK;
}

/* A new key (absent, room reserved): its slot with an empty part. */
static ngc_entry *insert_new(ngc_cache *c, const ngc_key *k, uint32_t h) {
    size_t mask = c->cap - 1, i = h & mask;
    while (c->slot[i].used) i = (i + 1) & mask;
    ngc_entry *e = &c->slot[i];
    e->key = *k;
    e->hash = h;
    e->used = 1;
    e->part.tc = NULL;
    e->part.n = e->part.cap = 0;
    c->n++;
    return e;
}

const ngc_part *ngc_find(const ngc_cache *c, const ngc_key *k) {
    if (!c) return NULL;
    ngc_entry *e = find_slot(c, k, key_hash(k));
    return e ? &e->part : NULL;
}

/* Index of tok in p, or -(insertion point) - 1. */
static int32_t part_search(const ngc_part *p, int32_t tok) {
    int32_t lo = 0, hi = p->n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (p->tc[mid].tok < tok) lo = mid + 1;
        else hi = mid;
    }
    if (lo < p->n && p->tc[lo].tok == tok) return lo;
    return -lo - 1;
}

static int32_t sat_add(int32_t a, int32_t b) { return a > INT32_MAX - b ? INT32_MAX : a + b; }

static sd_status part_add(ngc_part *p, int32_t tok, int32_t count) {
    int32_t i = part_search(p, tok);
    if (i >= 0) {
        p->tc[i].count = sat_add(p->tc[i].count, count);
        return SD_OK;
    }
    i = -i - 1;
    if (p->n == p->cap) {
        if (p->cap > INT32_MAX / 2) return SD_ERR_NOMEM;
        int32_t cap = p->cap ? p->cap * 2 : 2;
        ngc_tc *t = realloc(p->tc, (size_t)cap * sizeof *t);
        if (!t) return SD_ERR_NOMEM;
        p->tc = t;
        p->cap = cap;
    }
    memmove(p->tc + i + 1, p->tc + i, (size_t)(p->n - i) * sizeof *p->tc);
    p->tc[i].tok = tok;
    p->tc[i].count = count;
    p->n++;
    return SD_OK;
}

sd_status ngc_add(ngc_cache *c, const ngc_key *k, int32_t tok, int32_t count) {
    if (count < 1) return SD_ERR_INVALID_ARG;
    uint32_t h = key_hash(k);
    ngc_entry *e = find_slot(c, k, h);
    if (e) return part_add(&e->part, tok, count);
    if (reserve(c, 1) != SD_OK) return SD_ERR_NOMEM;
    ngc_part p = {0};
    if (part_add(&p, tok, count) != SD_OK) return SD_ERR_NOMEM;
    e = insert_new(c, k, h);
    e->part = p;
    return SD_OK;
}

sd_status ngc_update(ngc_cache *c, int nmin, int nmax, const int32_t *ids, size_t n_ids,
                     size_t n_new) {
    if (nmin < 1 || nmax > NGC_MAX || nmin > nmax) return SD_ERR_INVALID_ARG;
    if (n_new > n_ids) n_new = n_ids;
    for (int size = nmin; size <= nmax; size++) {
        size_t start = n_ids - n_new;
        if (start < (size_t)size) start = (size_t)size;
        for (size_t i = start; i < n_ids; i++) {
            ngc_key k = ngc_make_key(ids + i - (size_t)size, size);
            sd_status st = ngc_add(c, &k, ids[i], 1);
            if (st != SD_OK) return st;
        }
    }
    return SD_OK;
}

sd_status ngc_merge(ngc_cache *dst, const ngc_cache *src) {
    for (size_t i = 0; i < src->cap; i++) {
        const ngc_entry *e = &src->slot[i];
        if (!e->used) continue;
        for (int32_t j = 0; j < e->part.n; j++) {
            sd_status st = ngc_add(dst, &e->key, e->part.tc[j].tok, e->part.tc[j].count);
            if (st != SD_OK) return st;
        }
    }
    return SD_OK;
}

/* ------------------------------------------------------------- drafting */

/* llama.cpp's thresholds, indexed by n-gram size - 1: below them the draft
 * stops. Lax for the context cache (and the static one), strict for the
 * dynamic cache. */
static const int min_sample_lax[NGC_MAX] = {2, 2, 1, 1};
static const int min_percent_lax[NGC_MAX] = {66, 50, 50, 50};
static const int min_sample_strict[NGC_MAX] = {4, 3, 2, 2};
static const int min_percent_strict[NGC_MAX] = {75, 66, 66, 66};

static int64_t part_count(const ngc_part *p, int32_t tok) {
    if (!p) return 0;
    int32_t i = part_search(p, tok);
    return i >= 0 ? p->tc[i].count : 0;
}

/* Primary cache (context or dynamic), largest n-gram first; candidates are
 * weighted by 100 x their static count (1 if absent from the static part). */
static int32_t try_primary(const ngc_cache *c, const ngc_key *keys, int n_keys,
                           const ngc_part *part_static, const int *min_sample,
                           const int *min_percent) {
    if (!c) return -1;
    for (int size = n_keys; size >= 1; size--) {
        const ngc_part *p = ngc_find(c, &keys[size - 1]);
        if (!p) continue;
        int64_t max_c = 0, max_s = 0, sum = 0;
        int32_t max_tok = -1;
        for (int32_t j = 0; j < p->n; j++) {
            int64_t cp = p->tc[j].count, cs = part_count(part_static, p->tc[j].tok);
            cs = cs > 0 ? 100 * cs : 1;
            if (cp * cs > max_c * max_s) {
                max_tok = p->tc[j].tok;
                max_c = cp;
                max_s = cs;
            }
            sum += cp;
        }
        if (sum < min_sample[size - 1]) continue;
        if (100 * max_c < (int64_t)min_percent[size - 1] * sum) continue;
        return max_tok;
    }
    return -1;
}

static int32_t try_static(const ngc_part *p) {
    if (!p) return -1;
    int64_t max_c = 0, sum = 0;
    int32_t max_tok = -1;
    for (int32_t j = 0; j < p->n; j++) {
        if (p->tc[j].count > max_c) {
            max_tok = p->tc[j].tok;
            max_c = p->tc[j].count;
        }
        sum += p->tc[j].count;
    }
    if (sum < min_sample_lax[NGC_STATIC - 1]) return -1;
    if (100 * max_c < (int64_t)min_percent_lax[NGC_STATIC - 1] * sum) return -1;
    return max_tok;
}

int ngc_draft(const int32_t *ids, int n, int max, const ngc_cache *context,
              const ngc_cache *dynamic, const ngc_cache *stat, int32_t *out) {
    if (n < NGC_STATIC || max <= 0) return 0;
    int nd = 0;
    int32_t tail[NGC_MAX];
    while (nd < max) {
        /* the last NGC_MAX tokens of history + draft (fewer at the start) */
        int len = n + nd, have = len < NGC_MAX ? len : NGC_MAX;
        for (int i = 0; i < have; i++) {
            int j = len - have + i;
            tail[i] = j < n ? ids[j] : out[j - n];
        }
        ngc_key ks = ngc_make_key(tail + have - NGC_STATIC, NGC_STATIC);
        const ngc_part *part_static = ngc_find(stat, &ks);
        ngc_key keys[NGC_MAX];
        for (int size = 1; size <= have; size++) keys[size - 1] = ngc_make_key(tail + have - size, size);
        int32_t tok = try_primary(context, keys, have, part_static, min_sample_lax, min_percent_lax);
        if (tok < 0) tok = try_primary(dynamic, keys, have, part_static, min_sample_strict, min_percent_strict);
        if (tok < 0) tok = try_static(part_static);
        if (tok < 0) break;
        out[nd++] = tok;
    }
    return nd;
}

/* ----------------------------------------------------------------- files */

typedef struct wbuf {
    FILE *f;
    uint8_t b[1 << 16];
    size_t n;
    bool fail;
} wbuf;

static void wflush(wbuf *w) {
    if (w->n && fwrite(w->b, 1, w->n, w->f) != w->n) w->fail = true;
    w->n = 0;
}

static void put32(wbuf *w, uint32_t v) {
    if (w->n + 4 > sizeof w->b) wflush(w);
    for (int i = 0; i < 4; i++) w->b[w->n++] = (uint8_t)(v >> (8 * i));
}

static void put64(wbuf *w, uint64_t v) {
    put32(w, (uint32_t)v);
    put32(w, (uint32_t)(v >> 32));
}

sd_status ngc_save(const ngc_cache *c, const char *path, char *err, size_t err_size) {
    if (!c || !path) return SD_ERR_INVALID_ARG;
    size_t lp = strlen(path);
    char *tmp = malloc(lp + 5);
    wbuf *w = malloc(sizeof *w);
    if (!tmp || !w) {
        free(tmp);
        free(w);
        return SD_ERR_NOMEM;
    }
    memcpy(tmp, path, lp);
    memcpy(tmp + lp, ".tmp", 5);
    w->f = fopen(tmp, "wb");
    w->n = 0;
    w->fail = false;
    if (!w->f) {
        sd_set_err(err, err_size, "cannot create '%s': %s", tmp, strerror(errno));
        free(tmp);
        free(w);
        return SD_ERR_IO;
    }
    for (int i = 0; i < 4; i++) w->b[w->n++] = (uint8_t)NGC_MAGIC[i];
    put32(w, NGC_VERSION);
    put32(w, NGC_MAX);
    put32(w, 0);
    put64(w, c->n);
    for (size_t i = 0; i < c->cap; i++) {
        const ngc_entry *e = &c->slot[i];
        if (!e->used) continue;
        for (int j = 0; j < NGC_MAX; j++) put32(w, (uint32_t)e->key.t[j]);
        put32(w, (uint32_t)e->part.n);
        for (int32_t j = 0; j < e->part.n; j++) {
            put32(w, (uint32_t)e->part.tc[j].tok);
            put32(w, (uint32_t)e->part.tc[j].count);
        }
    }
    wflush(w);
    int e1 = w->fail ? EIO : 0;
    if (fclose(w->f) != 0 && !e1) e1 = errno;
    if (!e1 && rename(tmp, path) != 0) e1 = errno;
    sd_status st = SD_OK;
    if (e1) {
        sd_set_err(err, err_size, "cannot write '%s': %s", path, strerror(e1));
        remove(tmp);
        st = SD_ERR_IO;
    }
    free(tmp);
    free(w);
    return st;
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool tok_ok(int32_t t, int n_vocab) { return t >= 0 && (n_vocab <= 0 || t < n_vocab); }

sd_status ngc_load_mem(ngc_cache *c, const uint8_t *buf, size_t size, int n_vocab, char *err,
                       size_t err_size) {
    ngc_clear(c);
    if (size < NGC_HEADER || memcmp(buf, NGC_MAGIC, 4) != 0) {
        sd_set_err(err, err_size, "not an n-gram cache file (bad magic or shorter than its header)");
        return SD_ERR_FORMAT;
    }
    uint32_t version = get32(buf + 4), nmax = get32(buf + 8), reserved = get32(buf + 12);
    uint64_t n_entries = (uint64_t)get32(buf + 16) | (uint64_t)get32(buf + 20) << 32;
    if (version != NGC_VERSION) {
        sd_set_err(err, err_size, "n-gram cache version %u, expected %u", version, NGC_VERSION);
        return SD_ERR_FORMAT;
    }
    if (nmax != NGC_MAX || reserved != 0) {
        sd_set_err(err, err_size, "n-gram cache header: ngram_max %u (expected %d), reserved %u", nmax, NGC_MAX, reserved);
        return SD_ERR_FORMAT;
    }
    if (n_entries > (size - NGC_HEADER) / NGC_ENTRY_MIN) {
        sd_set_err(err, err_size, "n-gram cache claims %llu entries, the file holds at most %zu",
                (unsigned long long)n_entries, (size - NGC_HEADER) / NGC_ENTRY_MIN);
        return SD_ERR_FORMAT;
    }
    sd_status st = reserve(c, (size_t)n_entries);
    if (st != SD_OK) return st;
    size_t off = NGC_HEADER;
    for (uint64_t e = 0; e < n_entries; e++) {
        if (size - off < 4u * NGC_MAX + 4u) {
            sd_set_err(err, err_size, "n-gram cache truncated in entry %llu (offset %zu)", (unsigned long long)e, off);
            st = SD_ERR_FORMAT;
            goto fail;
        }
        ngc_key k;
        int k_len = 0;
        for (int i = 0; i < NGC_MAX; i++) k.t[i] = (int32_t)get32(buf + off + 4u * (unsigned)i);
        while (k_len < NGC_MAX && k.t[k_len] != -1) k_len++;
        bool ok = k_len >= 1;
        for (int i = 0; i < NGC_MAX && ok; i++) ok = i < k_len ? tok_ok(k.t[i], n_vocab) : k.t[i] == -1;
        if (!ok) {
            sd_set_err(err, err_size, "n-gram cache entry %llu (offset %zu): bad n-gram (%d %d %d %d)",
                    (unsigned long long)e, off, k.t[0], k.t[1], k.t[2], k.t[3]);
            st = SD_ERR_FORMAT;
            goto fail;
        }
        uint32_t nt = get32(buf + off + 4u * NGC_MAX);
        off += 4u * NGC_MAX + 4u;
        if (nt == 0 || nt > (size - off) / 8u || nt > INT32_MAX) {
            sd_set_err(err, err_size, "n-gram cache entry %llu (offset %zu): %u tokens, %zu bytes left",
                    (unsigned long long)e, off - 4, nt, size - off);
            st = SD_ERR_FORMAT;
            goto fail;
        }
        uint32_t h = key_hash(&k);
        if (find_slot(c, &k, h)) {
            sd_set_err(err, err_size, "n-gram cache entry %llu (offset %zu): duplicate n-gram", (unsigned long long)e, off);
            st = SD_ERR_FORMAT;
            goto fail;
        }
        ngc_tc *tc = malloc((size_t)nt * sizeof *tc);
        if (!tc) {
            st = SD_ERR_NOMEM;
            goto fail;
        }
        for (uint32_t j = 0; j < nt; j++, off += 8) {
            tc[j].tok = (int32_t)get32(buf + off);
            tc[j].count = (int32_t)get32(buf + off + 4);
            if (!tok_ok(tc[j].tok, n_vocab) || tc[j].count < 1 || (j > 0 && tc[j].tok <= tc[j - 1].tok)) {
                sd_set_err(err, err_size, "n-gram cache entry %llu (offset %zu): bad token %d / count %d%s",
                        (unsigned long long)e, off, tc[j].tok, tc[j].count,
                        n_vocab > 0 ? " (or outside the vocabulary)" : "");
                free(tc);
                st = SD_ERR_FORMAT;
                goto fail;
            }
        }
        ngc_entry *en = insert_new(c, &k, h);
        en->part.tc = tc;
        en->part.n = en->part.cap = (int32_t)nt;
    }
    if (off != size) {
        sd_set_err(err, err_size, "n-gram cache has %zu trailing bytes after %llu entries", size - off,
                (unsigned long long)n_entries);
        st = SD_ERR_FORMAT;
        goto fail;
    }
    return SD_OK;
fail:
    ngc_clear(c);
    return st;
}

sd_status ngc_load(ngc_cache *c, const char *path, int n_vocab, char *err, size_t err_size) {
    ngc_clear(c);
    if (!path) return SD_ERR_INVALID_ARG;
    FILE *f = fopen(path, "rb");
    if (!f) {
        sd_set_err(err, err_size, "cannot open '%s': %s", path, strerror(errno));
        return SD_ERR_IO;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size < 0 ||
        (uint64_t)sb.st_size > (uint64_t)SIZE_MAX / 2) {
        sd_set_err(err, err_size, "'%s' is not a regular file", path);
        fclose(f);
        return SD_ERR_IO;
    }
    size_t size = (size_t)sb.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) {
        fclose(f);
        return SD_ERR_NOMEM;
    }
    size_t got = size ? fread(buf, 1, size, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    if (got != size || rerr) {
        sd_set_err(err, err_size, "cannot read '%s'", path);
        free(buf);
        return SD_ERR_IO;
    }
    sd_status st = ngc_load_mem(c, buf, size, n_vocab, err, err_size);
    free(buf);
    return st;
}
