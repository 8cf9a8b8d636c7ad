/*
 * draft_xtok.c - `draft-xtok`: a draft model whose vocabulary differs from
 * the target's (universal assisted decoding, as Hugging Face transformers'
 * AssistedCandidateGeneratorDifferentTokenizers). Text is the common
 * currency between the two vocabularies.
 *
 * State (all sized by the history, freed with the drafter):
 *   u      the text of the accepted target history (prompt + accepted
 *          tokens): the pieces concatenated, SentencePiece's dummy-prefix
 *          space of the first piece removed, so u is the text as written;
 *   tids   (n_t) the target ids u was built from, tend (n_t) u's length
 *          after each of them;
 *   dtok   (n_d) the draft-vocabulary tokenization of u (the draft's BOS
 *          first when it adds one), dend (n_d) u's length after each;
 *   kvtok  (n_kv) the draft tokens whose KV cells are in the draft context.
 *
 * accept: the new target tokens' pieces are appended to u; the draft tokens
 * that end in the last LOOKBEHIND tokens before the old end of u are
 * dropped and that tail of u is tokenized again with the draft vocabulary
 * (token boundaries near the join settle); the draft cache is truncated to
 * the longest common prefix of kvtok and dtok. draft: the rest of dtok is
 * decoded, then the draft model extends its context greedily while its top
 * probability >= p_min. The draft text is tokenized with the target
 * vocabulary (after each draft token once the draft should have text for
 * max + 1 target tokens, by the measured draft tokens per target token,
 * and when it stops) IN CONTEXT: from a boundary b, a word start
 * among the last accepted target tokens, through the draft text. When that
 * re-tokenization reproduces the accepted ids[b..n) exactly, the tokens
 * after them continue the target history; otherwise the last accepted
 * token(s) would merge with the new text (the target already committed to
 * another split), and the draft text is tokenized on its own. Either way
 * only target tokens that extend ids[0..n) are proposed. The last target
 * token may still grow with text the draft has not produced yet (and text
 * is cut after its last complete UTF-8 character), so the drafter
 * drafts until it has max + 1 target tokens and proposes max; when the draft
 * stops early (p_min) it proposes what it has; when the draft model ends its
 * text (an end-of-generation token) also the target's EOS.
 *
 * No draft distribution (has_q false): every proposal is one-hot, which
 * the greedy and the speculative-sampling verifiers both treat losslessly;
 * the draft's argmax is proposed also when the target samples.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "speculative/drafter.h"
#include "tokenizer/vocab.h"

enum {
    XT_LOOKBEHIND = 4,   /* draft tokens re-tokenized before the join        */
    XT_BOUNDARY_MAX = 16 /* target tokens searched back for a word start     */
};
#define XT_MAX_TEXT ((size_t)1 << 28) /* bytes of u and of scratch texts: offsets
                                         and 3 tokens per byte fit int32 */

typedef struct ivec {
    int32_t *v;
    size_t n, cap;
} ivec;

typedef struct cbuf {
    char *v;
    size_t n, cap;
} cbuf;

static bool ivec_reserve(ivec *a, size_t n) {
    if (n <= a->cap) return true;
    size_t cap = a->cap ? a->cap : 64;
    while (cap < n) cap *= 2;
    if (cap > ((size_t)1 << 31)) return false;
    int32_t *v = realloc(a->v, cap * sizeof *v);
    if (!v) return false;
    a->v = v;
    a->cap = cap;
    return true;
}

static bool ivec_push(ivec *a, int32_t x) {
    if (!ivec_reserve(a, a->n + 1)) return false;
    a->v[a->n++] = x;
    return true;
}

static bool cbuf_reserve(cbuf *b, size_t n) {
    if (n <= b->cap) return true;
    if (n > XT_MAX_TEXT) return false;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < n) cap *= 2;
    char *v = realloc(b->v, cap);
    if (!v) return false;
    b->v = v;
    b->cap = cap;
    return true;
}

static bool cbuf_append(cbuf *b, const char *s, size_t n) {
    if (!cbuf_reserve(b, b->n + n)) return false;
    if (n) memcpy(b->v + b->n, s, n);
    b->n += n;
    return true;
}

/* Appends the piece of token id to b; returns its length or a negative
 * sd_status. */
