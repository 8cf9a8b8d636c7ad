/* test_spec_sampling.c - end to end: sampled generations with and without
 * speculation (the shipped draft model) follow the same law, and that law
 * is the target's.
 *
 * Settings: temperature 1.0, top-k off, top-p off, min-p 0.01 (the target's
 * own distribution, cut to a support small enough to enumerate; the draft's
 * support differs from the target's, so q > 0 where p = 0 and p > 0 where
 * q = 0 both happen). ignore_eos, n_predict 5, draft_max 3 (the first step
 * verifies a chain of 3 drafts), p_min 0 (the drafter always drafts).
 *
 * R runs per condition (default 3000; SPECDEC_SPEC_RUNS overrides), each
 * with a fresh sampler of its own seed: A = plain decoding, B = the draft
 * model drafting. Exact laws come from the target itself: p1 from the
 * prompt, p2(.|t1) for every t1 in p1's support, p3(.|t1,t2) for every
 * pair with p1 p2 >= 5/R (the other pairs are kept as lumps (t1,t2,*) of
 * known mass), all through sd_sampler_dist on single-token decodes.
 * Checks:
 *  - every emitted t1, t2 (and t3 where p3 is known) has exact p > 0;
 *  - one-sample Pearson chi-square of t1, of t2's marginal, of the pair
 *    (t1,t2) and of the triple categories against the exact law, for A and
 *    for B (8 tests);
 *  - two-sample chi-square A vs B of the pair (t1,t2) and of the marginals
 *    of t2..t5 (5 tests);
 *  - all 13 at a family-wise alpha = 1e-3 (Bonferroni: each at 6.2e-5,
 *    normal quantile 3.84); bins with expected count < 5 (one-sample) or
 *    with a combined count < 10 (two-sample) are pooled into one bin;
 *  - drafting happened (drafted > 0, accepted > 0, some rejections), and
 *    the acceptance rate of the first draft of the first step matches
 *    sum_t1 p1(t1) sum_x min(p2(x|t1), q2(x|t1)), q2 computed with a
 *    separate context of the draft model, within 5 standard errors (this
 *    catches a drafter whose reported q or KV cache is off, which
 *    losslessness alone would hide);
 *  - power: the counts of A tested against the draft model's law (q1, and
 *    q1 q2) are rejected.
 * SPECDEC_SPEC_DRAFTER=tree-draft runs the same checks (except the chain's
 * first-draft acceptance rate) with the tree drafter: siblings drawn without
 * replacement, multi-draft recursive rejection sampling
 * (tests/test_spec_sampling_tree.sh).
 * SPECDEC_SPEC_DRAFTER=eagle|hydra|medusa (spine trees 3,2,2) or
 * eagle-chain|hydra-chain|medusa-chain: the trained heads beside the target
 * (kernel-c-target-heads.gguf) drafting from its features; the same checks
 * except the first-draft acceptance rate, which is the draft model's
 * (tests/test_spec_sampling_heads.sh).
 * SPECDEC_SPEC_DRAFTER=draft-xtok: the cross-tokenizer drafter over the
 * draft model (one-hot proposals without q, drafted through text); the
 * same checks except the first-draft acceptance rate
 * (tests/test_spec_sampling_xtok.sh).
 * SPECDEC_SPEC_DRAFTER=self: self-speculation from the target's early
 * exits (its q from the exits' Q8_0 drafting head; verification continues
 * from the exit layer); the same checks except the first-draft acceptance
 * rate (tests/test_spec_sampling_self.sh). */
#include "specdec.h"
#include "util/check.h"
#include "util/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { NP = 5, DRAFT_MAX = 3, N_CTX = 64, MAX_TESTS = 16 };
static const double Z_TEST = 3.84; /* upper 6.2e-5 normal quantile: 16 tests -> 1e-3 */
static const char *PROMPT = "for (i = 0; i <";

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------- statistics */

