/* test_sampler.c - xoshiro256** generator, the sampling chain's
 * distribution (against an independent double-precision reference and
 * hand-computed values), and sd_sampler_sample() against that distribution
 * by chi-square and total variation. */
#include "specdec.h"
#include "util/check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ reference */

/* Straightforward double-precision implementation of the documented chain
 * (full sort, no shortcuts): writes the dense distribution into out. */
typedef struct {
    double l;
    int id;
} ref_cand;

static int ref_cmp(const void *pa, const void *pb) {
    const ref_cand *a = pa, *b = pb;
    if (a->l != b->l) return a->l > b->l ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static void ref_dist(const sd_sampler_params *p, const float *logits, int n,
                     double *out) {
    ref_cand *c = malloc((size_t)n * sizeof *c);
    double *q = malloc((size_t)n * sizeof *q);
    for (int i = 0; i < n; i++) {
        out[i] = 0.0;
        c[i].l = isnan(logits[i]) ? -INFINITY : logits[i];
        c[i].id = i;
    }
    qsort(c, (size_t)n, sizeof *c, ref_cmp);
    if (p->temp <= 0.0f || c[0].l == -INFINITY) {
        out[c[0].id] = 1.0;
        free(c);
        free(q);
        return;
    }
    int m = n;
    if (p->top_k > 0 && p->top_k < m) m = p->top_k;
    /* top-p on the softmax of the first m */
    double z = 0.0;
    for (int i = 0; i < m; i++) z += exp(c[i].l - c[0].l);
    if (p->top_p < 1.0f) {
        double cum = 0.0;
        for (int i = 0; i < m; i++) {
            cum += exp(c[i].l - c[0].l) / z;
            if (cum >= p->top_p) {
                m = i + 1;
                break;
            }
        }
    }
    /* min-p on the softmax of the remaining m */
    if (p->min_p > 0.0f) {
        z = 0.0;
        for (int i = 0; i < m; i++) z += exp(c[i].l - c[0].l);
        double pmax = 1.0 / z;
        int j = 0;
        while (j < m && exp(c[j].l - c[0].l) / z >= p->min_p * pmax) j++;
        if (j < 1) j = 1;
        m = j;
    }
    double s = 0.0;
    for (int i = 0; i < m; i++) {
        q[i] = exp((c[i].l - c[0].l) / p->temp);
        s += q[i];
    }
    for (int i = 0; i < m; i++) out[c[i].id] = q[i] / s;
    free(c);
    free(q);
}

static sd_sampler_params mk(float temp, int top_k, float top_p, float min_p) {
    sd_sampler_params p = sd_sampler_default_params();
    p.temp = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = 1234;
    return p;
}

/* Max |sd_sampler_dist - expected| for these params and logits; also
 * checks the distribution sums to 1. */
static double dist_err(const sd_sampler_params *p, const float *logits, int n,
                       const double *expect) {
    sd_sampler *s = NULL;
    float *probs = malloc((size_t)n * sizeof *probs);
    if (sd_sampler_new(p, n, &s) != SD_OK || !probs) {
        free(probs);
        return INFINITY;
    }
    sd_sampler_dist(s, logits, probs);
    double err = 0.0, sum = 0.0;
    for (int i = 0; i < n; i++) {
        double e = fabs(probs[i] - expect[i]);
        if (e > err) err = e;
        if (expect[i] == 0.0 && probs[i] != 0.0) err = INFINITY;
        sum += probs[i];
    }
    if (fabs(sum - 1.0) > 1e-5) err = INFINITY;
    sd_sampler_free(s);
    free(probs);
    return err;
}

/* Compares sd_sampler_dist to the reference for params/logits. */
static void check_ref(const char *what, const sd_sampler_params *p,
                      const float *logits, int n) {
    double *expect = malloc((size_t)n * sizeof *expect);
    ref_dist(p, logits, n, expect);
    double err = dist_err(p, logits, n, expect);
    CHECK(err < 1e-6, "%s (temp %g k %d p %g minp %g): max err %g", what,
          p->temp, p->top_k, p->top_p, p->min_p, err);
    free(expect);
}

/* ------------------------------------------------------------------ rng */

static void test_rng(void) {
    sd_rng a, b, c;
    sd_rng_seed(&a, 42);
    sd_rng_seed(&b, 42);
    sd_rng_seed(&c, 43);
    int same = 1, diff = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = sd_rng_next(&a), y = sd_rng_next(&b), z = sd_rng_next(&c);
        same &= x == y;
        diff += x != z;
    }
    CHECK(same, "same seed gives the same stream");
    /* two independent 64-bit words are equal with probability 2^-64: all
     * 1000 differ but with probability 1000 * 2^-64 = 5.4e-17 (was >= 999) */
    CHECK(diff == 1000, "different seeds differ (%d/1000 words)", diff);

    /* Seed 0 must not give the degenerate all-zero state. */
    sd_rng_seed(&a, 0);
    CHECK(a.s[0] | a.s[1] | a.s[2] | a.s[3], "seed 0 state nonzero");
    CHECK(sd_rng_next(&a) != 0 || sd_rng_next(&a) != 0, "seed 0 stream moves");

    /* Known first output: splitmix64(0) words then xoshiro256**. The
     * splitmix64 first output for seed 0 is the published 0xE220A8397B1DCDAF. */
    {
        sd_rng r;
        sd_rng_seed(&r, 0);
        CHECK(r.s[0] == 0xE220A8397B1DCDAFull, "splitmix64(0) first word %llx",
              (unsigned long long)r.s[0]);
    }

    /* 1e6 uniforms: range, mean 1/2 and variance 1/12. The standard error of
     * the mean is sqrt(1/12/1e6) = 2.9e-4 and of the variance about
     * sqrt(1/180/1e6) = 7.5e-5; the bounds are ~7 standard errors. */
    const int N = 1000000;
    sd_rng_seed(&a, 7);
    double s1 = 0.0, s2 = 0.0, mn = 1.0, mx = 0.0;
    int in_range = 1;
    for (int i = 0; i < N; i++) {
        double u = sd_rng_uniform(&a);
        in_range &= u >= 0.0 && u < 1.0;
        if (u < mn) mn = u;
        if (u > mx) mx = u;
        s1 += u;
        s2 += u * u;
    }
    double mean = s1 / N, var = s2 / N - mean * mean;
    CHECK(in_range, "uniform in [0,1)");
    CHECK(fabs(mean - 0.5) < 2e-3, "mean %f", mean);
    CHECK(fabs(var - 1.0 / 12.0) < 5e-4, "variance %f", var);
    /* no draw within 1e-4 of an end: probability 2 (1 - 1e-4)^1e6 = 7e-44 */
    CHECK(mn < 1e-4 && mx > 1.0 - 1e-4, "range covered [%g, %g]", mn, mx);

    /* Forking: a copy continues the same stream. */
    sd_rng_seed(&a, 99);
    sd_rng_next(&a);
    b = a;
    CHECK(sd_rng_next(&a) == sd_rng_next(&b), "copied state continues");
}

