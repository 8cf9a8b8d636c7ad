/* stats.h - goodness-of-fit statistics for the tests that check a sampler's
 * law on synthetic distributions (test_verify.c, test_tree_verify.c), and
 * the helpers both build those distributions with.
 *
 * The helpers draw from the caller's sd_rng in a fixed order, so a test
 * seeded the same way sees the same sequence of laws and draws. */
#ifndef SD_TEST_STATS_H
#define SD_TEST_STATS_H
#include <stdint.h>

#include "specdec.h"

/* Bounds of the verify tests' synthetic laws: tokens, positions. */
enum { ST_VMAX = 32, ST_NPOS = 8 };

/* ------------------------------------------------------------ statistics */

/* Upper alpha quantile of chi-square (df) by Wilson-Hilferty; z the upper
 * alpha normal quantile. At alpha = 1e-3: df 1 -> 11.2 (exact 10.83), df 7
 * -> 24.4 (24.32), df 31 -> 61.1 (61.10), df 63 -> 103.5 (103.44). For
 * df <= 2 it is slightly above the exact value (conservative). At z = 4.5
 * (alpha 3.4e-6): df 4 -> 32.2, df 5 -> 34.5, df 21 -> 64.3, df 31 -> 80.4,
 * df 317 -> 443.5. */
double st_chi2_crit(int df, double z);

/* Wilson-Hilferty z-score of a chi-square statistic (for reporting). */
double st_chi2_z(double chi, int df);

/* Pearson chi-square of counts against probabilities p (n bins); bins with
 * N p < 5 are pooled into one bin (if the pool's expected count is still
 * below 5 it is merged into the largest bin). Bins with p = 0 are left out
 * (the callers check them to be empty separately). Writes the degrees of
 * freedom (bins - 1). */
double st_chi2_stat(const long *cnt, const double *p, int n, long n_tot, int *df);

/* Total variation between the empirical law cnt / n_tot and p. */
double st_tv_dist(const long *cnt, const double *p, int n, long n_tot);

/* A bound the empirical TV exceeds with probability < 1e-6 when the law is
 * p: E[TV] <= 1/2 sum_i sqrt(p_i (1 - p_i) / N) (Jensen), and TV changes
 * by at most 1/N when one of the N independent draws changes, so by
 * McDiarmid P(TV >= E[TV] + t) <= exp(-2 N t^2) = 1e-6 at
 * t = sqrt(ln(1e6) / (2 N)) (0.0083 at N = 1e5). For V = 32 this gives at
 * most 0.0089 + 0.0083 = 0.017; typical first-token bounds are 0.012-0.015
 * and observed TVs are 0.001-0.004. */
double st_tv_bound(const double *p, int n, long n_tot);

/* One histogram against its law: chi-square with its critical value (at
 * the caller's z; INFINITY when df < 1) and TV with its bound. */
typedef struct st_res {
    double chi, crit, tv, tvb;
    int df;
} st_res;

st_res st_eval_hist(const long *cnt, const double *p, int n, long n_tot, double z_alpha);

/* Running extremes over a test file, for its summary line: the largest
 * Wilson-Hilferty z, how many chi-square tests ran and how many of them a
 * per-test alpha of 1e-3 would reject, the largest TV / bound. Start from
 * ST_TALLY_INIT. */
typedef struct st_tally {
    double max_z, max_tv_ratio;
    int n_chi, n_rej_1e3;
} st_tally;

#define ST_TALLY_INIT {-1e9, 0.0, 0, 0}

/* Counts one chi-square test (df >= 1) into t. */
void st_note_chi(st_tally *t, double chi, int df);

/* CHECKs that s passes (chi-square below its critical value when df >= 1,
 * TV below its bound) and counts it into t; what and label name it in a
 * failure message. */
void st_check(st_tally *t, const char *what, const char *label, const st_res *s);

/* --------------------------------------------------- distributions, draws */

/* Approximately standard normal: the sum of 12 uniforms minus 6. */
double st_gauss(sd_rng *r);

/* Index drawn from w (n nonnegative doubles) with one uniform: the tests'
 * own sampler, independent of the library's. -1 (and no uniform drawn)
 * when w has no mass. */
int32_t st_draw_idx(const double *w, int n, sd_rng *r);

/* Normalizes w (double) into a float row. */
void st_to_row(const double *w, int n, float *out);

/* A float row as a normalized double law. */
void st_to_law(const float *w, int n, double *out);

/* ----------------------------------------------- the verify tests' laws */

/* The verify tests' synthetic target: positional rows over V <= ST_VMAX
 * tokens, row t the law of the token at position t whatever came before;
 * p as the sampler sees it, pd the same renormalized in double. ~1/4 of the
 * tokens have p = 0 (a different set per position), rows alternate peaked
 * / flat / medium, and one very rare token (weight 1e-4) sits on the medium
 * rows. */
typedef struct st_target {
    int V;
    float p[ST_NPOS][ST_VMAX];
    double pd[ST_NPOS][ST_VMAX];
} st_target;

void st_make_target(st_target *tg, int V, sd_rng *r);

/* Families of a drafter's law q against a target row p (the verify tests'
 * draft laws). Random weights are exp(1.5 st_gauss). */
typedef enum st_qlaw {
    ST_Q_EQ,       /* q = p, bit for bit                                    */
    ST_Q_DISJOINT, /* random weights on the tokens where p = 0             */
    ST_Q_PARTIAL,  /* 0 on the first, third, .. token of p's support,
                      random weights on the others and off the support     */
    ST_Q_SHARP,    /* q ~ p^3                                               */
    ST_Q_FLAT,     /* q ~ 0.8 norm(p^0.3) + 0.2 uniform                     */
    ST_Q_RANDOM,   /* random weights                                        */
    ST_Q_ONEHOT,   /* a point mass at the token `at`                        */
    ST_Q_UNIFORM,  /* uniform                                               */
} st_qlaw;

/* The row q (V floats, normalized) of law against the target row p; at is
 * ST_Q_ONEHOT's token (ignored by the others). Draws V random weights from
 * r whatever the law, so that every law uses the same stretch of r. */
void st_draft_row(st_qlaw law, const float *p, int V, int32_t at, sd_rng *r, float *q);

/* The verify tests' emitted sequences: histograms of the first token, the
 * pair (first, second) and the third token over runs, checked against the
 * target's positional laws p_0, p_0 x p_1 and p_2. */
typedef struct st_hist3 {
    long c0[ST_VMAX], c01[ST_VMAX * ST_VMAX], c2[ST_VMAX]; /* c01: first major */
    long zero_emitted; /* tokens with p = 0 among the three */
} st_hist3;

/* Counts the first three tokens of one run, em[0..3), into h. */
void st_hist3_add(st_hist3 *h, const st_target *tg, const int32_t *em);

typedef struct st_res3 {
    st_res m0, j01, m2;
} st_res3;

/* The three histograms of n_tot runs against their laws. */
st_res3 st_eval3(const st_target *tg, const st_hist3 *h, long n_tot, double z_alpha);

/* st_check on each of the three (label names the case). */
void st_check3(st_tally *t, const char *label, const st_res3 *r);

/* The largest chi-square / critical value of the three: above 1 when any
 * of them is rejected (the negative controls). */
double st_worst3(const st_res3 *r);

#endif
