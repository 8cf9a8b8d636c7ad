/* refcheck.c - see refcheck.h. */
#include "util/refcheck.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "specdec.h"
#include "util/check.h"

typedef struct prompt_ref {
    char id[64];
    char *prompt;
    int32_t *prompt_ids; int n_prompt;
    int32_t greedy[64]; int n_greedy;
    json_t *top5;            /* (64, 5, 2) */
} prompt_ref;

static int32_t *json_ids(json_t *a, int *n) {
    *n = (int)json_array_size(a);
    int32_t *ids = malloc(((size_t)*n + 1) * sizeof *ids);
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(a, (size_t)i));
    return ids;
}

/* Loads the reference lines of model/task and their prompts. */
static int load_refs(const char *model, const char *task, prompt_ref *out, int max) {
    char path[1024];
    snprintf(path, sizeof path, "%s/bench/%s.jsonl", test_shared_dir(), task);
    FILE *fb = fopen(path, "r");
    snprintf(path, sizeof path, "%s/reference/%s.%s.jsonl", test_shared_dir(), model, task);
    FILE *fr = fopen(path, "r");
    if (!fb || !fr) {
        fprintf(stderr, "cannot open bench/reference files for %s %s\n", model, task);
        if (fb) fclose(fb);
        if (fr) fclose(fr);
        return -1;
    }
    json_error_t jerr;
    int n = 0;
    json_t *jb, *jr;
    while (n < max && (jb = json_loadf(fb, JSON_DISABLE_EOF_CHECK, &jerr)) != NULL) {
        jr = json_loadf(fr, JSON_DISABLE_EOF_CHECK, &jerr);
        if (!jr) { json_decref(jb); break; }
        prompt_ref *p = &out[n++];
        memset(p, 0, sizeof *p);
        snprintf(p->id, sizeof p->id, "%s", json_string_value(json_object_get(jb, "id")));
        CHECK(strcmp(p->id, json_string_value(json_object_get(jr, "id"))) == 0, "line order %s", p->id);
        p->prompt = strdup(json_string_value(json_object_get(jb, "prompt")));
        p->prompt_ids = json_ids(json_object_get(jr, "prompt_ids"), &p->n_prompt);
        json_t *g = json_object_get(jr, "greedy_ids");
        p->n_greedy = (int)json_array_size(g);
        if (p->n_greedy > 64) p->n_greedy = 64;
        for (int i = 0; i < p->n_greedy; i++) p->greedy[i] = (int32_t)json_integer_value(json_array_get(g, (size_t)i));
        p->top5 = json_incref(json_object_get(jr, "top5_logprobs"));
        json_decref(jb);
        json_decref(jr);
    }
    fclose(fb);
    fclose(fr);
    return n;
}

static void free_refs(prompt_ref *r, int n) {
    for (int i = 0; i < n; i++) {
        free(r[i].prompt);
        free(r[i].prompt_ids);
        json_decref(r[i].top5);
    }
}

/* log_softmax(logits)[id] */
static double logprob(const float *lg, int n_vocab, int id) {
    double mx = lg[0];
    for (int i = 1; i < n_vocab; i++) if (lg[i] > mx) mx = lg[i];
    double s = 0;
    for (int i = 0; i < n_vocab; i++) s += exp((double)lg[i] - mx);
    return (double)lg[id] - mx - log(s);
}

/* Greedy: returns how many of the first RC_N_GREEDY tokens agree (stops at the
 * first difference: our token goes to *ours, and how much more log-prob we
 * give it than the reference's token to *pref), -1 on error. */
static int greedy_agree(sd_ctx *ctx, const prompt_ref *p, int n_vocab, int32_t *ours, double *pref) {
    sd_ctx_kv_clear(ctx);
    sd_batch b = sd_batch_simple(p->prompt_ids, p->n_prompt);
    if (sd_ctx_decode(ctx, &b) != SD_OK) return -1;
    int agree = 0;
    *ours = -1;
    *pref = 0;
    for (int t = 0; t < RC_N_GREEDY && t < p->n_greedy; t++) {
        int32_t tok = sd_argmax(sd_ctx_logits(ctx, 0), n_vocab);
        if (tok != p->greedy[t]) {
            const float *lg = sd_ctx_logits(ctx, 0);
            *ours = tok;
            *pref = logprob(lg, n_vocab, tok) - logprob(lg, n_vocab, p->greedy[t]);
            break;
        }
        agree++;
        b = sd_batch_simple(&tok, 1);
        if (sd_ctx_decode(ctx, &b) != SD_OK) return -1;
    }
    return agree;
}

