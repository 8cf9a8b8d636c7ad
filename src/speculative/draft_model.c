/*
 * draft_model.c - `draft`: a smaller model with the same vocabulary drafts
 * the chain token by token with its own KV cache, kept in step with the
 * target: after each verification the draft cache is rolled back to the
 * longest prefix of the history it has already seen.
 *
 * Greedy (temp <= 0): draft the argmax, stop when its probability falls
 * below p_min. Sampling: draw from q = the draft's distribution under the
 * target's sampler settings, report q (speculative sampling needs it), stop
 * when max q < p_min. Under --draft-max auto (env->costs set) the
 * calibrated cost rule of spec/stop.h may draft on past p_min.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "speculative/drafter.h"
#include "speculative/stop.h"

typedef struct dm_state {
    const sd_model *model;
    sd_ctx *ctx;
    int n_valid;          /* history tokens whose KV is in ctx (a prefix)   */
    int n_kv_draft;       /* drafted tokens after them whose KV is in ctx   */
    float p_min;
    float reject_max;     /* SpecDec++: stop once 1 - prod(max q) > this (0: off) */
    int V;
    sd_sampler *smp;      /* made on first sampled draft with the target's settings */
    sd_stop stop;         /* --draft-max auto's stopping rule               */
} dm_state;

/* Probability of the argmax under softmax(logits) (vectorized sum). */
static float top_prob(const sd_kernels *k, const float *l, int V, int32_t *arg) {
    int32_t a = sd_argmax(l, V);
    *arg = a;
    return 1.0f / k->sum_exp(l, V, l[a]);
}

static sd_status dm_begin(void *self, const int32_t *ids, int n) {
    dm_state *d = self;
    sd_ctx_kv_clear(d->ctx);
    d->n_valid = 0;
    d->n_kv_draft = 0;
    if (n > sd_ctx_n_ctx(d->ctx)) return SD_ERR_CTX_FULL;
    sd_batch b = sd_batch_simple(ids, n);
    sd_status st = sd_ctx_decode(d->ctx, &b);
    if (st == SD_OK) d->n_valid = n;
    return st;
}

static sd_status dm_draft(void *self, const int32_t *ids, int n, int max, const sd_draft_env *env,
                          sd_draft *out) {
    dm_state *d = self;
    out->n = 0;
    out->has_q = false;
    /* catch up with the history (at least the last bonus token) */
    if (n <= d->n_valid) { /* history shrank? start over */
        sd_ctx_kv_clear(d->ctx);
        d->n_valid = 0;
    }
    if (n + max > sd_ctx_n_ctx(d->ctx)) max = sd_ctx_n_ctx(d->ctx) - n;
    if (max <= 0) return SD_OK;
    sd_batch b = sd_batch_simple(ids + d->n_valid, n - d->n_valid);
    sd_status st = sd_ctx_decode(d->ctx, &b);
    if (st != SD_OK) return st;
    d->n_valid = n;
    d->n_kv_draft = 0;
    const bool greedy = env->sp->temp <= 0.0f;
    if (!greedy && !d->smp) {
        st = sd_sampler_new(env->sp, d->V, &d->smp);
        if (st != SD_OK) return st;
    }
    double p_all = 1.0; /* estimated probability that every draft so far is accepted */
    const sd_draft_costs *costs = env->costs;
    if (costs) sd_stop_begin(&d->stop, costs);
    for (int i = 0; i < max; i++) {
        const float *l = sd_ctx_logits(d->ctx, 0);
        int32_t tok;
        float conf; /* the draft's top probability */
        float *q = NULL;
        if (greedy) {
            conf = top_prob(d->model->kern, l, d->V, &tok);
        } else {
            q = out->q + (size_t)i * d->V;
            sd_sampler_dist(d->smp, l, q);
            conf = 0.0f;
            for (int t = 0; t < d->V; t++) conf = q[t] > conf ? q[t] : conf;
        }
        const bool sure = conf >= d->p_min;
        if (costs ? !sd_stop_keep(&d->stop, costs, conf, sure) : !sure) break;
        p_all *= conf;
        if (d->reject_max > 0.0f && 1.0 - p_all > d->reject_max && i > 0) break;
        if (!greedy) { /* draw from q with the drafter's generator */
            double u = sd_rng_uniform(env->rng), c = 0.0;
            tok = -1;
            for (int t = 0; t < d->V; t++) {
                if (q[t] <= 0.0f) continue;
                c += q[t];
                tok = t;
                if (u < c) break;
            }
            if (tok < 0) break;
            out->has_q = true;
        }
        out->tok[out->n++] = tok;
        if (i + 1 < max) {
            b = sd_batch_simple(&tok, 1);
            if ((st = sd_ctx_decode(d->ctx, &b)) != SD_OK) return st;
            d->n_kv_draft++;
        }
    }
    if (costs) d->stop.n = out->n; /* what verification will report on */
    return SD_OK;
}

