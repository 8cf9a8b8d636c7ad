/*
 * decode.c - the one decode loop every method shares:
 *
 *   prefill the prompt; first token from its last row
 *   loop: draft = drafter->draft(history)            (empty: plain decoding)
 *         batch = [last token, d1..dk]               (positions n_past + i)
 *         logits = ONE target forward                (k + 1 rows)
 *         j, next = verify(draft, p rows, rng)       (greedy or spec. sampling)
 *         keep the KV cells of [last, d1..dj], drop the rest
 *         emit d1..dj, next; drafter->accept(history)
 *
 * cut into steps (sd_gen_*), so that a caller can run the target forwards
 * of several generations in one sd_decode_multi:
 *   sd_gen_begin    prefill, first token
 *   sd_gen_prepare  draft, build the verification batch (tree: ancestor
 *                   mask; self-speculation: layer_begin > 0)
 *   (the caller runs the batch on the generation's ctx)
 *   sd_gen_finish   verify, KV rollback / keep, emit, drafter->accept
 * sd_generate is begin + loop(prepare, sd_ctx_decode, finish).
 */
#include <stdlib.h>
#include <string.h>

#include "compute/ctx.h"
#include "speculative/auto.h"
#include "speculative/drafter.h"
#include "speculative/verify.h"

sd_gen_params sd_gen_default_params(void) {
    sd_gen_params p = {.n_predict = 128, .ignore_eos = false, .draft_max = 6, .draft_min = 0,
                       .costs = NULL, .on_tokens = NULL, .user = NULL};
    return p;
}

/* One generation in progress (the step API's state). The arrays the
 * prepared batch points to (tok, pos, mask, rows) live here, so the batch
 * stays valid until sd_gen_finish. */
struct sd_gen {
    sd_ctx *ctx;
    sd_sampler *smp;
    sd_drafter *drafter;
    sd_gen_params gp;
    sd_cost_table *own_costs;  /* measured here when SD_DRAFT_AUTO had none */
    sd_auto au;
    bool is_auto, is_feedback, greedy, want_h;
    int k_feedback;            /* the feedback schedule's current length    */
    int kmax;
    int32_t *hist;             /* (n_prompt + n_predict + 1) accepted history */
    int n_hist;
    int32_t *out;              /* (n_predict + 1) generated ids               */
    int n_out, n_predict;
    bool stop;                 /* no more steps (EOS, n_predict, callback)  */
    bool ended;                /* drafter->end called, stats final         */
    sd_status rc;              /* first error; sticky                       */
    sd_verify_fault fault;     /* SD_VERIFY_EXACT unless a test set one     */
    sd_verify_observer observer; /* a test's, or NULL (verify_hooks.h)      */
    void *observer_user;
    const sd_vocab *vocab;
    float *p, *scratch;        /* sampling: (SD_MAX_DRAFT + 1, V), (3 V)     */
    sd_draft dr;
    sd_rng draft_rng;
    sd_draft_env env;
    sd_draft_costs costs;      /* env.costs under --draft-max auto          */
    /* the step between prepare and finish */
    int phase;                 /* 0: idle, 1: a batch is out                */
    int n_past, k_plan;
    double draft_step_ms, t_verify, t_gen0;
    int32_t btok[SD_MAX_DRAFT + 1], bpos[SD_MAX_DRAFT + 1];
    uint8_t brows[SD_MAX_DRAFT + 1];
    uint8_t *mask;             /* (R, R) for a tree step, else NULL          */
    sd_batch batch;
    sd_spec_stats st;
};

/* Appends accepted tokens to the history and output, stopping at an
 * end-of-generation token (not emitted) or at n_predict. */
static void emit(sd_gen *g, const int32_t *toks, int n) {
    int m = 0;
    for (; m < n && g->n_out < g->n_predict; m++) {
        if (!g->gp.ignore_eos && sd_vocab_is_eog(g->vocab, toks[m])) {
            g->stop = true;
            break;
        }
        g->out[g->n_out++] = toks[m];
        g->hist[g->n_hist++] = toks[m];
    }
    if (g->n_out >= g->n_predict) g->stop = true;
    if (m > 0 && g->gp.on_tokens && !g->gp.on_tokens(g->gp.user, toks, m)) g->stop = true;
}

