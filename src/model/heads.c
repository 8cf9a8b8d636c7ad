/*
 * heads.c - draft heads beside their target: loading and validation
 * (GGUF architecture `specdec-heads`), the heads' numerics (heads.h) and
 * the greedy probe of the reference file.
 *
 * The file is hostile input: sd_gguf_open validates its layout; here every
 * hyper-parameter is range-checked, every tensor must have exactly the shape
 * the target's width implies and a supported type, and bias / norm vectors
 * must be finite. A mismatch with the target is refused with a message that
 * names the tensor or key.
 */
#include "err.h"
#include "model/heads.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/ctx.h"
#include "kernels/attn.h"
#include "compute/threadpool.h"

void sd_heads_free(sd_heads *h) {
    if (!h) return;
    for (int i = 0; i < h->n_owned; i++) free(h->owned[i]);
    sd_gguf_close(h->gguf);
    free(h);
}

/* ------------------------------------------------------------ loading */

/* The tensor `name` with exactly ne = {cols, rows} (rows 0: a vector of
 * cols) and a type the kernels support (F32, F16, Q8_0). */
static sd_status find(sd_heads *h, const char *name, int64_t cols, int64_t rows, const sd_gguf_tensor **out,
                      char *err, size_t n) {
    const sd_gguf_tensor *t = sd_gguf_find_tensor(h->gguf, name);
    *out = NULL;
    if (!t) {
        sd_set_err(err, n, "%s: missing tensor %s", sd_gguf_name(h->gguf), name);
        return SD_ERR_FORMAT;
    }
    bool ok = t->ne[0] == cols && t->ne[1] == (rows ? rows : 1) && t->ne[2] == 1 && t->ne[3] == 1;
    if (!ok) {
        sd_set_err(err, n, "%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld] for the target's "
                        "width %d",
                sd_gguf_name(h->gguf), name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                (long long)t->ne[3], (long long)cols, (long long)(rows ? rows : 1), h->n_embd);
        return SD_ERR_FORMAT;
    }
    /* the target's weight types, all through sd_weight_gemm */
    if (!sd_weight_type_ok(t->type) || sd_type_row_size(t->type, cols) == 0) {
        sd_set_err(err, n,
                   "%s: tensor %s: type %s is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, "
                   "Q5_K, Q6_K with rows of whole blocks)",
                   sd_gguf_name(h->gguf), name, sd_type_name(t->type) ? sd_type_name(t->type) : "?");
        return SD_ERR_UNSUPPORTED;
    }
    *out = t;
    return SD_OK;
}

/* A matrix (rows, cols). */
static sd_status bind_mat(sd_heads *h, const char *name, int64_t cols, int64_t rows, sd_weight *w, char *err,
                          size_t n) {
    const sd_gguf_tensor *t;
    memset(w, 0, sizeof *w);
    sd_status st = find(h, name, cols, rows, &t, err, n);
    if (st != SD_OK) return st;
    *w = (sd_weight){.data = t->data, .type = t->type, .rows = rows, .cols = cols,
                     .row_bytes = sd_type_row_size(t->type, cols)};
    h->bytes += w->row_bytes * (size_t)rows;
    /* a quantized matrix is packed for the target's table like the
     * target's own (a quantized heads file; F16/F32 get Q8_0 copies or
     * stay as they are) */
    if (h->n_owned + 1 > (int)(sizeof h->owned / sizeof h->owned[0])) return SD_ERR_NOMEM;
    void *owned = NULL;
    st = sd_weight_pack_copy(h->target->kern, w, &owned);
    if (owned) h->owned[h->n_owned++] = owned;
    return st;
}

/* A finite vector of len floats, as an owned F32 copy. */
static sd_status bind_vec(sd_heads *h, const char *name, int64_t len, const float **out, char *err, size_t n) {
    const sd_gguf_tensor *t;
    *out = NULL;
    sd_status st = find(h, name, len, 0, &t, err, n);
    if (st != SD_OK) return st;
    if (h->n_owned == (int)(sizeof h->owned / sizeof h->owned[0])) {
        sd_set_err(err, n, "%s: too many vectors", sd_gguf_name(h->gguf));
        return SD_ERR_FORMAT;
    }
    float *v = malloc((size_t)len * sizeof(float));
    if (!v) return SD_ERR_NOMEM;
    h->owned[h->n_owned++] = v;
    sd_weight w = {.data = t->data, .type = t->type, .rows = 1, .cols = len,
                   .row_bytes = sd_type_row_size(t->type, len)};
    sd_weight_get_row(&w, 0, v);
    for (int64_t i = 0; i < len; i++) {
        if (!isfinite(v[i])) {
            sd_set_err(err, n, "%s: tensor %s: non-finite value at %lld", sd_gguf_name(h->gguf), name, (long long)i);
            return SD_ERR_FORMAT;
        }
    }
    h->bytes += w.row_bytes;
    *out = v;
    return SD_OK;
}