/* Wilson-Hilferty upper quantile of chi-square (df) at normal quantile z;
 * at z = 3.84: df 5 -> 27.8, df 20 -> 55.1, df 100 -> 168.9. */
static double chi2_crit(int df, double z) {
    double a = 2.0 / (9.0 * df);
    double t = 1.0 - a + z * sqrt(a);
    return df * t * t * t;
}

static int g_n_tests = 0;

/* One-sample Pearson chi-square of cnt against probabilities p (n bins,
 * sum 1). Bins with expected < 5 are pooled (a pool still below 5 joins
 * the largest bin). Counts in bins with p = 0 are returned in *n_zero (a
 * law that gives them 0 is rejected outright). */
static double chi2_one(const long *cnt, const double *p, long n, long n_tot, int *df, long *n_zero) {
    *n_zero = 0;
    for (long i = 0; i < n; i++)
        if (p[i] <= 0.0) *n_zero += cnt[i];
    return st_chi2_stat(cnt, p, (int)n, n_tot, df);
}

/* Two-sample chi-square (equal sample sizes): sum (a - b)^2 / (a + b) over
 * bins with a + b >= 10, the rest pooled into one bin. */
static double chi2_two(const long *a, const long *b, long n, int *df) {
    double chi = 0.0;
    long pa = 0, pb = 0;
    int bins = 0;
    for (long i = 0; i < n; i++) {
        long s = a[i] + b[i];
        if (s == 0) continue;
        if (s < 10) {
            pa += a[i];
            pb += b[i];
            continue;
        }
        chi += (double)(a[i] - b[i]) * (double)(a[i] - b[i]) / (double)s;
        bins++;
    }
    if (pa + pb > 0) {
        chi += (double)(pa - pb) * (double)(pa - pb) / (double)(pa + pb);
        bins++;
    }
    *df = bins - 1;
    return chi;
}

static void check_one(const char *what, const long *cnt, const double *p, long n, long n_tot) {
    int df;
    long nz;
    double chi = chi2_one(cnt, p, n, n_tot, &df, &nz);
    double crit = df >= 1 ? chi2_crit(df, Z_TEST) : INFINITY;
    g_n_tests++;
    printf("  %-34s chi2 %7.1f crit %7.1f df %4d\n", what, chi, crit, df);
    CHECK(nz == 0, "%s: %ld samples where the exact law is 0", what, nz);
    CHECK(df < 1 || chi < crit, "%s: chi2 %.1f >= %.1f (df %d)", what, chi, crit, df);
}

static void check_two(const char *what, const long *a, const long *b, long n) {
    int df;
    double chi = chi2_two(a, b, n, &df);
    double crit = df >= 1 ? chi2_crit(df, Z_TEST) : INFINITY;
    g_n_tests++;
    printf("  %-34s chi2 %7.1f crit %7.1f df %4d\n", what, chi, crit, df);
    CHECK(df < 1 || chi < crit, "%s: chi2 %.1f >= %.1f (df %d)", what, chi, crit, df);
}

/* Must be rejected (power). */
static void check_reject(const char *what, const long *cnt, const double *p, long n, long n_tot) {
    int df;
    long nz;
    double chi = chi2_one(cnt, p, n, n_tot, &df, &nz);
    double crit = df >= 1 ? chi2_crit(df, Z_TEST) : INFINITY;
    printf("  %-34s chi2 %7.1f crit %7.1f df %4d, %ld samples where it is 0 (must reject)\n",
           what, chi, crit, df, nz);
    CHECK(nz > 0 || (df >= 1 && chi > crit), "%s: not rejected", what);
}

/* --------------------------------------------------- category tables */

typedef struct {
    long n, cap;
    int64_t *key;
    double *prob;
} table;

static void tab_add(table *t, int64_t key, double prob) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        t->key = realloc(t->key, (size_t)t->cap * sizeof *t->key);
        t->prob = realloc(t->prob, (size_t)t->cap * sizeof *t->prob);
        if (!t->key || !t->prob) abort(); /* test code */
    }
    t->key[t->n] = key;
    t->prob[t->n] = prob;
    t->n++;
}

