/*
 * vocab.c - builds an sd_vocab from GGUF metadata (tokenizer.ggml.*), the
 * text -> id hash table, special-token partitioning and the small public
 * accessors. Tokenizing and detokenizing live in tokenizer.c.
 *
 * Everything read from the file is checked before use: array types and
 * counts, special ids in range, every BPE merge string (see load_merges).
 * Token texts are copied, so the vocabulary does not point into the GGUF
 * mapping.
 */
#include "err.h"
#include "tokenizer/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */


/* FNV-1a over the bytes of a token text. */
static uint32_t text_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

int32_t sd_vocab_find(const sd_vocab *v, const char *text, size_t len) {
    if (!v || !v->hash || (!text && len)) return -1;
    uint32_t i = text_hash(text, len) & v->hash_mask;
    for (;;) {
        int32_t id = v->hash[i];
        if (id < 0) return -1;
        const sd_vocab_token *t = &v->tokens[id];
        if (t->len == len && memcmp(t->text, text, len) == 0) return id;
        i = (i + 1) & v->hash_mask;
    }
}

/* Builds the hash table; on duplicate texts the lowest id wins; empty texts
 * are not indexed. */
static sd_status build_hash(sd_vocab *v) {
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)v->n_tokens) cap <<= 1;
    v->hash = malloc((size_t)cap * sizeof *v->hash);
    if (!v->hash) return SD_ERR_NOMEM;
    memset(v->hash, 0xff, (size_t)cap * sizeof *v->hash); /* all -1 */
    v->hash_mask = cap - 1;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        const sd_vocab_token *t = &v->tokens[id];
        if (t->len == 0 || sd_vocab_find(v, t->text, t->len) >= 0) continue;
        uint32_t i = text_hash(t->text, t->len) & v->hash_mask;
        while (v->hash[i] >= 0) i = (i + 1) & v->hash_mask;
        v->hash[i] = id;
    }
    return SD_OK;
}

/* ---------------------------------------------------------------- loading */

/* Reads the token texts (tokenizer.ggml.tokens) into v->tokens/text_pool. */
static sd_status load_texts(const sd_gguf *g, sd_vocab *v, char *err, size_t err_size) {
    const char *key = "tokenizer.ggml.tokens";
    int64_t kv = sd_gguf_find_key(g, key);
    if (kv < 0) return sd_fail(SD_ERR_FORMAT, err, err_size, "%s: missing key '%s'", sd_gguf_name(g), key);
    if (sd_gguf_kv_type(g, kv) != SD_GGUF_ARRAY || sd_gguf_arr_type(g, kv) != SD_GGUF_STRING)
        return sd_fail(SD_ERR_FORMAT, err, err_size, "%s: key '%s' is not an array of strings",
                     sd_gguf_name(g), key);
    uint64_t n = sd_gguf_arr_n(g, kv);
    if (n == 0 || n > (uint64_t)INT32_MAX / 4)
        return sd_fail(SD_ERR_FORMAT, err, err_size, "%s: key '%s': bad token count %llu",
                     sd_gguf_name(g), key, (unsigned long long)n);
    uint64_t pool = 0;
    for (uint64_t i = 0; i < n; i++) {
        sd_gguf_str s = sd_gguf_arr_str(g, kv, i);
        if (!s.ptr || s.len >= UINT32_MAX)
            return sd_fail(SD_ERR_FORMAT, err, err_size, "%s: token %llu: bad string",
                         sd_gguf_name(g), (unsigned long long)i);
        pool += s.len + 1; /* bounded by the file size: no overflow */
    }
    if (pool > SIZE_MAX) return SD_ERR_NOMEM;
    v->n_tokens = (int32_t)n;
    v->tokens = calloc((size_t)n, sizeof *v->tokens);
    v->text_pool = malloc((size_t)pool);
    if (!v->tokens || !v->text_pool) return sd_fail(SD_ERR_NOMEM, err, err_size, "out of memory");
    char *p = v->text_pool;
    for (uint64_t i = 0; i < n; i++) {
        sd_gguf_str s = sd_gguf_arr_str(g, kv, i);
        if (s.len) memcpy(p, s.ptr, (size_t)s.len);
        p[s.len] = '\0';
        v->tokens[i].text = p;
        v->tokens[i].len = (uint32_t)s.len;
        v->tokens[i].type = SD_TOKEN_NORMAL;
        v->tokens[i].byte = -1;
        p += s.len + 1;
    }
    return SD_OK;
}