/* *q = a Q8_0 copy of w owned by h (sd_weight_q8_copy) if w is F16, F32
 * or BF16, else w itself (a quantized target's Q6_K output or a Q4_K
 * heads file: a Q8_0 copy would only add bytes to every draft step); packed
 * for the target's table (sd_weight_pack_copy) like the target's own
 * weights. */
static sd_status quantize_copy(sd_heads *h, const sd_weight *w, sd_weight *q) {
    if (h->n_owned + 2 > (int)(sizeof h->owned / sizeof h->owned[0])) return SD_ERR_NOMEM;
    void *owned = NULL;
    const bool is_float = w->type == SD_TYPE_F16 || w->type == SD_TYPE_F32 || w->type == SD_TYPE_BF16;
    sd_status st = is_float ? sd_weight_q8_copy(w, q, &owned) : SD_OK;
    if (!is_float) *q = *w;
    if (owned) h->owned[h->n_owned++] = owned;
    if (st != SD_OK) return st;
    st = sd_weight_pack_copy(h->target->kern, q, &owned);
    if (owned) h->owned[h->n_owned++] = owned;
    return st;
}

/* The Q8_0 drafting copies (see heads.h). */
static sd_status make_q8(sd_heads *h) {
    sd_status st = quantize_copy(h, &h->target->output, &h->output_q8);
    if (st != SD_OK || !h->has_eagle) return st;
    const sd_layer *L = &h->eagle_layer;
    sd_layer *Q = &h->eagle_layer_q8;
    *Q = *L;
    if ((st = quantize_copy(h, &h->eagle_fc, &h->eagle_fc_q8)) || (st = quantize_copy(h, &L->wq, &Q->wq)) ||
        (st = quantize_copy(h, &L->wk, &Q->wk)) || (st = quantize_copy(h, &L->wv, &Q->wv)) ||
        (st = quantize_copy(h, &L->wo, &Q->wo)) || (st = quantize_copy(h, &L->w_gate, &Q->w_gate)) ||
        (st = quantize_copy(h, &L->w_up, &Q->w_up)) || (st = quantize_copy(h, &L->w_down, &Q->w_down)))
        return st;
    h->eagle_q8 = h->eagle;
    h->eagle_q8.layers = Q;
    h->eagle_q8.output = h->output_q8;
    return SD_OK;
}

/* EAGLE: hyper-parameters, eagle.fc and the block eagle.blk.0, bound into
 * the one-layer model h->eagle. */
