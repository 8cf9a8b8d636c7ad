/* test_verify.c - the verification step alone (src/spec/verify.c), on
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
 *    (tv_bound below);
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
#include "spec/verify.h"
#include "util/check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { VMAX = 32, NPOS = 8, M = 3, KMAX = 4, NPREV = 4 };

static const long N = 100000;
/* Family-wise alpha = 1e-3 over all chi-square tests of this file
 * (Bonferroni): each test is run at alpha' = 3.4e-6 (the upper normal
 * quantile 4.5), which keeps the family-wise level <= 1e-3 for up to 294
 * tests (this file runs 264). At a per-test 1e-3 a file of 264 tests would
 * fail by chance in ~23% of seed choices; the count of tests that would be
 * rejected at a per-test 1e-3 is printed for information (expected ~0.26). */
static const double Z_ALPHA = 4.5;
static const double Z_1E3 = 3.090232; /* upper 1e-3 normal quantile */
enum { MAX_CHI_TESTS = 294 };

/* ---------------------------------------------------------- statistics */

/* Upper alpha quantile of chi-square (df) by Wilson-Hilferty; z the upper
 * alpha normal quantile. At alpha = 1e-3: df 1 -> 11.2 (exact 10.83), df 7
 * -> 24.4 (24.32), df 31 -> 61.1 (61.10), df 63 -> 103.5 (103.44). For
 * df <= 2 it is slightly above the exact value (conservative). At z = 4.5
 * (alpha 3.4e-6): df 4 -> 32.2, df 5 -> 34.5, df 21 -> 64.3, df 31 -> 80.4,
 * df 317 -> 443.5. */
static double chi2_crit(int df, double z) {
    double a = 2.0 / (9.0 * df);
    double t = 1.0 - a + z * sqrt(a);
    return df * t * t * t;
}

/* Wilson-Hilferty z-score of a chi-square statistic (for reporting). */
static double chi2_z(double chi, int df) {
    double a = 2.0 / (9.0 * df);
    return (cbrt(chi / df) - (1.0 - a)) / sqrt(a);
}

/* Pearson chi-square of counts against probabilities p (n bins); bins with
 * N p < 5 are pooled into one bin (if the pool's expected count is still
 * below 5 it is merged into the largest bin). Bins with p = 0 are left out
 * (they are checked to be empty separately). Writes the degrees of
 * freedom (bins - 1). */
static double chi2_stat(const long *cnt, const double *p, int n, long n_tot, int *df) {
    double chi = 0.0, pool_e = 0.0, pool_o = 0.0;
    int bins = 0, big = -1;
    for (int i = 0; i < n; i++) {
        if (p[i] == 0.0) continue;
        double e = p[i] * (double)n_tot;
        if (e < 5.0) {
            pool_e += e;
            pool_o += (double)cnt[i];
            continue;
        }
        if (big < 0 || p[i] > p[big]) big = i;
    }
    for (int i = 0; i < n; i++) {
        if (p[i] == 0.0) continue;
        double e = p[i] * (double)n_tot, o = (double)cnt[i];
        if (e < 5.0) continue;
        if (i == big && pool_e > 0.0 && pool_e < 5.0) {
            e += pool_e;
            o += pool_o;
        }
        chi += (o - e) * (o - e) / e;
        bins++;
    }
    if (pool_e >= 5.0 || (big < 0 && pool_e > 0.0)) {
        chi += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
        bins++;
    }
    *df = bins - 1;
    return chi;
}

/* Total variation between the empirical law and p. */
static double tv_dist(const long *cnt, const double *p, int n, long n_tot) {
    double tv = 0.0;
    for (int i = 0; i < n; i++) tv += fabs((double)cnt[i] / (double)n_tot - p[i]);
    return 0.5 * tv;
}

/* A bound the empirical TV exceeds with probability < 1e-6 when the law is
 * p: E[TV] <= 1/2 sum_i sqrt(p_i (1 - p_i) / N) (Jensen), and TV changes
 * by at most 1/N when one of the N independent draws changes, so by
 * McDiarmid P(TV >= E[TV] + t) <= exp(-2 N t^2) = 1e-6 at
 * t = sqrt(ln(1e6) / (2 N)) (0.0083 at N = 1e5). For V = 32 this gives at
 * most 0.0089 + 0.0083 = 0.017; typical first-token bounds are 0.012-0.015
 * and observed TVs are 0.001-0.004. */
static double tv_bound(const double *p, int n, long n_tot) {
    double e = 0.0;
    for (int i = 0; i < n; i++) e += sqrt(p[i] * (1.0 - p[i]) / (double)n_tot);
    return 0.5 * e + sqrt(log(1e6) / (2.0 * (double)n_tot));
}

/* Running extremes for the summary line. */
static double g_max_z = -1e9, g_max_tv_ratio = 0.0, g_max_acc_z = 0.0;
static int g_n_chi = 0, g_n_rej_1e3 = 0;

