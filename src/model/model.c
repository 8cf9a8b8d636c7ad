/* model.c - GGUF -> sd_model: hyper-parameters, tensor binding, validation. */
#include "err.h"
#include "model/model.h"

#include <stdint.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/packed.h"
#include "kernels/quants.h"
#include "compute/threadpool.h"

sd_model_params sd_model_default_params(void) {
    sd_model_params p = {.quantize = SD_TYPE_NONE, .backend = SD_BACKEND_AUTO, .pack = 1};
    return p;
}

/* Remembers a buffer the model frees; returns it, or NULL (and frees it) on
 * NOMEM. */
static void *own(sd_model *m, void *p) {
    if (!p) return NULL;
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **o = realloc(m->owned, (size_t)cap * sizeof *o);
        if (!o) {
            free(p);
            return NULL;
        }
        m->owned = o;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return p;
}

void sd_model_free(sd_model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    free(m->bound);
    sd_vocab_free(m->vocab);
    sd_gguf_close(m->gguf);
    free(m);
}

void sd_weight_get_row(const sd_weight *w, int64_t row, float *out) {
    const char *p = (const char *)w->data + (size_t)row * w->row_bytes;
    if (sd_dequantize_row(w->type, out, p, (int)w->cols) != 0)
        memset(out, 0, (size_t)w->cols * sizeof(float)); /* rejected at load */
}

/* Weight types the forward pass computes with (kernel table entries). */
bool sd_weight_type_ok(int type) {
    switch (type) {
    case SD_TYPE_F32: case SD_TYPE_F16: case SD_TYPE_BF16: case SD_TYPE_Q8_0:
    case SD_TYPE_Q4_0: case SD_TYPE_Q4_1: case SD_TYPE_Q5_0: case SD_TYPE_Q5_1:
    case SD_TYPE_Q4_K: case SD_TYPE_Q5_K: case SD_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

/* A tensor of type `type` with rows of `cols` elements: the type must be
 * one the kernels compute with and the row a whole number of its blocks
 * (gguf.c checks the same for every tensor; kept here because the kernels
 * and the activation quantizers rely on it). */
static sd_status check_type(const sd_model *m, const char *name, int type, int64_t cols, char *err,
                            size_t err_size) {
    const char *tn = sd_type_name(type) ? sd_type_name(type) : "?";
    if (!sd_weight_type_ok(type)) {
        sd_set_err(err, err_size,
                "%s: tensor %s: weight type %s is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, "
                "Q5_0, Q5_1, Q4_K, Q5_K, Q6_K)",
                sd_gguf_name(m->gguf), name, tn);
        return SD_ERR_UNSUPPORTED;
    }
    int bs = sd_quant_block_size(type);
    if (bs <= 0 || cols % bs != 0 || cols > INT32_MAX) {
        sd_set_err(err, err_size, "%s: tensor %s: row length %lld is not a multiple of the %s block size %d",
                sd_gguf_name(m->gguf), name, (long long)cols, tn, bs);
        return SD_ERR_FORMAT;
    }
    return SD_OK;
}

/* Hyper-parameter "<arch>.<suffix>" in [lo, hi] (sd_gguf_get_int_in /
 * sd_gguf_get_f32_in). */
static sd_status get_hp(const sd_model *m, const char *suffix, bool required, int def, int lo,
                        int hi, int *out, char *err, size_t err_size) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->arch, suffix);
    return sd_gguf_get_int_in(m->gguf, key, required, def, lo, hi, out, err, err_size);
}

static sd_status get_hp_f32(const sd_model *m, const char *suffix, float def, float lo, float hi,
                            float *out, char *err, size_t err_size) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->arch, suffix);
    return sd_gguf_get_f32_in(m->gguf, key, def, lo, hi, out, err, err_size);
}

/* Binds a tensor of the expected shape {cols, rows} (rows = 0: 1-D). */
static sd_status bind(sd_model *m, const char *name, int64_t cols, int64_t rows, bool required,
                      const sd_gguf_tensor **out, char *err, size_t err_size) {
    const sd_gguf_tensor *t = sd_gguf_find_tensor(m->gguf, name);
    *out = t;
    if (t && m->bound && m->n_bound < sd_gguf_n_tensors(m->gguf)) m->bound[m->n_bound++] = t;
    if (!t) {
        if (!required) return SD_OK;
        sd_set_err(err, err_size, "%s: missing tensor %s", sd_gguf_name(m->gguf), name);
        return SD_ERR_FORMAT;
    }
    int want_dims = rows ? 2 : 1;
    bool ok = t->ne[0] == cols && (rows ? t->ne[1] == rows : true);
    for (int d = want_dims; d < SD_GGUF_MAX_DIMS; d++) ok = ok && t->ne[d] == 1;
    if (!ok) {
        sd_set_err(err, err_size, "%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]",
                sd_gguf_name(m->gguf), name, (long long)t->ne[0], (long long)t->ne[1],
                (long long)t->ne[2], (long long)t->ne[3], (long long)cols, (long long)(rows ? rows : 1));
        return SD_ERR_FORMAT;
    }
    return SD_OK;
}

