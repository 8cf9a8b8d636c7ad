/* ctx.c - contexts: creation, KV-cache operations, outputs. */
#include "compute/ctx.h"

#include <stdlib.h>
#include <string.h>

sd_ctx_params sd_ctx_default_params(void) {
    sd_ctx_params p = {.n_ctx = 0, .pool = NULL, .attn_compat = false, .vocab_subset = NULL,
                       .n_vocab_subset = 0};
    return p;
}

static void scratch_free(sd_scratch *s) {
    free(s->x); free(s->xn);
    for (int i = 0; i < 3; i++) {
        free(s->prep[i].xq); free(s->prep[i].xq1); free(s->prep[i].xqk); free(s->prep[i].xr); free(s->prep[i].xb);
    }
    free(s->q); free(s->k); free(s->v);
    free(s->att); free(s->tmp); free(s->gate); free(s->up); free(s->rope);
    memset(s, 0, sizeof *s);
}

void sd_ctx_free(sd_ctx *ctx) {
    if (!ctx) return;
    scratch_free(&ctx->s);
    free(ctx->n_cells);
    free(ctx->k_cache);
    free(ctx->v_cache);
    free(ctx->logits);
    free(ctx->hidden);
    free(ctx->sub_ids);
    free(ctx->sub_rows);
    free(ctx->sub_packed);
    free(ctx->sub_logits);
    free(ctx);
}

/* VocabTrim: checks ids[0..n) (distinct, in [0, V), 1 <= n <= V) and gives
 * ctx its compact head: the output rows of those ids (model->output, the
 * tied token_embd when the model has no output.weight) copied in the
 * weight's type.
 *
 * Bit-exactness: every gemm kernel reduces a row's accumulator one way when
 * the row is in a complete group of 4 rows counted from m0 (a multiple of
 * 16) and another way alone (the last rows of a range). In the full head
 * that puts rows [0, V4) in groups, V4 = V rounded down to a multiple of 4,
 * and the last V - V4 (< 4) rows alone. The compact matrix keeps each id in
 * the same kind of slot: ids < V4 first, in the caller's order, padded with
 * zero rows (id -1, never scattered) to a multiple of 4, then the ids >= V4,
 * which so stay alone. */
static sd_status subset_init(sd_ctx *ctx, const int32_t *ids, int n) {
    const sd_model *m = ctx->model;
    const int V = m->n_vocab, V4 = V / 4 * 4;
    if (!ids || n < 1 || n > V) return SD_ERR_INVALID_ARG;
    uint8_t *seen = calloc((size_t)V, 1);
    if (!seen) return SD_ERR_NOMEM;
    sd_status st = SD_OK;
    int n_grouped = 0;
    for (int j = 0; j < n && st == SD_OK; j++) {
        if (ids[j] < 0 || ids[j] >= V || seen[ids[j]]) st = SD_ERR_INVALID_ARG;
        else seen[ids[j]] = 1, n_grouped += ids[j] < V4;
    }
    free(seen);
    if (st != SD_OK) return st;
    const sd_weight *w = &m->output;
    /* A packed head computes every row alike (packed.h): all ids go in
     * one group, padded to whole 16-row groups, and the compact rows are
     * packed too. */
    const int unit = w->packed ? SD_PACK_ROWS : 4;
    if (w->packed) n_grouped = n;
    const int n_pad = (unit - n_grouped % unit) % unit, S = n + n_pad;
    ctx->sub_ids = malloc((size_t)S * sizeof *ctx->sub_ids);
    ctx->sub_rows = calloc((size_t)S, w->row_bytes); /* zero rows are valid F32 / F16 / Q8_0 */
    if (!ctx->sub_ids || !ctx->sub_rows) return SD_ERR_NOMEM; /* freed with ctx */
    int r = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < n; j++) {
            if ((w->packed || ids[j] < V4) != (pass == 0)) continue;
            ctx->sub_ids[r] = ids[j];
            memcpy((char *)ctx->sub_rows + (size_t)r * w->row_bytes,
                   (const char *)w->data + (size_t)ids[j] * w->row_bytes, w->row_bytes);
            r++;
        }
        for (; pass == 0 && r < n_grouped + n_pad; r++) ctx->sub_ids[r] = -1;
    }
    ctx->sub_output = *w;
    ctx->sub_output.data = ctx->sub_rows;
    ctx->sub_output.packed = NULL;
    if (w->packed) {
        ctx->sub_packed = malloc((size_t)S * w->row_bytes);
        if (!ctx->sub_packed) return SD_ERR_NOMEM;
        if (sd_pack_matrix(w->type, ctx->sub_packed, ctx->sub_rows, w->row_bytes, S, w->cols) != 0)
            return SD_ERR_INVALID_ARG; /* cannot happen: w was packed */
        ctx->sub_output.packed = ctx->sub_packed;
    }
    ctx->sub_output.rows = S;
    ctx->n_sub = S;
    return SD_OK;
}

