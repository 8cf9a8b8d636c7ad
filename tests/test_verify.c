/* test_verify.c - the verification step alone (src/speculative/verify.c), on
 * synthetic distributions.
 *
 * Speculative sampling is lossless: whatever the drafter proposes, the
 * emitted tokens are distributed exactly as sampling from the target's p.
 * The test makes the target's distributions positional (row t is the
 * distribution of the token at position t, whatever came before), so the
 * emitted sequence must be i.i.d. across runs with the product law
 * p_0(a) p_1(b) p_2(c). Each run is a miniature decode loop: draft k tokens
 * from q with a generator of its own (as a real drafter does), verify with
 * the p rows of their positions, emit the accepted drafts and the
 * correction/bonus token, and continue from the new position until M = 3
 * tokens are out. Then, over N = 1e5 runs per case:
 *  - Pearson chi-square of the first token against p_0, of the pair
 *    (first, second) against p_0 x p_1 and of the third token against p_2
 *    (bins with expected count < 5 pooled), not rejected at a family-wise
 *    alpha = 1e-3 (Bonferroni over the file's tests, see Z_ALPHA);
 *  - total variation below a bound that holds with probability 1 - 1e-6
 *    (st_tv_bound, util/stats.h);
 *  - tokens with p = 0 are never emitted; j and next are in range;
 *  - the acceptance rate at each position matches sum_x g(x) min(1, p/r)
 *    (g: the law the draft was drawn from, r: the q passed to verify, a
 *    one-hot at the draft when q = NULL) within 5 standard errors, and is
 *    exact when that is 0 or 1.
 * Draft laws: q = p; q disjoint from p; one-hot drafts (q = NULL) fixed to a
 * token with p = 0, fixed to argmax p, or drawn uniformly (a lookup
 * drafter); q = 0 on half of p's support; q sharpened (p^3) and flattened;
 * random q; and q that depends on the previous token (a real drafter's q
 * depends on its prefix). Each for k = 0..4 and V = 32 and V = 8.
 * Negative controls: three deliberately broken verifiers (accept with
 * probability p(x); resample from p instead of the residual; bonus token
 * from the wrong row) must be rejected by the same statistics.
 * sd_verify_greedy is checked exhaustively against a reference on V = 3. */
#include "specdec.h"
#include "speculative/verify.h"
#include "util/check.h"
#include "util/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { VMAX = ST_VMAX, NPOS = ST_NPOS, M = 3, KMAX = 4, NPREV = 4 };

static const long N = 100000;
/* Family-wise alpha = 1e-3 over all chi-square tests of this file
 * (Bonferroni): each test is run at alpha' = 3.4e-6 (the upper normal
 * quantile 4.5), which keeps the family-wise level <= 1e-3 for up to 294
 * tests (this file runs 264). At a per-test 1e-3 a file of 264 tests would
 * fail by chance in ~23% of seed choices; the count of tests that would be
 * rejected at a per-test 1e-3 is printed for information (expected ~0.26). */
static const double Z_ALPHA = 4.5;
enum { MAX_CHI_TESTS = 294 };

/* ------------------------------------------------------------ helpers */

/* Running extremes for the summary line (the statistics: util/stats.h). */
static st_tally g_tally = ST_TALLY_INIT;
static double g_max_acc_z = 0.0;

/* Index drawn from the float row w (n entries, nonnegative, sum > 0) with
 * one uniform: the drafter's own sampler (independent of verify.c's). The
 * float weights widen exactly to double, so the draws are those of a float
 * loop. */
static int32_t draw_p(const float *w, int n, sd_rng *r) {
    double wd[VMAX];
    for (int i = 0; i < n; i++) wd[i] = w[i];
    return st_draw_idx(wd, n, r);
}

/* ------------------------------------------------------ draft laws */