/* A 1-D norm/bias vector as F32 (converted into an owned copy if needed). */
static sd_status bind_vec(sd_model *m, const char *name, int64_t n, bool required,
                          const float **out, char *err, size_t err_size) {
    const sd_gguf_tensor *t;
    sd_status st = bind(m, name, n, 0, required, &t, err, err_size);
    *out = NULL;
    if (st != SD_OK || !t) return st;
    float *v = own(m, malloc((size_t)n * sizeof(float)));
    if (!v) return SD_ERR_NOMEM;
    sd_weight w = {.data = t->data, .type = t->type, .rows = 1, .cols = n,
                   .row_bytes = sd_type_row_size(t->type, n)};
    if ((st = check_type(m, name, t->type, n, err, err_size)) != SD_OK) return st;
    sd_weight_get_row(&w, 0, v);
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) {
            sd_set_err(err, err_size, "%s: tensor %s: non-finite value at %lld", sd_gguf_name(m->gguf),
                    name, (long long)i);
            return SD_ERR_FORMAT;
        }
    }
    *out = v;
    return SD_OK;
}

/* Converts an F16 / F32 / BF16 w to Q8_0 (sd_weight_q8_copy) in a buffer m
 * owns; other types and rows that are not whole blocks stay as they are. */
static sd_status quantize_q8_0(sd_model *m, sd_weight *w) {
    if (w->type != SD_TYPE_F16 && w->type != SD_TYPE_F32 && w->type != SD_TYPE_BF16) return SD_OK;
    sd_weight q;
    void *data = NULL;
    sd_status st = sd_weight_q8_copy(w, &q, &data);
    if (st != SD_OK || !data) return st;
    if (!own(m, data)) return SD_ERR_NOMEM; /* own frees data */
    *w = q;
    return SD_OK;
}

/* Binds a matrix (M, K) = (rows, cols) and applies the quantize option. */
static sd_status bind_mat(sd_model *m, const sd_model_params *p, const char *name, int64_t cols,
                          int64_t rows, bool required, sd_weight *w, char *err, size_t err_size) {
    const sd_gguf_tensor *t;
    memset(w, 0, sizeof *w);
    sd_status st = bind(m, name, cols, rows, required, &t, err, err_size);
    if (st != SD_OK || !t) return st;
    if ((st = check_type(m, name, t->type, cols, err, err_size)) != SD_OK) return st;
    w->data = t->data;
    w->type = t->type;
    w->rows = rows;
    w->cols = cols;
    w->row_bytes = sd_type_row_size(t->type, cols);
    if (p->quantize == SD_TYPE_Q8_0 && (st = quantize_q8_0(m, w)) != SD_OK) return st;
    /* token_embd is only read row by row (unless it is the tied output,
     * packed in load_tensors) */
    if (p->pack && strcmp(name, "token_embd.weight") != 0) return sd_weight_pack(m, w);
    return SD_OK;
}

sd_status sd_weight_pack_copy(const sd_kernels *kern, sd_weight *w, void **owned) {
    *owned = NULL;
    const int pk = sd_pack_type_of(w->type);
    if (pk < 0 || !kern->gemm_packed[pk] || w->packed || !w->data || w->rows % SD_PACK_ROWS != 0) return SD_OK;
    void *buf = malloc(w->row_bytes * (size_t)w->rows);
    if (!buf) return SD_ERR_NOMEM;
    if (sd_pack_matrix(w->type, buf, w->data, w->row_bytes, w->rows, w->cols) != 0) {
        free(buf); /* a shape the layout does not take: stays stored */
        return SD_OK;
    }
    w->packed = buf;
    *owned = buf;
    return SD_OK;
}

