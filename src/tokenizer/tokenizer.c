/*
 * tokenizer.c - text -> ids (SentencePiece BPE, as llama.cpp's
 * llm_tokenizer_spm; byte-level BPE is in tokenizer_bpe.c) and ids -> text
 * (token pieces, streaming UTF-8-safe detokenizer).
 *
 * sd_tokenize, per llama.cpp's tokenize() for SPM vocabularies:
 *   1. split the text on special tokens (sd_vocab_partition);
 *   2. each raw fragment that starts the text or follows a special token
 *      gets a ' ' prepended when add_space_prefix is set;
 *   3. ' ' becomes U+2581 ("\xe2\x96\x81");
 *   4. SentencePiece BPE over the UTF-8 characters (sd_spm_tokenize).
 * and for byte-level BPE vocabularies (as llama.cpp's llm_tokenizer_bpe):
 *   1. split the text on special tokens (sd_vocab_partition);
 *   2. each raw fragment: pre-tokenizer, byte mapping and merges
 *      (sd_bpe_tokenize); no prefix space.
 * BOS is prepended when asked; EOS is never appended (add_eos is loaded but
 * not applied, for both tokenizers).
 */
#include "tokenizer/vocab.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ UTF-8 */

/* Classifies the UTF-8 sequence at s[0..n) (n >= 1). Returns its length
 * (1..4) if complete and valid; -1 if s is a valid but truncated prefix;
 * 0 if invalid, with *bad = length of the maximal invalid subpart (>= 1),
 * which is replaced by one U+FFFD. */
static int utf8_scan(const unsigned char *s, size_t n, int *bad) {
    unsigned c = s[0];
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    *bad = 1;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else {
        return 0;
    }
    for (int j = 1; j < need; j++) {
        if ((size_t)j >= n) return -1;
        unsigned b = s[j];
        unsigned l = j == 1 ? lo : 0x80, h = j == 1 ? hi : 0xBF;
        if (b < l || b > h) {
            *bad = j;
            return 0;
        }
    }
    return need;
}

int sd_utf8_valid_len(const unsigned char *s, size_t n) {
    int bad;
    if (!s || n == 0) return 0;
    int r = utf8_scan(s, n, &bad);
    return r > 0 ? r : 0;
}

/* ------------------------------------------------------------ SPM session */

typedef struct spm_sym {
    int32_t prev, next; /* neighbours in the chain, -1 at the ends */
    size_t off;         /* first byte in the text                  */
    size_t n;           /* bytes; 0 once merged into its left      */
} spm_sym;

typedef struct spm_bigram {
    int32_t left, right;
    float score;
    size_t size; /* bytes of left + right when queued */
} spm_bigram;

/* Heap order: higher score first, then the leftmost pair. */
static int bigram_better(const spm_bigram *a, const spm_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct spm_heap {
    spm_bigram *a; /* (cap) */
    size_t n, cap;
} spm_heap;

static void heap_push(spm_heap *h, spm_bigram x) {
    size_t i = h->n++; /* capacity reserved for every possible push */
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_better(&x, &h->a[p])) break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = x;
}

static spm_bigram heap_pop(spm_heap *h) {
    spm_bigram top = h->a[0], x = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bigram_better(&h->a[c + 1], &h->a[c])) c++;
        if (!bigram_better(&h->a[c], &x)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n) h->a[i] = x;
    return top;
}

/* Queues the pair (left, right) if their concatenation is a token. */
static void try_add_bigram(const sd_vocab *v, const char *text, const spm_sym *syms, spm_heap *h,
                           int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    size_t size = syms[left].n + syms[right].n;
    int32_t id = sd_vocab_find(v, text + syms[left].off, size);
    if (id < 0) return;
    heap_push(h, (spm_bigram){left, right, v->tokens[id].score, size});
}

/* Emits one final symbol: its token, else its bytes via byte fallback
 * (a byte with no token becomes UNK, or is dropped if there is no UNK). */
static void resegment(const sd_vocab *v, const char *text, const spm_sym *s, sd_tok_out *out) {
    int32_t id = sd_vocab_find(v, text + s->off, s->n);
    if (id >= 0) {
        sd_tok_out_push(out, id);
        return;
    }
    for (size_t j = 0; j < s->n; j++) {
        id = v->byte_token[(unsigned char)text[s->off + j]];
        if (id < 0) id = v->unk;
        if (id >= 0) sd_tok_out_push(out, id);
    }
}