/* --------------------------------------------------------------- greedy */

static void test_greedy(void) {
    float x1[] = {1.0f, 3.0f, -INFINITY, 3.0f, 2.0f};
    CHECK(sd_argmax(x1, 5) == 1, "tie -> lowest index");
    float x2[] = {-INFINITY, -INFINITY, -5.0f, NAN};
    CHECK(sd_argmax(x2, 4) == 2, "-inf and NaN skipped");
    float x3[] = {-INFINITY, NAN, -INFINITY};
    CHECK(sd_argmax(x3, 3) == 0, "all -inf -> 0");
    float x4[] = {NAN, 1.0f};
    CHECK(sd_argmax(x4, 2) == 1, "NaN first is not the max");
    CHECK(sd_argmax(x1, 0) == -1, "n 0 -> -1");

    sd_sampler_params p = mk(0.0f, 40, 0.95f, 0.05f);
    sd_sampler *s = NULL;
    CHECK(sd_sampler_new(&p, 5, &s) == SD_OK, "greedy new");
    if (!s) return;
    CHECK(sd_sampler_is_greedy(s), "temp 0 is greedy");
    float probs[5];
    sd_sampler_dist(s, x1, probs);
    CHECK(probs[1] == 1.0f && probs[0] == 0.0f && probs[2] == 0.0f &&
              probs[3] == 0.0f && probs[4] == 0.0f,
          "greedy dist one-hot at 1");
    sd_rng before = *sd_sampler_rng(s);
    int ok = 1;
    for (int i = 0; i < 100; i++) ok &= sd_sampler_sample(s, x1) == 1;
    CHECK(ok, "greedy sample is argmax");
    CHECK(memcmp(&before, sd_sampler_rng(s), sizeof before) == 0,
          "greedy consumes no randomness");
    sd_sampler_free(s);

    p.temp = -1.0f;
    CHECK(sd_sampler_new(&p, 5, &s) == SD_OK && sd_sampler_is_greedy(s),
          "negative temp is greedy");
    sd_sampler_free(s);
}

