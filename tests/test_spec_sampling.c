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
 *  - B's verifications themselves, each seen through the decode loop's
 *    observer (spec/verify_hooks.h: the p and q rows the verifier saw, its
 *    draft, what it accepted and drew) with verify.h's rule recomputed here
 *    in double: the accepted drafts against the sum of their exact
 *    acceptance probabilities (|z| < 4.0, the two-sided 6.2e-5 quantile);
 *    no correction or bonus token where its exact conditional law is 0;
 *    their probability-rank transform (the mass of the tokens less likely
 *    than the one drawn, plus a uniform share of its own) uniform on 10
 *    bins (chi-square) (3 tests);
 *  - all 16 at a family-wise alpha = 1e-3 (Bonferroni: each at 6.2e-5,
 *    normal quantile 3.84); bins with expected count < 5 (one-sample) or
 *    with a combined count < 10 (two-sample) are pooled into one bin;
 *  - drafting happened (drafted > 0, accepted > 0, some rejections), and
 *    the acceptance rate of the first draft of the first step matches
 *    sum_t1 p1(t1) sum_x min(p2(x|t1), q2(x|t1)), q2 computed with a
 *    separate context of the draft model, within 5 standard errors (this
 *    catches a drafter whose reported q or KV cache is off, which
 *    losslessness alone would hide, and the observer, which trusts q,
 *    would not see);
 *  - power: the counts of A tested against the draft model's law (q1, and
 *    q1 q2) are rejected;
 *  - power against a wrong verifier: B again, R more runs with a
 *    deliberate fault set on each generation (spec/verify_hooks.h); the 12
 *    tests of a speculative condition (one-sample, two-sample against A,
 *    the 3 on its verifications; for the draft chain also the first-draft
 *    acceptance rate) must reject it, and each rejecting test is printed
 *    with its value and critical value. Each configuration checks one
 *    fault it rejects with power ~1 at its run count (default_fault).
 *    SD_TEST_QUICK (600 runs): the unnormalized residual over 300 faulty
 *    runs (>= 12.8 corrections where the law is 0 expected in every
 *    configuration, default_fault).
 *    SPECDEC_SPEC_FAULTS = "all" or fault names picks the faults, and
 *    SPECDEC_SPEC_POWER_REPS = n runs each with n seeds and prints how
 *    often each test rejected: the power table below.
 * Power at each configuration's run count, 6 seeds per fault (k/6 seeds
 * the battery rejected; the strongest test with its mean and, in
 * parentheses, the power that mean implies: normal for |z|, Poisson for
 * a count, noncentral chi-square with lambda = mean - df for chi2):
 *   configuration       fault           battery  its best verify test  law tests: best 1-sample, 2-sample
 *   draft (3000)        accept-pow*     6/6      |z| 10.6 (1.00)       1/6 (0.05), 0/6 (0.08)
 *                       resid-unnorm    6/6      zeros 329.7 (1.00)    1/6 (0.20), 0/6 (0.04)
 *                       resid-is-p      6/6      zeros 928.2 (1.00)    6/6 (1.00), 6/6 (0.99)
 *   tree-draft (3000)   accept-pow*     6/6      |z| 9.2 (1.00)        1/6 (0.08), 0/6 (0.04)
 *                       resid-unnorm    6/6      zeros 140.0 (1.00)    0/6 (0.00), 0/6 (0.00)
 *                       resid-is-p      6/6      zeros 901.0 (1.00)    6/6 (1.00), 6/6 (1.00)
 *                       sibs-kept       6/6      zeros 3.3 (0.96)      0/6 (0.00), 0/6 (0.00)
 *   eagle (1500)        accept-pow      6/6      |z| 7.8 (1.00)        0/6 (0.24), 0/6 (0.01)
 *                       resid-unnorm*   6/6      zeros 84.3 (1.00)     0/6 (0.00), 0/6 (0.00)
 *                       resid-is-p      6/6      zeros 472.0 (1.00)    6/6 (1.00), 6/6 (0.98)
 *                       sibs-kept       6/6      zeros 30.8 (1.00)     6/6 (0.99), 3/6 (0.51)
 *   medusa-chain (1500) accept-pow      6/6      |z| 6.0 (0.98)        0/6 (0.01), 0/6 (0.02)
 *                       resid-unnorm*   6/6      zeros 86.7 (1.00)     0/6 (0.01), 0/6 (0.00)
 *                       resid-is-p      6/6      zeros 317.0 (1.00)    6/6 (1.00), 2/6 (0.54)
 *   hydra (1500)        accept-pow      5/6      |z| 5.6 (0.94)        0/6 (0.00), 0/6 (0.00)
 *                       resid-unnorm*   6/6      zeros 77.0 (1.00)     0/6 (0.00), 0/6 (0.00)
 *                       resid-is-p      6/6      zeros 450.3 (1.00)    6/6 (1.00), 6/6 (0.96)
 *                       sibs-kept       3/6      zeros 0.5 (0.39)      0/6 (0.00), 0/6 (0.01)
 *   self (1500)         accept-pow      6/6      |z| 7.2 (1.00)        0/6 (0.00), 0/6 (0.01)
 *                       resid-unnorm*   6/6      zeros 280.8 (1.00)    0/6 (0.13), 0/6 (0.12)
 *                       resid-is-p      6/6      zeros 499.8 (1.00)    6/6 (0.99), 5/6 (0.76)
 *   draft-xtok (1000)   accept-pow*     6/6      |z| 8.2 (1.00)        1/6 (0.20), 0/6 (0.01)
 *                       resid-unnorm    6/6      zeros 93.2 (1.00)     0/6 (0.00), 0/6 (0.00)
 *                       resid-is-p      6/6      zeros 248.7 (1.00)    3/6 (0.53), 0/6 (0.07)
 * (* the fault the configuration checks; its miss rate, from the mean: at
 * most Phi(4.0 - 8.2) = 1.3e-5 for |z|, exp(-77) for zeros. resid-* =
 * residual-*, sibs-kept = tree-siblings-kept; zeros = next tokens where the
 * exact law is 0; the 2-sample column takes the best of the 5 two-sample
 * tests. Estimated with SPECDEC_SPEC_FAULTS=all
 * SPECDEC_SPEC_POWER_REPS=6 at each configuration's run count.)
 * The law tests alone (the one- and two-sample chi-squares) see only the
 * coarse fault: accept-pow and the unnormalized residual move the law of
 * (t1,t2) by a chi-square distance of ~0.01 per run (lambda ~10-40 at
 * these sizes, against df 35-107), which no run count here can resolve;
 * that is why the verifications are tested themselves.
 * SPECDEC_SPEC_DRAFTER=tree-draft runs the same checks (except the chain's
 * first-draft acceptance rate) with the tree drafter: siblings drawn without
 * replacement, multi-draft recursive rejection sampling
 * (tests/test_spec_sampling_tree.sh).
 * SPECDEC_SPEC_DRAFTER=eagle|hydra|medusa (spine trees 3,2,2) or
 * eagle-chain|hydra-chain|medusa-chain: the trained heads beside the target
 * (kernel-c-target-heads.gguf) drafting from its features; the same checks
 * except the first-draft acceptance rate, which is the draft model's
 * (tests/test_spec_sampling_heads.sh: eagle, medusa-chain, hydra).
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
#include "speculative/verify_hooks.h"

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

/* Two-sample chi-square of counts a (na samples) and b (nb samples):
 * sum (a k - b / k)^2 / (a + b), k = sqrt(nb / na) (with na = nb: (a - b)^2
 * / (a + b)), over bins with a + b >= 10, the rest pooled into one bin. */
static double chi2_two(const long *a, const long *b, long n, long na, long nb, int *df) {
    const double k = sqrt((double)nb / (double)na);
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
        const double d = (double)a[i] * k - (double)b[i] / k;
        chi += d * d / (double)s;
        bins++;
    }
    if (pa + pb > 0) {
        const double d = (double)pa * k - (double)pb / k;
        chi += d * d / (double)(pa + pb);
        bins++;
    }
    *df = bins - 1;
    return chi;
}