sd_status sd_weight_pack(sd_model *m, sd_weight *w) {
    void *buf = NULL;
    sd_status st = sd_weight_pack_copy(m->kern, w, &buf);
    if (st != SD_OK) return st;
    if (buf && !own(m, buf)) {
        w->packed = NULL; /* own freed buf */
        return SD_ERR_NOMEM;
    }
    return SD_OK;
}

static size_t weight_size(const sd_weight *w) { return w->data ? w->row_bytes * (size_t)w->rows : 0; }

/* The keys of "<arch>." this loader reads (or checks) for llama and qwen2;
 * any other key of the architecture changes arithmetic we do not do and is
 * refused by name (check_keys), never ignored. */
static const char *const known_arch_keys[] = {
    "context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count",
    "attention.head_count_kv", "attention.layer_norm_rms_epsilon", "rope.freq_base", "rope.dimension_count",
    "vocab_size", "attention.key_length", "attention.value_length", "rope.scaling.type", "rope.scaling.factor",
    "rope.scaling.original_context_length", "rope.scaling.finetuned", "expert_count", "expert_used_count",
};

static sd_status check_keys(sd_model *m, char *err, size_t err_size) {
    const size_t al = strlen(m->arch);
    for (int64_t i = 0; i < sd_gguf_n_kv(m->gguf); i++) {
        const char *k = sd_gguf_key(m->gguf, i);
        if (strncmp(k, m->arch, al) != 0 || k[al] != '.') continue;
        bool known = false;
        for (size_t j = 0; j < sizeof known_arch_keys / sizeof *known_arch_keys && !known; j++)
            known = !strcmp(k + al + 1, known_arch_keys[j]);
        if (!known) {
            sd_set_err(err, err_size, "%s: key %s is not supported for architecture %s (it would change the"
                       " arithmetic; refused rather than ignored)", sd_gguf_name(m->gguf), k, m->arch);
            return SD_ERR_UNSUPPORTED;
        }
    }
    int experts = 0;
    sd_status st = get_hp(m, "expert_count", false, 0, 0, 1 << 16, &experts, err, err_size);
    if (st != SD_OK) return st;
    if (experts > 0) {
        sd_set_err(err, err_size, "%s: %s.expert_count %d: mixture-of-experts models are not supported",
                   sd_gguf_name(m->gguf), m->arch, experts);
        return SD_ERR_UNSUPPORTED;
    }
    return SD_OK;
}

/* rope.scaling.type none (or absent) or linear (positions divided by
 * rope.scaling.factor); YaRN and the rest are refused. */
static sd_status load_rope_scaling(sd_model *m, char *err, size_t err_size) {
    char key[128];
    m->rope_freq_scale = 1.0f;
    snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch);
    sd_gguf_str s;
    sd_status st = sd_gguf_get_str(m->gguf, key, &s, err, err_size);
    char type[32] = "none";
    if (st == SD_OK) snprintf(type, sizeof type, "%.*s", (int)(s.len < 31 ? s.len : 31), s.ptr);
    else if (st != SD_ERR_NOT_FOUND) return st;
    float factor = 1.0f;
    if ((st = get_hp_f32(m, "rope.scaling.factor", 1.0f, 0.0f, 1e6f, &factor, err, err_size)) != SD_OK) return st;
    if (!strcmp(type, "linear")) {
        if (!(factor > 0.0f)) {
            sd_set_err(err, err_size, "%s: %s.rope.scaling.factor %g must be > 0", sd_gguf_name(m->gguf), m->arch,
                       (double)factor);
            return SD_ERR_FORMAT;
        }
        m->rope_freq_scale = 1.0f / factor;
    } else if (strcmp(type, "none") != 0) {
        sd_set_err(err, err_size, "%s: %s.rope.scaling.type '%s' is not supported (none, linear)",
                   sd_gguf_name(m->gguf), m->arch, type);
        return SD_ERR_UNSUPPORTED;
    } else if (factor != 1.0f && factor != 0.0f) {
        sd_set_err(err, err_size, "%s: %s.rope.scaling.factor %g without a scaling type: refused",
                   sd_gguf_name(m->gguf), m->arch, (double)factor);
        return SD_ERR_UNSUPPORTED;
    }
    return SD_OK;
}