sd_status sd_spm_tokenize(const sd_vocab *v, const char *text, size_t len, sd_tok_out *out) {
    if (len == 0) return SD_OK;
    spm_sym *syms = malloc(len * sizeof *syms);
    spm_heap h = {malloc(3 * len * sizeof *h.a), 0, 3 * len};
    if (!syms || !h.a) {
        free(syms);
        free(h.a);
        return SD_ERR_NOMEM;
    }
    /* split into UTF-8 characters; an invalid byte is a symbol of its own */
    int32_t n_sym = 0;
    for (size_t off = 0; off < len;) {
        int bad;
        int l = utf8_scan((const unsigned char *)text + off, len - off, &bad);
        size_t n = l > 0 ? (size_t)l : 1;
        syms[n_sym] = (spm_sym){n_sym - 1, off + n == len ? -1 : n_sym + 1, off, n};
        n_sym++;
        off += n;
    }
    for (int32_t i = 1; i < n_sym; i++) try_add_bigram(v, text, syms, &h, i - 1, i);
    /* merge the best pair until none is left; skip pairs made stale by an
     * earlier merge (a side emptied or grown) */
    while (h.n > 0) {
        spm_bigram b = heap_pop(&h);
        spm_sym *l = &syms[b.left], *r = &syms[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) syms[r->next].prev = b.left;
        try_add_bigram(v, text, syms, &h, l->prev, b.left);
        try_add_bigram(v, text, syms, &h, b.left, l->next);
    }
    for (int32_t i = 0; i != -1; i = syms[i].next) resegment(v, text, &syms[i], out);
    free(syms);
    free(h.a);
    return SD_OK;
}

/* ------------------------------------------------------------ sd_tokenize */

/* Writes (prefix ? " " : "") + text[0..len) into dst with every ' ' as
 * U+2581; dst holds 3 * (len + 1) bytes. Returns the bytes written. */
static size_t escape_spaces(char *dst, const char *text, size_t len, bool prefix) {
    size_t n = 0;
    if (prefix) {
        memcpy(dst, "\xe2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(dst + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            dst[n++] = text[i];
        }
    }
    return n;
}

/* SPM: special-token fragments, prefix space, escaping, BPE per fragment. */
static sd_status tokenize_spm(const sd_vocab *v, const char *text, size_t len, bool parse_special,
                              sd_tok_out *out) {
    sd_vocab_fragment *frags = NULL;
    size_t n_frag = 0;
    sd_status st = sd_vocab_partition(v, text, len, parse_special, &frags, &n_frag);
    if (st) return st;
    char *buf = n_frag ? malloc(3 * (len + 1)) : NULL;
    if (n_frag && !buf) st = SD_ERR_NOMEM;
    bool prev_special = true; /* the text start counts as "after a special" */
    for (size_t i = 0; !st && i < n_frag; i++) {
        if (frags[i].token >= 0) {
            sd_tok_out_push(out, frags[i].token);
            prev_special = true;
            continue;
        }
        size_t n = escape_spaces(buf, text + frags[i].offset, frags[i].len,
                                 v->add_space_prefix && prev_special);
        st = sd_spm_tokenize(v, buf, n, out);
        prev_special = false;
    }
    free(buf);
    free(frags);
    return st;
}

/* Byte-level BPE: special-token fragments, then BPE per raw fragment. */
static sd_status tokenize_bpe(const sd_vocab *v, const char *text, size_t len, bool parse_special,
                              sd_tok_out *out) {
    sd_vocab_fragment *frags = NULL;
    size_t n_frag = 0;
    sd_status st = sd_vocab_partition(v, text, len, parse_special, &frags, &n_frag);
    for (size_t i = 0; !st && i < n_frag; i++) {
        if (frags[i].token >= 0) sd_tok_out_push(out, frags[i].token);
        else st = sd_bpe_tokenize(v, text + frags[i].offset, frags[i].len, out);
    }
    free(frags);
    return st;
}