/* Reads tokenizer.ggml.scores and tokenizer.ggml.token_type when present;
 * each must have exactly n_tokens elements. */
static sd_status load_scores_types(const sd_gguf *g, sd_vocab *v, char *err, size_t err_size) {
    const uint64_t n = (uint64_t)v->n_tokens;
    uint64_t got = 0;
    sd_gguf_vtype et;
    sd_status st = sd_gguf_get_arr_n(g, "tokenizer.ggml.scores", &et, &got, err, err_size);
    if (st != SD_ERR_NOT_FOUND) {
        if (st) return st;
        if (got != n)
            return sd_fail(SD_ERR_FORMAT, err, err_size,
                         "%s: tokenizer.ggml.scores has %llu elements, expected %llu (token count)",
                         sd_gguf_name(g), (unsigned long long)got, (unsigned long long)n);
        float *sc = malloc((size_t)n * sizeof *sc);
        if (!sc) return sd_fail(SD_ERR_NOMEM, err, err_size, "out of memory");
        st = sd_gguf_get_arr_f32(g, "tokenizer.ggml.scores", sc, n, &got, err, err_size);
        for (uint64_t i = 0; !st && i < n; i++) v->tokens[i].score = sc[i];
        free(sc);
        if (st) return st;
    }
    st = sd_gguf_get_arr_n(g, "tokenizer.ggml.token_type", &et, &got, err, err_size);
    if (st != SD_ERR_NOT_FOUND) {
        if (st) return st;
        if (got != n)
            return sd_fail(SD_ERR_FORMAT, err, err_size,
                         "%s: tokenizer.ggml.token_type has %llu elements, expected %llu (token count)",
                         sd_gguf_name(g), (unsigned long long)got, (unsigned long long)n);
        int32_t *ty = malloc((size_t)n * sizeof *ty);
        if (!ty) return sd_fail(SD_ERR_NOMEM, err, err_size, "out of memory");
        st = sd_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", ty, n, &got, err, err_size);
        for (uint64_t i = 0; !st && i < n; i++)
            v->tokens[i].type = (ty[i] >= SD_TOKEN_NORMAL && ty[i] <= SD_TOKEN_BYTE)
                                    ? (uint8_t)ty[i] : (uint8_t)SD_TOKEN_UNUSED;
        free(ty);
        if (st) return st;
    }
    return SD_OK;
}

/* Reads one special token id: absent keeps *id (the default); present and
 * out of [0, n_tokens) is SD_ERR_FORMAT. */
static sd_status load_special_id(const sd_gguf *g, const sd_vocab *v, const char *key, int32_t *id,
                                 char *err, size_t err_size) {
    int64_t x;
    sd_status st = sd_gguf_get_i64(g, key, &x, err, err_size);
    if (st == SD_ERR_NOT_FOUND) return SD_OK;
    if (st) return st;
    if (x < 0 || x >= v->n_tokens)
        return sd_fail(SD_ERR_FORMAT, err, err_size, "%s: %s = %lld is out of range (%d tokens)",
                     sd_gguf_name(g), key, (long long)x, v->n_tokens);
    *id = (int32_t)x;
    return SD_OK;
}

/* Reads an optional bool key into *out (absent keeps the default). */
static sd_status load_bool(const sd_gguf *g, const char *key, bool *out, char *err, size_t err_size) {
    sd_status st = sd_gguf_get_bool(g, key, out, err, err_size);
    return st == SD_ERR_NOT_FOUND ? SD_OK : st;
}