/* ------------------------------------------------------- distributions */

static void test_dist_hand(void) {
    /* logits 0..3 on ids {3,1,0,2} -> sorted ids 2 (3.0), 0 (2.0), 1 (1.0),
     * 3 (0.0). */
    const float l[4] = {2.0f, 1.0f, 3.0f, 0.0f};
    double e3 = exp(3.0), e2 = exp(2.0), e1 = exp(1.0), e0 = 1.0;
    double ex[4];

    /* plain temperature 1: softmax */
    double z = e3 + e2 + e1 + e0;
    ex[0] = e2 / z, ex[1] = e1 / z, ex[2] = e3 / z, ex[3] = e0 / z;
    sd_sampler_params p = mk(1.0f, 0, 1.0f, 0.0f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "softmax T=1");

    /* temperature 0.5: softmax(2l) */
    z = exp(6.0) + exp(4.0) + exp(2.0) + 1.0;
    ex[0] = exp(4.0) / z, ex[1] = exp(2.0) / z, ex[2] = exp(6.0) / z,
    ex[3] = 1.0 / z;
    p = mk(0.5f, 0, 1.0f, 0.0f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "softmax T=0.5");

    /* top-k 2: ids 2 and 0 */
    z = e3 + e2;
    ex[0] = e2 / z, ex[1] = 0, ex[2] = e3 / z, ex[3] = 0;
    p = mk(1.0f, 2, 1.0f, 0.0f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "top-k 2");
    /* top-k 1 = argmax */
    ex[0] = 0, ex[1] = 0, ex[2] = 1, ex[3] = 0;
    p = mk(1.0f, 1, 1.0f, 0.0f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "top-k 1");
    /* top-k >= n: everything */
    z = e3 + e2 + e1 + e0;
    ex[0] = e2 / z, ex[1] = e1 / z, ex[2] = e3 / z, ex[3] = e0 / z;
    p = mk(1.0f, 4, 1.0f, 0.0f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "top-k n");

    /* top-p: softmax = .6439 .2369 .0871 .0321; p=0.85 keeps 2 tokens (cum
     * .8808), p=0.9 keeps 3 (cum .9679), p=0.5 keeps 1. */
    z = e3 + e2;
    ex[0] = e2 / z, ex[1] = 0, ex[2] = e3 / z, ex[3] = 0;
    p = mk(1.0f, 0, 0.85f, 0.0f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "top-p 0.85");
    z = e3 + e2 + e1;
    ex[0] = e2 / z, ex[1] = e1 / z, ex[2] = e3 / z, ex[3] = 0;
    p = mk(1.0f, 0, 0.9f, 0.0f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "top-p 0.9");
    ex[0] = 0, ex[1] = 0, ex[2] = 1, ex[3] = 0;
    p = mk(1.0f, 0, 0.5f, 0.0f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "top-p 0.5");
    p = mk(1.0f, 0, 0.0f, 0.0f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "top-p 0 keeps one");

    /* min-p: p_i/p_max = 1, e^-1 = .368, e^-2 = .135, e^-3 = .0498;
     * min_p 0.1 keeps 3, 0.2 keeps 2, 0.04 keeps 4, 2.0 keeps only the max */
    z = e3 + e2 + e1;
    ex[0] = e2 / z, ex[1] = e1 / z, ex[2] = e3 / z, ex[3] = 0;
    p = mk(1.0f, 0, 1.0f, 0.1f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "min-p 0.1");
    z = e3 + e2;
    ex[0] = e2 / z, ex[1] = 0, ex[2] = e3 / z, ex[3] = 0;
    p = mk(1.0f, 0, 1.0f, 0.2f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "min-p 0.2");
    z = e3 + e2 + e1 + e0;
    ex[0] = e2 / z, ex[1] = e1 / z, ex[2] = e3 / z, ex[3] = e0 / z;
    p = mk(1.0f, 0, 1.0f, 0.04f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "min-p 0.04");
    ex[0] = 0, ex[1] = 0, ex[2] = 1, ex[3] = 0;
    p = mk(1.0f, 0, 1.0f, 2.0f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "min-p > 1 keeps the max");

    /* combination: top-k 3 (ids 2,0,1; softmax over them .6652 .2447
     * .0900), top-p 0.95 keeps all 3 (cum .9100 after 2), min-p 0.2 drops
     * id 1 (ratio .135), temperature 2: softmax(l/2) over ids 2, 0. */
    z = exp(1.5) + exp(1.0);
    ex[0] = exp(1.0) / z, ex[1] = 0, ex[2] = exp(1.5) / z, ex[3] = 0;
    p = mk(2.0f, 3, 0.95f, 0.2f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "top-k + top-p + min-p + temp");
    /* top-p normalizes over the top-k set: k 3, p 0.9 keeps 2 (cum .9100
     * >= .9 within the top-k set although only .8808 of the full vocab) */
    ex[0] = exp(1.0) / z, ex[1] = 0, ex[2] = exp(1.5) / z, ex[3] = 0;
    p = mk(2.0f, 3, 0.9f, 0.0f);
    CHECK(dist_err(&p, l, 4, ex) < 1e-6, "top-p over the top-k set");

    /* ties and -inf: ids 1 and 3 tie at 5; top-k 1 keeps the lower id;
     * -inf and NaN tokens get 0 even with no filter */
    const float lt[5] = {-INFINITY, 5.0f, NAN, 5.0f, 4.0f};
    ex[0] = 0;
    double et[5] = {0, 1, 0, 0, 0};
    p = mk(1.0f, 1, 1.0f, 0.0f);
    CHECK(dist_err(&p, lt, 5, et) < 1e-6, "top-k 1 tie -> lower id");
    z = 2.0 * exp(5.0 / 0.7) + exp(4.0 / 0.7);
    et[1] = exp(5.0 / 0.7) / z, et[3] = et[1], et[4] = exp(4.0 / 0.7) / z;
    p = mk(0.7f, 0, 1.0f, 0.0f);
    CHECK(dist_err(&p, lt, 5, et) < 1e-6, "-inf/NaN get zero");
    /* all -inf, non-greedy: falls back to the argmax (index 0) */
    const float li[3] = {-INFINITY, NAN, -INFINITY};
    double ei[3] = {1, 0, 0};
    p = mk(1.0f, 0, 0.9f, 0.05f);
    CHECK(dist_err(&p, li, 3, ei) < 1e-6, "all -inf -> one-hot");
    /* +inf dominates */
    const float lp[3] = {1.0f, INFINITY, 2.0f};
    double ep[3] = {0, 1, 0};
    p = mk(1.0f, 0, 1.0f, 0.0f);
    CHECK(dist_err(&p, lp, 3, ep) < 1e-6, "+inf -> one-hot");
}