typedef enum {
    Q_EQ,            /* q = p                                           */
    Q_DISJOINT,      /* q on the tokens where p = 0                     */
    Q_ONEHOT_ZERO,   /* q = NULL, draft fixed to a token with p = 0     */
    Q_ONEHOT_ARGMAX, /* q = NULL, draft fixed to argmax p               */
    Q_ONEHOT_RANDOM, /* q = NULL, draft drawn uniformly (lookup-like)   */
    Q_PARTIAL,       /* q = 0 on half of p's support, mass elsewhere    */
    Q_SHARP,         /* q ~ p^3                                         */
    Q_FLAT,          /* q ~ 0.8 norm(p^0.3) + 0.2 uniform               */
    Q_RANDOM,        /* random q                                        */
    Q_PREFIX,        /* random q chosen by the previous token           */
    Q_COUNT
} qkind;

static const char *qkind_name[Q_COUNT] = {
    "q=p",          "q disjoint",   "one-hot p=0", "one-hot argmax", "one-hot uniform",
    "q=0 on half p", "q sharpened", "q flattened", "q random",      "q prefix-dep",
};

typedef struct {
    qkind kind;
    bool report_q;             /* pass q to verify (else NULL)        */
    float g[NPREV][NPOS][VMAX]; /* law the drafts are drawn from;
                                   [prev % NPREV] for Q_PREFIX, else [0] */
    double alpha[NPOS];        /* expected acceptance (not Q_PREFIX)  */
} drafter;

/* Each kind's law family (util/stats.h); Q_PREFIX draws one random law per
 * previous token. */
static const st_qlaw qkind_law[Q_COUNT] = {
    ST_Q_EQ,      ST_Q_DISJOINT, ST_Q_ONEHOT, ST_Q_ONEHOT,  ST_Q_UNIFORM,
    ST_Q_PARTIAL, ST_Q_SHARP,    ST_Q_FLAT,   ST_Q_RANDOM, ST_Q_RANDOM,
};

static void make_drafter(drafter *d, qkind kind, const st_target *tg, sd_rng *r) {
    const int V = tg->V;
    d->kind = kind;
    d->report_q = !(kind == Q_ONEHOT_ZERO || kind == Q_ONEHOT_ARGMAX || kind == Q_ONEHOT_RANDOM);
    memset(d->g, 0, sizeof d->g);
    for (int h = 0; h < (kind == Q_PREFIX ? NPREV : 1); h++) {
        for (int t = 0; t < NPOS; t++) {
            const float *p = tg->p[t];
            int am = 0, zero = -1;
            for (int i = 0; i < V; i++) {
                if (p[i] > p[am]) am = i;
                if (p[i] == 0.0f && zero < 0) zero = i;
            }
            st_draft_row(qkind_law[kind], p, V, kind == Q_ONEHOT_ZERO ? zero : am, r, d->g[h][t]);
        }
    }
    /* alpha_t = sum_x g(x) min(1, p(x) / r(x)), r = g or one-hot at x */
    for (int t = 0; t < NPOS; t++) {
        double a = 0.0;
        for (int x = 0; x < V; x++) {
            double g = d->g[0][t][x], px = tg->p[t][x];
            if (g <= 0.0) continue;
            double rx = d->report_q ? g : 1.0;
            a += g * (px >= rx ? 1.0 : px / rx);
        }
        d->alpha[t] = a;
    }
}

/* ------------------------------------------------ broken verifiers */

typedef int (*verify_fn)(const int32_t *draft, int k, const float *p, const float *q, int V,
                         sd_rng *rng, float *scratch, int32_t *next);

/* Broken variants of the rule, all with verify_sample's signature:
 * 0: accept with probability p(x) (ignores q); 1: on rejection resample
 * from p instead of norm(max(0, p - q)); 2: the bonus token drawn from
 * p_{k-1} instead of p_k. */
static int g_broken_mode = 0;