/* add_bos_default: the pre-tokenizer's default for BPE (llama3: true). */
static sd_status load_specials(const sd_gguf *g, sd_vocab *v, bool add_bos_default, char *err,
                               size_t err_size) {
    /* llama.cpp's defaults per tokenizer, dropped when out of range */
    if (v->type == SD_VOCAB_SPM) {
        v->bos = 1, v->eos = 2, v->unk = 0;
    } else {
        v->bos = 11, v->eos = 11, v->unk = -1;
    }
    v->eot = v->pad = -1;
    if (v->bos >= v->n_tokens) v->bos = -1;
    if (v->eos >= v->n_tokens) v->eos = -1;
    sd_status st;
    if ((st = load_special_id(g, v, "tokenizer.ggml.bos_token_id", &v->bos, err, err_size)) ||
        (st = load_special_id(g, v, "tokenizer.ggml.eos_token_id", &v->eos, err, err_size)) ||
        (st = load_special_id(g, v, "tokenizer.ggml.unknown_token_id", &v->unk, err, err_size)) ||
        (st = load_special_id(g, v, "tokenizer.ggml.eot_token_id", &v->eot, err, err_size)) ||
        (st = load_special_id(g, v, "tokenizer.ggml.padding_token_id", &v->pad, err, err_size)))
        return st;
    v->add_bos = v->type == SD_VOCAB_SPM || add_bos_default;
    v->add_eos = false;
    v->add_space_prefix = v->type == SD_VOCAB_SPM;
    if ((st = load_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err, err_size)) ||
        (st = load_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos, err, err_size)) ||
        (st = load_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err, err_size)))
        return st;
    if (v->add_bos && v->bos < 0)
        return sd_fail(SD_ERR_FORMAT, err, err_size, "%s: add_bos_token is true but there is no BOS",
                     sd_gguf_name(g));
    return SD_OK;
}

/* Token texts that end generation (llama.cpp's list, less the
 * model-specific workarounds). They are forced to CONTROL as llama.cpp does;
 * if no eot_token_id is given the first of EOT_TEXTS present becomes EOT. */
static const char *const EOT_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "<EOT>", "_<EOT>", "<end_of_utterance>",
};
static const char *const EOG_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>",
};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Marks end-of-generation tokens: eos, eot and the EOG_TEXTS. */
static void mark_eog(sd_vocab *v) {
    if (v->eot < 0) {
        for (size_t i = 0; i < N_OF(EOT_TEXTS) && v->eot < 0; i++)
            v->eot = sd_vocab_find(v, EOT_TEXTS[i], strlen(EOT_TEXTS[i]));
        if (v->eot >= 0) v->tokens[v->eot].type = SD_TOKEN_CONTROL;
    }
    for (size_t i = 0; i < N_OF(EOG_TEXTS); i++) {
        int32_t id = sd_vocab_find(v, EOG_TEXTS[i], strlen(EOG_TEXTS[i]));
        if (id < 0) continue;
        v->tokens[id].flags |= SD_TOKFLAG_EOG;
        v->tokens[id].type = SD_TOKEN_CONTROL;
    }
    if (v->eos >= 0) v->tokens[v->eos].flags |= SD_TOKFLAG_EOG;
    if (v->eot >= 0) v->tokens[v->eot].flags |= SD_TOKFLAG_EOG;
}

/* Parses "<0xXX>" (hex digits either case) into 0..255, else -1. */
static int parse_byte_text(const char *s, uint32_t len) {
    if (len != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int b = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        b = b * 16 + d;
    }
    return b;
}

/* Fills byte values of byte tokens and the byte-fallback table: "<0xXX>"
 * (upper-case hex, as llama.cpp looks it up), else the one-byte text. */