/* Random logits (normal-ish, scale sd) into x. */
static void rand_logits(sd_rng *r, float *x, int n, double sd) {
    for (int i = 0; i < n; i++) {
        double u = 0.0;
        for (int k = 0; k < 12; k++) u += sd_rng_uniform(r);
        x[i] = (float)((u - 6.0) * sd);
    }
}

static void test_dist_random(void) {
    const sd_sampler_params settings[] = {
        mk(1.0f, 0, 1.0f, 0.0f),    mk(0.8f, 40, 0.95f, 0.05f),
        mk(1.3f, 5, 1.0f, 0.0f),    mk(0.6f, 0, 0.7f, 0.0f),
        mk(1.0f, 0, 1.0f, 0.1f),    mk(1.5f, 10, 0.8f, 0.02f),
        mk(0.9f, 0, 0.9f, 0.05f),   mk(2.0f, 3, 0.0f, 0.0f),
        mk(1e-3f, 0, 1.0f, 0.0f),   mk(100.0f, 20, 0.99f, 0.0f),
    };
    const int ns = (int)(sizeof settings / sizeof settings[0]);
    sd_rng r;
    sd_rng_seed(&r, 5);
    float x[200];
    for (int trial = 0; trial < 20; trial++) {
        int n = 1 + (int)(sd_rng_next(&r) % 200);
        rand_logits(&r, x, n, 0.5 + trial * 0.25);
        if (trial % 4 == 3)  /* some -inf, some quantized ties */
            for (int i = 0; i < n; i += 3) x[i] = -INFINITY;
        if (trial % 5 == 4)
            for (int i = 0; i < n; i++) x[i] = roundf(x[i]);
        for (int k = 0; k < ns; k++) check_ref("random", &settings[k], x, n);
    }

    /* top-p alone over many sizes: the mass quickselect (no top-k, no
     * min-p) must keep exactly the sorted prefix. */
    float *mid = malloc(3000 * sizeof *mid);
    const float tps[] = {0.0f, 0.3f, 0.6f, 0.9f, 0.99f, 0.9999f};
    for (int trial = 0; trial < 60; trial++) {
        int n = 17 + (int)(sd_rng_next(&r) % 2983);
        rand_logits(&r, mid, n, 0.2 + 0.1 * trial);
        if (trial % 3 == 2)
            for (int i = 0; i < n; i++) mid[i] = roundf(mid[i] * 2.0f);
        for (int k = 0; k < 6; k++) {
            sd_sampler_params tp = mk(1.0f, 0, tps[k], 0.0f);
            check_ref("top-p only", &tp, mid, n);
        }
    }
    free(mid);

    /* A realistic vocabulary size, through every code path. */
    const int nv = 151936;
    float *big = malloc((size_t)nv * sizeof *big);
    rand_logits(&r, big, nv, 3.0);
    for (int k = 0; k < ns; k++) check_ref("151936-vocab", &settings[k], big, nv);
    free(big);
}