/* Checks a drafted tree: parents precede children, tokens in range,
 * siblings distinct. */
static bool tree_ok(const sd_draft *dr, int V) {
    for (int i = 0; i < dr->n; i++) {
        if (dr->tok[i] < 0 || dr->tok[i] >= V || dr->parent[i] < -1 || dr->parent[i] >= i) return false;
        for (int k = 0; k < i; k++)
            if (dr->parent[k] == dr->parent[i] && dr->tok[k] == dr->tok[i]) return false;
    }
    return true;
}

/* The feedback schedule: +2 after a fully accepted draft, else -1. */
static int feedback_next(int k, bool all_accepted) {
    k += all_accepted ? 2 : -1;
    return k < 1 ? 1 : k > SD_AUTO_KMAX ? SD_AUTO_KMAX : k;
}

/* Depth of the deepest node of a tree. */
static int tree_depth(const sd_draft *dr) {
    int depth[SD_MAX_DRAFT], max_d = 0;
    for (int i = 0; i < dr->n; i++) {
        depth[i] = dr->parent[i] < 0 ? 1 : depth[dr->parent[i]] + 1;
        if (depth[i] > max_d) max_d = depth[i];
    }
    return max_d;
}

/* Per-depth statistics of a tree step: depth d counts as drafted when the
 * tree reaches it, as accepted when the accepted path does. */
static void tree_stats(sd_spec_stats *st, const sd_draft *dr, int j) {
    int depth[SD_MAX_DRAFT], max_d = 0;
    for (int i = 0; i < dr->n; i++) {
        depth[i] = dr->parent[i] < 0 ? 1 : depth[dr->parent[i]] + 1;
        if (depth[i] > max_d) max_d = depth[i];
    }
    st->steps++;
    st->drafted += dr->n;
    st->accepted += j;
    for (int d = 0; d < max_d && d < SD_MAX_DRAFT_POS; d++) {
        st->drafted_at[d]++;
        if (d < j) st->accepted_at[d]++;
    }
}


/* Ends the generation once: the drafter's end hook and the final stats. */
static void gen_end(sd_gen *g) {
    if (g->ended) return;
    g->ended = true;
    g->stop = true;
    if (g->drafter && g->drafter->ops->end) g->drafter->ops->end(g->drafter->self);
    g->st.gen_ms = sd_now_ms() - g->t_gen0;
    g->st.n_generated = g->n_out;
}

void sd_gen_free(sd_gen *g) {
    if (!g) return;
    gen_end(g);
    free(g->hist);
    free(g->out);
    free(g->p);
    free(g->scratch);
    free(g->dr.q);
    free(g->mask);
    sd_cost_table_free(g->own_costs);
    free(g);
}