static sd_status load_hparams(sd_model *m, char *err, size_t err_size) {
    sd_status st;
    int n_vocab_kv = 0;
    if ((st = get_hp(m, "embedding_length", true, 0, 1, 1 << 16, &m->n_embd, err, err_size)) ||
        (st = get_hp(m, "block_count", true, 0, 1, 1024, &m->n_layer, err, err_size)) ||
        (st = get_hp(m, "attention.head_count", true, 0, 1, 1024, &m->n_head, err, err_size)) ||
        (st = get_hp(m, "attention.head_count_kv", false, m->n_head, 1, 1024, &m->n_head_kv, err, err_size)) ||
        (st = get_hp(m, "feed_forward_length", true, 0, 1, 1 << 20, &m->n_ff, err, err_size)) ||
        (st = get_hp(m, "context_length", false, 2048, 1, 1 << 24, &m->n_ctx_train, err, err_size)) ||
        (st = get_hp(m, "vocab_size", false, 0, 0, 1 << 24, &n_vocab_kv, err, err_size)))
        return st;
    if (m->n_embd % m->n_head != 0 || m->n_head % m->n_head_kv != 0) {
        sd_set_err(err, err_size, "%s: n_embd %d / n_head %d / n_head_kv %d are inconsistent",
                sd_gguf_name(m->gguf), m->n_embd, m->n_head, m->n_head_kv);
        return SD_ERR_FORMAT;
    }
    m->head_dim = m->n_embd / m->n_head;
    if ((st = get_hp(m, "rope.dimension_count", false, m->head_dim, 2, m->head_dim, &m->n_rot, err, err_size)))
        return st;
    if (m->n_rot % 2 != 0) {
        sd_set_err(err, err_size, "%s: rope.dimension_count %d is odd", sd_gguf_name(m->gguf), m->n_rot);
        return SD_ERR_FORMAT;
    }
    if ((st = get_hp_f32(m, "rope.freq_base", 10000.0f, 1.0f, 1e12f, &m->rope_base, err, err_size)) ||
        (st = get_hp_f32(m, "attention.layer_norm_rms_epsilon", 1e-5f, 0.0f, 1.0f, &m->norm_eps, err, err_size)))
        return st;
    if ((st = load_rope_scaling(m, err, err_size)) || (st = check_keys(m, err, err_size))) return st;
    int kl = 0, vl = 0; /* per-head sizes other than n_embd / n_head are not computed here */
    if ((st = get_hp(m, "attention.key_length", false, m->head_dim, 1, 1 << 16, &kl, err, err_size)) ||
        (st = get_hp(m, "attention.value_length", false, m->head_dim, 1, 1 << 16, &vl, err, err_size)))
        return st;
    if (kl != m->head_dim || vl != m->head_dim) {
        sd_set_err(err, err_size, "%s: %s.attention.key_length %d / value_length %d differ from n_embd / n_head = %d:"
                   " not supported", sd_gguf_name(m->gguf), m->arch, kl, vl, m->head_dim);
        return SD_ERR_UNSUPPORTED;
    }
    m->n_vocab = sd_vocab_n_tokens(m->vocab);
    if (n_vocab_kv != 0 && n_vocab_kv != m->n_vocab) {
        sd_set_err(err, err_size, "%s: %s.vocab_size %d != %d tokens", sd_gguf_name(m->gguf), m->arch,
                n_vocab_kv, m->n_vocab);
        return SD_ERR_FORMAT;
    }
    /* Early exits (specdec extension): layer indices in [1, n_layer). */
    uint64_t n_ee = 0;
    int32_t ee[SD_MAX_EARLY_EXITS];
    st = sd_gguf_get_arr_i32(m->gguf, "specdec.early_exit_layers", ee, SD_MAX_EARLY_EXITS, &n_ee, err, err_size);
    if (st == SD_OK) {
        for (uint64_t i = 0; i < n_ee; i++) {
            if (ee[i] < 1 || ee[i] >= m->n_layer) {
                sd_set_err(err, err_size, "%s: specdec.early_exit_layers[%llu] = %d out of range",
                        sd_gguf_name(m->gguf), (unsigned long long)i, ee[i]);
                return SD_ERR_FORMAT;
            }
            m->early_exit[i] = ee[i];
        }
        m->n_early_exit = (int)n_ee;
    } else if (st != SD_ERR_NOT_FOUND) {
        return st;
    }
    return SD_OK;
}