/* One test of the battery: the statistic, its critical value, and whether
 * it rejects (chi >= crit, or samples where the exact law is 0). */
typedef struct {
    char what[48];
    const char *kind; /* "chi2", or "|z|" / "count" (df unused) */
    double chi, crit;
    int df;
    long n_zero;
    bool reject;
} stat_res;

static stat_res stat_one(const char *what, const long *cnt, const double *p, long n, long n_tot) {
    stat_res s;
    snprintf(s.what, sizeof s.what, "%s", what);
    s.kind = "chi2";
    s.chi = chi2_one(cnt, p, n, n_tot, &s.df, &s.n_zero);
    s.crit = s.df >= 1 ? chi2_crit(s.df, Z_TEST) : INFINITY;
    s.reject = s.n_zero > 0 || s.chi >= s.crit;
    return s;
}

static stat_res stat_two(const char *what, const long *a, const long *b, long n, long na, long nb) {
    stat_res s;
    snprintf(s.what, sizeof s.what, "%s", what);
    s.kind = "chi2";
    s.chi = chi2_two(a, b, n, na, nb, &s.df);
    s.crit = s.df >= 1 ? chi2_crit(s.df, Z_TEST) : INFINITY;
    s.n_zero = 0;
    s.reject = s.chi >= s.crit;
    return s;
}