sd_status sd_ctx_new(const sd_model *model, const sd_ctx_params *params, sd_ctx **out) {
    if (!model || !out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    if (model->vocab_only) return SD_ERR_UNSUPPORTED;
    sd_ctx_params p = params ? *params : sd_ctx_default_params();
    if (p.n_ctx < 0 || p.n_ctx > (1 << 22)) return SD_ERR_INVALID_ARG;
    if (!p.vocab_subset && p.n_vocab_subset != 0) return SD_ERR_INVALID_ARG;
    sd_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return SD_ERR_NOMEM;
    ctx->model = model;
    ctx->pool = p.pool;
    ctx->attn_compat = p.attn_compat;
    ctx->n_ctx = p.n_ctx ? p.n_ctx : model->n_ctx_train;
    if (p.vocab_subset) {
        sd_status st = subset_init(ctx, p.vocab_subset, p.n_vocab_subset);
        if (st != SD_OK) {
            sd_ctx_free(ctx);
            return st;
        }
    }
    size_t kvd = (size_t)model->n_head_kv * (size_t)model->head_dim;
    size_t n = (size_t)model->n_layer * (size_t)ctx->n_ctx * kvd;
    ctx->n_cells = calloc((size_t)model->n_layer, sizeof *ctx->n_cells);
    ctx->k_cache = malloc(n * sizeof(uint16_t));
    ctx->v_cache = malloc(n * sizeof(uint16_t));
    if (!ctx->n_cells || !ctx->k_cache || !ctx->v_cache) {
        sd_ctx_free(ctx);
        return SD_ERR_NOMEM;
    }
    *out = ctx;
    return SD_OK;
}

const sd_model *sd_ctx_model(const sd_ctx *ctx) { return ctx ? ctx->model : NULL; }
int sd_ctx_n_ctx(const sd_ctx *ctx) { return ctx ? ctx->n_ctx : 0; }
int sd_ctx_n_outputs(const sd_ctx *ctx) { return ctx ? ctx->n_out : 0; }

const float *sd_ctx_logits(const sd_ctx *ctx, int i) {
    if (!ctx || !ctx->out_logits || i < 0 || i >= ctx->n_out) return NULL;
    return ctx->logits + (size_t)i * (size_t)ctx->model->n_vocab;
}

const float *sd_ctx_hidden(const sd_ctx *ctx, int i) {
    if (!ctx || !ctx->out_hidden || i < 0 || i >= ctx->n_out) return NULL;
    return ctx->hidden + (size_t)i * (size_t)ctx->model->n_embd;
}

int sd_ctx_kv_len(const sd_ctx *ctx, int il) {
    if (!ctx || il < 0 || il >= ctx->model->n_layer) return 0;
    return ctx->n_cells[il];
}

int sd_ctx_kv_min(const sd_ctx *ctx) {
    if (!ctx) return 0;
    int n = ctx->n_cells[0];
    for (int il = 1; il < ctx->model->n_layer; il++)
        if (ctx->n_cells[il] < n) n = ctx->n_cells[il];
    return n;
}

sd_status sd_ctx_kv_truncate(sd_ctx *ctx, int n) {
    if (!ctx || n < 0) return SD_ERR_INVALID_ARG;
    for (int il = 0; il < ctx->model->n_layer; il++)
        if (ctx->n_cells[il] > n) ctx->n_cells[il] = n;
    return SD_OK;
}

void sd_ctx_kv_clear(sd_ctx *ctx) {
    if (ctx) sd_ctx_kv_truncate(ctx, 0);
}

sd_status sd_ctx_kv_keep(sd_ctx *ctx, int n_prefix, const int32_t *cells, int n_keep) {
    if (!ctx || n_prefix < 0 || n_keep < 0 || (n_keep > 0 && !cells)) return SD_ERR_INVALID_ARG;
    const sd_model *m = ctx->model;
    /* Validate against every layer before moving anything. */
    for (int il = 0; il < m->n_layer; il++) {
        if (n_prefix > ctx->n_cells[il]) return SD_ERR_INVALID_ARG;
        for (int i = 0; i < n_keep; i++) {
            if (cells[i] < n_prefix || cells[i] >= ctx->n_cells[il]) return SD_ERR_INVALID_ARG;
            if (i > 0 && cells[i] <= cells[i - 1]) return SD_ERR_INVALID_ARG;
        }
    }
    size_t kvd = (size_t)m->n_head_kv * (size_t)m->head_dim;
    for (int il = 0; il < m->n_layer; il++) {
        uint16_t *K = ctx->k_cache + (size_t)il * (size_t)ctx->n_ctx * kvd;
        uint16_t *V = ctx->v_cache + (size_t)il * (size_t)ctx->n_ctx * kvd;
        for (int i = 0; i < n_keep; i++) {
            size_t dst = (size_t)(n_prefix + i), src = (size_t)cells[i];
            if (dst == src) continue;
            memcpy(K + dst * kvd, K + src * kvd, kvd * sizeof(uint16_t));
            memcpy(V + dst * kvd, V + src * kvd, kvd * sizeof(uint16_t));
        }
        ctx->n_cells[il] = n_prefix + n_keep;
    }
    return SD_OK;
}

sd_batch sd_batch_simple(const int32_t *tokens, int32_t n_tokens) {
    sd_batch b;
    memset(&b, 0, sizeof b);
    b.n_tokens = n_tokens;
    b.token = tokens;
    return b;
}