int sd_tokenize(const sd_vocab *vocab, const char *text, size_t len, int32_t *ids, int max_ids,
                bool add_bos, bool parse_special) {
    if (!vocab || !text || max_ids < 0 || (!ids && max_ids > 0)) return SD_ERR_INVALID_ARG;
    if (len > (size_t)INT32_MAX / 8) return SD_ERR_INVALID_ARG; /* counts stay in int */
    sd_tok_out out = {ids, max_ids, 0};
    if (add_bos) {
        if (vocab->bos < 0) return SD_ERR_INVALID_ARG;
        sd_tok_out_push(&out, vocab->bos);
    }
    sd_status st;
    switch (vocab->type) {
    case SD_VOCAB_SPM:
        st = tokenize_spm(vocab, text, len, parse_special, &out);
        break;
    case SD_VOCAB_BPE:
        st = tokenize_bpe(vocab, text, len, parse_special, &out);
        break;
    default:
        st = SD_ERR_UNSUPPORTED;
        break;
    }
    if (st) return st;
    return (int)out.n;
}

/* ------------------------------------------------------------- to_piece */

/* GPT-2 byte-level BPE: the byte a code point stands for, or -1. Bytes
 * '!'..'~', 0xA1..0xAC and 0xAE..0xFF are themselves; the other 68 bytes
 * map in order to U+0100.. . */
static int gpt2_cp_to_byte(uint32_t cp) {
    bool self = (cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF);
    if (self) return (int)cp;
    if (cp < 0x100 || cp >= 0x100 + 68) return -1;
    uint32_t k = cp - 0x100;
    for (int b = 0; b < 256; b++) {
        bool bs = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        if (!bs && k-- == 0) return b;
    }
    return -1;
}

/* Decodes a byte-level BPE token text into dst (at most len bytes). */
static size_t gpt2_decode(char *dst, const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int bad, l = utf8_scan((const unsigned char *)s + i, len - i, &bad);
        if (l <= 0) { /* not valid UTF-8: copy the byte through */
            dst[n++] = s[i++];
            continue;
        }
        const unsigned char *u = (const unsigned char *)s + i;
        uint32_t cp = l == 1 ? u[0]
                    : l == 2 ? ((u[0] & 0x1Fu) << 6) | (u[1] & 0x3Fu)
                    : l == 3 ? ((u[0] & 0x0Fu) << 12) | ((u[1] & 0x3Fu) << 6) | (u[2] & 0x3Fu)
                             : ((u[0] & 0x07u) << 18) | ((u[1] & 0x3Fu) << 12) |
                                   ((u[2] & 0x3Fu) << 6) | (u[3] & 0x3Fu);
        int b = gpt2_cp_to_byte(cp);
        if (b >= 0) {
            dst[n++] = (char)b;
        } else {
            memcpy(dst + n, u, (size_t)l);
            n += (size_t)l;
        }
        i += (size_t)l;
    }
    return n;
}

/* Computes the piece of token id into dst (capacity >= token len + 8).
 * Returns its length. */
static size_t piece_of(const sd_vocab *v, int32_t id, char *dst) {
    const sd_vocab_token *t = &v->tokens[id];
    switch (t->type) {
    case SD_TOKEN_CONTROL:
    case SD_TOKEN_UNUSED:
        return 0;
    case SD_TOKEN_UNKNOWN:
        memcpy(dst, " \xe2\x81\x87 ", 5); /* " ⁇ " as SentencePiece prints UNK */
        return 5;
    case SD_TOKEN_USER_DEFINED:
        memcpy(dst, t->text, t->len); /* as is, like llama.cpp */
        return t->len;
    case SD_TOKEN_BYTE:
        if (t->byte >= 0) {
            dst[0] = (char)t->byte;
            return 1;
        }
        break;
    default:
        break;
    }
    if (v->type == SD_VOCAB_BPE) return gpt2_decode(dst, t->text, t->len);
    size_t n = 0;
    for (uint32_t i = 0; i < t->len;) {
        if (i + 3 <= t->len && memcmp(t->text + i, "\xe2\x96\x81", 3) == 0) {
            dst[n++] = ' ';
            i += 3;
        } else {
            dst[n++] = t->text[i++];
        }
    }
    return n;
}

int sd_token_to_piece(const sd_vocab *vocab, int32_t id, char *buf, int size) {
    if (!vocab || id < 0 || id >= vocab->n_tokens || size < 0 || (!buf && size > 0))
        return SD_ERR_INVALID_ARG;
    char small[256];
    size_t cap = (size_t)vocab->tokens[id].len + 8;
    char *tmp = cap <= sizeof small ? small : malloc(cap);
    if (!tmp) return SD_ERR_NOMEM;
    size_t n = piece_of(vocab, id, tmp);
    if (n <= (size_t)size && n) memcpy(buf, tmp, n);
    if (tmp != small) free(tmp);
    return (int)n;
}

/* ------------------------------------------------------------ detokenizer */