static void stat_print(const stat_res *s, const char *mark) {
    printf("  %-34s %-5s %7.1f crit %7.1f", s->what, s->kind, s->chi, s->crit);
    if (!strcmp(s->kind, "chi2")) printf(" df %4d", s->df);
    if (s->n_zero && strcmp(s->kind, "count")) printf(", %ld samples where the exact law is 0", s->n_zero);
    printf("%s\n", s->reject ? mark : "");
}

/* Must pass (a test of the family of MAX_TESTS). */
static void check_pass(const stat_res *s, int *n_tests) {
    (*n_tests)++;
    stat_print(s, "");
    CHECK(s->n_zero == 0, "%s: %ld samples where the exact law is 0", s->what, s->n_zero);
    CHECK(!s->reject, "%s: %s %.1f >= %.1f (df %d)", s->what, s->kind, s->chi, s->crit, s->df);
}

/* Must be rejected (power). */
static void check_reject(const char *what, const long *cnt, const double *p, long n, long n_tot) {
    stat_res s = stat_one(what, cnt, p, n, n_tot);
    stat_print(&s, " (rejects)");
    CHECK(s.reject, "%s: not rejected", what);
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

/* ------------------------------------------- verifications, observed */

enum { PIT_BINS = 10 };

/* What the observer of a speculative condition gathers over its runs
 * (verify_hooks.h): every acceptance trial of the verifier against its
 * exact probability a given the rows it saw, and every correction or bonus
 * token against its exact law r, both recomputed here in double from
 * verify.h's contract (chain: a = min(1, p(x)/q(x)), r = norm(max(0, p -
 * q)); tree: the recursive residuals over siblings drawn without
 * replacement). */
typedef struct {
    int V;
    long trials, accepted;
    double sum_a, sum_var;  /* sum a, sum a (1 - a) over trials */
    long events, zero;      /* next tokens; those where r = 0 */
    long pit[PIT_BINS];     /* randomized probability-rank transform of next under r */
    sd_rng rng;             /* the transform's own uniforms */
    double *pn, *r, *s;     /* (V) scratch: the node's p, the residual, the proposal */
} vobs;

static void vobs_init(vobs *o, int V, uint64_t seed) {
    memset(o, 0, sizeof *o);
    o->V = V;
    sd_rng_seed(&o->rng, seed);
    o->pn = malloc((size_t)V * sizeof *o->pn);
    o->r = malloc((size_t)V * sizeof *o->r);
    o->s = malloc((size_t)V * sizeof *o->s);
    if (!o->pn || !o->r || !o->s) abort(); /* test code */
}

static void vobs_free(vobs *o) {
    free(o->pn);
    free(o->r);
    free(o->s);
}

/* A float row as a law in double (positive entries, normalized; all 0 if
 * it has no mass). */
static void row_law(const float *w, int V, double *out) {
    double m = 0.0;
    for (int t = 0; t < V; t++) m += w[t] > 0.0f ? w[t] : 0.0;
    for (int t = 0; t < V; t++) out[t] = w[t] > 0.0f && m > 0.0 ? w[t] / m : 0.0;
}

/* next against its law r: r(next) = 0 counts as a zero; u = r(tokens less
 * likely than next) + U r(tokens as likely) is uniform on [0, 1) when next
 * is drawn from r, and lands in one of PIT_BINS bins. */
static void vobs_next(vobs *o, const double *r, int32_t next) {
    const double rn = r[next];
    double below = 0.0, tie = 0.0;
    for (int t = 0; t < o->V; t++) {
        if (r[t] < rn) below += r[t];
        else if (r[t] == rn) tie += r[t];
    }
    const double u = below + sd_rng_uniform(&o->rng) * tie;
    int bin = (int)(u * PIT_BINS);
    o->pit[bin < 0 ? 0 : bin >= PIT_BINS ? PIT_BINS - 1 : bin]++;
    o->events++;
    o->zero += !(rn > 0.0);
}

/* The observer: walks the verifier's trials as verify.h defines them. */
static void vobs_on(void *user, const sd_verify_event *ev) {
    vobs *o = user;
    const int V = ev->V, n = ev->n;
    int cur = -1, depth = 0;
    for (;;) {
        row_law(ev->p + (size_t)(cur + 1) * V, V, o->pn);
        memcpy(o->r, o->pn, (size_t)V * sizeof *o->r);
        bool have_s = false;
        int acc = -1;
        for (int c = cur + 1; c < n; c++) {
            if ((ev->parent ? ev->parent[c] : c - 1) != cur) continue;
            const int32_t x = ev->tok[c];
            if (ev->q && !have_s) { /* the first child's row; siblings share it */
                row_law(ev->q + (size_t)c * V, V, o->s);
                have_s = true;
            }
            const double rx = o->r[x], sx = ev->q ? o->s[x] : 1.0;
            const double a = sx > 0.0 ? fmin(1.0, rx / sx) : rx > 0.0 ? 1.0 : 0.0;
            const bool took = ev->path ? depth < ev->j && ev->path[depth] == c : c < ev->j;
            o->trials++;
            o->accepted += took;
            o->sum_a += a;
            o->sum_var += a * (1.0 - a);
            if (took) {
                acc = c;
                break;
            }
            /* rejected: r <- norm(max(0, r - s)) (p if no mass is left),
             * x leaves the proposal */
            double m = 0.0;
            for (int t = 0; t < V; t++) {
                const double d = t == x ? 0.0 : o->r[t] - (ev->q ? o->s[t] : 0.0);
                o->r[t] = d > 0.0 ? d : 0.0;
                m += o->r[t];
            }
            for (int t = 0; t < V; t++) o->r[t] = m > 0.0 ? o->r[t] / m : o->pn[t];
            if (ev->q) {
                double sm = 0.0;
                o->s[x] = 0.0;
                for (int t = 0; t < V; t++) sm += o->s[t];
                for (int t = 0; t < V; t++) o->s[t] = sm > 0.0 ? o->s[t] / sm : 0.0;
            }
        }
        if (acc < 0) { /* no child accepted, or a leaf: next ~ r */
            vobs_next(o, o->r, ev->next);
            return;
        }
        cur = acc;
        depth++;
    }
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

/* One generation through the step API (sd_generate's own loop), with the
 * verifier fault f (SD_VERIFY_EXACT: sd_generate bit for bit) and the
 * observer o (NULL: none) set on it. */
static sd_status gen_one(sd_ctx *ctx, sd_sampler *s, sd_drafter *drafter, const int32_t *prompt, int n_prompt,
                         const sd_gen_params *gp, sd_verify_fault f, vobs *o, int32_t *out, int *n_out,
                         sd_spec_stats *st) {
    *n_out = 0;
    sd_gen *g = NULL;
    sd_status rc = sd_gen_begin(ctx, s, drafter, prompt, n_prompt, gp, &g);
    if (rc != SD_OK) return rc;
    if (f != SD_VERIFY_EXACT) rc = sd_gen_set_verify_fault(g, f);
    if (rc == SD_OK && o) rc = sd_gen_set_verify_observer(g, vobs_on, o);
    sd_batch b;
    int k = 0;
    while (rc == SD_OK && (k = sd_gen_prepare(g, &b)) > 0) {
        if ((rc = sd_ctx_decode(ctx, &b)) != SD_OK) {
            sd_gen_abort(g, rc);
            break;
        }
        rc = sd_gen_finish(g);
    }
    if (rc == SD_OK && k < 0) rc = (sd_status)k;
    int n = 0;
    const int32_t *ids = sd_gen_output(g, &n);
    memcpy(out, ids, (size_t)n * sizeof *out);
    *n_out = n;
    sd_gen_stats(g, st);
    sd_gen_free(g);
    return rc;
}

/* R generations of one condition. */
typedef struct {
    long R;
    int32_t *toks; /* (R, NP); failed runs stay 0 */
    int *j1;       /* (R) drafts accepted in the first step */
    long drafted, accepted, errors, short_runs;
    double ms;
} gen_set;

/* Run r draws from its own sampler seeded tag * 2^32 + r; o (NULL: none)
 * observes every verification. */
static void gen_runs(sd_ctx *tctx, sd_drafter *drafter, const sd_sampler_params *sp, int V,
                     const int32_t *prompt, int n_prompt, long R, uint64_t tag, sd_verify_fault f,
                     vobs *o, gen_set *g) {
    memset(g, 0, sizeof *g);
    g->R = R;
    g->toks = calloc((size_t)R * NP, sizeof *g->toks);
    g->j1 = calloc((size_t)R, sizeof *g->j1);
    if (!g->toks || !g->j1) abort(); /* test code */
    for (long r = 0; r < R; r++) {
        sd_sampler_params rp = *sp;
        rp.seed = tag * 0x100000000ull + (uint64_t)r;
        sd_sampler *s = NULL;
        if (sd_sampler_new(&rp, V, &s) != SD_OK) {
            g->errors++;
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
        sd_status rc = gen_one(tctx, s, drafter, prompt, n_prompt, &gp, f, o, out, &n_out, &st);
        g->ms += (now_s() - t0) * 1e3;
        sd_sampler_free(s);
        if (rc != SD_OK) {
            g->errors++;
            continue;
        }
        if (n_out != NP) g->short_runs++;
        for (int i = 0; i < NP; i++) g->toks[r * NP + i] = i < n_out ? out[i] : 0;
        g->j1[r] = cb.first_step - 1;
        g->drafted += st.drafted;
        g->accepted += st.accepted;
    }
}

static void gen_free(gen_set *g) {
    free(g->toks);
    free(g->j1);
}

/* ------------------------------------------------------- the battery */

/* The exact laws the samples are tested against. */
typedef struct {
    int V;
    float *p1;    /* (V) */
    double *t1d;  /* (V) p1 in double */
    double *m2;   /* (V) exact marginal of t2 */
    table pair;   /* (t1,t2) keys a * V + b */
    table triple; /* keys (a * V + b) * (V + 1) + c, c = V: the lump (a, b, *) */
} laws;

/* The histograms of one gen_set. */
typedef struct {
    long *mc[NP]; /* (V) marginal of t1..t5 */
    long *pc;     /* (pair.n) */
    long *tc;     /* (triple.n) */
    long zero1, zero2, zero3; /* emitted tokens whose exact p is 0 */
} hists;

static void hists_make(const laws *L, const gen_set *g, hists *h) {
    const int V = L->V;
    memset(h, 0, sizeof *h);
    for (int i = 0; i < NP; i++) h->mc[i] = calloc((size_t)V, sizeof *h->mc[i]);
    h->pc = calloc((size_t)L->pair.n, sizeof *h->pc);
    h->tc = calloc((size_t)L->triple.n, sizeof *h->tc);
    for (long r = 0; r < g->R; r++) {
        const int32_t *t = g->toks + r * NP;
        for (int i = 0; i < NP; i++) h->mc[i][t[i]]++;
        if (L->p1[t[0]] <= 0.0f) h->zero1++;
        long pi = tab_find(&L->pair, (int64_t)t[0] * V + t[1]);
        if (pi < 0) {
            if (L->p1[t[0]] > 0.0f) h->zero2++;
            continue;
        }
        h->pc[pi]++;
        const int64_t base = ((int64_t)t[0] * V + t[1]) * (V + 1);
        long ti = tab_find(&L->triple, base + t[2]);
        if (ti < 0) ti = tab_find(&L->triple, base + V);
        if (ti < 0) {
            h->zero3++; /* expanded prefix, t3 with p3 = 0 */
            continue;
        }
        h->tc[ti]++;
    }
}

static void hists_free(hists *h) {
    for (int i = 0; i < NP; i++) free(h->mc[i]);
    free(h->pc);
    free(h->tc);
}

/* The one-sample tests of one condition (cn names it) against the exact
 * laws: t1, t2's marginal, the pair (t1,t2), the triple categories; tokens
 * emitted where the exact law is 0 count against the test of their
 * position. Writes 4 results. */
static int tests_one(const laws *L, const hists *h, long R, const char *cn, stat_res *out) {
    char what[48];
    snprintf(what, sizeof what, "%s t1 vs p1", cn);
    out[0] = stat_one(what, h->mc[0], L->t1d, L->V, R);
    snprintf(what, sizeof what, "%s t2 vs sum p1 p2", cn);
    out[1] = stat_one(what, h->mc[1], L->m2, L->V, R);
    snprintf(what, sizeof what, "%s (t1,t2) vs p1 p2", cn);
    out[2] = stat_one(what, h->pc, L->pair.prob, L->pair.n, R);
    snprintf(what, sizeof what, "%s (t1,t2,t3) vs p1 p2 p3", cn);
    out[3] = stat_one(what, h->tc, L->triple.prob, L->triple.n, R);
    out[0].n_zero += h->zero1;
    out[2].n_zero += h->zero2;
    out[3].n_zero += h->zero3;
    for (int i = 0; i < 4; i++) out[i].reject |= out[i].n_zero > 0;
    return 4;
}

/* The two-sample tests of plain (a, na runs) against speculative (b, nb
 * runs): the pair (t1,t2) and the marginals of t2..t5. Writes NP results. */
static int tests_two(const laws *L, const hists *a, long na, const hists *b, long nb, stat_res *out) {
    out[0] = stat_two("(t1,t2)", a->pc, b->pc, L->pair.n, na, nb);
    for (int i = 1; i < NP; i++) {
        char what[32];
        snprintf(what, sizeof what, "t%d", i + 1);
        out[i] = stat_two(what, a->mc[i], b->mc[i], L->V, na, nb);
    }
    return NP;
}

/* The tests of the observed verifications (o gathered over R runs):
 * acceptance, its count against the sum of the exact probabilities
 * (|z| >= 4.0 rejects: the two-sided 6.2e-5 normal quantile); zeros, next
 * tokens where their exact law is 0 (any rejects); the probability-rank
 * transform of next, chi-square against uniform. Writes 3 results. */
static int tests_verify(const vobs *o, stat_res *out) {
    stat_res *a = &out[0], *z = &out[1], *u = &out[2];
    snprintf(a->what, sizeof a->what, "verify: acceptance |z|");
    a->kind = "|z|";
    a->chi = o->sum_var > 0.0 ? fabs((double)o->accepted - o->sum_a) / sqrt(o->sum_var) : 0.0;
    a->crit = 4.0;
    a->df = 1;
    a->n_zero = 0;
    a->reject = a->chi >= a->crit;
    snprintf(z->what, sizeof z->what, "verify: next where its law is 0");
    z->kind = "count";
    z->chi = (double)o->zero;
    z->crit = 1.0;
    z->df = 1;
    z->n_zero = o->zero;
    z->reject = o->zero > 0;
    double p[PIT_BINS];
    for (int i = 0; i < PIT_BINS; i++) p[i] = 1.0 / PIT_BINS;
    *u = stat_one("verify: next's rank transform", o->pit, p, PIT_BINS, o->events);
    return 3;
}

/* The fault each configuration's run must reject (SPECDEC_SPEC_FAULTS
 * overrides): one it rejects with power ~1 at its run count (the table in
 * the header). SD_TEST_QUICK (600 runs, R/2 = 300 of them faulty): the
 * unnormalized residual, whose corrections where the exact law is 0 come
 * at >= 0.043 per run in every configuration; measured over 10 seeds of
 * 300 runs, the fewest: tree-draft mean 12.8 (min 6), hydra 14.9 (min 8),
 * eagle 16.9 (min 9), so a miss has probability ~exp(-12.8) = 3e-6. */
static sd_verify_fault default_fault(const char *which, bool quick) {
    if (quick) return SD_FAULT_RESIDUAL_UNNORMALIZED;
    if (!which || !strcmp(which, "tree-draft") || !strcmp(which, "draft-xtok")) return SD_FAULT_ACCEPT_POW;
    return SD_FAULT_RESIDUAL_UNNORMALIZED;
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
    const bool quick = getenv("SD_TEST_QUICK") != NULL; /* sanitizer runs */
    long R = quick ? 600 : 3000;
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
    gen_set ga, gb; /* plain, speculative */
    vobs ob;        /* the speculative condition's verifications */
    vobs_init(&ob, V, 0x5eed0002ull);
    gen_runs(tctx, NULL, &sp, V, prompt, n_prompt, R, 1, SD_VERIFY_EXACT, NULL, &ga);
    gen_runs(tctx, drafter, &sp, V, prompt, n_prompt, R, 2, SD_VERIFY_EXACT, &ob, &gb);
    const double t_gen = now_s() - t_gen0;
    CHECK(ga.errors + gb.errors == 0, "%ld generations failed", ga.errors + gb.errors);
    CHECK(ga.short_runs + gb.short_runs == 0, "%ld generations shorter than %d", ga.short_runs + gb.short_runs, NP);
    printf("generation: %.1f s (%.2f ms/run plain, %.2f ms/run speculative)\n", t_gen, ga.ms / R, gb.ms / R);

    /* ------------------------------------------------ statistics */
    const laws L = {V, p1, t1d, m2, pair, triple};
    hists ha, hb;
    hists_make(&L, &ga, &ha);
    hists_make(&L, &gb, &hb);
    int n_tests = 0;
    stat_res res[MAX_TESTS];
    printf("plain: checks against the exact law\n");
    for (int i = 0, n = tests_one(&L, &ha, R, "plain", res); i < n; i++) check_pass(&res[i], &n_tests);
    printf("speculative: checks against the exact law\n");
    for (int i = 0, n = tests_one(&L, &hb, R, "speculative", res); i < n; i++) check_pass(&res[i], &n_tests);
    printf("plain vs speculative (two-sample)\n");
    for (int i = 0, n = tests_two(&L, &ha, R, &hb, R, res); i < n; i++) check_pass(&res[i], &n_tests);
    printf("speculative: %ld acceptance trials (%ld accepted, expected %.1f), %ld next tokens\n", ob.trials,
           ob.accepted, ob.sum_a, ob.events);
    for (int i = 0, n = tests_verify(&ob, res); i < n; i++) check_pass(&res[i], &n_tests);
    CHECK(n_tests <= MAX_TESTS, "%d tests: adjust Z_TEST", n_tests);

    /* drafting happened, at the rate the two models imply */
    long acc1 = 0;
    for (long r = 0; r < R; r++) acc1 += gb.j1[r] >= 1;
    const double rate = (double)acc1 / (double)R;
    const double se = sqrt(alpha_exp * (1.0 - alpha_exp) / (double)R);
    printf("speculative: drafted %ld, accepted %ld (%.3f); first draft of the first step "
           "accepted %.4f, expected %.4f (%.1f SE)\n",
           gb.drafted, gb.accepted, gb.drafted ? (double)gb.accepted / gb.drafted : 0.0, rate, alpha_exp,
           se > 0 ? fabs(rate - alpha_exp) / se : 0.0);
    CHECK(gb.drafted > 0 && gb.accepted > 0 && gb.accepted < gb.drafted, "drafted %ld accepted %ld", gb.drafted,
          gb.accepted);
    /* the expected rate is the chain's (one draft at the first position) */
    const bool chain_rate = !tree && !heads_m && !xtok && !self_m;
    if (chain_rate)
        CHECK(fabs(rate - alpha_exp) < 5.0 * se + 1e-9, "first-draft acceptance %.4f vs %.4f",
              rate, alpha_exp);
    {
        long plain_j = 0;
        for (long r = 0; r < R; r++) plain_j += ga.j1[r] != 0;
        CHECK(plain_j == 0, "plain decoding accepted drafts in %ld runs", plain_j);
    }

    /* power: the draft model's law is told apart from what we sampled */
    printf("power checks\n");
    check_reject("plain t1 vs draft q1", ha.mc[0], q1d, V, R);
    {
        long *pqc = calloc((size_t)pair_q.n + 1, sizeof *pqc);
        long outside = 0;
        for (long r = 0; r < R; r++) {
            const int32_t *t = ga.toks + r * NP;
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

    /* power against wrong verifiers: the speculative condition again, R
     * runs with a fault set (verify_hooks.h); the battery above (but the
     * plain condition's own tests) must reject what it emits */
    {
        const bool is_tree = tree || (heads_m && !strstr(which, "-chain"));
        const sd_verify_fault dflt = default_fault(which, quick);
        const long R_f = quick ? R / 2 : R; /* faulty runs */
        sd_verify_fault faults[SD_VERIFY_FAULT_COUNT];
        int n_faults = 0;
        const char *fenv = getenv("SPECDEC_SPEC_FAULTS");
        for (int f = 1; f < SD_VERIFY_FAULT_COUNT; f++) {
            const bool tree_only = f == SD_FAULT_TREE_SIBLINGS_KEPT;
            const bool want = fenv ? !strcmp(fenv, "all") || strstr(fenv, sd_verify_fault_name(f)) : f == (int)dflt;
            if (want && (!tree_only || is_tree)) faults[n_faults++] = f;
        }
        long reps = 1;
        const char *renv = getenv("SPECDEC_SPEC_POWER_REPS");
        if (renv && atol(renv) >= 1) reps = atol(renv);
        for (int fi = 0; fi < n_faults; fi++) {
            const sd_verify_fault f = faults[fi];
            const char *fname = sd_verify_fault_name(f);
            long n_rej[MAX_TESTS] = {0}, n_any = 0;
            double sum_chi[MAX_TESTS] = {0};
            stat_res last[MAX_TESTS];
            int n = 0;
            for (long rep = 0; rep < reps; rep++) {
                const double tf0 = now_s();
                const uint64_t tag = 16 + 16 * (uint64_t)rep + (uint64_t)f;
                gen_set gf;
                vobs of;
                vobs_init(&of, V, 0x5eed0000ull + tag);
                gen_runs(tctx, drafter, &sp, V, prompt, n_prompt, R_f, tag, f, &of, &gf);
                hists hf;
                hists_make(&L, &gf, &hf);
                n = tests_one(&L, &hf, R_f, "faulty", res);
                n += tests_two(&L, &ha, R, &hf, R_f, res + n);
                n += tests_verify(&of, res + n);
                if (chain_rate) { /* the first-draft acceptance check above */
                    long a1 = 0;
                    for (long r = 0; r < R_f; r++) a1 += gf.j1[r] >= 1;
                    const double se_f = sqrt(alpha_exp * (1.0 - alpha_exp) / (double)R_f);
                    stat_res *a = &res[n++];
                    snprintf(a->what, sizeof a->what, "first-draft acceptance vs q");
                    a->kind = "|z|";
                    a->chi = se_f > 0 ? fabs((double)a1 / (double)R_f - alpha_exp) / se_f : 0.0;
                    a->crit = 5.0;
                    a->df = 1;
                    a->n_zero = 0;
                    a->reject = a->chi >= a->crit;
                }
                printf("fault %s (%ld runs seeded %llu * 2^32 + r, %.1f s): %ld trials (%ld accepted, expected %.1f), "
                       "%ld next tokens\n",
                       fname, R_f, (unsigned long long)tag, now_s() - tf0, of.trials, of.accepted, of.sum_a, of.events);
                int k = 0;
                for (int i = 0; i < n; i++) {
                    stat_print(&res[i], "   <- rejects");
                    n_rej[i] += res[i].reject;
                    sum_chi[i] += res[i].chi;
                    k += res[i].reject;
                    last[i] = res[i];
                }
                n_any += k > 0;
                printf("fault %s: %s", fname, k ? "rejected by" : "NOT rejected");
                for (int i = 0, m = 0; i < n; i++)
                    if (res[i].reject)
                        printf("%s %s (%s %.1f >= %.1f%s)", m++ ? ";" : "", res[i].what, res[i].kind, res[i].chi,
                               res[i].crit, res[i].n_zero ? ", samples where the law is 0" : "");
                printf("\n");
                CHECK(gf.errors == 0 && gf.short_runs == 0, "fault %s: %ld failed, %ld short", fname, gf.errors,
                      gf.short_runs);
                CHECK(k > 0, "fault %s: no test rejects the wrong verifier", fname);
                hists_free(&hf);
                gen_free(&gf);
                vobs_free(&of);
            }
            if (reps > 1) {
                printf("power over %ld seeds, fault %s: rejected %ld/%ld\n", reps, fname, n_any, reps);
                for (int i = 0; i < n; i++)
                    printf("  %-34s rejected %3ld/%ld, mean %-5s %8.1f crit %7.1f df %4d\n", last[i].what, n_rej[i],
                           reps, last[i].kind, sum_chi[i] / reps, last[i].crit, last[i].df);
            }
        }
    }

    vobs_free(&ob);
    hists_free(&ha);
    hists_free(&hb);
    gen_free(&ga);
    gen_free(&gb);
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
