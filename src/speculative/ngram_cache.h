/*
 * ngram_cache.h - n-gram -> (next token -> count) tables, as in llama.cpp's
 * common/ngram-cache: the context, dynamic and static caches of the
 * `ngram-cache` drafter (draft_ngram.c) and their file format.
 *
 * An n-gram key holds up to NGC_MAX tokens; unused trailing slots are -1,
 * so n-grams of different sizes are different keys of one table. Each key
 * maps to a part: (token, count) pairs sorted by token (counts >= 1,
 * saturating at INT32_MAX).
 *
 * File format (little endian):
 *   "SDNG" | u32 version (1) | u32 ngram_max (4) | u32 reserved (0) |
 *   u64 n_entries | entries
 *   entry: i32 tokens[4] (a size-k n-gram: k >= 1 ids >= 0, then -1s) |
 *          u32 n_tokens (>= 1) | n_tokens x (i32 token, i32 count >= 1),
 *          tokens strictly increasing
 * Loading validates every field, refuses duplicate keys and trailing bytes.
 */
#ifndef SD_SPEC_NGRAM_CACHE_H
#define SD_SPEC_NGRAM_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "specdec.h"

#define NGC_MAX 4        /* largest n-gram (LLAMA_NGRAM_MAX)       */
#define NGC_STATIC 2     /* n-gram size of a static cache          */

typedef struct ngc_key {
    int32_t t[NGC_MAX];
} ngc_key;

typedef struct ngc_tc {
    int32_t tok;
    int32_t count;
} ngc_tc;

typedef struct ngc_part {
    ngc_tc *tc;          /* sorted by tok */
    int32_t n, cap;
} ngc_part;

typedef struct ngc_entry {
    ngc_key key;
    uint32_t hash;
    uint32_t used;
    ngc_part part;
} ngc_entry;

typedef struct ngc_cache {
    ngc_entry *slot;     /* open addressing, linear probing */
    size_t cap;          /* power of two or 0 */
    size_t n;            /* used slots */
} ngc_cache;

void ngc_init(ngc_cache *c);
void ngc_free(ngc_cache *c);
void ngc_clear(ngc_cache *c);          /* empties, keeps the memory */

/* The n-gram ids[0..n), 1 <= n <= NGC_MAX. */
ngc_key ngc_make_key(const int32_t *ids, int n);

const ngc_part *ngc_find(const ngc_cache *c, const ngc_key *k);
/* Adds count (>= 1) to (k, tok). SD_OK or SD_ERR_NOMEM (cache unchanged). */
sd_status ngc_add(ngc_cache *c, const ngc_key *k, int32_t tok, int32_t count);

/* llama.cpp's common_ngram_cache_update: for n in [nmin, nmax], counts the
 * n-grams of ids[0..n_ids) followed by one of the last n_new tokens. */
sd_status ngc_update(ngc_cache *c, int nmin, int nmax, const int32_t *ids, size_t n_ids,
                     size_t n_new);
/* dst += src. */
sd_status ngc_merge(ngc_cache *dst, const ngc_cache *src);

/* llama.cpp's common_ngram_cache_draft with n-gram sizes 1..NGC_MAX:
 * drafts up to max tokens continuing ids[0..n) into out; returns the count.
 * Any cache may be NULL (treated as empty). */
int ngc_draft(const int32_t *ids, int n, int max, const ngc_cache *context,
              const ngc_cache *dynamic, const ngc_cache *stat, int32_t *out);

/* Writes c to path (through path.tmp, renamed). SD_ERR_IO on failure. */
sd_status ngc_save(const ngc_cache *c, const char *path, char *err, size_t err_size);
/* Loads path into c (which is cleared first). n_vocab > 0: token ids must
 * be below it. SD_ERR_IO (cannot open/read), SD_ERR_FORMAT, SD_ERR_NOMEM;
 * on error c is left empty. */
sd_status ngc_load(ngc_cache *c, const char *path, int n_vocab, char *err, size_t err_size);
/* The same from a buffer (what ngc_load reads). */
sd_status ngc_load_mem(ngc_cache *c, const uint8_t *buf, size_t size, int n_vocab, char *err,
                       size_t err_size);

#endif