struct sd_detok {
    const sd_vocab *vocab;
    unsigned char tail[4]; /* a valid but incomplete UTF-8 prefix (<= 3 bytes) */
    int tail_len;
    char *q;               /* complete UTF-8 not yet handed out: q[q_off..q_len) */
    size_t q_off, q_len, q_cap;
};

sd_detok *sd_detok_new(const sd_vocab *vocab) {
    if (!vocab) return NULL;
    sd_detok *d = calloc(1, sizeof *d);
    if (d) d->vocab = vocab;
    return d;
}

void sd_detok_free(sd_detok *d) {
    if (!d) return;
    free(d->q);
    free(d);
}

/* Makes room for extra more bytes at the end of the queue. */
static bool queue_reserve(sd_detok *d, size_t extra) {
    if (d->q_off > 0) {
        memmove(d->q, d->q + d->q_off, d->q_len - d->q_off);
        d->q_len -= d->q_off;
        d->q_off = 0;
    }
    if (d->q_len + extra <= d->q_cap) return true;
    size_t cap = d->q_cap ? d->q_cap : 64;
    while (cap < d->q_len + extra) cap *= 2;
    char *q = realloc(d->q, cap);
    if (!q) return false;
    d->q = q;
    d->q_cap = cap;
    return true;
}

/* Appends bytes to the queue: complete valid sequences as they are, invalid
 * subparts as U+FFFD; a valid incomplete tail is kept in d->tail. The queue
 * has room for 3 * n bytes. */
static void detok_feed(sd_detok *d, const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        int bad, l = utf8_scan(s + i, n - i, &bad);
        if (l > 0) {
            memcpy(d->q + d->q_len, s + i, (size_t)l);
            d->q_len += (size_t)l;
            i += (size_t)l;
        } else if (l < 0) {
            d->tail_len = (int)(n - i);
            memcpy(d->tail, s + i, n - i);
            return;
        } else {
            memcpy(d->q + d->q_len, "\xef\xbf\xbd", 3);
            d->q_len += 3;
            i += (size_t)bad;
        }
    }
}

/* Hands out queued text: as much as fits in out_size - 1 bytes, cut at a
 * character boundary, then NUL. Returns the bytes written. */
static int detok_drain(sd_detok *d, char *out, int out_size) {
    if (out_size <= 0) return 0;
    size_t avail = d->q_len - d->q_off, n = avail;
    if (n > (size_t)out_size - 1) {
        n = (size_t)out_size - 1;
        while (n > 0 && ((unsigned char)d->q[d->q_off + n] & 0xC0) == 0x80) n--;
    }
    if (n) memcpy(out, d->q + d->q_off, n);
    out[n] = '\0';
    d->q_off += n;
    if (d->q_off == d->q_len) d->q_off = d->q_len = 0;
    return (int)n;
}

/* If out is too small for everything that became complete, the rest stays
 * queued and comes out first on the next push or flush. */
int sd_detok_push(sd_detok *d, int32_t id, char *out, int out_size) {
    if (!d || out_size < 0 || (!out && out_size > 0)) return SD_ERR_INVALID_ARG;
    const sd_vocab *v = d->vocab;
    if (id < 0 || id >= v->n_tokens) return SD_ERR_INVALID_ARG;
    char small[256];
    size_t cap = (size_t)d->tail_len + v->tokens[id].len + 8;
    char *buf = cap <= sizeof small ? small : malloc(cap);
    if (!buf || !queue_reserve(d, 3 * cap)) {
        if (buf != small) free(buf);
        return SD_ERR_NOMEM;
    }
    memcpy(buf, d->tail, (size_t)d->tail_len);
    size_t n = (size_t)d->tail_len + piece_of(v, id, buf + d->tail_len);
    d->tail_len = 0;
    detok_feed(d, (const unsigned char *)buf, n);
    if (buf != small) free(buf);
    return detok_drain(d, out, out_size);
}

/* Call until it returns 0 if out may be smaller than the queued text. */
int sd_detok_flush(sd_detok *d, char *out, int out_size) {
    if (!d || out_size < 0 || (!out && out_size > 0)) return SD_ERR_INVALID_ARG;
    if (d->tail_len > 0) {
        if (!queue_reserve(d, 3)) return SD_ERR_NOMEM;
        memcpy(d->q + d->q_len, "\xef\xbf\xbd", 3);
        d->q_len += 3;
        d->tail_len = 0;
    }
    return detok_drain(d, out, out_size);
}