static int append_piece(cbuf *b, const sd_vocab *v, int32_t id) {
    int m = sd_token_to_piece(v, id, NULL, 0);
    if (m <= 0) return m;
    if (!cbuf_reserve(b, b->n + (size_t)m)) return SD_ERR_NOMEM;
    int r = sd_token_to_piece(v, id, b->v + b->n, m);
    if (r != m) return r < 0 ? r : SD_ERR_INVALID_ARG;
    b->n += (size_t)m;
    return m;
}

/* Length of s[0..n) without a trailing incomplete UTF-8 sequence (a lead
 * byte followed by fewer continuation bytes than it announces). */
static size_t utf8_complete_len(const char *s, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned c = (unsigned char)s[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte */
        size_t need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
        return c >= 0xC2 && c <= 0xF4 && back < need ? n - back : n;
    }
    return n;
}

/* Tokenizes text[0..len) as a continuation with vocabulary v into out
 * (replacing its contents): no BOS; SentencePiece's dummy-prefix space only
 * when prefix (the text starts the sequence); user-defined tokens are
 * matched, control tokens are not parsed. esc: scratch for escaped text. */
static sd_status xt_tokenize(const sd_vocab *v, const char *text, size_t len, bool prefix, ivec *out, cbuf *esc) {
    out->n = 0;
    if (len == 0) return SD_OK;
    if (len > XT_MAX_TEXT) return SD_ERR_INVALID_ARG;
    sd_vocab_fragment *frags = NULL;
    size_t n_frag = 0;
    sd_status st = sd_vocab_partition(v, text, len, false, &frags, &n_frag);
    if (st != SD_OK) return st;
    /* SPM: at most one token per (escaped) byte; BPE: an invalid byte may
     * become U+FFFD's tokens (3 bytes): 3 per byte bounds both */
    size_t cap = 3 * len + 8;
    if (!ivec_reserve(out, cap) || (v->type == SD_VOCAB_SPM && !cbuf_reserve(esc, 3 * (len + 1)))) {
        free(frags);
        return SD_ERR_NOMEM;
    }
    sd_tok_out o = {out->v, (int)cap, 0};
    for (size_t i = 0; st == SD_OK && i < n_frag; i++) {
        const sd_vocab_fragment *f = &frags[i];
        if (f->token >= 0) {
            sd_tok_out_push(&o, f->token);
        } else if (v->type == SD_VOCAB_SPM) {
            /* ' ' -> U+2581, plus the dummy prefix at the very start */
            size_t n = 0;
            if (prefix && f->offset == 0) {
                memcpy(esc->v, "\xe2\x96\x81", 3);
                n = 3;
            }
            for (size_t j = 0; j < f->len; j++) {
                char c = text[f->offset + j];
                if (c == ' ') {
                    memcpy(esc->v + n, "\xe2\x96\x81", 3);
                    n += 3;
                } else {
                    esc->v[n++] = c;
                }
            }
            st = sd_spm_tokenize(v, esc->v, n, &o);
        } else if (v->type == SD_VOCAB_BPE) {
            st = sd_bpe_tokenize(v, text + f->offset, f->len, &o);
        } else {
            st = SD_ERR_UNSUPPORTED;
        }
    }
    free(frags);
    if (st != SD_OK) return st;
    if (o.n > (int64_t)cap) return SD_ERR_NOMEM; /* cannot happen: the bound above */
    out->n = (size_t)o.n;
    return SD_OK;
}

typedef struct xt_state {
    const sd_model *draft;
    const sd_vocab *tv, *dv;  /* target / draft vocabularies               */
    sd_ctx *ctx;              /* the draft model's context                 */
    int n_ctx;
    float p_min;
    int Vd;                   /* draft vocabulary size                     */
    bool t_prefix, d_prefix;  /* SPM dummy-prefix space (add_space_prefix) */
    int32_t t_eos;

    /* target side: u built from tids */
    cbuf u;
    ivec tids, tend;
    long t_strip;             /* target token whose leading space was the
                                 dummy prefix (removed); -1: none yet      */
    /* draft side */
    ivec dtok, dend;
    size_t d_first;           /* 1 when dtok[0] is the draft's BOS        */
    size_t d_len;             /* bytes of u that dtok covers              */
    bool d_ready;             /* dtok holds at least the BOS policy       */
    ivec kvtok;               /* draft tokens in the draft context        */
    bool logits_ok;           /* the context's logits are kvtok's last's  */
    double d_per_t;           /* draft tokens per target token (smoothed) */
    bool full;                /* the draft history outgrew n_ctx: no drafts
                                 until the next begin                      */
    sd_status err;            /* a failure inside accept: rebuild next time */

    /* scratch */
    cbuf esc, tb, dtext, pc;
    ivec r, cand, tmp;
} xt_state;