static sd_status load_eagle(sd_heads *h, char *err, size_t n) {
    const sd_model *T = h->target;
    const int E = h->n_embd;
    int H, Hkv, F;
    float eps, base;
    sd_status st;
    if ((st = sd_gguf_get_int_in(h->gguf, "eagle.attention.head_count", true, 0, 1, 1024, &H, err, n)) ||
        (st = sd_gguf_get_int_in(h->gguf, "eagle.attention.head_count_kv", false, H, 1, 1024, &Hkv, err, n)) ||
        (st = sd_gguf_get_int_in(h->gguf, "eagle.feed_forward_length", true, 0, 1, 1 << 20, &F, err, n)) ||
        (st = sd_gguf_get_f32_in(h->gguf, "eagle.attention.layer_norm_rms_epsilon", 1e-5f, 0.0f, 1.0f, &eps, err, n)) ||
        (st = sd_gguf_get_f32_in(h->gguf, "eagle.rope.freq_base", 10000.0f, 1.0f, 1e12f, &base, err, n)))
        return st;
    if (E % H != 0 || H % Hkv != 0 || (E / H) % 2 != 0 || E / H > SD_ATTN_MAX_D || H / Hkv > SD_ATTN_MAX_REP) {
        sd_set_err(err, n, "%s: EAGLE heads %d / KV heads %d do not fit the width %d", sd_gguf_name(h->gguf), H, Hkv, E);
        return SD_ERR_FORMAT;
    }
    const int D = E / H, QD = H * D, KVD = Hkv * D;
    sd_layer *L = &h->eagle_layer;
    if ((st = bind_mat(h, "eagle.fc.weight", 2 * (int64_t)E, E, &h->eagle_fc, err, n)) ||
        (st = bind_vec(h, "eagle.fc.bias", E, &h->eagle_fc_b, err, n)) ||
        (st = bind_vec(h, "eagle.blk.0.attn_norm.weight", E, &L->attn_norm, err, n)) ||
        (st = bind_mat(h, "eagle.blk.0.attn_q.weight", E, QD, &L->wq, err, n)) ||
        (st = bind_mat(h, "eagle.blk.0.attn_k.weight", E, KVD, &L->wk, err, n)) ||
        (st = bind_mat(h, "eagle.blk.0.attn_v.weight", E, KVD, &L->wv, err, n)) ||
        (st = bind_mat(h, "eagle.blk.0.attn_output.weight", QD, E, &L->wo, err, n)) ||
        (st = bind_vec(h, "eagle.blk.0.ffn_norm.weight", E, &L->ffn_norm, err, n)) ||
        (st = bind_mat(h, "eagle.blk.0.ffn_gate.weight", E, F, &L->w_gate, err, n)) ||
        (st = bind_mat(h, "eagle.blk.0.ffn_up.weight", E, F, &L->w_up, err, n)) ||
        (st = bind_mat(h, "eagle.blk.0.ffn_down.weight", F, E, &L->w_down, err, n)))
        return st;
    sd_model *m = &h->eagle;
    snprintf(m->arch, sizeof m->arch, "llama");
    snprintf(m->name, sizeof m->name, "eagle");
    m->vocab = (sd_vocab *)T->vocab; /* borrowed; never freed through m */
    m->kern = T->kern;
    m->n_vocab = T->n_vocab;
    m->n_embd = E;
    m->n_layer = 1;
    m->n_head = H;
    m->n_head_kv = Hkv;
    m->head_dim = D;
    m->n_ff = F;
    m->n_rot = D;
    m->n_ctx_train = T->n_ctx_train + SD_MAX_DRAFT_POS;
    m->rope_base = base;
    m->rope_freqs = D == T->n_rot ? T->rope_freqs : NULL; /* the target's rope scaling */
    m->rope_freq_scale = T->rope_freq_scale;
    m->norm_eps = eps;
    m->rope_type = SD_ROPE_NORM;
    m->tok_embd = T->tok_embd;
    m->output_norm = T->output_norm;
    m->output = T->output;
    m->layers = L;
    h->has_eagle = true;
    return SD_OK;
}

static sd_status load(sd_heads *h, const char *path, char *err, size_t n) {
    sd_status st = sd_gguf_open(path, &h->gguf, err, n);
    if (st != SD_OK) return st;
    sd_gguf_str s;
    st = sd_gguf_get_str(h->gguf, "general.architecture", &s, err, n);
    if (st == SD_ERR_NOT_FOUND) {
        sd_set_err(err, n, "%s: no general.architecture (expected specdec-heads)", path);
        return SD_ERR_FORMAT;
    }
    if (st != SD_OK) return st;
    if (s.len != strlen("specdec-heads") || memcmp(s.ptr, "specdec-heads", s.len) != 0) {
        sd_set_err(err, n, "%s: architecture '%.*s' is not specdec-heads", path, (int)(s.len < 64 ? s.len : 64), s.ptr);
        return SD_ERR_FORMAT;
    }
    if (sd_gguf_get_str(h->gguf, "specdec-heads.target", &s, NULL, 0) == SD_OK) {
        size_t len = s.len < sizeof h->target_name - 1 ? (size_t)s.len : sizeof h->target_name - 1;
        memcpy(h->target_name, s.ptr, len);
    }
    int E;
    if ((st = sd_gguf_get_int_in(h->gguf, "specdec-heads.embedding_length", true, 0, 1, 1 << 16, &E, err, n))) return st;
    if (E != h->target->n_embd) {
        sd_set_err(err, n, "%s: heads of width %d do not fit the target's width %d", path, E, h->target->n_embd);
        return SD_ERR_MISMATCH;
    }
    h->n_embd = E;
    h->n_vocab = h->target->n_vocab;
    if ((st = sd_gguf_get_int_in(h->gguf, "medusa.head_count", false, 0, 0, SD_HEADS_MAX, &h->n_medusa, err, n)) ||
        (st = sd_gguf_get_int_in(h->gguf, "hydra.head_count", false, 0, 0, SD_HEADS_MAX, &h->n_hydra, err, n)))
        return st;
    char name[64];
    for (int k = 1; k <= h->n_medusa; k++) {
        snprintf(name, sizeof name, "medusa.%d.weight", k);
        if ((st = bind_mat(h, name, E, E, &h->medusa_w[k - 1], err, n))) return st;
        snprintf(name, sizeof name, "medusa.%d.bias", k);
        if ((st = bind_vec(h, name, E, &h->medusa_b[k - 1], err, n))) return st;
    }
    for (int k = 1; k <= h->n_hydra; k++) {
        snprintf(name, sizeof name, "hydra.%d.weight", k);
        if ((st = bind_mat(h, name, (int64_t)(k + 1) * E, E, &h->hydra_w[k - 1], err, n))) return st;
        snprintf(name, sizeof name, "hydra.%d.bias", k);
        if ((st = bind_vec(h, name, E, &h->hydra_b[k - 1], err, n))) return st;
    }
    if (sd_gguf_find_tensor(h->gguf, "eagle.fc.weight") || sd_gguf_find_key(h->gguf, "eagle.attention.head_count") >= 0)
        if ((st = load_eagle(h, err, n))) return st;
    if (h->n_medusa == 0 && h->n_hydra == 0 && !h->has_eagle) {
        sd_set_err(err, n, "%s: holds no heads (medusa.head_count, hydra.head_count, eagle.*)", path);
        return SD_ERR_FORMAT;
    }
    return make_q8(h);
}