typedef struct {
    double chi, crit, tv, tvb;
    int df;
} stat_res;

/* Chi-square + TV of one histogram against p. */
static stat_res eval_hist(const long *cnt, const double *p, int n, long n_tot) {
    stat_res r;
    r.chi = chi2_stat(cnt, p, n, n_tot, &r.df);
    r.crit = r.df >= 1 ? chi2_crit(r.df, Z_ALPHA) : INFINITY;
    r.tv = tv_dist(cnt, p, n, n_tot);
    r.tvb = tv_bound(p, n, n_tot);
    return r;
}

/* ------------------------------------------------------------ helpers */

static double gauss(sd_rng *r) {
    double u = 0.0;
    for (int i = 0; i < 12; i++) u += sd_rng_uniform(r);
    return u - 6.0;
}

/* Index drawn from w (n entries, nonnegative, sum > 0) with one uniform;
 * the drafter's own sampler (independent of verify.c's). */
static int32_t draw_idx(const float *w, int n, sd_rng *r) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += w[i];
    double u = sd_rng_uniform(r) * s, c = 0.0;
    int32_t last = -1;
    for (int i = 0; i < n; i++) {
        if (w[i] <= 0.0f) continue;
        c += w[i];
        last = i;
        if (u < c) return i;
    }
    return last;
}

/* Normalizes w (double) into a float row. */
static void to_row(const double *w, int n, float *out) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += w[i];
    for (int i = 0; i < n; i++) out[i] = (float)(w[i] / s);
}

/* ------------------------------------------------- the target's rows */

typedef struct {
    int V;
    float p[NPOS][VMAX];   /* target rows as verify sees them         */
    double pd[NPOS][VMAX]; /* the same, renormalized in double        */
} target;

/* Positional target rows: ~1/4 of the tokens have p = 0 (a different set
 * per position), alternating peaked / flat / medium rows, and one very rare
 * token (weight 1e-4) on the medium rows. */