sd_status sd_gen_begin(sd_ctx *ctx, sd_sampler *smp, sd_drafter *drafter, const int32_t *prompt, int n_prompt,
                       const sd_gen_params *gp_in, sd_gen **out) {
    if (!out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    if (!ctx || !smp || !prompt || n_prompt < 1) return SD_ERR_INVALID_ARG;
    sd_gen_params gp = gp_in ? *gp_in : sd_gen_default_params();
    if (gp.n_predict < 0 || (gp.draft_max < 0 && gp.draft_max != SD_DRAFT_AUTO && gp.draft_max != SD_DRAFT_FEEDBACK) ||
        gp.draft_max > SD_MAX_DRAFT || gp.draft_max > SD_MAX_DRAFT_POS || gp.draft_min < 0)
        return SD_ERR_INVALID_ARG;
    const sd_model *m = ctx->model;
    const int V = m->n_vocab;
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V) return SD_ERR_INVALID_ARG;
    sd_gen *g = calloc(1, sizeof *g);
    if (!g) return SD_ERR_NOMEM;
    g->ctx = ctx;
    g->smp = smp;
    g->drafter = drafter;
    g->gp = gp;
    g->is_auto = drafter && gp.draft_max == SD_DRAFT_AUTO;
    g->is_feedback = drafter && gp.draft_max == SD_DRAFT_FEEDBACK;
    g->k_feedback = 4;
    g->ended = true; /* nothing to end until the drafter has been reached */
    if (g->is_auto && !g->gp.costs) {
        sd_status cs = sd_cost_table_measure(ctx, &g->own_costs);
        if (cs != SD_OK) {
            sd_gen_free(g);
            return cs;
        }
        g->gp.costs = g->own_costs;
    }
    sd_auto_init(&g->au, g->gp.costs, g->is_auto ? SD_AUTO_KMAX : 0);
    g->au.probe_full = drafter && drafter->stops_itself;
    if ((long)n_prompt + gp.n_predict > ctx->n_ctx) {
        sd_gen_free(g);
        return SD_ERR_CTX_FULL;
    }
    g->st.n_prompt = n_prompt;
    g->greedy = sd_sampler_is_greedy(smp);
    g->kmax = !drafter ? 0 : (g->is_auto || g->is_feedback) ? SD_AUTO_KMAX : gp.draft_max;
    g->n_predict = gp.n_predict;
    g->vocab = m->vocab;
    g->hist = malloc(((size_t)n_prompt + (size_t)gp.n_predict + 1) * sizeof *g->hist);
    g->out = malloc(((size_t)gp.n_predict + 1) * sizeof *g->out);
    /* sampling: p rows for up to SD_MAX_DRAFT + 1 verified rows (a tree
     * may have more nodes than a chain step), scratch for the verifiers */
    if (!g->greedy) {
        g->p = malloc(((size_t)SD_MAX_DRAFT + 1) * (size_t)V * sizeof(float));
        g->scratch = malloc((size_t)3 * (size_t)V * sizeof(float));
    }
    if (drafter && g->kmax > 0) g->dr.q = malloc((size_t)SD_MAX_DRAFT * (size_t)V * sizeof(float));
    if (!g->hist || !g->out || (!g->greedy && (!g->p || !g->scratch)) || (drafter && g->kmax > 0 && !g->dr.q)) {
        sd_gen_free(g);
        return SD_ERR_NOMEM;
    }
    memcpy(g->hist, prompt, (size_t)n_prompt * sizeof *g->hist);
    g->n_hist = n_prompt;
    sd_rng_seed(&g->draft_rng, sd_sampler_get_params(smp)->seed ^ 0x9E3779B97F4A7C15ull);
    g->env = (sd_draft_env){.sp = sd_sampler_get_params(smp), .rng = &g->draft_rng};

    /* prefill */
    g->ended = false;
    double t0 = sd_now_ms();
    sd_ctx_kv_clear(ctx);
    g->want_h = drafter && drafter->ops->features;
    sd_batch b = sd_batch_simple(prompt, n_prompt);
    sd_status rc = SD_OK;
    if (g->want_h && n_prompt > 1) { /* hidden states of every prompt row but the last */
        uint8_t *rows = malloc((size_t)n_prompt - 1);
        if (!rows) rc = SD_ERR_NOMEM;
        else {
            memset(rows, 1, (size_t)n_prompt - 1);
            sd_batch hb = sd_batch_simple(prompt, n_prompt - 1);
            hb.output = rows;
            hb.out_flags = SD_OUTPUT_HIDDEN;
            rc = sd_ctx_decode(ctx, &hb);
            free(rows);
            if (rc == SD_OK) drafter->ops->features(drafter->self, sd_ctx_hidden(ctx, 0), n_prompt - 1, 0);
        }
        b = sd_batch_simple(prompt + n_prompt - 1, 1);
    }
    if (g->want_h) b.out_flags = SD_OUTPUT_LOGITS | SD_OUTPUT_HIDDEN;
    if (rc == SD_OK) rc = sd_ctx_decode(ctx, &b);
    if (rc == SD_OK && g->want_h) drafter->ops->features(drafter->self, sd_ctx_hidden(ctx, 0), 1, n_prompt - 1);
    if (rc == SD_OK && drafter && drafter->ops->begin) rc = drafter->ops->begin(drafter->self, prompt, n_prompt);
    g->t_gen0 = sd_now_ms();
    g->st.prompt_ms = g->t_gen0 - t0;
    if (rc != SD_OK) {
        sd_gen_free(g);
        return rc;
    }
    if (gp.n_predict > 0) {
        int32_t first = sd_sampler_sample(smp, sd_ctx_logits(ctx, 0));
        emit(g, &first, 1);
        if (drafter && drafter->ops->accept) drafter->ops->accept(drafter->self, g->hist, g->n_hist, 0);
    } else {
        g->stop = true;
    }
    *out = g;
    return SD_OK;
}