static int verify_broken(const int32_t *draft, int k, const float *p, const float *q, int V,
                         sd_rng *rng, float *scratch, int32_t *next) {
    for (int i = 0; i < k; i++) {
        const float *pi = p + (size_t)i * V;
        const float *qi = q ? q + (size_t)i * V : NULL;
        const int32_t x = draft[i];
        const double px = pi[x], qx = qi ? qi[x] : 1.0;
        const double u = sd_rng_uniform(rng);
        const bool acc = g_broken_mode == 0 ? u < px : u * qx < px;
        if (acc) continue;
        if (g_broken_mode == 1) {
            *next = draw_p(pi, V, rng);
            return i;
        }
        double s = 0.0;
        for (int t = 0; t < V; t++) {
            float qt = qi ? qi[t] : (t == x ? 1.0f : 0.0f);
            float rr = pi[t] - qt;
            scratch[t] = rr > 0.0f ? rr : 0.0f;
            s += scratch[t];
        }
        *next = s > 0.0 ? draw_p(scratch, V, rng) : draw_p(pi, V, rng);
        return i;
    }
    const int row = (g_broken_mode == 2 && k > 0) ? k - 1 : k;
    *next = draw_p(p + (size_t)row * V, V, rng);
    return k;
}

/* ------------------------------------------------------ simulation */

typedef struct {
    st_hist3 h; /* the first three tokens of each run */
    long reached[NPOS], accepted[NPOS];
    long bad_ret, calls;
} sim_counts;

/* N runs of the miniature decode loop with draft length k. */
static void simulate(const st_target *tg, const drafter *d, int k, verify_fn fn, uint64_t seed,
                     sim_counts *sc) {
    const int V = tg->V;
    memset(sc, 0, sizeof *sc);
    sd_rng drng, vrng; /* drafter's and verifier's generators, independent */
    sd_rng_seed(&drng, seed * 2 + 1);
    sd_rng_seed(&vrng, seed * 2 + 2);
    float pflat[NPOS * VMAX], q[KMAX * VMAX], scratch[VMAX];
    for (int t = 0; t < NPOS; t++) memcpy(pflat + (size_t)t * V, tg->p[t], (size_t)V * sizeof(float));
    for (long run = 0; run < N; run++) {
        int32_t em[M + KMAX + 1];
        int n_em = 0, pos = 0;
        int32_t prev = -1;
        while (n_em < M) {
            int32_t draft[KMAX];
            int32_t dp = prev;
            for (int i = 0; i < k; i++) {
                const float *g = d->g[d->kind == Q_PREFIX ? (int)((dp + 1) % NPREV) : 0][pos + i];
                memcpy(q + (size_t)i * V, g, (size_t)V * sizeof(float));
                draft[i] = draw_p(g, V, &drng);
                dp = draft[i];
            }
            int32_t next = -1;
            int j = fn(draft, k, pflat + (size_t)pos * V, d->report_q ? q : NULL, V, &vrng,
                       scratch, &next);
            sc->calls++;
            if (j < 0 || j > k || next < 0 || next >= V) {
                sc->bad_ret++;
                break;
            }
            for (int i = 0; i <= j && i < k; i++) {
                sc->reached[pos + i]++;
                if (i < j) sc->accepted[pos + i]++;
            }
            for (int i = 0; i < j; i++) em[n_em++] = draft[i];
            em[n_em++] = next;
            pos += j + 1;
            prev = next;
        }
        if (n_em < M) continue;
        st_hist3_add(&sc->h, tg, em);
    }
}