static void build_bytes(sd_vocab *v) {
    static const char hex[] = "0123456789ABCDEF";
    for (int32_t id = 0; id < v->n_tokens; id++)
        if (v->tokens[id].type == SD_TOKEN_BYTE)
            v->tokens[id].byte = (int16_t)parse_byte_text(v->tokens[id].text, v->tokens[id].len);
    for (int b = 0; b < 256; b++) {
        char buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        char one = (char)b;
        int32_t id = sd_vocab_find(v, buf, 6);
        if (id < 0) id = sd_vocab_find(v, &one, 1);
        v->byte_token[b] = id;
    }
}

/* Sort key of the special list: longer text first, then lower id. */
typedef struct special_key {
    uint32_t len;
    int32_t id;
} special_key;

static int special_cmp(const void *a, const void *b) {
    const special_key *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Collects control/user-defined/unknown tokens with non-empty text. */
static sd_status build_special(sd_vocab *v) {
    int32_t n = 0;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        uint8_t t = v->tokens[id].type;
        if (v->tokens[id].len && (t == SD_TOKEN_CONTROL || t == SD_TOKEN_USER_DEFINED || t == SD_TOKEN_UNKNOWN))
            n++;
    }
    special_key *keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    v->special = malloc((size_t)(n ? n : 1) * sizeof *v->special);
    if (!keys || !v->special) {
        free(keys);
        return SD_ERR_NOMEM;
    }
    n = 0;
    for (int32_t id = 0; id < v->n_tokens; id++) {
        uint8_t t = v->tokens[id].type;
        if (v->tokens[id].len && (t == SD_TOKEN_CONTROL || t == SD_TOKEN_USER_DEFINED || t == SD_TOKEN_UNKNOWN))
            keys[n++] = (special_key){v->tokens[id].len, id};
    }
    qsort(keys, (size_t)n, sizeof *keys, special_cmp);
    for (int32_t i = 0; i < n; i++) v->special[i] = keys[i].id;
    v->n_special = n;
    free(keys);
    return SD_OK;
}

/* llama.cpp's per-model attributes: Phi-3 special tokens eat whitespace on
 * their right (except <unk>, <s>, <|endoftext|>). Keyed on general.name. */