int sd_gen_prepare(sd_gen *g, sd_batch *batch) {
    if (!g || !batch) return SD_ERR_INVALID_ARG;
    if (g->phase != 0) return SD_ERR_INVALID_ARG; /* finish the previous step first */
    if (g->rc != SD_OK || g->stop) {
        gen_end(g);
        return g->rc != SD_OK ? g->rc : 0;
    }
    sd_ctx *ctx = g->ctx;
    const sd_model *m = ctx->model;
    const int V = m->n_vocab;
    sd_draft *dr = &g->dr;
    const int n_past = sd_ctx_kv_min(ctx);
    int k = g->is_auto ? sd_auto_choose(&g->au, n_past) : g->is_feedback ? g->k_feedback : g->kmax;
    g->k_plan = k;
    g->n_past = n_past;
    g->draft_step_ms = 0.0;
    if (k > g->n_predict - g->n_out - 1) k = g->n_predict - g->n_out - 1;
    if (k > ctx->n_ctx - n_past - 1) k = ctx->n_ctx - n_past - 1;
    dr->n = 0;
    dr->has_q = false;
    dr->is_tree = false;
    dr->layer_begin = 0;
    dr->embd = NULL;
    sd_status rc = SD_OK;
    g->env.costs = NULL;
    if (k > 0 && g->is_auto) { /* for drafters that stop themselves (spec/stop.h) */
        sd_draft_costs *c = &g->costs;
        c->max_rows = k + 1;
        for (int r = 1; r <= k + 1; r++)
            c->verify_ms[r] = g->au.verify_frac * sd_cost_table_ms(g->gp.costs, r, n_past);
        c->node_ms = g->au.node_ms;
        c->call_ms = g->au.call_ms;
        g->env.costs = c;
    }
    if (k > 0) {
        double td = sd_now_ms();
        rc = g->drafter->ops->draft(g->drafter->self, g->hist, g->n_hist, k, &g->env, dr);
        g->draft_step_ms = sd_now_ms() - td;
        g->st.draft_ms += g->draft_step_ms;
        if (rc != SD_OK) goto fail;
        if (dr->n > k || dr->n < 0) dr->n = 0;
        for (int i = 0; i < dr->n; i++)
            if (dr->tok[i] < 0 || dr->tok[i] >= V) dr->n = 0; /* a broken drafter: verify nothing */
        if (dr->is_tree && !tree_ok(dr, V)) dr->n = 0;
        if (dr->n < g->gp.draft_min) dr->n = 0;
    }
    g->t_verify = sd_now_ms();
    const int32_t root = g->hist[g->n_hist - 1];
    if (dr->is_tree && dr->n > 0) {
        /* rows [root, nodes...] at positions n_past + depth with the ancestor mask */
        const int n = dr->n, R = n + 1;
        free(g->mask);
        g->mask = calloc((size_t)R * (size_t)R, 1);
        if (!g->mask) { rc = SD_ERR_NOMEM; goto fail; }
        g->btok[0] = root;
        g->bpos[0] = n_past;
        g->mask[0] = 1;
        for (int i = 0; i < R; i++) g->brows[i] = 1;
        for (int i = 0; i < n; i++) {
            int r = i + 1;
            g->btok[r] = dr->tok[i];
            g->bpos[r] = dr->parent[i] < 0 ? n_past + 1 : g->bpos[dr->parent[i] + 1] + 1;
            g->mask[(size_t)r * R] = 1;
            for (int a = i; a >= 0; a = dr->parent[a]) g->mask[(size_t)r * R + a + 1] = 1;
        }
        g->batch = sd_batch_simple(g->btok, R);
        g->batch.pos = g->bpos;
        g->batch.mask = g->mask;
        g->batch.output = g->brows;
        if (g->want_h) g->batch.out_flags = SD_OUTPUT_LOGITS | SD_OUTPUT_HIDDEN;
    } else {
        g->btok[0] = root;
        memcpy(g->btok + 1, dr->tok, (size_t)dr->n * sizeof *g->btok);
        memset(g->brows, 1, sizeof g->brows);
        g->batch = sd_batch_simple(g->btok, dr->n + 1);
        g->batch.output = g->brows;
        if (g->want_h) g->batch.out_flags = SD_OUTPUT_LOGITS | SD_OUTPUT_HIDDEN;
        if (dr->layer_begin > 0 && !dr->is_tree) { /* the drafter ran layers [0, L) */
            if (dr->layer_begin >= m->n_layer || !dr->embd || sd_ctx_kv_len(ctx, dr->layer_begin) != n_past) {
                rc = SD_ERR_INVALID_ARG;
                goto fail;
            }
            g->batch.layer_begin = dr->layer_begin;
            g->batch.embd = dr->embd;
        } else if (sd_ctx_kv_len(ctx, 0) != n_past) {
            sd_ctx_kv_truncate(ctx, n_past); /* a drafter that left cells behind */
        }
    }
    *batch = g->batch;
    g->phase = 1;
    return 1;
fail:
    g->rc = rc;
    gen_end(g);
    return rc;
}