static void test_sampling_cases(void) {
    const int Vs[2] = {32, 8};
    int n_cases = 0;
    for (int vi = 0; vi < 2; vi++) {
        const int V = Vs[vi];
        st_target tg;
        sd_rng r;
        sd_rng_seed(&r, 1000 + (uint64_t)V);
        st_make_target(&tg, V, &r);
        for (int k = 0; k <= KMAX; k++) {
            for (int kind = 0; kind < Q_COUNT; kind++) {
                if (k == 0 && kind != Q_EQ) continue; /* no drafts: q unused */
                drafter *d = malloc(sizeof *d);
                sim_counts *sc = malloc(sizeof *sc);
                if (!d || !sc) {
                    CHECK(0, "out of memory");
                    free(d);
                    free(sc);
                    return;
                }
                make_drafter(d, (qkind)kind, &tg, &r);
                char label[96];
                snprintf(label, sizeof label, "V %d k %d %s", V, k, qkind_name[kind]);
                simulate(&tg, d, k, sd_verify_sample, 77 + (uint64_t)n_cases, sc);
                n_cases++;
                CHECK(sc->bad_ret == 0, "%s: %ld out-of-range returns", label, sc->bad_ret);
                CHECK(sc->h.zero_emitted == 0, "%s: %ld zero-probability tokens emitted", label,
                      sc->h.zero_emitted);
                st_res3 cr = st_eval3(&tg, &sc->h, N, Z_ALPHA);
                st_check3(&g_tally, label, &cr);
                /* acceptance per position */
                double worst = 0.0;
                if (k > 0 && kind != Q_PREFIX) {
                    for (int t = 0; t < M; t++) {
                        long n = sc->reached[t], a = sc->accepted[t];
                        if (n < 1000) continue;
                        double al = d->alpha[t], obs = (double)a / (double)n;
                        if (al <= 1e-12) {
                            CHECK(a == 0, "%s: pos %d accepted %ld with rate 0", label, t, a);
                        } else if (al >= 1.0 - 1e-6) {
                            CHECK(a == n, "%s: pos %d rate %.5f, expected 1", label, t, obs);
                        } else {
                            double se = sqrt(al * (1.0 - al) / (double)n);
                            double z = fabs(obs - al) / se;
                            if (z > worst) worst = z;
                            CHECK(z < 5.0, "%s: pos %d acceptance %.4f vs %.4f (%.1f SE)", label,
                                  t, obs, al, z);
                        }
                    }
                    if (worst > g_max_acc_z) g_max_acc_z = worst;
                }
                printf("%-32s chi2 %6.1f/%6.1f (df %3d) %7.1f/%7.1f (df %4d) %6.1f/%6.1f "
                       "TV %.4f/%.4f %.4f/%.4f  acc(pos0) %.4f exp %.4f |z|max %.2f\n",
                       label, cr.m0.chi, cr.m0.crit, cr.m0.df, cr.j01.chi, cr.j01.crit,
                       cr.j01.df, cr.m2.chi, cr.m2.crit, cr.m0.tv, cr.m0.tvb, cr.j01.tv,
                       cr.j01.tvb, sc->reached[0] ? (double)sc->accepted[0] / sc->reached[0] : 0.0,
                       d->alpha[0], worst);
                free(d);
                free(sc);
            }
        }
    }
    printf("%d cases x %ld runs; %d chi-square tests, largest Wilson-Hilferty z %.2f "
           "(reject at %.2f); %d would be rejected at a per-test 1e-3; largest TV/bound %.2f; "
           "largest acceptance |z| %.2f\n",
           n_cases, N, g_tally.n_chi, g_tally.max_z, Z_ALPHA, g_tally.n_rej_1e3,
           g_tally.max_tv_ratio, g_max_acc_z);
}