static void set_strip_flags(const sd_gguf *g, sd_vocab *v) {
    sd_gguf_str name;
    if (sd_gguf_get_str(g, "general.name", &name, NULL, 0) != SD_OK) return;
    char low[256];
    size_t n = name.len < sizeof low - 1 ? (size_t)name.len : sizeof low - 1;
    for (size_t i = 0; i < n; i++) {
        char c = name.ptr[i];
        low[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    low[n] = '\0';
    if (!strstr(low, "phi-3") && !strstr(low, "phi3")) return;
    for (int32_t i = 0; i < v->n_special; i++) v->tokens[v->special[i]].flags |= SD_TOKFLAG_RSTRIP;
    int32_t id = sd_vocab_find(v, "</s>", 4);
    if (id >= 0) v->tokens[id].flags |= SD_TOKFLAG_RSTRIP;
    static const char *const no_strip[] = {"<unk>", "<s>", "<|endoftext|>"};
    for (size_t i = 0; i < N_OF(no_strip); i++) {
        id = sd_vocab_find(v, no_strip[i], strlen(no_strip[i]));
        if (id >= 0) v->tokens[id].flags &= (uint8_t)~SD_TOKFLAG_RSTRIP;
    }
}

/* tokenizer.ggml.pre names (llama.cpp's) -> pre-tokenizer; ignore_merges
 * and the add_bos default go with the name, as in llama.cpp. */
typedef struct pre_name {
    const char *name;
    sd_bpe_pre pre;
    bool ignore_merges;
    bool add_bos;
} pre_name;

static const pre_name PRE_NAMES[] = {
    {"default", SD_BPE_PRE_DEFAULT, false, false},
    {"llama3", SD_BPE_PRE_LLAMA3, true, true},
    {"llama-v3", SD_BPE_PRE_LLAMA3, true, true},
    {"llama-bpe", SD_BPE_PRE_LLAMA3, true, true},
    {"falcon3", SD_BPE_PRE_LLAMA3, true, true},
    {"falcon-h1", SD_BPE_PRE_LLAMA3, true, true},
    {"pixtral", SD_BPE_PRE_LLAMA3, true, true},
    {"midm-2.0", SD_BPE_PRE_LLAMA3, true, true},
    {"lfm2", SD_BPE_PRE_LLAMA3, true, true},
    {"dbrx", SD_BPE_PRE_LLAMA3, false, false},
    {"smaug-bpe", SD_BPE_PRE_LLAMA3, false, false},
    {"deepseek-llm", SD_BPE_PRE_DEEPSEEK_LLM, false, false},
    {"deepseek-coder", SD_BPE_PRE_DEEPSEEK_CODER, false, false},
    {"falcon", SD_BPE_PRE_FALCON, false, false},
    {"gpt-2", SD_BPE_PRE_GPT2, false, false},
    {"mpt", SD_BPE_PRE_GPT2, false, false},
    {"olmo", SD_BPE_PRE_GPT2, false, false},
    {"phi-2", SD_BPE_PRE_GPT2, false, false},
    {"jais", SD_BPE_PRE_GPT2, false, false},
    {"gigachat", SD_BPE_PRE_GPT2, false, false},
    {"a.x-4.0", SD_BPE_PRE_GPT2, false, false},
    {"mellum", SD_BPE_PRE_GPT2, false, false},
    {"exaone4", SD_BPE_PRE_GPT2, false, false},
    {"trillion", SD_BPE_PRE_GPT2, false, false},
    {"granite-docling", SD_BPE_PRE_GPT2, false, false},
    {"starcoder", SD_BPE_PRE_STARCODER, false, false},
    {"refact", SD_BPE_PRE_STARCODER, false, false},
    {"command-r", SD_BPE_PRE_STARCODER, false, false},
    {"smollm", SD_BPE_PRE_STARCODER, false, false},
    {"codeshell", SD_BPE_PRE_STARCODER, false, false},
    {"exaone", SD_BPE_PRE_STARCODER, false, false},
    {"minerva-7b", SD_BPE_PRE_STARCODER, false, false},
    {"qwen2", SD_BPE_PRE_QWEN2, false, false},
    {"deepseek-r1-qwen", SD_BPE_PRE_QWEN2, false, false},
    {"kormo", SD_BPE_PRE_QWEN2, false, false},
    {"stablelm2", SD_BPE_PRE_QWEN2, false, false},
    {"megrez", SD_BPE_PRE_QWEN2, false, false},
    {"hunyuan", SD_BPE_PRE_QWEN2, false, false},
    {"grok-2", SD_BPE_PRE_QWEN2, false, false},
};

/* Reads tokenizer.ggml.pre (optional string) for a BPE vocabulary; a
 * missing or unknown name selects the default pre-tokenizer (llama.cpp
 * warns and does the same). *add_bos_default receives the name's default. */
static sd_status load_pre(const sd_gguf *g, sd_vocab *v, bool *add_bos_default, char *err, size_t err_size) {
    *add_bos_default = false;
    v->pre = SD_BPE_PRE_DEFAULT;
    v->ignore_merges = false;
    sd_gguf_str s;
    sd_status st = sd_gguf_get_str(g, "tokenizer.ggml.pre", &s, err, err_size);
    if (st == SD_ERR_NOT_FOUND) return SD_OK;
    if (st) return st;
    for (size_t i = 0; i < N_OF(PRE_NAMES); i++) {
        const pre_name *p = &PRE_NAMES[i];
        if (s.len == strlen(p->name) && memcmp(s.ptr, p->name, s.len) == 0) {
            v->pre = p->pre;
            v->ignore_merges = p->ignore_merges;
            *add_bos_default = p->add_bos;
            break;
        }
    }
    return SD_OK;
}

/* Hash of a token-id pair (splitmix-style finalizer). */
static uint32_t pair_hash(int32_t a, int32_t b) {
    uint64_t x = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (uint32_t)x;
}

const sd_bpe_merge *sd_vocab_find_merge(const sd_vocab *v, int32_t left, int32_t right) {
    if (!v || !v->merge_hash) return NULL;
    uint32_t i = pair_hash(left, right) & v->merge_mask;
    for (;;) {
        int32_t k = v->merge_hash[i];
        if (k < 0) return NULL;
        const sd_bpe_merge *m = &v->merges[k];
        if (m->left == left && m->right == right) return m;
        i = (i + 1) & v->merge_mask;
    }
}

/* Reads tokenizer.ggml.merges (required for gpt2, as in llama.cpp): each
 * element "LEFT RIGHT" (split at the first ' ' after the first byte, as
 * llama.cpp does; rank = index). A merge whose string has no separator, or
 * whose LEFT, RIGHT or LEFT+RIGHT is not a token, is skipped and counted;
 * so is a repeated pair (the lowest rank is kept). Memory: O(count), the
 * count being bounded by the file size (every element is >= 8 bytes). */
static sd_status load_merges(const sd_gguf *g, sd_vocab *v, char *err, size_t err_size) {
    const char *key = "tokenizer.ggml.merges";
    int64_t kv = sd_gguf_find_key(g, key);
    if (kv < 0)
        return sd_fail(SD_ERR_FORMAT, err, err_size, "%s: missing key '%s' (a gpt2 vocabulary needs merges)",
                     sd_gguf_name(g), key);
    if (sd_gguf_kv_type(g, kv) != SD_GGUF_ARRAY || sd_gguf_arr_type(g, kv) != SD_GGUF_STRING)
        return sd_fail(SD_ERR_FORMAT, err, err_size, "%s: key '%s' is not an array of strings",
                     sd_gguf_name(g), key);
    uint64_t n = sd_gguf_arr_n(g, kv);
    if (n > (uint64_t)INT32_MAX / 4)
        return sd_fail(SD_ERR_FORMAT, err, err_size, "%s: key '%s': bad merge count %llu",
                     sd_gguf_name(g), key, (unsigned long long)n);
    uint64_t max_len = 0;
    for (uint64_t i = 0; i < n; i++) {
        sd_gguf_str s = sd_gguf_arr_str(g, kv, i);
        if (!s.ptr)
            return sd_fail(SD_ERR_FORMAT, err, err_size, "%s: merge %llu: bad string", sd_gguf_name(g),
                         (unsigned long long)i);
        if (s.len > max_len) max_len = s.len; /* bounded by the file size */
    }
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n) cap <<= 1;
    char *buf = malloc((size_t)max_len + 1);
    v->merges = malloc((size_t)(n ? n : 1) * sizeof *v->merges);
    v->merge_hash = malloc((size_t)cap * sizeof *v->merge_hash);
    if (!buf || !v->merges || !v->merge_hash) {
        free(buf);
        return sd_fail(SD_ERR_NOMEM, err, err_size, "out of memory loading merges");
    }
    memset(v->merge_hash, 0xff, (size_t)cap * sizeof *v->merge_hash); /* all -1 */
    v->merge_mask = cap - 1;
    v->n_merges = v->n_merges_skipped = 0;
    for (uint64_t i = 0; i < n; i++) {
        sd_gguf_str s = sd_gguf_arr_str(g, kv, i);
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', (size_t)s.len - 1) : NULL;
        if (!sp) {
            v->n_merges_skipped++;
            continue;
        }
        size_t l1 = (size_t)(sp - s.ptr), l2 = (size_t)s.len - l1 - 1;
        int32_t a = sd_vocab_find(v, s.ptr, l1), b = sd_vocab_find(v, sp + 1, l2);
        memcpy(buf, s.ptr, l1);
        memcpy(buf + l1, sp + 1, l2);
        int32_t r = a >= 0 && b >= 0 ? sd_vocab_find(v, buf, l1 + l2) : -1;
        if (r < 0 || sd_vocab_find_merge(v, a, b)) {
            v->n_merges_skipped++;
            continue;
        }
        uint32_t h = pair_hash(a, b) & v->merge_mask;
        while (v->merge_hash[h] >= 0) h = (h + 1) & v->merge_mask;
        v->merge_hash[h] = v->n_merges;
        v->merges[v->n_merges++] = (sd_bpe_merge){a, b, r, (int32_t)i};
    }
    free(buf);
    return SD_OK;
}

/* Token of each byte's GPT-2 character. */
static void build_bpe_bytes(sd_vocab *v) {
    for (int b = 0; b < 256; b++) {
        char c[2];
        size_t n = sd_gpt2_byte_char((unsigned char)b, c);
        v->bpe_byte_token[b] = sd_vocab_find(v, c, n);
    }
}

/* Maps tokenizer.ggml.model to a vocab type. */
static sd_status load_model_type(const sd_gguf *g, sd_vocab *v, char *err, size_t err_size) {
    sd_gguf_str m;
    sd_status st = sd_gguf_get_str(g, "tokenizer.ggml.model", &m, err, err_size);
    if (st == SD_ERR_NOT_FOUND)
        return sd_fail(SD_ERR_NOT_FOUND, err, err_size, "%s: no tokenizer.ggml.model (no vocabulary)",
                     sd_gguf_name(g));
    if (st) return st;
    if (m.len == 5 && memcmp(m.ptr, "llama", 5) == 0) {
        v->type = SD_VOCAB_SPM;
    } else if (m.len == 4 && memcmp(m.ptr, "gpt2", 4) == 0) {
        v->type = SD_VOCAB_BPE;
    } else {
        return sd_fail(SD_ERR_UNSUPPORTED, err, err_size, "%s: unsupported tokenizer.ggml.model '%.*s'",
                     sd_gguf_name(g), (int)(m.len > 64 ? 64 : m.len), m.ptr);
    }
    return SD_OK;
}

sd_status sd_vocab_load(const sd_gguf *g, sd_vocab **out, char *err, size_t err_size) {
    if (err && err_size) err[0] = '\0';
    if (!g || !out) return sd_fail(SD_ERR_INVALID_ARG, err, err_size, "sd_vocab_load: NULL argument");
    *out = NULL;
    sd_vocab *v = calloc(1, sizeof *v);
    if (!v) return sd_fail(SD_ERR_NOMEM, err, err_size, "out of memory");
    sd_status st;
    if ((st = load_model_type(g, v, err, err_size)) || (st = load_texts(g, v, err, err_size)) ||
        (st = load_scores_types(g, v, err, err_size)))
        goto fail;
    if ((st = build_hash(v))) goto nomem;
    bool add_bos_default = false;
    if (v->type == SD_VOCAB_BPE) {
        if ((st = load_pre(g, v, &add_bos_default, err, err_size)) || (st = load_merges(g, v, err, err_size)))
            goto fail;
        build_bpe_bytes(v);
    }
    if ((st = load_specials(g, v, add_bos_default, err, err_size))) goto fail;
    mark_eog(v);
    build_bytes(v);
    if ((st = build_special(v))) goto nomem;
    set_strip_flags(g, v);
    *out = v;
    return SD_OK;
nomem:
    sd_fail(st, err, err_size, "out of memory building the vocabulary");
fail:
    sd_vocab_free(v);
    return st;
}

void sd_vocab_free(sd_vocab *v) {
    if (!v) return;
    free(v->tokens);
    free(v->text_pool);
    free(v->hash);
    free(v->special);
    free(v->merges);
    free(v->merge_hash);
    free(v);
}

/* ---------------------------------------------------------- public getters */

int sd_vocab_n_tokens(const sd_vocab *vocab) { return vocab ? vocab->n_tokens : 0; }
int32_t sd_vocab_bos(const sd_vocab *vocab) { return vocab ? vocab->bos : -1; }
int32_t sd_vocab_eos(const sd_vocab *vocab) { return vocab ? vocab->eos : -1; }
bool sd_vocab_add_bos(const sd_vocab *vocab) { return vocab && vocab->add_bos; }

bool sd_vocab_is_eog(const sd_vocab *vocab, int32_t id) {
    return vocab && id >= 0 && id < vocab->n_tokens && (vocab->tokens[id].flags & SD_TOKFLAG_EOG);
}

const char *sd_vocab_token_text(const sd_vocab *vocab, int32_t id) {
    if (!vocab || id < 0 || id >= vocab->n_tokens) return NULL;
    return vocab->tokens[id].text;
}

/* ------------------------------------------------------ special partition */

static bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* First occurrence of needle[0..m) in hay[0..n), or SIZE_MAX. */
static size_t find_bytes(const char *hay, size_t n, const char *needle, size_t m) {
    if (m == 0 || m > n) return SIZE_MAX;
    const char *p = hay, *end = hay + (n - m) + 1;
    while (p < end) {
        p = memchr(p, (unsigned char)needle[0], (size_t)(end - p));
        if (!p) return SIZE_MAX;
        if (memcmp(p, needle, m) == 0) return (size_t)(p - hay);
        p++;
    }
    return SIZE_MAX;
}

/* A growable fragment list. */
typedef struct frag_list {
    sd_vocab_fragment *a;
    size_t n, cap;
} frag_list;

static bool frag_push(frag_list *l, int32_t token, size_t offset, size_t len) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        sd_vocab_fragment *a = realloc(l->a, cap * sizeof *a);
        if (!a) return false;
        l->a = a;
        l->cap = cap;
    }
    l->a[l->n++] = (sd_vocab_fragment){token, offset, len};
    return true;
}