/* Verifies the tree step after the target ran it: the accepted path's KV
 * cells are kept, acc receives its tokens, *j their count, *next the
 * correction / bonus token. */
static sd_status finish_tree(sd_gen *g, int32_t *acc, int *j, int32_t *next) {
    sd_ctx *ctx = g->ctx;
    const sd_draft *dr = &g->dr;
    const int n = dr->n, R = n + 1, V = ctx->model->n_vocab, n_past = g->n_past;
    int32_t path[SD_MAX_DRAFT], argmax[SD_MAX_DRAFT + 1];
    int nj;
    if (g->greedy) {
        for (int i = 0; i < R; i++) argmax[i] = sd_argmax(sd_ctx_logits(ctx, i), V);
        nj = sd_verify_tree_greedy(dr->tok, dr->parent, n, argmax, path, next);
    } else {
        for (int i = 0; i < R; i++) sd_sampler_dist(g->smp, sd_ctx_logits(ctx, i), g->p + (size_t)i * V);
        const float *q = dr->has_q ? dr->q : NULL;
        sd_rng *rng = sd_sampler_rng(g->smp);
        nj = g->fault == SD_VERIFY_EXACT
                 ? sd_verify_tree_sample(dr->tok, dr->parent, n, g->p, q, V, rng, g->scratch, path, next)
                 : sd_verify_tree_sample_faulty(dr->tok, dr->parent, n, g->p, q, V, rng, g->scratch, path,
                                                next, g->fault);
    }
    if (nj < 0 || *next < 0) return SD_ERR_INVALID_ARG;
    if (g->observer && !g->greedy) {
        const sd_verify_event ev = {n, dr->tok, dr->parent, g->p, dr->has_q ? dr->q : NULL, V, nj, path, *next};
        g->observer(g->observer_user, &ev);
    }
    int32_t cells[SD_MAX_DRAFT];
    for (int k = 0; k < nj; k++) {
        cells[k] = n_past + 1 + path[k];
        acc[k] = dr->tok[path[k]];
    }
    *j = nj;
    if (g->want_h) { /* hidden states of the root and the accepted path, in order */
        const int E = ctx->model->n_embd;
        float *h = malloc((size_t)(nj + 1) * (size_t)E * sizeof(float));
        if (!h) return SD_ERR_NOMEM;
        memcpy(h, sd_ctx_hidden(ctx, 0), (size_t)E * sizeof(float));
        for (int k = 0; k < nj; k++)
            memcpy(h + (size_t)(k + 1) * E, sd_ctx_hidden(ctx, 1 + path[k]), (size_t)E * sizeof(float));
        g->drafter->ops->features(g->drafter->self, h, nj + 1, n_past);
        free(h);
    }
    return sd_ctx_kv_keep(ctx, n_past + 1, cells, nj);
}