static void dm_accept(void *self, const int32_t *ids, int n, int n_accepted) {
    dm_state *d = self;
    (void)ids;
    int keep = n_accepted < d->n_kv_draft ? n_accepted : d->n_kv_draft;
    int valid = d->n_valid + keep;
    if (valid > n) valid = n;
    sd_ctx_kv_truncate(d->ctx, valid);
    d->n_valid = valid;
    d->n_kv_draft = 0;
    sd_stop_observe(&d->stop, n_accepted);
}

static void dm_end(void *self) { (void)self; }

static void dm_free(void *self) {
    dm_state *d = self;
    if (!d) return;
    sd_ctx_free(d->ctx);
    sd_sampler_free(d->smp);
    free(d);
}

static const sd_drafter_ops dm_ops = {dm_begin, dm_draft, dm_accept, dm_end, dm_free, NULL};

/* Same vocabulary: size, special ids and every token's text. */
sd_status sd_check_same_vocab(const sd_model *a, const sd_model *b, char *err, size_t err_size) {
    const sd_vocab *va = sd_model_vocab(a), *vb = sd_model_vocab(b);
    int n = sd_vocab_n_tokens(va);
    if (n != sd_vocab_n_tokens(vb)) {
        if (err && err_size) snprintf(err, err_size, "draft vocabulary has %d tokens, target %d", sd_vocab_n_tokens(vb), n);
        return SD_ERR_MISMATCH;
    }
    if (sd_vocab_bos(va) != sd_vocab_bos(vb) || sd_vocab_eos(va) != sd_vocab_eos(vb)) {
        if (err && err_size) snprintf(err, err_size, "draft and target special tokens differ (bos/eos)");
        return SD_ERR_MISMATCH;
    }
    for (int i = 0; i < n; i++) {
        const char *ta = sd_vocab_token_text(va, i), *tb = sd_vocab_token_text(vb, i);
        if (!ta || !tb || strcmp(ta, tb) != 0) {
            if (err && err_size) snprintf(err, err_size, "draft and target vocabularies differ at token %d", i);
            return SD_ERR_MISMATCH;
        }
    }
    return SD_OK;
}

sd_status sd_drafter_new_model(const sd_model *draft, const sd_model *target, sd_threadpool *pool,
                               int n_ctx, float p_min, sd_drafter **out, char *err, size_t err_size) {
    return sd_drafter_new_model_ex(draft, target, pool, n_ctx, p_min, NULL, 0, out, err, err_size);
}

sd_status sd_draft_ctx_new(const sd_model *draft, const sd_model *target, sd_threadpool *pool, int n_ctx,
                           const int32_t *vocab_subset, int n_subset, sd_ctx **out, char *err, size_t err_size) {
    if (!draft || !target || !out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    sd_status st = sd_check_same_vocab(target, draft, err, err_size);
    if (st != SD_OK) return st;
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = n_ctx;
    cp.pool = pool;
    cp.vocab_subset = vocab_subset;
    cp.n_vocab_subset = n_subset;
    st = sd_ctx_new(draft, &cp, out);
    if (st == SD_ERR_INVALID_ARG && err && err_size) snprintf(err, err_size, "invalid draft context (n_ctx or vocab subset)");
    return st;
}

sd_status sd_drafter_new_model_ex(const sd_model *draft, const sd_model *target, sd_threadpool *pool,
                                  int n_ctx, float p_min, const int32_t *vocab_subset, int n_subset,
                                  sd_drafter **out, char *err, size_t err_size) {
    if (!draft || !target || !out || !(p_min >= 0.0f && p_min <= 1.0f)) return SD_ERR_INVALID_ARG;
    *out = NULL;
    dm_state *d = calloc(1, sizeof *d);
    if (!d) return SD_ERR_NOMEM;
    d->model = draft;
    d->p_min = p_min;
    d->V = sd_vocab_n_tokens(sd_model_vocab(draft));
    sd_status st = sd_draft_ctx_new(draft, target, pool, n_ctx, vocab_subset, n_subset, &d->ctx, err, err_size);
    if (st != SD_OK) {
        dm_free(d);
        return st;
    }
    *out = sd_drafter_make("draft", &dm_ops, d);
    if (*out) (*out)->stops_itself = true; /* p_min, or the cost rule of spec/stop.h */
    return *out ? SD_OK : SD_ERR_NOMEM;
}

sd_status sd_drafter_model_set_reject_max(sd_drafter *dr, float reject_max) {
    if (!dr || strcmp(dr->name, "draft") != 0 || !(reject_max >= 0.0f && reject_max <= 1.0f))
        return SD_ERR_INVALID_ARG;
    ((dm_state *)dr->self)->reject_max = reject_max;
    return SD_OK;
}