/* The reference's step t: its top log-prob minus its log-prob of tok
 * (INFINITY when tok is not in its top 5), and its top-2 margin. */
static double ref_gap(const prompt_ref *p, int t, int32_t tok, double *top2) {
    json_t *step = json_array_get(p->top5, (size_t)t);
    double lp[5], lp_tok = -INFINITY;
    int n = 0;
    for (size_t k = 0; k < json_array_size(step) && n < 5; k++, n++) {
        json_t *pair = json_array_get(step, k);
        lp[n] = json_real_value(json_array_get(pair, 1));
        if ((int32_t)json_integer_value(json_array_get(pair, 0)) == tok) lp_tok = lp[n];
    }
    double a = -INFINITY, b = -INFINITY; /* best two */
    for (int k = 0; k < n; k++) {
        if (lp[k] > a) { b = a; a = lp[k]; }
        else if (lp[k] > b) b = lp[k];
    }
    *top2 = a - b;
    return a - lp_tok;
}

/* Teacher-forced log-probs: max |ours - ref| over all steps and top-5;
 * adds the sum of |ours - ref| and its count to *sum, *cnt. */
static double logprob_diff(sd_ctx *ctx, const prompt_ref *p, int n_vocab, double *sum, int *cnt) {
    int n = p->n_prompt + p->n_greedy - 1;
    int32_t *toks = malloc((size_t)n * sizeof *toks);
    uint8_t *out = calloc((size_t)n, 1);
    memcpy(toks, p->prompt_ids, (size_t)p->n_prompt * sizeof *toks);
    memcpy(toks + p->n_prompt, p->greedy, (size_t)(p->n_greedy - 1) * sizeof *toks);
    for (int i = p->n_prompt - 1; i < n; i++) out[i] = 1;
    sd_ctx_kv_clear(ctx);
    sd_batch b = sd_batch_simple(toks, n);
    b.output = out;
    double worst = 0;
    if (sd_ctx_decode(ctx, &b) != SD_OK) worst = 1e9;
    for (int t = 0; t < p->n_greedy && worst < 1e9; t++) {
        const float *lg = sd_ctx_logits(ctx, t);
        json_t *step = json_array_get(p->top5, (size_t)t);
        for (size_t k = 0; k < json_array_size(step); k++) {
            json_t *pair = json_array_get(step, k);
            int id = (int)json_integer_value(json_array_get(pair, 0));
            double lp = json_real_value(json_array_get(pair, 1));
            double d = fabs(logprob(lg, n_vocab, id) - lp);
            if (d > worst) worst = d;
            *sum += d;
            (*cnt)++;
        }
    }
    free(toks);
    free(out);
    return worst;
}