static void xt_reset(xt_state *x) {
    x->u.n = 0;
    x->tids.n = x->tend.n = 0;
    x->t_strip = -1;
    x->dtok.n = x->dend.n = 0;
    x->d_first = 0;
    x->d_len = 0;
    x->d_ready = false;
    x->kvtok.n = 0;
    x->logits_ok = false;
    x->full = false;
    x->err = SD_OK;
    sd_ctx_kv_clear(x->ctx);
}

/* Drops draft tokens near the old end of u (< keep_limit bytes are
 * unchanged) and tokenizes the rest of u with the draft vocabulary. */
static sd_status retokenize_draft(xt_state *x, size_t keep_limit) {
    if (!x->d_ready) {
        x->dtok.n = x->dend.n = 0;
        x->d_first = 0;
        int32_t bos = sd_vocab_bos(x->dv);
        if (sd_vocab_add_bos(x->dv) && bos >= 0) {
            if (!ivec_push(&x->dtok, bos) || !ivec_push(&x->dend, 0)) return SD_ERR_NOMEM;
            x->d_first = 1;
        }
        x->d_ready = true;
        keep_limit = 0;
    }
    size_t c = x->d_first;
    while (c < x->dtok.n && (size_t)x->dend.v[c] < keep_limit) c++;
    c = c >= x->d_first + XT_LOOKBEHIND ? c - XT_LOOKBEHIND : x->d_first;
    /* tokens that end at the same offset (a run whose pieces did not
     * reproduce the text) stay together */
    while (c > x->d_first && c < x->dtok.n && x->dend.v[c] == x->dend.v[c - 1]) c++;
    size_t s = c > x->d_first ? (size_t)x->dend.v[c - 1] : 0;
    x->dtok.n = x->dend.n = c;
    const bool prefix = s == 0 && x->d_prefix;
    sd_status st = xt_tokenize(x->dv, x->u.v + s, x->u.n - s, prefix, &x->tmp, &x->esc);
    if (st != SD_OK) return st;
    if (!ivec_reserve(&x->dtok, c + x->tmp.n) || !ivec_reserve(&x->dend, c + x->tmp.n)) return SD_ERR_NOMEM;
    /* offsets from the pieces; the dummy prefix is not in u */
    size_t pos = s;
    bool strip = prefix;
    for (size_t i = 0; i < x->tmp.n; i++) {
        int32_t id = x->tmp.v[i];
        x->pc.n = 0;
        int m = append_piece(&x->pc, x->dv, id);
        if (m < 0) return (sd_status)m;
        if (strip && m > 0) {
            if (x->pc.v[0] == ' ') m--;
            strip = false;
        }
        pos += (size_t)m;
        x->dtok.v[x->dtok.n++] = id;
        x->dend.v[x->dend.n++] = (int32_t)(pos < x->u.n ? pos : x->u.n);
    }
    if (pos != x->u.n) /* pieces differ from the text (UNK...): no inner boundaries */
        for (size_t i = c; i < x->dend.n; i++) x->dend.v[i] = (int32_t)x->u.n;
    x->d_len = x->u.n;
    return SD_OK;
}

/* Brings u and dtok up to the history ids[0..n). */
static sd_status xt_sync(xt_state *x, const int32_t *ids, int n) {
    if (x->err != SD_OK) xt_reset(x);
    size_t lcp = 0, nt_old = x->tids.n;
    while (lcp < x->tids.n && lcp < (size_t)n && x->tids.v[lcp] == ids[lcp]) lcp++;
    if (lcp == nt_old && lcp == (size_t)n && x->d_ready) return SD_OK;
    if (lcp < x->tids.n) { /* the history changed: roll u back */
        x->tids.n = x->tend.n = lcp;
        x->u.n = lcp ? (size_t)x->tend.v[lcp - 1] : 0;
        if (x->t_strip >= (long)lcp) x->t_strip = -1;
    }
    const size_t old_len = x->u.n;
    for (size_t i = lcp; i < (size_t)n; i++) {
        size_t at = x->u.n;
        int m = append_piece(&x->u, x->tv, ids[i]);
        if (m < 0) return (sd_status)m;
        if (x->t_prefix && x->t_strip < 0 && m > 0) {
            if (x->u.v[at] == ' ') {
                memmove(x->u.v + at, x->u.v + at + 1, (size_t)m - 1);
                x->u.n--;
            }
            x->t_strip = (long)i;
        }
        if (!ivec_push(&x->tids, ids[i]) || !ivec_push(&x->tend, (int32_t)x->u.n)) return SD_ERR_NOMEM;
    }
    return retokenize_draft(x, old_len < x->d_len ? old_len : x->d_len);
}