sd_status sd_gen_finish(sd_gen *g) {
    if (!g || g->phase != 1) return SD_ERR_INVALID_ARG;
    g->phase = 0;
    sd_ctx *ctx = g->ctx;
    const sd_model *m = ctx->model;
    const int V = m->n_vocab;
    const sd_draft *dr = &g->dr;
    sd_drafter *drafter = g->drafter;
    const int n_past = g->n_past;
    sd_status rc = SD_OK;
    int32_t acc[SD_MAX_DRAFT + 1];
    /* the forward must have produced every row of the prepared batch */
    if (sd_ctx_n_outputs(ctx) != g->batch.n_tokens || sd_ctx_kv_len(ctx, m->n_layer - 1) < n_past + g->batch.n_tokens) {
        rc = SD_ERR_INVALID_ARG;
        goto fail;
    }
    if (dr->is_tree && dr->n > 0) {
        int j = 0;
        int32_t next = -1;
        rc = finish_tree(g, acc, &j, &next);
        g->st.verify_ms += sd_now_ms() - g->t_verify;
        if (rc != SD_OK) goto fail;
        tree_stats(&g->st, dr, j);
        if (g->is_auto) sd_auto_update(&g->au, g->k_plan, true, dr->n, tree_depth(dr), j, g->draft_step_ms);
        if (g->is_feedback) g->k_feedback = feedback_next(g->k_feedback, j >= tree_depth(dr) && dr->n > 0);
        acc[j] = next;
        emit(g, acc, j + 1);
        if (drafter->ops->accept) {
            double ta = sd_now_ms();
            drafter->ops->accept(drafter->self, g->hist, g->n_hist, j);
            g->st.draft_ms += sd_now_ms() - ta;
        }
        return SD_OK;
    }
    int32_t argmax[SD_MAX_DRAFT + 1];
    int j;
    int32_t next;
    if (g->greedy) {
        for (int i = 0; i <= dr->n; i++) argmax[i] = sd_argmax(sd_ctx_logits(ctx, i), V);
        j = sd_verify_greedy(dr->tok, dr->n, argmax, &next);
    } else {
        for (int i = 0; i <= dr->n; i++) sd_sampler_dist(g->smp, sd_ctx_logits(ctx, i), g->p + (size_t)i * V);
        const float *q = dr->has_q ? dr->q : NULL;
        sd_rng *rng = sd_sampler_rng(g->smp);
        j = g->fault == SD_VERIFY_EXACT
                ? sd_verify_sample(dr->tok, dr->n, g->p, q, V, rng, g->scratch, &next)
                : sd_verify_sample_faulty(dr->tok, dr->n, g->p, q, V, rng, g->scratch, &next, g->fault);
        if (next < 0) { rc = SD_ERR_INVALID_ARG; goto fail; }
        if (g->observer) {
            const sd_verify_event ev = {dr->n, dr->tok, NULL, g->p, q, V, j, NULL, next};
            g->observer(g->observer_user, &ev);
        }
    }
    /* keep [last, d1..dj]; the correction/bonus token is fed next step */
    sd_ctx_kv_truncate(ctx, n_past + 1 + j);
    g->st.verify_ms += sd_now_ms() - g->t_verify;
    g->st.steps++;
    g->st.drafted += dr->n;
    g->st.accepted += j;
    for (int i = 0; i < dr->n && i < SD_MAX_DRAFT_POS; i++) {
        g->st.drafted_at[i]++;
        if (i < j) g->st.accepted_at[i]++;
    }
    if (g->want_h) drafter->ops->features(drafter->self, sd_ctx_hidden(ctx, 0), j + 1, n_past);
    if (g->is_auto) {
        sd_auto_update(&g->au, g->k_plan, false, dr->n, dr->n, j, g->draft_step_ms);
        if (g->k_plan > 0)
            sd_auto_verify_share(&g->au, (double)(m->n_layer - dr->layer_begin) / (double)m->n_layer);
    }
    if (g->is_feedback) g->k_feedback = feedback_next(g->k_feedback, j == dr->n && dr->n > 0);
    memcpy(acc, dr->tok, (size_t)j * sizeof *acc);
    acc[j] = next;
    emit(g, acc, j + 1);
    if (drafter && drafter->ops->accept) {
        double ta = sd_now_ms();
        drafter->ops->accept(drafter->self, g->hist, g->n_hist, j);
        g->st.draft_ms += sd_now_ms() - ta;
    }
    return SD_OK;
fail:
    g->rc = rc;
    gen_end(g);
    return rc;
}