static sd_status load_tensors(sd_model *m, const sd_model_params *p, char *err, size_t err_size) {
    sd_status st;
    const int64_t E = m->n_embd, V = m->n_vocab, F = m->n_ff;
    const int64_t QD = (int64_t)m->n_head * m->head_dim, KVD = (int64_t)m->n_head_kv * m->head_dim;
    const bool qkv_bias = strcmp(m->arch, "qwen2") == 0; /* required by qwen2; llama may have them */
    /* Llama 3.1+: per-pair frequency divisors of RoPE (positive, finite) */
    if ((st = bind_vec(m, "rope_freqs.weight", m->n_rot / 2, false, &m->rope_freqs, err, err_size))) return st;
    for (int i = 0; m->rope_freqs && i < m->n_rot / 2; i++) {
        if (!(m->rope_freqs[i] > 0.0f)) {
            sd_set_err(err, err_size, "%s: rope_freqs.weight[%d] = %g is not positive", sd_gguf_name(m->gguf), i,
                       (double)m->rope_freqs[i]);
            return SD_ERR_FORMAT;
        }
    }
    if ((st = bind_mat(m, p, "token_embd.weight", E, V, true, &m->tok_embd, err, err_size)) ||
        (st = bind_vec(m, "output_norm.weight", E, true, &m->output_norm, err, err_size)) ||
        (st = bind_mat(m, p, "output.weight", E, V, false, &m->output, err, err_size)))
        return st;
    if (!m->output.data) { /* tied embeddings */
        m->output = m->tok_embd;
        if (p->pack && (st = sd_weight_pack(m, &m->output)) != SD_OK) return st;
    }
    m->layers = calloc((size_t)m->n_layer, sizeof *m->layers);
    if (!m->layers) return SD_ERR_NOMEM;
    char name[96];
#define NAME(s) (snprintf(name, sizeof name, "blk.%d." s, il), name)
    for (int il = 0; il < m->n_layer; il++) {
        sd_layer *L = &m->layers[il];
        if ((st = bind_vec(m, NAME("attn_norm.weight"), E, true, &L->attn_norm, err, err_size)) ||
            (st = bind_mat(m, p, NAME("attn_q.weight"), E, QD, true, &L->wq, err, err_size)) ||
            (st = bind_mat(m, p, NAME("attn_k.weight"), E, KVD, true, &L->wk, err, err_size)) ||
            (st = bind_mat(m, p, NAME("attn_v.weight"), E, KVD, true, &L->wv, err, err_size)) ||
            (st = bind_mat(m, p, NAME("attn_output.weight"), QD, E, true, &L->wo, err, err_size)) ||
            (st = bind_vec(m, NAME("ffn_norm.weight"), E, true, &L->ffn_norm, err, err_size)) ||
            (st = bind_mat(m, p, NAME("ffn_gate.weight"), E, F, true, &L->w_gate, err, err_size)) ||
            (st = bind_mat(m, p, NAME("ffn_up.weight"), E, F, true, &L->w_up, err, err_size)) ||
            (st = bind_mat(m, p, NAME("ffn_down.weight"), F, E, true, &L->w_down, err, err_size)))
            return st;
        if ((st = bind_vec(m, NAME("attn_q.bias"), QD, qkv_bias, &L->bq, err, err_size)) ||
            (st = bind_vec(m, NAME("attn_k.bias"), KVD, qkv_bias, &L->bk, err, err_size)) ||
            (st = bind_vec(m, NAME("attn_v.bias"), KVD, qkv_bias, &L->bv, err, err_size)))
            return st;
        const sd_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) m->weight_bytes_per_token += weight_size(ws[i]);
    }
#undef NAME
    m->weight_bytes_per_token += weight_size(&m->output) + m->tok_embd.row_bytes;
    m->weight_bytes = m->weight_bytes_per_token - m->tok_embd.row_bytes +
                      (m->output.data == m->tok_embd.data ? 0 : weight_size(&m->tok_embd));
    return SD_OK;
}

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (const void *const *)a, y = (uintptr_t) * (const void *const *)b;
    return x < y ? -1 : x > y;
}

/* Every tensor of the file was bound: one the architecture does not use is
 * refused by name (a bias, a norm, a tensor of another architecture would
 * otherwise be silently left out of the arithmetic). */
static sd_status check_all_bound(sd_model *m, char *err, size_t err_size) {
    qsort(m->bound, (size_t)m->n_bound, sizeof *m->bound, cmp_ptr);
    for (int64_t i = 0; i < sd_gguf_n_tensors(m->gguf); i++) {
        const sd_gguf_tensor *t = sd_gguf_tensor_at(m->gguf, i);
        if (!bsearch(&t, m->bound, (size_t)m->n_bound, sizeof *m->bound, cmp_ptr)) {
            sd_set_err(err, err_size, "%s: tensor %s is not used by architecture %s (refused rather than ignored)",
                       sd_gguf_name(m->gguf), t->name, m->arch);
            return SD_ERR_UNSUPPORTED;
        }
    }
    return SD_OK;
}