static void make_target(target *tg, int V, sd_rng *r) {
    tg->V = V;
    for (int t = 0; t < NPOS; t++) {
        double w[VMAX];
        const double scale = t % 3 == 0 ? 2.5 : t % 3 == 1 ? 0.5 : 1.5;
        for (int i = 0; i < V; i++) {
            w[i] = exp(scale * gauss(r));
            if ((i + 3 * t) % 4 == 0) w[i] = 0.0;
        }
        if (t % 3 == 2) {
            int rare = (5 + t) % V;
            if (w[rare] > 0.0) w[rare] = 1e-4;
        }
        to_row(w, V, tg->p[t]);
        double s = 0.0;
        for (int i = 0; i < V; i++) s += tg->p[t][i];
        for (int i = 0; i < V; i++) tg->pd[t][i] = tg->p[t][i] / s;
    }
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

static void make_drafter(drafter *d, qkind kind, const target *tg, sd_rng *r) {
    const int V = tg->V;
    d->kind = kind;
    d->report_q = !(kind == Q_ONEHOT_ZERO || kind == Q_ONEHOT_ARGMAX || kind == Q_ONEHOT_RANDOM);
    memset(d->g, 0, sizeof d->g);
    for (int h = 0; h < (kind == Q_PREFIX ? NPREV : 1); h++) {
        for (int t = 0; t < NPOS; t++) {
            const float *p = tg->p[t];
            double w[VMAX];
            int am = 0, zero = -1, n_supp = 0;
            for (int i = 0; i < V; i++) {
                if (p[i] > p[am]) am = i;
                if (p[i] == 0.0f && zero < 0) zero = i;
            }
            for (int i = 0; i < V; i++) {
                double u = exp(1.5 * gauss(r));
                switch (kind) {
                case Q_EQ: w[i] = p[i]; break;
                case Q_DISJOINT: w[i] = p[i] == 0.0f ? u : 0.0; break;
                case Q_ONEHOT_ZERO: w[i] = i == zero; break;
                case Q_ONEHOT_ARGMAX: w[i] = i == am; break;
                case Q_ONEHOT_RANDOM: w[i] = 1.0; break;
                case Q_PARTIAL:
                    if (p[i] > 0.0f) w[i] = (n_supp++ % 2) ? u : 0.0;
                    else w[i] = u;
                    break;
                case Q_SHARP: w[i] = pow(p[i], 3.0); break;
                case Q_FLAT: w[i] = pow(p[i], 0.3); break;
                case Q_RANDOM:
                case Q_PREFIX: w[i] = u; break;
                default: w[i] = 1.0; break;
                }
            }
            if (kind == Q_FLAT) {
                double s = 0.0;
                for (int i = 0; i < V; i++) s += w[i];
                for (int i = 0; i < V; i++) w[i] = 0.8 * w[i] / s + 0.2 / V;
            }
            if (kind == Q_EQ) {
                memcpy(d->g[h][t], p, (size_t)V * sizeof(float)); /* bit-identical */
            } else {
                to_row(w, V, d->g[h][t]);
            }
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

static int32_t draw_p(const float *w, int n, sd_rng *r) { return draw_idx(w, n, r); }

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
    long c0[VMAX], c01[VMAX * VMAX], c2[VMAX];
    long reached[NPOS], accepted[NPOS];
    long zero_emitted, bad_ret, calls;
} sim_counts;

/* N runs of the miniature decode loop with draft length k. */
static void simulate(const target *tg, const drafter *d, int k, verify_fn fn, uint64_t seed,
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
                draft[i] = draw_idx(g, V, &drng);
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
        for (int t = 0; t < M; t++)
            if (tg->p[t][em[t]] == 0.0f) sc->zero_emitted++;
        sc->c0[em[0]]++;
        sc->c01[em[0] * V + em[1]]++;
        sc->c2[em[2]]++;
    }
}

typedef struct {
    stat_res m0, j01, m2;
} case_res;

static case_res evaluate(const target *tg, const sim_counts *sc) {
    const int V = tg->V;
    double pj[VMAX * VMAX];
    for (int a = 0; a < V; a++)
        for (int b = 0; b < V; b++) pj[a * V + b] = tg->pd[0][a] * tg->pd[1][b];
    case_res r;
    r.m0 = eval_hist(sc->c0, tg->pd[0], V, N);
    r.j01 = eval_hist(sc->c01, pj, V * V, N);
    r.m2 = eval_hist(sc->c2, tg->pd[2], V, N);
    return r;
}

static void note(const stat_res *s) {
    if (s->df >= 1) {
        double z = chi2_z(s->chi, s->df);
        if (z > g_max_z) g_max_z = z;
        g_n_chi++;
        if (s->chi >= chi2_crit(s->df, Z_1E3)) g_n_rej_1e3++;
    }
    if (s->tv / s->tvb > g_max_tv_ratio) g_max_tv_ratio = s->tv / s->tvb;
}

static void check_stat(const char *what, const char *label, const stat_res *s) {
    note(s);
    CHECK(s->df < 1 || s->chi < s->crit, "%s: %s chi2 %.1f >= crit %.1f (df %d)", label, what,
          s->chi, s->crit, s->df);
    CHECK(s->tv < s->tvb, "%s: %s TV %.4f >= bound %.4f", label, what, s->tv, s->tvb);
}

static void test_sampling_cases(void) {
    const int Vs[2] = {32, 8};
    int n_cases = 0;
    for (int vi = 0; vi < 2; vi++) {
        const int V = Vs[vi];
        target tg;
        sd_rng r;
        sd_rng_seed(&r, 1000 + (uint64_t)V);
        make_target(&tg, V, &r);
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
                CHECK(sc->zero_emitted == 0, "%s: %ld zero-probability tokens emitted", label,
                      sc->zero_emitted);
                case_res cr = evaluate(&tg, sc);
                check_stat("first token", label, &cr.m0);
                check_stat("(first, second)", label, &cr.j01);
                check_stat("third token", label, &cr.m2);
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
           n_cases, N, g_n_chi, g_max_z, Z_ALPHA, g_n_rej_1e3, g_max_tv_ratio, g_max_acc_z);
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
        target tg;
        sd_rng r;
        sd_rng_seed(&r, 1000 + (uint64_t)cases[c].V);
        make_target(&tg, cases[c].V, &r);
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
        case_res cr = evaluate(&tg, sc);
        double worst = fmax(cr.m0.chi / cr.m0.crit, fmax(cr.j01.chi / cr.j01.crit, cr.m2.chi / cr.m2.crit));
        printf("negative control %-20s V %2d k %d %-12s chi2/crit: first %.1f pair %.1f third %.1f"
               "  TV/bound %.2f %.2f\n",
               names[cases[c].mode], cases[c].V, cases[c].k, qkind_name[cases[c].kind],
               cr.m0.chi / cr.m0.crit, cr.j01.chi / cr.j01.crit, cr.m2.chi / cr.m2.crit,
               cr.m0.tv / cr.m0.tvb, cr.j01.tv / cr.j01.tvb);
        CHECK(worst > 1.0, "negative control %s (V %d k %d) not rejected", names[cases[c].mode],
              cases[c].V, cases[c].k);
        /* the sound verifier on the very same setting passes */
        simulate(&tg, d, cases[c].k, sd_verify_sample, 9000 + c, sc);
        cr = evaluate(&tg, sc);
        check_stat("first token", "control twin", &cr.m0);
        check_stat("(first, second)", "control twin", &cr.j01);
        check_stat("third token", "control twin", &cr.m2);
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
    CHECK(g_n_chi <= MAX_CHI_TESTS, "%d chi-square tests: raise the Bonferroni z", g_n_chi);
    printf("cpu time %.1f s\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
    return check_report("test_verify");
}