sd_status sd_heads_load(const char *path, const sd_model *target, sd_heads **out, char *err, size_t err_size) {
    if (err && err_size) err[0] = 0;
    if (!out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    if (!path || !target) return SD_ERR_INVALID_ARG;
    if (target->vocab_only) {
        sd_set_err(err, err_size, "%s: the target is a vocabulary-only model", path);
        return SD_ERR_UNSUPPORTED;
    }
    sd_heads *h = calloc(1, sizeof *h);
    if (!h) return SD_ERR_NOMEM;
    h->target = target;
    sd_status st = load(h, path, err, err_size);
    if (st != SD_OK) {
        if (st == SD_ERR_NOMEM && err && err_size && !err[0]) sd_set_err(err, err_size, "%s: out of memory", path);
        sd_heads_free(h);
        return st;
    }
    *out = h;
    return SD_OK;
}

void sd_heads_get_info(const sd_heads *h, sd_heads_info *info) {
    if (!h || !info) return;
    memset(info, 0, sizeof *info);
    info->target_name = h->target_name;
    info->n_embd = h->n_embd;
    info->n_medusa = h->n_medusa;
    info->n_hydra = h->n_hydra;
    info->has_eagle = h->has_eagle;
    if (h->has_eagle) {
        info->eagle_n_head = h->eagle.n_head;
        info->eagle_n_head_kv = h->eagle.n_head_kv;
        info->eagle_n_ff = h->eagle.n_ff;
    }
    info->bytes = h->bytes;
}

/* ------------------------------------------------------------ numerics */

sd_status sd_heads_logits(const sd_heads *h, sd_threadpool *pool, bool q8, const float *z, int N, float *logits) {
    return sd_model_head_logits(h->target, pool, q8 ? &h->output_q8 : &h->target->output, z, N, logits,
                             (size_t)h->target->n_vocab);
}

static float silu(float a) { return a / (1.0f + expf(-a)); }

/* z = f + silu(t + b), rows of E; f rows at stride ldf. */
static void residual_silu(float *z, const float *t, const float *b, const float *f, size_t ldf, int N, int E) {
    for (int r = 0; r < N; r++)
        for (int e = 0; e < E; e++)
            z[(size_t)r * E + e] = f[(size_t)r * ldf + e] + silu(t[(size_t)r * E + e] + b[e]);
}

sd_status sd_heads_medusa(const sd_heads *h, sd_threadpool *pool, int k, const float *f, int N, float *z) {
    if (k < 1 || k > h->n_medusa) return SD_ERR_INVALID_ARG;
    const int E = h->n_embd;
    float *t = malloc((size_t)N * (size_t)E * sizeof(float));
    if (!t) return SD_ERR_NOMEM;
    sd_status st = sd_weight_gemm(h->target->kern, pool, &h->medusa_w[k - 1], f, N, t, (size_t)E);
    if (st == SD_OK) residual_silu(z, t, h->medusa_b[k - 1], f, (size_t)E, N, E);
    free(t);
    return st;
}

sd_status sd_heads_hydra(const sd_heads *h, sd_threadpool *pool, int k, const float *in, int N, float *z) {
    if (k < 1 || k > h->n_hydra) return SD_ERR_INVALID_ARG;
    const int E = h->n_embd;
    float *t = malloc((size_t)N * (size_t)E * sizeof(float));
    if (!t) return SD_ERR_NOMEM;
    sd_status st = sd_weight_gemm(h->target->kern, pool, &h->hydra_w[k - 1], in, N, t, (size_t)E);
    if (st == SD_OK) residual_silu(z, t, h->hydra_b[k - 1], in, (size_t)(k + 1) * E, N, E);
    free(t);
    return st;
}

void sd_heads_embed(const sd_heads *h, int32_t tok, float *out) {
    if (tok < 0 || tok >= h->n_vocab) {
        memset(out, 0, (size_t)h->n_embd * sizeof(float));
        return;
    }
    sd_weight_get_row(&h->target->tok_embd, tok, out);
}

sd_status sd_heads_eagle_fc(const sd_heads *h, sd_threadpool *pool, bool q8, const float *f, const int32_t *tok,
                            int N, float *g) {
    if (!h->has_eagle) return SD_ERR_UNSUPPORTED;
    if (N <= 0) return SD_OK;
    const int E = h->n_embd;
    float *cat = malloc((size_t)N * 2 * (size_t)E * sizeof(float)); /* (N, 2E) rows [f; E(tok)] */
    if (!cat) return SD_ERR_NOMEM;
    for (int r = 0; r < N; r++) {
        memcpy(cat + (size_t)r * 2 * E, f + (size_t)r * E, (size_t)E * sizeof(float));
        sd_heads_embed(h, tok[r], cat + (size_t)r * 2 * E + E);
    }
    sd_status st = sd_weight_gemm(h->target->kern, pool, q8 ? &h->eagle_fc_q8 : &h->eagle_fc, cat, N, g, (size_t)E);
    if (st == SD_OK)
        for (int r = 0; r < N; r++)
            for (int e = 0; e < E; e++) g[(size_t)r * E + e] += h->eagle_fc_b[e];
    free(cat);
    return st;
}

/* ------------------------------------------------------------ probe */

/* EAGLE's greedy chain: rows i = 0..n-1 of (f_i, x_{i+1}) with x_n = next,
 * then its own features and tokens. */
static sd_status probe_eagle(const sd_heads *h, sd_threadpool *pool, const float *feat, const int32_t *prompt, int n,
                             int32_t next, int n_chain, int32_t *chain, float *logits) {
    const int E = h->n_embd, V = h->n_vocab;
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = n + n_chain + 1;
    cp.pool = pool;
    sd_ctx *ectx = NULL;
    sd_status st = sd_ctx_new(&h->eagle, &cp, &ectx);
    if (st != SD_OK) return st;
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    float *g = malloc((size_t)n * (size_t)E * sizeof(float));
    float *fh = malloc((size_t)E * sizeof(float));
    if (!tok || !g || !fh) st = SD_ERR_NOMEM;
    if (st == SD_OK) {
        for (int i = 0; i < n; i++) tok[i] = i + 1 < n ? prompt[i + 1] : next;
        st = sd_heads_eagle_fc(h, pool, false, feat, tok, n, g);
    }
    sd_batch b = sd_batch_simple(NULL, n);
    b.embd = g;
    b.out_flags = SD_OUTPUT_HIDDEN;
    if (st == SD_OK) st = sd_ctx_decode(ectx, &b);
    for (int c = 0; c < n_chain && st == SD_OK; c++) {
        memcpy(fh, sd_ctx_hidden(ectx, 0), (size_t)E * sizeof(float));
        if ((st = sd_heads_logits(h, pool, false, fh, 1, logits)) != SD_OK) break;
        chain[c] = sd_argmax(logits, V);
        if (c + 1 == n_chain) break;
        if ((st = sd_heads_eagle_fc(h, pool, false, fh, &chain[c], 1, g)) != SD_OK) break;
        b = sd_batch_simple(NULL, 1);
        b.embd = g;
        b.out_flags = SD_OUTPUT_HIDDEN;
        st = sd_ctx_decode(ectx, &b);
    }
    free(tok);
    free(g);
    free(fh);
    sd_ctx_free(ectx);
    return st;
}

sd_status sd_heads_run_probe(const sd_heads *h, sd_ctx *ctx, const int32_t *prompt, int n, int n_chain,
                             sd_heads_probe *out) {
    if (!h || !ctx || !prompt || n < 1 || !out || n_chain < 1 || n_chain > SD_HEADS_MAX) return SD_ERR_INVALID_ARG;
    if (ctx->model != h->target) return SD_ERR_INVALID_ARG;
    memset(out, 0, sizeof *out);
    const int E = h->n_embd, V = h->n_vocab;
    sd_threadpool *pool = ctx->pool;
    float *feat = malloc((size_t)n * (size_t)E * sizeof(float));     /* (n, E) target features  */
    float *logits = malloc((size_t)SD_HEADS_MAX * (size_t)V * sizeof(float));
    float *z = malloc((size_t)SD_HEADS_MAX * (size_t)E * sizeof(float));
    float *in = malloc((size_t)(SD_HEADS_MAX + 2) * (size_t)E * sizeof(float)); /* Hydra: [f; E(x)..] */
    uint8_t *rows = malloc((size_t)n);
    sd_status st = feat && logits && z && in && rows ? SD_OK : SD_ERR_NOMEM;
    sd_ctx_kv_clear(ctx);
    if (st == SD_OK && n > 1) { /* features of every row; logits of the last only */
        memset(rows, 1, (size_t)n);
        sd_batch b = sd_batch_simple(prompt, n - 1);
        b.output = rows;
        b.out_flags = SD_OUTPUT_HIDDEN;
        if ((st = sd_ctx_decode(ctx, &b)) == SD_OK)
            for (int i = 0; i < n - 1; i++) memcpy(feat + (size_t)i * E, sd_ctx_hidden(ctx, i), (size_t)E * sizeof(float));
    }
    if (st == SD_OK) {
        sd_batch b = sd_batch_simple(prompt + n - 1, 1);
        b.out_flags = SD_OUTPUT_LOGITS | SD_OUTPUT_HIDDEN;
        if ((st = sd_ctx_decode(ctx, &b)) == SD_OK) {
            memcpy(feat + (size_t)(n - 1) * E, sd_ctx_hidden(ctx, 0), (size_t)E * sizeof(float));
            out->next_token = sd_argmax(sd_ctx_logits(ctx, 0), V);
        }
    }
    const float *f = feat + (size_t)(n - 1) * E;
    /* Medusa: every head at the last prompt position, one output head pass */
    for (int k = 1; k <= h->n_medusa && st == SD_OK; k++) st = sd_heads_medusa(h, pool, k, f, 1, z + (size_t)(k - 1) * E);
    if (st == SD_OK && h->n_medusa > 0 && (st = sd_heads_logits(h, pool, false, z, h->n_medusa, logits)) == SD_OK) {
        out->n_medusa = h->n_medusa;
        for (int k = 0; k < h->n_medusa; k++) out->medusa_top1[k] = sd_argmax(logits + (size_t)k * V, V);
    }
    /* Hydra: head k sees [f; E(next); E(d1); ..; E(d_{k-1})] */
    if (st == SD_OK && h->n_hydra > 0) {
        int nh = n_chain < h->n_hydra ? n_chain : h->n_hydra;
        memcpy(in, f, (size_t)E * sizeof(float));
        sd_heads_embed(h, out->next_token, in + E);
        for (int k = 1; k <= nh && st == SD_OK; k++) {
            if ((st = sd_heads_hydra(h, pool, k, in, 1, z)) != SD_OK) break;
            if ((st = sd_heads_logits(h, pool, false, z, 1, logits)) != SD_OK) break;
            out->hydra_chain[k - 1] = sd_argmax(logits, V);
            sd_heads_embed(h, out->hydra_chain[k - 1], in + (size_t)(k + 1) * E);
            out->n_hydra = k;
        }
    }
    if (st == SD_OK && h->has_eagle) {
        st = probe_eagle(h, pool, feat, prompt, n, out->next_token, n_chain, out->eagle_chain, logits);
        if (st == SD_OK) out->n_eagle = n_chain;
    }
    free(feat);
    free(logits);
    free(z);
    free(in);
    free(rows);
    return st;
}