/* Splits one raw fragment [off, off+len) on every occurrence of token id,
 * appending the pieces to dst. */
static bool split_fragment(const sd_vocab *v, const char *text, size_t off, size_t len, int32_t id,
                           frag_list *dst) {
    const sd_vocab_token *t = &v->tokens[id];
    while (len > 0) {
        size_t m = find_bytes(text + off, len, t->text, t->len);
        if (m == SIZE_MAX) return frag_push(dst, -1, off, len);
        size_t left = m;
        if (t->flags & SD_TOKFLAG_LSTRIP)
            while (left > 0 && is_space(text[off + left - 1])) left--;
        if (left > 0 && !frag_push(dst, -1, off, left)) return false;
        if (!frag_push(dst, id, 0, 0)) return false;
        size_t r_off = off + m + t->len, r_len = len - m - t->len;
        if (t->flags & SD_TOKFLAG_RSTRIP)
            while (r_len > 0 && is_space(text[r_off])) r_off++, r_len--;
        off = r_off;
        len = r_len;
    }
    return true;
}

sd_status sd_vocab_partition(const sd_vocab *v, const char *text, size_t len, bool parse_special,
                             sd_vocab_fragment **out, size_t *n_out) {
    if (!v || !out || !n_out || (!text && len)) return SD_ERR_INVALID_ARG;
    *out = NULL;
    *n_out = 0;
    frag_list cur = {0}, next = {0};
    if (len > 0 && !frag_push(&cur, -1, 0, len)) return SD_ERR_NOMEM;
    for (int32_t s = 0; s < v->n_special && cur.n > 0; s++) {
        int32_t id = v->special[s];
        uint8_t ty = v->tokens[id].type;
        if (!parse_special && ty != SD_TOKEN_USER_DEFINED) continue;
        next.n = 0;
        for (size_t i = 0; i < cur.n; i++) {
            const sd_vocab_fragment f = cur.a[i];
            bool ok = f.token >= 0 ? frag_push(&next, f.token, 0, 0)
                                   : split_fragment(v, text, f.offset, f.len, id, &next);
            if (!ok) {
                free(cur.a);
                free(next.a);
                return SD_ERR_NOMEM;
            }
        }
        frag_list tmp = cur;
        cur = next;
        next = tmp;
    }
    free(next.a);
    *out = cur.a;
    *n_out = cur.n;
    return SD_OK;
}