/* Keys are added in increasing order (loops below), so lookups bsearch. */
static long tab_find(const table *t, int64_t key) {
    long lo = 0, hi = t->n - 1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        if (t->key[mid] == key) return mid;
        if (t->key[mid] < key) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static void tab_free(table *t) {
    free(t->key);
    free(t->prob);
}

/* ----------------------------------------------------------- runs */

typedef struct {
    int calls, first_step; /* tokens of the 2nd callback = j + 1 */
} cb_state;

static bool on_tokens(void *user, const int32_t *ids, int n) {
    cb_state *s = user;
    (void)ids;
    if (++s->calls == 2) s->first_step = n;
    return true;
}

/* Decodes one token on top of the cache truncated to n_keep; writes the
 * sampler's distribution for the new logits. */
static sd_status next_dist(sd_ctx *ctx, sd_sampler *s, int n_keep, int32_t tok, float *out) {
    sd_status st = sd_ctx_kv_truncate(ctx, n_keep);
    if (st != SD_OK) return st;
    sd_batch b = sd_batch_simple(&tok, 1);
    if ((st = sd_ctx_decode(ctx, &b)) != SD_OK) return st;
    sd_sampler_dist(s, sd_ctx_logits(ctx, 0), out);
    return SD_OK;
}

int main(void) {
    const double t_start = now_s();
    char path_t[1024], path_d[1024], err[256] = "";
    snprintf(path_t, sizeof path_t, "%s/kernel-c-target.gguf", test_model_dir());
    snprintf(path_d, sizeof path_d, "%s/kernel-c-draft.gguf", test_model_dir());
    sd_model *tm = NULL, *dm = NULL;
    if (sd_model_load(path_t, NULL, &tm, err, sizeof err) != SD_OK ||
        sd_model_load(path_d, NULL, &dm, err, sizeof err) != SD_OK) {
        fprintf(stderr, "test_spec_sampling: models not loadable (%s)\n", err);
        sd_model_free(tm);
        return 1;
    }
    long R = getenv("SD_TEST_QUICK") ? 600 : 3000; /* quick: sanitizer runs */
    const char *env = getenv("SPECDEC_SPEC_RUNS");
    if (env && atol(env) >= 100) R = atol(env);

    sd_threadpool *pool = NULL;
    sd_ctx *tctx = NULL, *dctx = NULL;
    sd_drafter *drafter = NULL;
    /* 2 threads; SPECDEC_TEST_THREADS overrides (a spinning pool on an
     * oversubscribed machine is many times slower than 1 thread) */
    int n_threads = 2;
    const char *env_t = getenv("SPECDEC_TEST_THREADS");
    if (env_t && atoi(env_t) >= 1) n_threads = atoi(env_t);
    CHECK(sd_threadpool_new(n_threads, &pool) == SD_OK, "pool");
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = N_CTX;
    cp.pool = pool;
    CHECK(sd_ctx_new(tm, &cp, &tctx) == SD_OK, "target ctx");
    CHECK(sd_ctx_new(dm, &cp, &dctx) == SD_OK, "draft ctx (exact q)");
    /* SPECDEC_SPEC_DRAFTER=tree-draft: the draft model's tree drafter
     * (spine tree 3,2,2: multi-draft verification) instead of the chain */
    const char *which = getenv("SPECDEC_SPEC_DRAFTER");
    const bool tree = which && !strcmp(which, "tree-draft");
    /* SPECDEC_SPEC_DRAFTER=draft-xtok: the cross-tokenizer drafter */
    const bool xtok = which && !strcmp(which, "draft-xtok");
    /* trained heads: their own q, so no draft-model acceptance rate */
    const bool heads_m = which && (!strncmp(which, "eagle", 5) || !strncmp(which, "hydra", 5) ||
                                   !strncmp(which, "medusa", 6));
    /* SPECDEC_SPEC_DRAFTER=self: the target's own early exits (DEL), q
     * from their Q8_0 drafting head */
    const bool self_m = which && !strcmp(which, "self");
    sd_heads *heads = NULL;
    if (self_m) {
        CHECK(sd_drafter_new_self(tctx, 0, 0.0f, &drafter) == SD_OK, "self drafter");
    } else if (heads_m) {
        char path_h[1024];
        snprintf(path_h, sizeof path_h, "%s/kernel-c-target-heads.gguf", test_model_dir());
        CHECK(sd_heads_load(path_h, tm, &heads, err, sizeof err) == SD_OK, "heads: %s", err);
        const char *base = !strncmp(which, "eagle", 5) ? "eagle" : !strncmp(which, "hydra", 5) ? "hydra" : "medusa";
        sd_heads_params hp = sd_heads_default_params(base);
        hp.tree = strstr(which, "-chain") == NULL;
        hp.p_min = 0.0f;
        hp.tree_params.p_min = 0.0f;
        hp.tree_params.branch[0] = 3;
        hp.tree_params.branch[1] = 2;
        hp.tree_params.branch[2] = 2;
        sd_status hs = !heads ? SD_ERR_INVALID_ARG
                       : !strcmp(base, "eagle") ? sd_drafter_new_eagle(heads, pool, N_CTX, &hp, &drafter)
                       : !strcmp(base, "hydra") ? sd_drafter_new_hydra(heads, pool, &hp, &drafter)
                                                : sd_drafter_new_medusa(heads, pool, &hp, &drafter);
        CHECK(hs == SD_OK, "%s drafter", which);
    } else if (xtok) {
        /* one-hot proposals (no q) through text: the draft's argmax */
        CHECK(sd_drafter_new_xtok(dm, tm, pool, N_CTX, 0.0f, &drafter, err, sizeof err) == SD_OK,
              "xtok drafter: %s", err);
    } else if (tree) {
        sd_tree_params tp = sd_tree_default_params();
        tp.p_min = 0.0f;
        CHECK(sd_drafter_new_model_tree(dm, tm, pool, N_CTX, &tp, &drafter, err, sizeof err) == SD_OK,
              "tree drafter: %s", err);
    } else {
        CHECK(sd_drafter_new_model(dm, tm, pool, N_CTX, 0.0f, &drafter, err, sizeof err) == SD_OK,
              "drafter: %s", err);
    }
    printf("drafter: %s\n", heads_m || xtok || self_m ? which : tree ? "tree-draft (spine tree, multi-draft)" : "draft (chain)");
    const sd_vocab *vocab = sd_model_vocab(tm);
    const int V = sd_vocab_n_tokens(vocab);
    int32_t prompt[N_CTX];
    int n_prompt = sd_tokenize(vocab, PROMPT, strlen(PROMPT), prompt, N_CTX,
                               sd_vocab_add_bos(vocab), false);
    CHECK(n_prompt > 1 && n_prompt + NP + DRAFT_MAX < N_CTX, "prompt tokens %d", n_prompt);
    sd_sampler_params sp = sd_sampler_default_params();
    sp.temp = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.01f;
    sd_sampler *ds = NULL;
    CHECK(sd_sampler_new(&sp, V, &ds) == SD_OK, "dist sampler");
    if (g_check.n_fail) goto done;

    /* ------------------------------------------------ exact laws */
    const double t_exact0 = now_s();
    const double thr = 5.0 / (double)R;
    float *p1 = malloc((size_t)V * sizeof *p1), *q1 = malloc((size_t)V * sizeof *q1);
    float *row = malloc((size_t)V * sizeof *row), *qrow = malloc((size_t)V * sizeof *qrow);
    float *p3 = malloc((size_t)V * sizeof *p3);
    double *m2 = calloc((size_t)V, sizeof *m2);  /* exact marginal of t2 */
    double *t1d = malloc((size_t)V * sizeof *t1d), *q1d = malloc((size_t)V * sizeof *q1d);
    table pair = {0}, pair_q = {0}, triple = {0};
    double alpha_exp = 0.0;
    int n_supp1 = 0, n_prefix2 = 0;
    {
        sd_batch b = sd_batch_simple(prompt, n_prompt);
        sd_ctx_kv_clear(tctx);
        sd_ctx_kv_clear(dctx);
        CHECK(sd_ctx_decode(tctx, &b) == SD_OK && sd_ctx_decode(dctx, &b) == SD_OK, "prefill");
        sd_sampler_dist(ds, sd_ctx_logits(tctx, 0), p1);
        sd_sampler_dist(ds, sd_ctx_logits(dctx, 0), q1);
    }
    for (int32_t a = 0; a < V; a++) {
        t1d[a] = p1[a];
        q1d[a] = q1[a];
    }
    /* pair keys a * V + b with a over p1's support (and over q1's for the
     * draft law), triple keys (a * V + b) * (V + 1) + c, c = V: lump */
    for (int32_t a = 0; a < V; a++) {
        if (p1[a] <= 0.0f && q1[a] <= 0.0f) continue;
        if (p1[a] > 0.0f) {
            n_supp1++;
            if (next_dist(tctx, ds, n_prompt, a, row) != SD_OK) {
                CHECK(0, "exact decode");
                break;
            }
        } else {
            memset(row, 0, (size_t)V * sizeof *row);
        }
        if (next_dist(dctx, ds, n_prompt, a, qrow) != SD_OK) {
            CHECK(0, "exact draft decode");
            break;
        }
        double acc = 0.0;
        for (int32_t x = 0; x < V; x++) acc += fmin(row[x], qrow[x]);
        alpha_exp += p1[a] * acc;
        for (int32_t x = 0; x < V; x++) {
            if (qrow[x] > 0.0f && q1[a] > 0.0f)
                tab_add(&pair_q, (int64_t)a * V + x, (double)q1[a] * qrow[x]);
        }
        if (p1[a] <= 0.0f) continue;
        for (int32_t x = 0; x < V; x++) {
            if (row[x] <= 0.0f) continue;
            const double pab = (double)p1[a] * row[x];
            m2[x] += pab;
            tab_add(&pair, (int64_t)a * V + x, pab);
            const int64_t base = ((int64_t)a * V + x) * (V + 1);
            if (pab < thr) {
                tab_add(&triple, base + V, pab); /* lump (a, x, *) */
                continue;
            }
            n_prefix2++;
            if (next_dist(tctx, ds, n_prompt + 1, x, p3) != SD_OK) {
                CHECK(0, "exact decode 3");
                break;
            }
            for (int32_t c = 0; c < V; c++)
                if (p3[c] > 0.0f) tab_add(&triple, base + c, pab * p3[c]);
        }
    }
    const double t_exact = now_s() - t_exact0;
    printf("prompt \"%s\" (%d tokens), V %d, R %ld runs per condition\n", PROMPT, n_prompt, V, R);
    printf("exact laws: |supp p1| %d, %d pairs, %d prefixes expanded to t3, %ld triple "
           "categories; %.1f s\n",
           n_supp1, (int)pair.n, n_prefix2, triple.n, t_exact);
    {
        double s = 0.0;
        for (long i = 0; i < triple.n; i++) s += triple.prob[i];
        CHECK(fabs(s - 1.0) < 1e-4, "triple law sums to %.6f", s);
    }

    /* ------------------------------------------------ generations */
    const double t_gen0 = now_s();
    int32_t *toks[2];
    int *j1[2];
    for (int c = 0; c < 2; c++) {
        toks[c] = calloc((size_t)R * NP, sizeof *toks[c]); /* failed runs stay 0 */
        j1[c] = calloc((size_t)R, sizeof *j1[c]);
    }
    long drafted = 0, accepted = 0, gen_errors = 0, short_runs = 0;
    double ms[2] = {0.0, 0.0};
    for (long r = 0; r < R; r++) {
        for (int c = 0; c < 2; c++) {
            sd_sampler_params rp = sp;
            rp.seed = (uint64_t)(c + 1) * 0x100000000ull + (uint64_t)r;
            sd_sampler *s = NULL;
            if (sd_sampler_new(&rp, V, &s) != SD_OK) {
                gen_errors++;
                continue;
            }
            cb_state cb = {0, -1};
            sd_gen_params gp = sd_gen_default_params();
            gp.n_predict = NP;
            gp.ignore_eos = true;
            gp.draft_max = DRAFT_MAX;
            gp.on_tokens = on_tokens;
            gp.user = &cb;
            int32_t out[NP];
            int n_out = 0;
            sd_spec_stats st;
            const double t0 = now_s();
            sd_status rc = sd_generate(tctx, s, c ? drafter : NULL, prompt, n_prompt, &gp, out,
                                       &n_out, &st);
            ms[c] += (now_s() - t0) * 1e3;
            sd_sampler_free(s);
            if (rc != SD_OK) {
                gen_errors++;
                continue;
            }
            if (n_out != NP) short_runs++;
            for (int i = 0; i < NP; i++) toks[c][r * NP + i] = i < n_out ? out[i] : 0;
            j1[c][r] = cb.first_step - 1;
            if (c == 1) {
                drafted += st.drafted;
                accepted += st.accepted;
            }
        }
    }
    const double t_gen = now_s() - t_gen0;
    CHECK(gen_errors == 0, "%ld generations failed", gen_errors);
    CHECK(short_runs == 0, "%ld generations shorter than %d", short_runs, NP);
    printf("generation: %.1f s (%.2f ms/run plain, %.2f ms/run speculative)\n", t_gen, ms[0] / R,
           ms[1] / R);

    /* ------------------------------------------------ statistics */
    long *pc[2], *mc[2][NP];
    for (int c = 0; c < 2; c++) {
        pc[c] = calloc((size_t)pair.n, sizeof *pc[c]);
        for (int i = 0; i < NP; i++) mc[c][i] = calloc((size_t)V, sizeof *mc[c][i]);
    }
    for (int c = 0; c < 2; c++) {
        const char *cn = c ? "speculative" : "plain";
        long zero1 = 0, zero2 = 0, zero3 = 0;
        long *tc = calloc((size_t)triple.n, sizeof *tc);
        for (long r = 0; r < R; r++) {
            const int32_t *t = toks[c] + r * NP;
            for (int i = 0; i < NP; i++) mc[c][i][t[i]]++;
            if (p1[t[0]] <= 0.0f) zero1++;
            long pi = tab_find(&pair, (int64_t)t[0] * V + t[1]);
            if (pi < 0) {
                if (p1[t[0]] > 0.0f) zero2++;
                continue;
            }
            pc[c][pi]++;
            const int64_t base = ((int64_t)t[0] * V + t[1]) * (V + 1);
            long ti = tab_find(&triple, base + t[2]);
            if (ti < 0) ti = tab_find(&triple, base + V);
            if (ti < 0) {
                zero3++; /* expanded prefix, t3 with p3 = 0 */
                continue;
            }
            tc[ti]++;
        }
        printf("%s: checks against the exact law\n", cn);
        CHECK(zero1 == 0 && zero2 == 0 && zero3 == 0,
              "%s: tokens with exact p = 0 emitted: t1 %ld, t2 %ld, t3 %ld", cn, zero1, zero2,
              zero3);
        char what[64];
        snprintf(what, sizeof what, "%s t1 vs p1", cn);
        check_one(what, mc[c][0], t1d, V, R);
        snprintf(what, sizeof what, "%s t2 vs sum p1 p2", cn);
        check_one(what, mc[c][1], m2, V, R);
        snprintf(what, sizeof what, "%s (t1,t2) vs p1 p2", cn);
        check_one(what, pc[c], pair.prob, pair.n, R);
        snprintf(what, sizeof what, "%s (t1,t2,t3) vs p1 p2 p3", cn);
        check_one(what, tc, triple.prob, triple.n, R);
        free(tc);
    }
    printf("plain vs speculative (two-sample)\n");
    check_two("(t1,t2)", pc[0], pc[1], pair.n);
    for (int i = 1; i < NP; i++) {
        char what[32];
        snprintf(what, sizeof what, "t%d", i + 1);
        check_two(what, mc[0][i], mc[1][i], V);
    }
    CHECK(g_n_tests <= MAX_TESTS, "%d tests: adjust Z_TEST", g_n_tests);

    /* drafting happened, at the rate the two models imply */
    long acc1 = 0;
    for (long r = 0; r < R; r++) acc1 += j1[1][r] >= 1;
    const double rate = (double)acc1 / (double)R;
    const double se = sqrt(alpha_exp * (1.0 - alpha_exp) / (double)R);
    printf("speculative: drafted %ld, accepted %ld (%.3f); first draft of the first step "
           "accepted %.4f, expected %.4f (%.1f SE)\n",
           drafted, accepted, drafted ? (double)accepted / drafted : 0.0, rate, alpha_exp,
           se > 0 ? fabs(rate - alpha_exp) / se : 0.0);
    CHECK(drafted > 0 && accepted > 0 && accepted < drafted, "drafted %ld accepted %ld", drafted,
          accepted);
    /* the expected rate is the chain's (one draft at the first position) */
    if (!tree && !heads_m && !xtok && !self_m)
        CHECK(fabs(rate - alpha_exp) < 5.0 * se + 1e-9, "first-draft acceptance %.4f vs %.4f",
              rate, alpha_exp);
    {
        long plain_j = 0;
        for (long r = 0; r < R; r++) plain_j += j1[0][r] != 0;
        CHECK(plain_j == 0, "plain decoding accepted drafts in %ld runs", plain_j);
    }

    /* power: the draft model's law is told apart from what we sampled */
    printf("power checks\n");
    check_reject("plain t1 vs draft q1", mc[0][0], q1d, V, R);
    {
        long *pqc = calloc((size_t)pair_q.n + 1, sizeof *pqc);
        long outside = 0;
        for (long r = 0; r < R; r++) {
            const int32_t *t = toks[0] + r * NP;
            long i = tab_find(&pair_q, (int64_t)t[0] * V + t[1]);
            if (i < 0) outside++;
            else pqc[i]++;
        }
        /* samples outside q's support go to an extra bin of probability 0 */
        double *pq = malloc(((size_t)pair_q.n + 1) * sizeof *pq);
        memcpy(pq, pair_q.prob, (size_t)pair_q.n * sizeof *pq);
        pq[pair_q.n] = 0.0;
        pqc[pair_q.n] = outside;
        check_reject("plain (t1,t2) vs draft q1 q2", pqc, pq, pair_q.n + 1, R);
        free(pq);
        free(pqc);
    }

    for (int c = 0; c < 2; c++) {
        free(toks[c]);
        free(j1[c]);
        free(pc[c]);
        for (int i = 0; i < NP; i++) free(mc[c][i]);
    }
    free(p1);
    free(q1);
    free(row);
    free(qrow);
    free(p3);
    free(m2);
    free(t1d);
    free(q1d);
    tab_free(&pair);
    tab_free(&pair_q);
    tab_free(&triple);
done:
    sd_sampler_free(ds);
    sd_drafter_free(drafter);
    sd_heads_free(heads);
    sd_ctx_free(dctx);
    sd_ctx_free(tctx);
    sd_threadpool_free(pool);
    sd_model_free(dm);
    sd_model_free(tm);
    printf("total %.1f s\n", now_s() - t_start);
    return check_report("test_spec_sampling");
}