/* ---------------------------------------------------------- statistics */

/* Upper alpha quantile of chi-square with df degrees of freedom by the
 * Wilson-Hilferty approximation: df (1 - 2/(9df) + z sqrt(2/(9df)))^3,
 * z the upper alpha normal quantile (z = 3.090232 for alpha = 1e-3). E.g.
 * df 15 -> 37.7 (exact 37.70), df 31 -> 61.1 (exact 61.10). */
static double chi2_crit(int df, double z) {
    double a = 2.0 / (9.0 * df);
    double t = 1.0 - a + z * sqrt(a);
    return df * t * t * t;
}

/* Pearson chi-square of counts against expected probabilities p (n bins;
 * bins with N p < 5 pooled into one). Writes the degrees of freedom. */
static double chi2_stat(const long *cnt, const double *p, int n, long N,
                        int *df) {
    double chi = 0.0, pool_e = 0.0, pool_o = 0.0;
    int bins = 0;
    for (int i = 0; i < n; i++) {
        double e = p[i] * (double)N;
        if (p[i] == 0.0) continue;
        if (e < 5.0) {
            pool_e += e;
            pool_o += (double)cnt[i];
            continue;
        }
        chi += (cnt[i] - e) * (cnt[i] - e) / e;
        bins++;
    }
    if (pool_e > 0.0) {
        chi += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
        bins++;
    }
    *df = bins - 1;
    return chi;
}