/* Truncates the draft context to the longest common prefix of kvtok and
 * dtok; with decode, also decodes the rest of dtok so that the context's
 * logits follow dtok's last token. Sets x->full (and returns SD_OK) when
 * dtok does not fit. */
static sd_status xt_catch_up(xt_state *x, bool decode) {
    const size_t nd = x->dtok.n;
    size_t lcp = 0;
    while (lcp < x->kvtok.n && lcp < nd && x->kvtok.v[lcp] == x->dtok.v[lcp]) lcp++;
    if (lcp == nd && x->kvtok.n == nd && x->logits_ok) return SD_OK;
    if (nd == 0) return SD_OK; /* nothing to condition on (no BOS, no text) */
    if (lcp >= nd) lcp = nd - 1; /* re-decode the last token for its logits */
    if (lcp < x->kvtok.n) {
        sd_status st = sd_ctx_kv_truncate(x->ctx, (int)lcp);
        if (st != SD_OK) return st;
        x->kvtok.n = lcp;
        x->logits_ok = false;
    }
    if (!decode) return SD_OK;
    if (nd + 1 >= (size_t)x->n_ctx) {
        x->full = true;
        return SD_OK;
    }
    sd_batch b = sd_batch_simple(x->dtok.v + lcp, (int32_t)(nd - lcp));
    sd_status st = sd_ctx_decode(x->ctx, &b);
    if (st != SD_OK) return st;
    if (!ivec_reserve(&x->kvtok, nd)) return SD_ERR_NOMEM;
    memcpy(x->kvtok.v + lcp, x->dtok.v + lcp, (nd - lcp) * sizeof *x->kvtok.v);
    x->kvtok.n = nd;
    x->logits_ok = true;
    return SD_OK;
}

/* The re-tokenization boundary: the latest word start (a token whose text
 * begins with blank or follows a newline) among the last XT_BOUNDARY_MAX
 * accepted target tokens, else 4 tokens back; never at or before a token
 * without text (BOS, control). n when the last token has no text. */
static size_t target_boundary(const xt_state *x, size_t n) {
    size_t lo = n > XT_BOUNDARY_MAX ? n - XT_BOUNDARY_MAX : 0, wall = 0;
    for (size_t i = n; i-- > lo;) {
        size_t ts = i ? (size_t)x->tend.v[i - 1] : 0, te = (size_t)x->tend.v[i];
        if (te == ts && x->t_strip != (long)i) { /* no text: a wall */
            wall = i + 1;
            break;
        }
        if (ts == 0) return i;
        char c0 = x->u.v[ts], cp = x->u.v[ts - 1];
        if (c0 == ' ' || c0 == '\n' || c0 == '\t' || cp == '\n') return i;
    }
    size_t b = n >= 4 ? n - 4 : 0;
    return b > wall ? b : wall;
}

/* Target tokens continuing ids[0..n) for the text u + dtext[0..len), into
 * x->cand (b: boundary, ts: its offset in u). */
static sd_status target_candidates(xt_state *x, const int32_t *ids, size_t n, size_t b, size_t ts, size_t len) {
    x->tb.n = 0;
    if (!cbuf_append(&x->tb, x->u.v + ts, x->u.n - ts) || !cbuf_append(&x->tb, x->dtext.v, len))
        return SD_ERR_NOMEM;
    sd_status st = xt_tokenize(x->tv, x->tb.v, x->tb.n, ts == 0 && x->t_prefix, &x->r, &x->esc);
    if (st != SD_OK) return st;
    const size_t m = n - b; /* the accepted tail the re-tokenization must reproduce */
    if (x->r.n >= m && (m == 0 || memcmp(x->r.v, ids + b, m * sizeof *ids) == 0)) {
        if (!ivec_reserve(&x->cand, x->r.n - m)) return SD_ERR_NOMEM;
        memcpy(x->cand.v, x->r.v + m, (x->r.n - m) * sizeof *x->r.v);
        x->cand.n = x->r.n - m;
        return SD_OK;
    }
    /* the accepted tokens would merge with the new text: continue after
     * them with the draft text on its own */
    return xt_tokenize(x->tv, x->dtext.v, len, x->u.n == 0 && x->t_prefix, &x->cand, &x->esc);
}

