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
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "spec/auto.h"
#include "spec/drafter.h"
#include "spec/verify.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

sd_gen_params sd_gen_default_params(void) {
    sd_gen_params p = {.n_predict = 128, .ignore_eos = false, .draft_max = 6, .draft_min = 0,
                       .costs = NULL, .on_tokens = NULL, .user = NULL};
    return p;
}

typedef struct gen_state {
    int32_t *hist;      /* (n_prompt + n_predict + 1) accepted history       */
    int n_hist;
    int32_t *out;
    int n_out, n_predict;
    bool stop;
    const sd_vocab *vocab;
    const sd_gen_params *gp;
} gen_state;

/* Appends accepted tokens to the history and output, stopping at an
 * end-of-generation token (not emitted) or at n_predict. */
static void emit(gen_state *g, const int32_t *toks, int n) {
    int m = 0;
    for (; m < n && g->n_out < g->n_predict; m++) {
        if (!g->gp->ignore_eos && sd_vocab_is_eog(g->vocab, toks[m])) {
            g->stop = true;
            break;
        }
        g->out[g->n_out++] = toks[m];
        g->hist[g->n_hist++] = toks[m];
    }
    if (g->n_out >= g->n_predict) g->stop = true;
    if (m > 0 && g->gp->on_tokens && !g->gp->on_tokens(g->gp->user, toks, m)) g->stop = true;
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

/* Verifies a drafted tree in ONE target forward: rows [root, nodes...] at
 * positions n_past + depth with the ancestor mask, then keeps the KV cells
 * of the accepted path. acc receives the accepted tokens, *j their count,
 * *next the correction / bonus token. p: (SD_MAX_DRAFT + 1, V) and scratch
 * (3 V) when sampling. */
static sd_status verify_tree(sd_ctx *ctx, sd_sampler *smp, const sd_draft *dr, int n_past, int32_t root,
                             bool greedy, float *p, float *scratch, int32_t *acc, int *j, int32_t *next,
                             sd_drafter *feat) {
    const int n = dr->n, R = n + 1, V = ctx->model->n_vocab;
    int32_t tok[SD_MAX_DRAFT + 1], pos[SD_MAX_DRAFT + 1], path[SD_MAX_DRAFT], argmax[SD_MAX_DRAFT + 1];
    uint8_t out[SD_MAX_DRAFT + 1];
    uint8_t *mask = calloc((size_t)R * (size_t)R, 1);
    if (!mask) return SD_ERR_NOMEM;
    tok[0] = root;
    pos[0] = n_past;
    mask[0] = 1;
    for (int i = 0; i < R; i++) out[i] = 1;
    for (int i = 0; i < n; i++) {
        int r = i + 1;
        tok[r] = dr->tok[i];
        pos[r] = dr->parent[i] < 0 ? n_past + 1 : pos[dr->parent[i] + 1] + 1;
        mask[(size_t)r * R] = 1;
        for (int a = i; a >= 0; a = dr->parent[a]) mask[(size_t)r * R + a + 1] = 1;
    }
    sd_batch b = sd_batch_simple(tok, R);
    b.pos = pos;
    b.mask = mask;
    b.output = out;
    if (feat) b.out_flags = SD_OUTPUT_LOGITS | SD_OUTPUT_HIDDEN;
    sd_status rc = sd_ctx_decode(ctx, &b);
    free(mask);
    if (rc != SD_OK) return rc;
    int nj;
    if (greedy) {
        for (int i = 0; i < R; i++) argmax[i] = sd_argmax(sd_ctx_logits(ctx, i), V);
        nj = sd_verify_tree_greedy(dr->tok, dr->parent, n, argmax, path, next);
    } else {
        for (int i = 0; i < R; i++) sd_sampler_dist(smp, sd_ctx_logits(ctx, i), p + (size_t)i * V);
        nj = sd_verify_tree_sample(dr->tok, dr->parent, n, p, dr->has_q ? dr->q : NULL, V, sd_sampler_rng(smp),
                                   scratch, path, next);
    }
    if (nj < 0 || *next < 0) return SD_ERR_INVALID_ARG;
    int32_t cells[SD_MAX_DRAFT];
    for (int k = 0; k < nj; k++) {
        cells[k] = n_past + 1 + path[k];
        acc[k] = dr->tok[path[k]];
    }
    *j = nj;
    if (feat) { /* hidden states of the root and the accepted path, in order */
        const int E = ctx->model->n_embd;
        float *h = malloc((size_t)(nj + 1) * (size_t)E * sizeof(float));
        if (!h) return SD_ERR_NOMEM;
        memcpy(h, sd_ctx_hidden(ctx, 0), (size_t)E * sizeof(float));
        for (int k = 0; k < nj; k++)
            memcpy(h + (size_t)(k + 1) * E, sd_ctx_hidden(ctx, 1 + path[k]), (size_t)E * sizeof(float));
        feat->ops->features(feat->self, h, nj + 1, n_past);
        free(h);
    }
    return sd_ctx_kv_keep(ctx, n_past + 1, cells, nj);
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

sd_status sd_generate(sd_ctx *ctx, sd_sampler *smp, sd_drafter *drafter, const int32_t *prompt,
                      int n_prompt, const sd_gen_params *gp_in, int32_t *out, int *n_out,
                      sd_spec_stats *stats) {
    if (!ctx || !smp || !prompt || n_prompt < 1 || !out || !n_out) return SD_ERR_INVALID_ARG;
    sd_gen_params gp = gp_in ? *gp_in : sd_gen_default_params();
    if (gp.n_predict < 0 || (gp.draft_max < 0 && gp.draft_max != SD_DRAFT_AUTO && gp.draft_max != SD_DRAFT_FEEDBACK) ||
        gp.draft_max > SD_MAX_DRAFT || gp.draft_max > SD_MAX_DRAFT_POS || gp.draft_min < 0)
        return SD_ERR_INVALID_ARG;
    const bool is_auto = drafter && gp.draft_max == SD_DRAFT_AUTO;
    const bool is_feedback = drafter && gp.draft_max == SD_DRAFT_FEEDBACK;
    int k_feedback = 4; /* the feedback schedule's current length */
    sd_cost_table *own_costs = NULL;
    if (is_auto && !gp.costs) {
        sd_status cs = sd_cost_table_measure(ctx, &own_costs);
        if (cs != SD_OK) return cs;
        gp.costs = own_costs;
    }
    sd_auto au;
    sd_auto_init(&au, gp.costs, is_auto ? SD_AUTO_KMAX : 0);
    *n_out = 0;
    const sd_model *m = ctx->model;
    const int V = m->n_vocab;
    if ((long)n_prompt + gp.n_predict > ctx->n_ctx) return SD_ERR_CTX_FULL;
    sd_spec_stats st;
    memset(&st, 0, sizeof st);
    st.n_prompt = n_prompt;

    const bool greedy = sd_sampler_is_greedy(smp);
    const int kmax = !drafter ? 0 : (is_auto || is_feedback) ? SD_AUTO_KMAX : gp.draft_max;
    gen_state g = {.n_predict = gp.n_predict, .out = out, .vocab = m->vocab, .gp = &gp};
    g.hist = malloc(((size_t)n_prompt + (size_t)gp.n_predict + 1) * sizeof *g.hist);
    /* sampling: p rows for up to SD_MAX_DRAFT + 1 verified rows (a tree
     * may have more nodes than a chain step), scratch for the verifiers */
    float *p = greedy ? NULL : malloc(((size_t)SD_MAX_DRAFT + 1) * (size_t)V * sizeof(float));
    float *scratch = greedy ? NULL : malloc((size_t)3 * (size_t)V * sizeof(float));
    sd_draft dr = {0};
    if (drafter && kmax > 0) dr.q = malloc((size_t)SD_MAX_DRAFT * (size_t)V * sizeof(float));
    if (!g.hist || (!greedy && (!p || !scratch)) || (drafter && kmax > 0 && !dr.q)) {
        free(g.hist); free(p); free(scratch); free(dr.q);
        sd_cost_table_free(own_costs);
        return SD_ERR_NOMEM;
    }
    memcpy(g.hist, prompt, (size_t)n_prompt * sizeof *g.hist);
    g.n_hist = n_prompt;
    sd_rng draft_rng;
    sd_rng_seed(&draft_rng, sd_sampler_get_params(smp)->seed ^ 0x9E3779B97F4A7C15ull);
    sd_draft_env env = {.sp = sd_sampler_get_params(smp), .rng = &draft_rng};
    uint8_t all_rows[SD_MAX_DRAFT + 1];
    memset(all_rows, 1, sizeof all_rows);
    int32_t batch[SD_MAX_DRAFT + 1], argmax[SD_MAX_DRAFT + 1], acc[SD_MAX_DRAFT + 1];

    /* prefill */
    double t0 = now_ms();
    sd_ctx_kv_clear(ctx);
    const bool want_h = drafter && drafter->ops->features;
    sd_batch b = sd_batch_simple(prompt, n_prompt);
    sd_status rc = SD_OK;
    if (want_h && n_prompt > 1) { /* hidden states of every prompt row but the last */
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
    if (want_h) b.out_flags = SD_OUTPUT_LOGITS | SD_OUTPUT_HIDDEN;
    if (rc == SD_OK) rc = sd_ctx_decode(ctx, &b);
    if (rc == SD_OK && want_h) drafter->ops->features(drafter->self, sd_ctx_hidden(ctx, 0), 1, n_prompt - 1);
    if (rc == SD_OK && drafter && drafter->ops->begin) rc = drafter->ops->begin(drafter->self, prompt, n_prompt);
    double t1 = now_ms();
    st.prompt_ms = t1 - t0;
    if (rc == SD_OK && gp.n_predict > 0) {
        int32_t first = sd_sampler_sample(smp, sd_ctx_logits(ctx, 0));
        emit(&g, &first, 1);
        if (drafter && drafter->ops->accept) drafter->ops->accept(drafter->self, g.hist, g.n_hist, 0);
    } else {
        g.stop = true;
    }

    while (rc == SD_OK && !g.stop) {
        const int n_past = sd_ctx_kv_min(ctx);
        int k = is_auto ? sd_auto_choose(&au, n_past) : is_feedback ? k_feedback : kmax;
        const int k_plan = k;
        double draft_step_ms = 0.0;
        if (k > g.n_predict - g.n_out - 1) k = g.n_predict - g.n_out - 1;
        if (k > ctx->n_ctx - n_past - 1) k = ctx->n_ctx - n_past - 1;
        dr.n = 0;
        dr.has_q = false;
        dr.is_tree = false;
        dr.layer_begin = 0;
        dr.embd = NULL;
        if (k > 0) {
            double td = now_ms();
            rc = drafter->ops->draft(drafter->self, g.hist, g.n_hist, k, &env, &dr);
            draft_step_ms = now_ms() - td;
            st.draft_ms += draft_step_ms;
            if (rc != SD_OK) break;
            if (dr.n > k || dr.n < 0) dr.n = 0;
            for (int i = 0; i < dr.n; i++)
                if (dr.tok[i] < 0 || dr.tok[i] >= V) dr.n = 0; /* a broken drafter: verify nothing */
            if (dr.is_tree && !tree_ok(&dr, V)) dr.n = 0;
            if (dr.n < gp.draft_min) dr.n = 0;
        }
        if (dr.is_tree && dr.n > 0) {
            double tv = now_ms();
            int j = 0;
            int32_t next = -1;
            rc = verify_tree(ctx, smp, &dr, n_past, g.hist[g.n_hist - 1], greedy, p, scratch, acc, &j, &next,
                             want_h ? drafter : NULL);
            st.verify_ms += now_ms() - tv;
            if (rc != SD_OK) break;
            tree_stats(&st, &dr, j);
            if (is_auto) sd_auto_update(&au, k_plan, true, dr.n, tree_depth(&dr), j, draft_step_ms);
            if (is_feedback) k_feedback = feedback_next(k_feedback, j >= tree_depth(&dr) && dr.n > 0);
            acc[j] = next;
            emit(&g, acc, j + 1);
            if (drafter->ops->accept) {
                double ta = now_ms();
                drafter->ops->accept(drafter->self, g.hist, g.n_hist, j);
                st.draft_ms += now_ms() - ta;
            }
            continue;
        }
        double tv = now_ms();
        batch[0] = g.hist[g.n_hist - 1];
        memcpy(batch + 1, dr.tok, (size_t)dr.n * sizeof *batch);
        b = sd_batch_simple(batch, dr.n + 1);
        b.output = all_rows;
        if (want_h) b.out_flags = SD_OUTPUT_LOGITS | SD_OUTPUT_HIDDEN;
        if (dr.layer_begin > 0 && !dr.is_tree) { /* the drafter ran layers [0, L) */
            if (dr.layer_begin >= m->n_layer || !dr.embd || sd_ctx_kv_len(ctx, dr.layer_begin) != n_past) {
                rc = SD_ERR_INVALID_ARG;
                break;
            }
            b.layer_begin = dr.layer_begin;
            b.embd = dr.embd;
        } else if (sd_ctx_kv_len(ctx, 0) != n_past) {
            sd_ctx_kv_truncate(ctx, n_past); /* a drafter that left cells behind */
        }
        if ((rc = sd_ctx_decode(ctx, &b)) != SD_OK) break;
        int j;
        int32_t next;
        if (greedy) {
            for (int i = 0; i <= dr.n; i++) argmax[i] = sd_argmax(sd_ctx_logits(ctx, i), V);
            j = sd_verify_greedy(dr.tok, dr.n, argmax, &next);
        } else {
            for (int i = 0; i <= dr.n; i++) sd_sampler_dist(smp, sd_ctx_logits(ctx, i), p + (size_t)i * V);
            j = sd_verify_sample(dr.tok, dr.n, p, dr.has_q ? dr.q : NULL, V, sd_sampler_rng(smp), scratch, &next);
            if (next < 0) { rc = SD_ERR_INVALID_ARG; break; }
        }
        /* keep [last, d1..dj]; the correction/bonus token is fed next step */
        sd_ctx_kv_truncate(ctx, n_past + 1 + j);
        st.verify_ms += now_ms() - tv;
        st.steps++;
        st.drafted += dr.n;
        st.accepted += j;
        for (int i = 0; i < dr.n && i < SD_MAX_DRAFT_POS; i++) {
            st.drafted_at[i]++;
            if (i < j) st.accepted_at[i]++;
        }
        if (want_h) drafter->ops->features(drafter->self, sd_ctx_hidden(ctx, 0), j + 1, n_past);
        if (is_auto) {
            sd_auto_update(&au, k_plan, false, dr.n, dr.n, j, draft_step_ms);
            if (k_plan > 0)
                sd_auto_verify_share(&au, (double)(m->n_layer - dr.layer_begin) / (double)m->n_layer);
        }
        if (is_feedback) k_feedback = feedback_next(k_feedback, j == dr.n && dr.n > 0);
        memcpy(acc, dr.tok, (size_t)j * sizeof *acc);
        acc[j] = next;
        emit(&g, acc, j + 1);
        if (drafter && drafter->ops->accept) {
            double ta = now_ms();
            drafter->ops->accept(drafter->self, g.hist, g.n_hist, j);
            st.draft_ms += now_ms() - ta;
        }
    }
    if (drafter && drafter->ops->end) drafter->ops->end(drafter->self);
    st.gen_ms = now_ms() - t1;
    st.n_generated = g.n_out;
    *n_out = g.n_out;
    if (stats) *stats = st;
    free(g.hist);
    free(p);
    free(scratch);
    free(dr.q);
    sd_cost_table_free(own_costs);
    return rc;
}