static void test_statistics(void) {
    enum { V = 32 };
    const long N = 200000;
    const double z = 3.090232;      /* alpha = 1e-3 */
    const double tv_bound = 0.01;   /* expected TV here is <= ~0.005 */
    const sd_sampler_params settings[] = {
        mk(1.0f, 0, 1.0f, 0.0f),    mk(0.8f, 40, 0.95f, 0.05f),
        mk(1.3f, 8, 1.0f, 0.0f),    mk(0.7f, 0, 0.8f, 0.0f),
        mk(1.0f, 0, 1.0f, 0.1f),    mk(1.5f, 12, 0.9f, 0.02f),
    };
    float l[V];
    sd_rng r;
    sd_rng_seed(&r, 77);
    rand_logits(&r, l, V, 1.5);
    l[5] = -INFINITY;
    l[17] = NAN;
    for (size_t k = 0; k < sizeof settings / sizeof settings[0]; k++) {
        const sd_sampler_params *p = &settings[k];
        sd_sampler *s = NULL;
        if (sd_sampler_new(p, V, &s) != SD_OK) {
            CHECK(0, "sampler new");
            continue;
        }
        float probs[V];
        double pd[V];
        long cnt[V] = {0};
        sd_sampler_dist(s, l, probs);
        for (int i = 0; i < V; i++) pd[i] = probs[i];
        int bad = 0;
        for (long i = 0; i < N; i++) {
            int32_t t = sd_sampler_sample(s, l);
            if (t < 0 || t >= V) {
                bad++;
                continue;
            }
            cnt[t]++;
        }
        CHECK(bad == 0, "setting %zu: %d out-of-range samples", k, bad);
        int zero_drawn = 0, kept = 0;
        for (int i = 0; i < V; i++) {
            if (probs[i] == 0.0f && cnt[i] > 0) zero_drawn++;
            kept += probs[i] > 0.0f;
        }
        CHECK(zero_drawn == 0, "setting %zu: zero-probability token drawn", k);
        int df;
        double chi = chi2_stat(cnt, pd, V, N, &df);
        if (df >= 1) {
            double crit = chi2_crit(df, z);
            CHECK(chi < crit, "setting %zu: chi2 %.1f >= crit %.1f (df %d)", k,
                  chi, crit, df);
        }
        double tv = 0.0;
        for (int i = 0; i < V; i++) tv += fabs((double)cnt[i] / N - pd[i]);
        tv *= 0.5;
        CHECK(tv < tv_bound, "setting %zu: TV %.4f", k, tv);

        /* Power: the same counts against the distribution with its two most
         * likely tokens' probabilities swapped must be rejected. */
        if (kept >= 2) {
            int a = 0, b = -1;
            for (int i = 0; i < V; i++)
                if (pd[i] > pd[a]) a = i;
            for (int i = 0; i < V; i++)
                if (i != a && (b < 0 || pd[i] > pd[b])) b = i;
            if (pd[a] - pd[b] > 0.02) {
                double sw[V];
                memcpy(sw, pd, sizeof sw);
                sw[a] = pd[b];
                sw[b] = pd[a];
                int df2;
                double chi2 = chi2_stat(cnt, sw, V, N, &df2);
                CHECK(chi2 > chi2_crit(df2, z), "setting %zu: swapped dist "
                      "not rejected (chi2 %.1f)", k, chi2);
            }
        }
        sd_sampler_free(s);
    }

    /* sd_sampler_draw against its own input: uneven weights with zeros,
     * negatives and NaN (counted as 0), not normalized. */
    {
        sd_sampler_params p = mk(1.0f, 0, 1.0f, 0.0f);
        sd_sampler *s = NULL;
        CHECK(sd_sampler_new(&p, 4, &s) == SD_OK, "draw sampler");
        if (!s) return;
        float w[16];
        double pd[16], tot = 0.0;
        long cnt[16] = {0};
        for (int i = 0; i < 16; i++) {
            w[i] = (float)(i % 5) * 0.3f;
            if (i == 7) w[i] = -1.0f;
            if (i == 11) w[i] = NAN;
            pd[i] = w[i] > 0.0f ? w[i] : 0.0;
            tot += pd[i];
        }
        for (int i = 0; i < 16; i++) pd[i] /= tot;
        int bad = 0;
        for (long i = 0; i < N; i++) {
            int32_t t = sd_sampler_draw(s, w, 16);
            if (t < 0 || t >= 16 || pd[t] == 0.0) {
                bad++;
                continue;
            }
            cnt[t]++;
        }
        CHECK(bad == 0, "draw: %d bad draws", bad);
        int df;
        double chi = chi2_stat(cnt, pd, 16, N, &df);
        CHECK(chi < chi2_crit(df, z), "draw: chi2 %.1f df %d", chi, df);
        float zeros[3] = {0.0f, -1.0f, NAN};
        CHECK(sd_sampler_draw(s, zeros, 3) == -1, "draw: no positive -> -1");
        CHECK(sd_sampler_draw(s, zeros, 0) == -1, "draw: n 0 -> -1");
        float one[3] = {0.0f, 0.0f, 1e-30f};
        CHECK(sd_sampler_draw(s, one, 3) == 2, "draw: single positive");
        sd_sampler_free(s);
    }
}