/* Probability of the argmax under softmax(logits). */
static float top_prob(const sd_kernels *k, const float *l, int V, int32_t *arg) {
    int32_t a = sd_argmax(l, V);
    *arg = a;
    return 1.0f / k->sum_exp(l, V, l[a]);
}

static sd_status xt_begin(void *self, const int32_t *ids, int n) {
    xt_state *x = self;
    xt_reset(x);
    if (!ids || n < 0) return SD_ERR_INVALID_ARG;
    sd_status st = xt_sync(x, ids, n);
    if (st == SD_OK) st = xt_catch_up(x, true);
    if (st != SD_OK) x->err = st;
    return st;
}

/* The drafting loop after xt_draft's catch-up (see the file comment). */
static sd_status draft_loop(xt_state *x, const int32_t *ids, size_t n, int max, sd_draft *out) {
    const size_t b = target_boundary(x, n);
    const size_t ts = b ? (size_t)x->tend.v[b - 1] : 0;
    /* draft tokens this step: room for max + 1 target tokens when the
     * draft's tokens are shorter, within the draft context */
    long steps = (long)(2.0 * (max + 1) * (x->d_per_t > 1.0 ? x->d_per_t : 1.0)) + 8;
    long room = (long)x->n_ctx - (long)x->kvtok.n - 1;
    if (steps > room) steps = room;
    x->dtext.n = 0;
    x->cand.n = 0;
    bool eog = false;
    sd_status st;
    /* re-tokenizing costs about as much as a draft token: start once the
     * draft should have enough text for max + 1 target tokens (by the
     * measured draft tokens per target token) */
    const double need = (double)(max + 1) * x->d_per_t;
    size_t done = 0; /* dtext bytes the candidates were made from */
    long n_dt = 0;   /* draft tokens with text */
    for (long i = 0; i < steps; i++) {
        int32_t tok;
        float pt = top_prob(x->draft->kern, sd_ctx_logits(x->ctx, 0), x->Vd, &tok);
        if (pt < x->p_min) break;
        if (sd_vocab_is_eog(x->dv, tok)) {
            eog = true;
            break;
        }
        size_t at = x->dtext.n;
        int m = append_piece(&x->dtext, x->dv, tok);
        if (m < 0) return (sd_status)m;
        if (x->u.n == 0 && at == 0 && m > 0 && x->d_prefix && x->dtext.v[0] == ' ') { /* the draft's dummy prefix */
            memmove(x->dtext.v, x->dtext.v + 1, (size_t)m - 1);
            x->dtext.n--;
        }
        if (m > 0) n_dt++;
        if (m > 0 && (double)n_dt >= need && utf8_complete_len(x->dtext.v, x->dtext.n) == x->dtext.n) {
            if ((st = target_candidates(x, ids, n, b, ts, x->dtext.n)) != SD_OK) return st;
            done = x->dtext.n;
            if (x->cand.n > (size_t)max) break;
        }
        if (i + 1 == steps) break;
        sd_batch bt = sd_batch_simple(&tok, 1);
        if ((st = sd_ctx_decode(x->ctx, &bt)) != SD_OK) return st;
        if (!ivec_push(&x->kvtok, tok)) return SD_ERR_NOMEM;
    }
    const size_t full = utf8_complete_len(x->dtext.v, x->dtext.n);
    if (full > done && (st = target_candidates(x, ids, n, b, ts, full)) != SD_OK) return st;
    if (x->cand.n >= 2 && n_dt > 0) { /* draft tokens per target token, smoothed */
        double r = (double)n_dt / (double)x->cand.n;
        r = r < 0.25 ? 0.25 : r > 4.0 ? 4.0 : r;
        x->d_per_t = 0.75 * x->d_per_t + 0.25 * r;
    }
    /* max + 1 candidates: the first max are settled. Fewer (the draft
     * stopped): all of them, the last possibly unsettled (it costs one
     * verified row when wrong, and is right whenever the draft's own last
     * token ended where the target's does, always for equal vocabularies) */
    size_t np = x->cand.n < (size_t)max ? x->cand.n : (size_t)max;
    for (size_t i = 0; i < np; i++) out->tok[i] = x->cand.v[i];
    if (eog && np < (size_t)max && x->t_eos >= 0) out->tok[np++] = x->t_eos;
    out->n = (int)np;
    return SD_OK;
}