/* The same statistics must reject broken rules. */
static void test_negative_controls(void) {
    static const char *names[3] = {"accept w.p. p(x)", "resample from p", "bonus from p_{k-1}"};
    static const struct {
        int mode, V, k;
        qkind kind;
    } cases[] = {
        {0, 32, 1, Q_RANDOM}, {0, 8, 3, Q_SHARP},  {1, 32, 1, Q_RANDOM},
        {1, 8, 3, Q_FLAT},    {2, 32, 1, Q_EQ},    {2, 8, 2, Q_SHARP},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        st_target tg;
        sd_rng r;
        sd_rng_seed(&r, 1000 + (uint64_t)cases[c].V);
        st_make_target(&tg, cases[c].V, &r);
        drafter *d = malloc(sizeof *d);
        sim_counts *sc = malloc(sizeof *sc);
        if (!d || !sc) {
            CHECK(0, "out of memory");
            free(d);
            free(sc);
            return;
        }
        make_drafter(d, cases[c].kind, &tg, &r);
        g_broken_mode = cases[c].mode;
        simulate(&tg, d, cases[c].k, verify_broken, 9000 + c, sc);
        st_res3 cr = st_eval3(&tg, &sc->h, N, Z_ALPHA);
        double worst = st_worst3(&cr);
        printf("negative control %-20s V %2d k %d %-12s chi2/crit: first %.1f pair %.1f third %.1f"
               "  TV/bound %.2f %.2f\n",
               names[cases[c].mode], cases[c].V, cases[c].k, qkind_name[cases[c].kind],
               cr.m0.chi / cr.m0.crit, cr.j01.chi / cr.j01.crit, cr.m2.chi / cr.m2.crit,
               cr.m0.tv / cr.m0.tvb, cr.j01.tv / cr.j01.tvb);
        CHECK(worst > 1.0, "negative control %s (V %d k %d) not rejected", names[cases[c].mode],
              cases[c].V, cases[c].k);
        /* the sound verifier on the very same setting passes */
        simulate(&tg, d, cases[c].k, sd_verify_sample, 9000 + c, sc);
        cr = st_eval3(&tg, &sc->h, N, Z_ALPHA);
        st_check3(&g_tally, "control twin", &cr);
        free(d);
        free(sc);
    }
}

/* ---------------------------------------------------------------- greedy */

/* Exhaustive on V = 3, k = 0..4: every draft and argmax vector against the
 * obvious reference. */
static void test_greedy(void) {
    long n = 0, bad = 0;
    for (int k = 0; k <= KMAX; k++) {
        int n_draft = 1, n_arg = 1;
        for (int i = 0; i < k; i++) n_draft *= 3;
        for (int i = 0; i <= k; i++) n_arg *= 3;
        for (int dc = 0; dc < n_draft; dc++) {
            int32_t draft[KMAX + 1], argmax[KMAX + 1];
            for (int i = 0, c = dc; i < k; i++, c /= 3) draft[i] = c % 3;
            draft[k] = 99; /* past the end: must not be read as a draft */
            for (int ac = 0; ac < n_arg; ac++) {
                for (int i = 0, c = ac; i <= k; i++, c /= 3) argmax[i] = c % 3;
                int ej = 0;
                while (ej < k && draft[ej] == argmax[ej]) ej++;
                int32_t next = -1;
                int j = sd_verify_greedy(draft, k, argmax, &next);
                n++;
                if (j != ej || next != argmax[ej]) bad++;
            }
        }
    }
    CHECK(bad == 0, "greedy: %ld of %ld cases wrong", bad, n);
    /* spot checks */
    const int32_t d[4] = {5, 7, 9, 11}, a[5] = {5, 7, 8, 11, 13};
    int32_t next = -1;
    CHECK(sd_verify_greedy(d, 4, a, &next) == 2 && next == 8, "mismatch at 2 -> argmax 8");
    const int32_t a2[5] = {5, 7, 9, 11, 13};
    CHECK(sd_verify_greedy(d, 4, a2, &next) == 4 && next == 13, "all accepted -> bonus 13");
    CHECK(sd_verify_greedy(d, 0, a2, &next) == 0 && next == 5, "k 0 -> argmax[0]");
    const int32_t a3[2] = {6, 1};
    CHECK(sd_verify_greedy(d, 1, a3, &next) == 0 && next == 6, "first rejected -> argmax[0]");
    printf("greedy: %ld exhaustive cases (V 3, k 0..4)\n", n);
}

int main(void) {
    clock_t t0 = clock();
    test_greedy();
    test_sampling_cases();
    test_negative_controls();
    CHECK(g_tally.n_chi <= MAX_CHI_TESTS, "%d chi-square tests: raise the Bonferroni z",
          g_tally.n_chi);
    printf("cpu time %.1f s\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
    return check_report("test_verify");
}