/* Same seed, same tokens; the sampler consumes one uniform per sample. */
static void test_determinism(void) {
    enum { V = 64 };
    float l[V];
    sd_rng r;
    sd_rng_seed(&r, 3);
    rand_logits(&r, l, V, 2.0);
    sd_sampler_params p = mk(0.9f, 20, 0.9f, 0.02f);
    sd_sampler *a = NULL, *b = NULL;
    CHECK(sd_sampler_new(&p, V, &a) == SD_OK, "new a");
    CHECK(sd_sampler_new(&p, V, &b) == SD_OK, "new b");
    if (!a || !b) {
        sd_sampler_free(a);
        sd_sampler_free(b);
        return;
    }
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= sd_sampler_sample(a, l) == sd_sampler_sample(b, l);
    CHECK(same, "same seed -> same tokens");
    sd_rng ref;
    sd_rng_seed(&ref, p.seed);
    for (int i = 0; i < 1000; i++) sd_rng_next(&ref);
    CHECK(memcmp(&ref, sd_sampler_rng(a), sizeof ref) == 0,
          "one generator step per sample");
    sd_sampler_free(a);
    sd_sampler_free(b);
}

/* ---------------------------------------------------------------- params */

static void test_params(void) {
    sd_sampler_params d = sd_sampler_default_params();
    CHECK(d.temp == 0.8f && d.top_k == 40 && d.top_p == 0.95f &&
              d.min_p == 0.05f && d.seed == 0xFFFFFFFFull,
          "defaults");
    sd_sampler *s = (sd_sampler *)&d; /* must be reset to NULL on error */
    sd_sampler_params p = d;
    p.temp = NAN;
    CHECK(sd_sampler_new(&p, 10, &s) == SD_ERR_INVALID_ARG && s == NULL,
          "NaN temp");
    p = d;
    p.top_p = -0.1f;
    CHECK(sd_sampler_new(&p, 10, &s) == SD_ERR_INVALID_ARG, "negative top_p");
    p = d;
    p.top_p = NAN;
    CHECK(sd_sampler_new(&p, 10, &s) == SD_ERR_INVALID_ARG, "NaN top_p");
    p = d;
    p.min_p = -1.0f;
    CHECK(sd_sampler_new(&p, 10, &s) == SD_ERR_INVALID_ARG, "negative min_p");
    p = d;
    p.min_p = NAN;
    CHECK(sd_sampler_new(&p, 10, &s) == SD_ERR_INVALID_ARG, "NaN min_p");
    CHECK(sd_sampler_new(&d, 0, &s) == SD_ERR_INVALID_ARG, "n_vocab 0");
    CHECK(sd_sampler_new(&d, -5, &s) == SD_ERR_INVALID_ARG, "n_vocab < 0");
    CHECK(sd_sampler_new(NULL, 10, &s) == SD_ERR_INVALID_ARG, "NULL params");
    CHECK(sd_sampler_new(&d, 10, NULL) == SD_ERR_INVALID_ARG, "NULL out");
    CHECK(sd_sampler_new(&d, 1, &s) == SD_OK && s, "n_vocab 1 ok");
    float one = 0.5f, pr = 0.0f;
    sd_sampler_dist(s, &one, &pr);
    CHECK(pr == 1.0f && sd_sampler_sample(s, &one) == 0, "n_vocab 1 dist");
    CHECK(!sd_sampler_is_greedy(s), "default not greedy");
    sd_sampler_free(s);
    sd_sampler_free(NULL);
}

int main(void) {
    test_rng();
    test_greedy();
    test_dist_hand();
    test_dist_random();
    test_statistics();
    test_determinism();
    test_params();
    return check_report("test_sampler");
}