sd_status sd_model_load(const char *path, const sd_model_params *params, sd_model **out,
                        char *err, size_t err_size) {
    if (err && err_size) err[0] = 0;
    if (!path || !out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    sd_model_params p = params ? *params : sd_model_default_params();
    if (p.quantize != SD_TYPE_NONE && p.quantize != SD_TYPE_Q8_0) {
        sd_set_err(err, err_size, "quantize on load supports q8_0 only");
        return SD_ERR_UNSUPPORTED;
    }
    sd_model *m = calloc(1, sizeof *m);
    if (!m) return SD_ERR_NOMEM;
    sd_status st = sd_gguf_open(path, &m->gguf, err, err_size);
    if (st != SD_OK) goto fail;
    m->kern = sd_kernels_get(p.backend);
    if (!m->kern) {
        static const char *const names[] = {"auto", "ref", "avx2", "avx512"};
        const char *cap = getenv("SPECDEC_CPU_CAP");
        int capped = cap && *cap;
        if ((unsigned)p.backend < sizeof names / sizeof *names)
            sd_set_err(err, err_size, "backend %s is not supported by this CPU%s%s", names[p.backend],
                       capped ? " as capped by SPECDEC_CPU_CAP=" : "", capped ? cap : "");
        else
            sd_set_err(err, err_size, "unknown backend %d", (int)p.backend);
        st = SD_ERR_UNSUPPORTED;
        goto fail;
    }
    sd_gguf_str s;
    st = sd_gguf_get_str(m->gguf, "general.architecture", &s, err, err_size);
    if (st == SD_OK) {
        if (s.len == 0 || s.len >= sizeof m->arch) {
            sd_set_err(err, err_size, "%s: general.architecture has bad length", path);
            st = SD_ERR_FORMAT;
            goto fail;
        }
        memcpy(m->arch, s.ptr, s.len);
    } else if (st != SD_ERR_NOT_FOUND) {
        goto fail;
    }
    if (sd_gguf_get_str(m->gguf, "general.name", &s, NULL, 0) == SD_OK) {
        size_t n = s.len < sizeof m->name - 1 ? (size_t)s.len : sizeof m->name - 1;
        memcpy(m->name, s.ptr, n);
    }
    if ((st = sd_vocab_load(m->gguf, &m->vocab, err, err_size)) != SD_OK) goto fail;
    m->n_vocab = sd_vocab_n_tokens(m->vocab);
    if (sd_gguf_n_tensors(m->gguf) == 0) {
        m->vocab_only = true;
        *out = m;
        return SD_OK;
    }
    if (strcmp(m->arch, "llama") != 0 && strcmp(m->arch, "qwen2") != 0) {
        sd_set_err(err, err_size, "%s: architecture '%s' is not supported (llama, qwen2)", path, m->arch);
        st = SD_ERR_UNSUPPORTED;
        goto fail;
    }
    m->rope_type = strcmp(m->arch, "qwen2") == 0 ? SD_ROPE_NEOX : SD_ROPE_NORM;
    if ((st = load_hparams(m, err, err_size)) != SD_OK) goto fail;
    if (!(m->bound = calloc((size_t)sd_gguf_n_tensors(m->gguf), sizeof *m->bound))) {
        st = SD_ERR_NOMEM;
        goto fail;
    }
    if ((st = load_tensors(m, &p, err, err_size)) != SD_OK || (st = check_all_bound(m, err, err_size)) != SD_OK)
        goto fail;
    free(m->bound);
    m->bound = NULL;
    *out = m;
    return SD_OK;
fail:
    if (st == SD_ERR_NOMEM && err && err_size && !err[0]) sd_set_err(err, err_size, "%s: out of memory", path);
    sd_model_free(m);
    return st;
}

void sd_model_get_info(const sd_model *m, sd_model_info *info) {
    if (!m || !info) return;
    memset(info, 0, sizeof *info);
    info->arch = m->arch;
    info->name = m->name;
    info->vocab_only = m->vocab_only;
    info->n_vocab = m->n_vocab;
    info->n_embd = m->n_embd;
    info->n_layer = m->n_layer;
    info->n_head = m->n_head;
    info->n_head_kv = m->n_head_kv;
    info->head_dim = m->head_dim;
    info->n_ff = m->n_ff;
    info->n_rot = m->n_rot;
    info->n_ctx_train = m->n_ctx_train;
    info->rope_base = m->rope_base;
    info->norm_eps = m->norm_eps;
    info->weight_type = m->vocab_only ? SD_TYPE_NONE : m->layers[0].w_gate.type;
    info->weight_bytes = m->weight_bytes;
    info->weight_bytes_per_token = m->weight_bytes_per_token;
    for (int il = 0; !m->vocab_only && il <= m->n_layer; il++) {
        const sd_layer *L = il < m->n_layer ? &m->layers[il] : NULL;
        const sd_weight *ws[7] = {&m->output};
        int n = 1;
        if (L) {
            const sd_weight *lw[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
            memcpy(ws, lw, sizeof lw);
            n = 7;
        }
        for (int i = 0; i < n; i++) {
            const double macs = (double)ws[i]->rows * (double)ws[i]->cols;
            const int t = ws[i]->type;
            if (t == SD_TYPE_F32 || t == SD_TYPE_F16 || t == SD_TYPE_BF16) info->macs_float_per_token += macs;
            else info->macs_int8_per_token += macs;
        }
    }
    info->n_early_exit = m->n_early_exit;
    memcpy(info->early_exit, m->early_exit, sizeof info->early_exit);
}

const sd_vocab *sd_model_vocab(const sd_model *m) { return m ? m->vocab : NULL; }

/* ------------------------------------------------------------ heads' gemm */

sd_status sd_weight_q8_copy(const sd_weight *w, sd_weight *q, void **owned) {
    *q = *w;
    *owned = NULL;
    if (w->type == SD_TYPE_Q8_0 || w->cols % SD_QK8_0 != 0 || !w->data) return SD_OK;
    const size_t rb = (size_t)(w->cols / SD_QK8_0) * sizeof(sd_block_q8_0);
    char *data = malloc(rb * (size_t)w->rows);
    float *row = malloc((size_t)w->cols * sizeof(float));
    if (!data || !row) {
        free(data);
        free(row);
        return SD_ERR_NOMEM;
    }
    const sd_kernels *ref = sd_kernels_ref();
    for (int64_t r = 0; r < w->rows; r++) {
        sd_weight_get_row(w, r, row);
        ref->quantize_row_q8_0(data + (size_t)r * rb, row, (int)w->cols);
    }
    free(row);
    *q = (sd_weight){.data = data, .type = SD_TYPE_Q8_0, .rows = w->rows, .cols = w->cols, .row_bytes = rb};
    *owned = data;
    return SD_OK;
}

void sd_weight_matmul(const sd_kernels *kern, const sd_weight *w, const void *x, size_t xs, int N, float *y,
                      size_t ldy, int m0, int m1) {
    const int K = (int)w->cols;
    const void *wd = w->data;
    const size_t wb = w->row_bytes;
    if (m0 >= m1 || N <= 0) return;
    if (w->packed) {
        kern->gemm_packed[sd_pack_type_of(w->type)](y, ldy, x, xs, w->packed, wb, K, N, m0, m1);
        return;
    }
    switch (w->type) {
    case SD_TYPE_F32: kern->gemm_f32(y, ldy, x, xs, wd, wb, K, N, m0, m1); break;
    case SD_TYPE_F16: kern->gemm_f16(y, ldy, x, xs, wd, wb, K, N, m0, m1); break;
    case SD_TYPE_BF16: kern->gemm_bf16(y, ldy, x, xs, wd, wb, K, N, m0, m1); break;
    case SD_TYPE_Q8_0: kern->gemm_q8_0(y, ldy, x, xs, wd, wb, K, N, m0, m1); break;
    case SD_TYPE_Q4_0: kern->gemm_q4_0(y, ldy, x, xs, wd, wb, K, N, m0, m1); break;
    case SD_TYPE_Q5_0: kern->gemm_q5_0(y, ldy, x, xs, wd, wb, K, N, m0, m1); break;
    case SD_TYPE_Q4_1: kern->gemm_q4_1(y, ldy, x, xs, wd, wb, K, N, m0, m1); break;
    case SD_TYPE_Q5_1: kern->gemm_q5_1(y, ldy, x, xs, wd, wb, K, N, m0, m1); break;
    case SD_TYPE_Q4_K: kern->gemm_q4_K(y, ldy, x, xs, wd, wb, K, N, m0, m1); break;
    case SD_TYPE_Q5_K: kern->gemm_q5_K(y, ldy, x, xs, wd, wb, K, N, m0, m1); break;
    case SD_TYPE_Q6_K: kern->gemm_q6_K(y, ldy, x, xs, wd, wb, K, N, m0, m1); break;
    default: break; /* rejected at load */
    }
}

typedef struct gemm_job {
    const sd_kernels *kern;
    const sd_weight *w;
    const void *x;       /* F32 rows, or Q8_0 rows for a Q8_0 weight      */
    size_t x_stride;
    int N;
    float *y;
    size_t ldy;
} gemm_job;

/* This thread's share of the output columns. */
static void gemm_worker(void *arg, int ith, int nth) {
    const gemm_job *j = arg;
    int m0, m1;
    sd_split((int)j->w->rows, ith, nth, 16, &m0, &m1);
    sd_weight_matmul(j->kern, j->w, j->x, j->x_stride, j->N, j->y, j->ldy, m0, m1);
}

sd_status sd_weight_gemm(const sd_kernels *kern, sd_threadpool *pool, const sd_weight *w, const float *x, int N,
                         float *y, size_t ldy) {
    if (N <= 0) return SD_OK;
    const int K = (int)w->cols;
    gemm_job j = {.kern = kern, .w = w, .x = x, .x_stride = (size_t)K * sizeof(float), .N = N, .y = y, .ldy = ldy};
    /* the activations in the weight type's format, as forward.c prepares
     * them (F32 and F16 weights take the F32 rows as they are) */
    size_t rb = 0;
    switch (w->type) {
    case SD_TYPE_F32: case SD_TYPE_F16: break;
    case SD_TYPE_BF16: rb = (size_t)K * sizeof(float); break;
    case SD_TYPE_Q8_0: case SD_TYPE_Q4_0: case SD_TYPE_Q5_0:
        rb = (size_t)(K / SD_QK8_0) * sizeof(sd_block_q8_0);
        break;
    case SD_TYPE_Q4_1: case SD_TYPE_Q5_1: rb = (size_t)(K / SD_QK8_1) * sizeof(sd_block_q8_1); break;
    case SD_TYPE_Q4_K: case SD_TYPE_Q5_K: case SD_TYPE_Q6_K:
        rb = (size_t)(K / SD_QK_K) * sizeof(sd_block_q8_K);
        break;
    default: return SD_ERR_UNSUPPORTED;
    }
    void *xq = NULL;
    if (rb) {
        if (!(xq = malloc(rb * (size_t)N))) return SD_ERR_NOMEM;
        for (int r = 0; r < N; r++) {
            char *dst = (char *)xq + rb * (size_t)r;
            const float *xr = x + (size_t)r * K;
            switch (w->type) {
            case SD_TYPE_BF16:
                memcpy(dst, xr, rb);
                kern->round_bf16_row((float *)(void *)dst, (size_t)K);
                break;
            case SD_TYPE_Q4_1: case SD_TYPE_Q5_1: sd_quantize_row_q8_1(dst, xr, K); break;
            case SD_TYPE_Q4_K: case SD_TYPE_Q5_K: case SD_TYPE_Q6_K: kern->quantize_row_q8_K(dst, xr, K); break;
            default: kern->quantize_row_q8_0(dst, xr, K); break;
            }
        }
        j.x = xq;
        j.x_stride = rb;
    }
    if (pool)
        sd_threadpool_run(pool, gemm_worker, &j);
    else
        gemm_worker(&j, 0, 1);
    free(xq);
    return SD_OK;
}

sd_status sd_model_head_logits(const sd_model *m, sd_threadpool *pool, const sd_weight *out, const float *z, int N,
                               float *logits, size_t ldl) {
    const int E = m->n_embd;
    if (N <= 0) return SD_OK;
    float *xn = malloc((size_t)N * (size_t)E * sizeof(float));
    if (!xn) return SD_ERR_NOMEM;
    /* as forward.c: rmsnorm, then F16-rounded activations for F16 weights */
    for (int r = 0; r < N; r++) {
        m->kern->rmsnorm(xn + (size_t)r * E, z + (size_t)r * E, m->output_norm, m->norm_eps, E);
        if (out->type == SD_TYPE_F16) m->kern->round_f16_row(xn + (size_t)r * E, (size_t)E);
    }
    sd_status st = sd_weight_gemm(m->kern, pool, out, xn, N, logits, ldl);
    free(xn);
    return st;
}