sd_status sd_gen_set_verify_fault(sd_gen *g, sd_verify_fault f) {
    if (!g || f < SD_VERIFY_EXACT || f >= SD_VERIFY_FAULT_COUNT) return SD_ERR_INVALID_ARG;
    g->fault = f;
    return SD_OK;
}

sd_status sd_gen_set_verify_observer(sd_gen *g, sd_verify_observer fn, void *user) {
    if (!g) return SD_ERR_INVALID_ARG;
    g->observer = fn;
    g->observer_user = user;
    return SD_OK;
}

void sd_gen_abort(sd_gen *g, sd_status why) {
    if (!g) return;
    g->phase = 0;
    if (g->rc == SD_OK) g->rc = why < 0 ? why : SD_ERR_INVALID_ARG;
    gen_end(g);
}

const int32_t *sd_gen_output(const sd_gen *g, int *n) {
    if (n) *n = g ? g->n_out : 0;
    return g ? g->out : NULL;
}

bool sd_gen_done(const sd_gen *g) { return !g || g->stop || g->rc != SD_OK; }

void sd_gen_stats(const sd_gen *g, sd_spec_stats *stats) {
    if (!g || !stats) return;
    *stats = g->st;
    if (!g->ended) {
        stats->gen_ms = sd_now_ms() - g->t_gen0;
        stats->n_generated = g->n_out;
    }
}

sd_status sd_generate(sd_ctx *ctx, sd_sampler *smp, sd_drafter *drafter, const int32_t *prompt,
                      int n_prompt, const sd_gen_params *gp, int32_t *out, int *n_out,
                      sd_spec_stats *stats) {
    if (!ctx || !smp || !prompt || n_prompt < 1 || !out || !n_out) return SD_ERR_INVALID_ARG;
    *n_out = 0;
    sd_gen *g = NULL;
    sd_status rc = sd_gen_begin(ctx, smp, drafter, prompt, n_prompt, gp, &g);
    if (rc != SD_OK) return rc;
    sd_batch b;
    int r;
    while ((r = sd_gen_prepare(g, &b)) > 0) {
        if ((rc = sd_ctx_decode(ctx, &b)) != SD_OK) {
            sd_gen_abort(g, rc);
            break;
        }
        if ((rc = sd_gen_finish(g)) != SD_OK) break;
    }
    if (r < 0) rc = (sd_status)r;
    int n = 0;
    const int32_t *ids = sd_gen_output(g, &n);
    memcpy(out, ids, (size_t)n * sizeof *out);
    *n_out = n;
    gen_end(g);
    if (stats) sd_gen_stats(g, stats);
    sd_gen_free(g);
    return rc;
}