static sd_status xt_draft(void *self, const int32_t *ids, int n, int max, const sd_draft_env *env,
                          sd_draft *out) {
    xt_state *x = self;
    (void)env;
    out->n = 0;
    out->has_q = false;
    if (max > SD_MAX_DRAFT) max = SD_MAX_DRAFT;
    if (max <= 0 || n < 1 || !ids) return SD_OK;
    sd_status st = xt_sync(x, ids, n);
    if (st == SD_OK && !x->full) st = xt_catch_up(x, true);
    if (st == SD_OK && !x->full && x->logits_ok) st = draft_loop(x, ids, (size_t)n, max, out);
    if (st != SD_OK) {
        out->n = 0;
        x->err = st; /* start over on the next call */
    }
    return st;
}

static void xt_accept(void *self, const int32_t *ids, int n, int n_accepted) {
    xt_state *x = self;
    (void)n_accepted;
    sd_status st = xt_sync(x, ids, n);
    if (st == SD_OK) st = xt_catch_up(x, false); /* decoding waits for the next draft */
    if (st != SD_OK) x->err = st;
}

static void xt_end(void *self) { (void)self; }

static void xt_free(void *self) {
    xt_state *x = self;
    if (!x) return;
    sd_ctx_free(x->ctx);
    free(x->u.v);
    free(x->tids.v);
    free(x->tend.v);
    free(x->dtok.v);
    free(x->dend.v);
    free(x->kvtok.v);
    free(x->esc.v);
    free(x->tb.v);
    free(x->dtext.v);
    free(x->pc.v);
    free(x->r.v);
    free(x->cand.v);
    free(x->tmp.v);
    free(x);
}

static const sd_drafter_ops xt_ops = {xt_begin, xt_draft, xt_accept, xt_end, xt_free, NULL};

sd_status sd_drafter_new_xtok(const sd_model *draft, const sd_model *target, sd_threadpool *pool, int n_ctx,
                              float p_min, sd_drafter **out, char *err, size_t err_size) {
    if (out) *out = NULL;
    if (!draft || !target || !out || n_ctx < 0 || !(p_min >= 0.0f && p_min <= 1.0f)) return SD_ERR_INVALID_ARG;
    const sd_vocab *tv = sd_model_vocab(target), *dv = sd_model_vocab(draft);
    if (!tv || !dv) return SD_ERR_INVALID_ARG;
    if ((tv->type != SD_VOCAB_SPM && tv->type != SD_VOCAB_BPE) || (dv->type != SD_VOCAB_SPM && dv->type != SD_VOCAB_BPE)) {
        if (err && err_size) snprintf(err, err_size, "draft-xtok: unsupported tokenizer type");
        return SD_ERR_UNSUPPORTED;
    }
    xt_state *x = calloc(1, sizeof *x);
    if (!x) return SD_ERR_NOMEM;
    x->draft = draft;
    x->tv = tv;
    x->dv = dv;
    x->p_min = p_min;
    x->Vd = sd_vocab_n_tokens(dv);
    x->t_prefix = tv->type == SD_VOCAB_SPM && tv->add_space_prefix;
    x->d_prefix = dv->type == SD_VOCAB_SPM && dv->add_space_prefix;
    x->t_eos = sd_vocab_eos(tv);
    x->t_strip = -1;
    x->d_per_t = 1.0;
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = n_ctx;
    cp.pool = pool;
    sd_status st = sd_ctx_new(draft, &cp, &x->ctx);
    if (st != SD_OK) {
        if (err && err_size)
            snprintf(err, err_size, st == SD_ERR_UNSUPPORTED ? "draft-xtok: the draft model has no weights"
                                                            : "draft-xtok: cannot create the draft context");
        xt_free(x);
        return st;
    }
    x->n_ctx = sd_ctx_n_ctx(x->ctx);
    *out = sd_drafter_make("draft-xtok", &xt_ops, x);
    return *out ? SD_OK : SD_ERR_NOMEM;
}
