/* permute_vocab.c - `specdec permute-vocab IN.gguf OUT.gguf --seed S [--map FILE]`:
 * re-exports a model with its token ids permuted, for cross-tokenizer
 * tests (a draft whose ids differ from the target's while its texts and
 * its function over texts are the same).
 *
 * With perm a seeded uniform permutation of 0..n_vocab-1 (every id moves,
 * ids 0..2 included: the tokenizers look tokens up by text, never by id):
 *  - every tokenizer.ggml.* array of n_vocab elements (tokens, scores,
 *    token_type) gets new[perm[i]] = old[i] (merges are texts: unchanged);
 *  - every tokenizer.ggml.*_token_id becomes perm[id];
 *  - rows of token_embd.weight and output.weight (if present; any type)
 *    move the same way: new row perm[i] = old row i.
 * All other kvs and tensors are copied byte for byte. --map FILE writes
 * one line "OLD NEW" per id. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model/gguf.h"
#include "model/gguf_write.h"

/* splitmix64: the permutation's random stream. */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* perm (n): Fisher-Yates over the identity. */
static void make_perm(int32_t *perm, int64_t n, uint64_t seed) {
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) perm[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(splitmix64(&s) % (uint64_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && memcmp(s + n - m, suf, m) == 0;
}

/* Re-encodes kv i (a tokenizer array of n elements) permuted into w. */
static sd_status permute_arr(sd_gguf_writer *w, const sd_gguf *g, int64_t i, const int32_t *perm,
                             int64_t n) {
    const char *key = sd_gguf_key(g, i);
    sd_gguf_vtype et = sd_gguf_arr_type(g, i);
    if (et == SD_GGUF_STRING) {
        const char **strs = malloc((size_t)n * sizeof *strs);
        uint64_t *lens = malloc((size_t)n * sizeof *lens);
        sd_status st = SD_ERR_NOMEM;
        if (strs && lens) {
            for (int64_t k = 0; k < n; k++) {
                sd_gguf_str s = sd_gguf_arr_str(g, i, (uint64_t)k);
                strs[perm[k]] = s.ptr;
                lens[perm[k]] = s.len;
            }
            st = sd_gguf_writer_set_arr_str(w, key, strs, lens, (uint64_t)n);
        }
        free(strs);
        free(lens);
        return st;
    }
    const void *raw;
    uint64_t size;
    sd_status st = sd_gguf_kv_raw(g, i, &raw, &size);
    if (st) return st;
    uint64_t es = (size - 12) / (uint64_t)n;  /* n > 0, numeric elements */
    const uint8_t *src = (const uint8_t *)raw + 12;
    uint8_t *dst = malloc((size_t)(size - 12));
    if (!dst) return SD_ERR_NOMEM;
    for (int64_t k = 0; k < n; k++) memcpy(dst + (uint64_t)perm[k] * es, src + (uint64_t)k * es, es);
    st = sd_gguf_writer_set_arr(w, key, et, dst, (uint64_t)n);
    free(dst);
    return st;
}

int cmd_permute_vocab(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *map = NULL;
    uint64_t seed = 0;
    int have_seed = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            char *end;
            seed = strtoull(argv[++i], &end, 10);
            if (*end || !*argv[i]) {
                fprintf(stderr, "error: --seed needs an unsigned integer\n");
                return 1;
            }
            have_seed = 1;
        } else if (!strcmp(argv[i], "--map") && i + 1 < argc) {
            map = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "error: unknown or incomplete option '%s' (see 'specdec permute-vocab --help')\n", argv[i]);
            return 1;
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            fprintf(stderr, "error: unexpected argument '%s' (see 'specdec permute-vocab --help')\n", argv[i]);
            return 1;
        }
    }
    if (!in || !out || !have_seed) {
        fprintf(stderr, "usage: specdec permute-vocab IN.gguf OUT.gguf --seed S [--map FILE]\n");
        return 1;
    }
    char err[1024] = "";
    sd_gguf *g = NULL;
    sd_gguf_writer *w = NULL;
    int32_t *perm = NULL;
    uint8_t *rows = NULL;
    int rc = 1;
    sd_status st = sd_gguf_open(in, &g, err, sizeof err);
    if (st) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    uint64_t n_vocab = 0;
    sd_gguf_vtype tt;
    if (sd_gguf_get_arr_n(g, "tokenizer.ggml.tokens", &tt, &n_vocab, err, sizeof err) != SD_OK ||
        tt != SD_GGUF_STRING || n_vocab == 0 || n_vocab > INT32_MAX) {
        fprintf(stderr, "error: %s: no usable tokenizer.ggml.tokens array\n", in);
        goto done;
    }
    int64_t n = (int64_t)n_vocab;
    if (!(perm = malloc((size_t)n * sizeof *perm)) || (st = sd_gguf_writer_new(&w))) {
        fprintf(stderr, "error: out of memory\n");
        goto done;
    }
    make_perm(perm, n, seed);
    for (int64_t i = 0; i < sd_gguf_n_kv(g); i++) {
        const char *key = sd_gguf_key(g, i);
        int tok = strncmp(key, "tokenizer.ggml.", 15) == 0;
        if (tok && sd_gguf_kv_type(g, i) == SD_GGUF_ARRAY && sd_gguf_arr_n(g, i) == n_vocab &&
            sd_gguf_arr_type(g, i) != SD_GGUF_ARRAY && strcmp(key, "tokenizer.ggml.merges") != 0) {
            st = permute_arr(w, g, i, perm, n);
        } else if (tok && ends_with(key, "_token_id")) {
            int64_t id;
            if ((st = sd_gguf_get_i64(g, key, &id, err, sizeof err)) != SD_OK) {
                fprintf(stderr, "error: %s\n", err);
                goto done;
            }
            /* out-of-range ids (e.g. -1 for "none") are kept as they are */
            if ((st = sd_gguf_writer_copy_kv(w, g, i)) == SD_OK && id >= 0 && id < n) {
                int64_t nid = perm[id];
                sd_gguf_vtype vt = sd_gguf_kv_type(g, i);
                /* same width as stored: fits, since nid < n_vocab <= INT32_MAX */
                uint8_t b[8] = {0};
                memcpy(b, &nid, 8);
                st = sd_gguf_writer_set_scalar(w, key, vt, b);
            }
        } else {
            st = sd_gguf_writer_copy_kv(w, g, i);
        }
        if (st) {
            fprintf(stderr, "error: %s: %s\n", key, sd_gguf_writer_error(w));
            goto done;
        }
    }
    for (int64_t i = 0; i < sd_gguf_n_tensors(g); i++) {
        const sd_gguf_tensor *t = sd_gguf_tensor_at(g, i);
        if (strcmp(t->name, "token_embd.weight") != 0 && strcmp(t->name, "output.weight") != 0) {
            st = sd_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size, false);
        } else {
            size_t rs = sd_type_row_size(t->type, t->ne[0]);
            if (t->n_dims != 2 || t->ne[1] != n || rs == 0 || (uint64_t)rs * (uint64_t)n != t->size) {
                fprintf(stderr, "error: %s: tensor %s is not (n_embd, %lld)\n", in, t->name, (long long)n);
                goto done;
            }
            if (!(rows = malloc((size_t)t->size))) {
                fprintf(stderr, "error: out of memory\n");
                goto done;
            }
            for (int64_t k = 0; k < n; k++)
                memcpy(rows + (size_t)perm[k] * rs, (const uint8_t *)t->data + (size_t)k * rs, rs);
            st = sd_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, rows, t->size, true);
            rows = NULL;  /* owned by the writer now (also on failure) */
        }
        if (st) {
            fprintf(stderr, "error: %s\n", sd_gguf_writer_error(w));
            goto done;
        }
    }
    if ((st = sd_gguf_writer_write(w, out, err, sizeof err)) != SD_OK) {
        fprintf(stderr, "error: %s\n", err);
        goto done;
    }
    if (map) {
        FILE *f = fopen(map, "w");
        if (!f) {
            fprintf(stderr, "error: cannot write %s\n", map);
            goto done;
        }
        for (int64_t k = 0; k < n; k++) fprintf(f, "%lld %d\n", (long long)k, perm[k]);
        if (fclose(f) != 0) {
            fprintf(stderr, "error: cannot write %s\n", map);
            goto done;
        }
    }
    fprintf(stderr, "permute-vocab: %s -> %s (%lld ids permuted, seed %llu)\n", in, out, (long long)n,
            (unsigned long long)seed);
    rc = 0;
done:
    free(rows);
    free(perm);
    sd_gguf_writer_free(w);
    sd_gguf_close(g);
    return rc;
}