void rc_run_model(const rc_model *spec, rc_result *res) {
    char path[1024];
    rc_result r;
    memset(&r, 0, sizeof r);
    snprintf(path, sizeof path, "%s/%s", test_model_dir(), spec->file);
    sd_model_params mp = sd_model_default_params();
    mp.quantize = spec->quantize;
    sd_model *m = NULL;
    char err[256];
    sd_status st = sd_model_load(path, &mp, &m, err, sizeof err);
    CHECK(st == SD_OK, "load %s: %s", path, err);
    if (st != SD_OK) {
        if (res) *res = r;
        return;
    }
    sd_threadpool *pool = NULL;
    sd_threadpool_new(2, &pool);
    sd_ctx_params cp = sd_ctx_default_params();
    cp.pool = pool;
    cp.attn_compat = spec->compat;
    sd_ctx *ctx = NULL;
    CHECK(sd_ctx_new(m, &cp, &ctx) == SD_OK, "ctx");
    const sd_vocab *v = sd_model_vocab(m);
    int n_vocab = sd_vocab_n_tokens(v);
    const char *tasks[2] = {"code-btrfs", "docs-filesystems"};
    const int n_full[2] = {24, 12};
    const char *qs = spec->quantize == SD_TYPE_Q8_0 ? " (q8_0)" : "";
    int stride = spec->stride > 0 ? spec->stride : 1;
    const char *kern = sd_backend_name(SD_BACKEND_AUTO);
    const double tie = spec->tie_margin > 0 ? spec->tie_margin : RC_TIE_MARGIN;
    for (int ti = 0; ti < spec->n_tasks; ti++) {
        prompt_ref refs[32];
        int n_all = load_refs(spec->ref, tasks[ti], refs, 32);
        CHECK(n_all >= 12, "%s %s: %d reference lines", spec->ref, tasks[ti], n_all);
        int n = 0, lp_cnt = 0;
        double lp_sum = 0;
        for (int i = 0; i < n_all; i += stride) {
            prompt_ref *p = &refs[i];
            n++;
            int32_t ids[4096];
            int nt = sd_tokenize(v, p->prompt, strlen(p->prompt), ids, 4096, sd_vocab_add_bos(v), false);
            bool same = nt == p->n_prompt && memcmp(ids, p->prompt_ids, (size_t)nt * sizeof *ids) == 0;
            r.ok_ids[ti] += same;
            CHECK(same, "%s %s: prompt_ids differ (%d vs %d tokens)", spec->ref, p->id, nt, p->n_prompt);
            int32_t ours;
            double pref;
            int agree = greedy_agree(ctx, p, n_vocab, &ours, &pref);
            /* a few references end early (fewer than 32 greedy ids): all
             * the ids they have must agree */
            int want = p->n_greedy < RC_N_GREEDY ? p->n_greedy : RC_N_GREEDY;
            if (p->n_greedy < RC_N_GREEDY)
                fprintf(stderr, "  %s %s: the reference has only %d greedy ids\n", spec->ref, p->id, p->n_greedy);
            if (agree == want) {
                r.ok_greedy[ti]++;
            } else {
                /* first divergence: only a near tie of the reference may
                 * split (our token within the tie margin of its top) */
                double top2 = INFINITY, gap = agree < 0 ? INFINITY : ref_gap(p, agree, ours, &top2);
                fprintf(stderr, "  %s %s%s: greedy agrees for %d of %d tokens; at step %d we pick %d by %.4f, "
                        "%.4f below the reference's top (its top-2 margin %.4f)\n",
                        spec->ref, p->id, qs, agree, want, agree, (int)ours, pref, gap, top2);
                CHECK(gap < tie, "%s %s [%s kernels]: greedy diverges at step %d where the reference "
                      "prefers its token by %.4f (>= %.2f, not a near tie)", spec->ref, p->id, kern, agree, gap, tie);
                if (gap < tie) {
                    r.n_tie[ti]++;
                    if (gap > r.worst_tie[ti]) r.worst_tie[ti] = gap;
                }
            }
            double d = logprob_diff(ctx, p, n_vocab, &lp_sum, &lp_cnt);
            if (d > r.worst_lp[ti]) r.worst_lp[ti] = d;
            CHECK(d <= spec->lp_tol, "%s %s [%s kernels]: top-5 log-prob differs by %.4f (bound %.4f)", spec->ref,
                  p->id, kern, d, spec->lp_tol);
        }
        r.n[ti] = n;
        r.mean_lp[ti] = lp_cnt ? lp_sum / lp_cnt : INFINITY;
        fprintf(stderr, "%s%s [%s attention, %s kernels] %s: prompt_ids %d/%d, greedy-32 %d/%d exact + %d at "
                "near ties (worst %.4f), max |dlogprob| %.5f (mean %.5f)\n",
                spec->ref, qs, spec->compat ? "compat" : "f32", kern, tasks[ti], r.ok_ids[ti], n, r.ok_greedy[ti], n,
                r.n_tie[ti], r.worst_tie[ti], r.worst_lp[ti], r.mean_lp[ti]);
        CHECK(r.mean_lp[ti] <= spec->lp_mean_tol, "%s %s [%s kernels]: mean top-5 log-prob gap %.5f above %.5f",
              spec->ref, tasks[ti], kern, r.mean_lp[ti], spec->lp_mean_tol);
        /* need out of the full set, scaled down to the prompts used (rounded down) */
        int need = spec->need[ti] * n / n_full[ti];
        if (need > 0)
            CHECK(r.ok_greedy[ti] >= need, "%s %s [%s kernels]: exact greedy agreement %d/%d below %d", spec->ref,
                  tasks[ti], kern, r.ok_greedy[ti], n, need);
        free_refs(refs, n_all);
    }
    sd_ctx_free(ctx);
    sd_threadpool_free(pool);
    sd_model_free(m);
    if (res) *res = r;
}
