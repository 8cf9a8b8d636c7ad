/* test_tree_verify.c - token-tree verification alone (src/speculative/verify_tree.c)
 * on synthetic distributions; the tree counterpart of test_verify.c.
 *
 * Multi-draft speculative sampling is lossless: whatever tree the drafter
 * proposes, the emitted tokens are distributed exactly as sampling from the
 * target's p. As in test_verify.c the target's rows are positional (row t is
 * the law of the token at position t, whatever came before), so the emitted
 * sequence must have the product law p_0(a) p_1(b) p_2(c). Each run is a
 * miniature decode loop: the test drafts a tree at the current position with
 * a generator of its own (siblings drawn WITHOUT replacement from the
 * drafter's law g, which is passed as q), verifies it with the p rows of the
 * nodes' positions, emits the accepted path and the correction/bonus token,
 * and continues from the new position until M = 3 tokens are out. Then, over
 * N = 1e5 runs per case (N = 2e4 with SD_TEST_QUICK, the sanitizer runs):
 *  - Pearson chi-square of the first token against p_0, of the pair (first,
 *    second) against p_0 x p_1 and of the third token against p_2 (bins with
 *    expected count < 5 pooled), not rejected at a family-wise alpha = 1e-3
 *    (Bonferroni over every chi-square test of the file, see Z_ALPHA);
 *  - total variation below a bound that holds with probability 1 - 1e-6;
 *  - tokens with p = 0 are never emitted; j, path and next are consistent;
 *  - the rate at which the first call of a run accepts a root child matches
 *    its exact value (rej_all below) within 5 standard errors, and is exact
 *    when that is 0 or 1; with q = p the walk always takes the first child.
 * Tree shapes: 2, 3 and 4 drafts at the root (depth 1); 3 at the root with 2
 * under the first child, and 2 at the root with 2 under each (depth 2, so
 * both tokens of the pair can come from one call); a chain of 3 (the tree
 * sampler on a chain must follow sd_verify_sample's law).
 * Draft laws: q = p; q disjoint from p; q = 0 on half of p's support; q
 * sharpened (p^3) and flattened; random q; random q chosen by the parent's
 * token; and q == NULL (one-hot candidates) with the top tokens of p, fixed
 * tokens 0, 1, 2, .. (some with p = 0), or distinct uniform tokens (a lookup
 * drafter). Each for V = 32 and V = 8.
 * Chain law: on chains, the joint law of (j, next) of the tree sampler and of
 * sd_verify_sample agree (two-sample chi-square).
 * Negative controls: three deliberately broken tree verifiers (later
 * siblings tested against q without removing the drawn ones; every child
 * rejected -> next from p instead of the residual; siblings tested against
 * p instead of the running residual) must be rejected by the same
 * statistics, while the real verifier passes on the very same settings.
 * sd_verify_tree_greedy is checked exhaustively against a reference on all
 * trees of up to 4 nodes (V = 3) and on random trees of up to 12 nodes;
 * invalid input returns -1 from both verifiers. */
#include "specdec.h"
#include "speculative/verify.h"
#include "util/check.h"
#include "util/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { VMAX = ST_VMAX, NPOS = ST_NPOS, M = 3, NMAX = 16, NPREV = 4 };

static const long N_FULL = 100000;
static long N = 100000; /* runs per case; main() lowers it for SD_TEST_QUICK */
/* Family-wise alpha = 1e-3 over all chi-square tests of this file
 * (Bonferroni): each test is run at alpha' = 2.1e-6 (the upper normal
 * quantile 4.6), which keeps the family-wise level <= 1e-3 for up to 473
 * tests (this file runs 382; main() checks the count). The number of tests
 * that would be rejected at a per-test 1e-3 is printed for information. */
static const double Z_ALPHA = 4.6;

/* Running extremes for the summary line (the statistics: util/stats.h). */
static st_tally g_tally = ST_TALLY_INIT;
static double g_max_acc_z = 0.0;

/* ------------------------------------------------------ draft laws */

typedef enum {
    Q_EQ,           /* q = p                                              */
    Q_DISJOINT,     /* q on the tokens where p = 0                        */
    Q_PARTIAL,      /* q = 0 on half of p's support, mass elsewhere       */
    Q_SHARP,        /* q ~ p^3                                            */
    Q_FLAT,         /* q ~ 0.8 norm(p^0.3) + 0.2 uniform                  */
    Q_RANDOM,       /* random q                                           */
    Q_PREFIX,       /* random q chosen by the parent node's token         */
    Q_NULL_TOP,     /* q = NULL: the top tokens of p, in order            */
    Q_NULL_FIXED,   /* q = NULL: tokens 0, 1, 2, .. (some have p = 0)     */
    Q_NULL_UNIFORM, /* q = NULL: distinct uniform tokens (lookup-like)    */
    Q_COUNT
} qkind;

static const char *qkind_name[Q_COUNT] = {
    "q=p",      "q disjoint", "q=0 on half p", "q sharpened",   "q flattened",
    "q random", "q by parent", "null top-p",   "null fixed",    "null uniform",
};

typedef struct {
    qkind kind;
    bool report_q;              /* pass q to verify (else NULL)             */
    bool fixed;                 /* candidates are ord[t][0..m), not drawn   */
    float g[NPREV][NPOS][VMAX]; /* law the siblings are drawn from; index
                                   [(parent token + 1) % NPREV] for
                                   Q_PREFIX, else [0]                      */
    int32_t ord[NPOS][VMAX];    /* candidate order for the fixed kinds      */
} drafter;

static int law_index(const drafter *d, int32_t parent_tok) {
    return d->kind == Q_PREFIX ? (int)((parent_tok + 1) % NPREV) : 0;
}

/* Each kind's law family (util/stats.h); Q_PREFIX draws one random law per
 * parent token, the q = NULL kinds draw from the uniform law when at all. */
static const st_qlaw qkind_law[Q_COUNT] = {
    ST_Q_EQ,     ST_Q_DISJOINT, ST_Q_PARTIAL, ST_Q_SHARP,   ST_Q_FLAT,
    ST_Q_RANDOM, ST_Q_RANDOM,   ST_Q_UNIFORM, ST_Q_UNIFORM, ST_Q_UNIFORM,
};

static void make_drafter(drafter *d, qkind kind, const st_target *tg, sd_rng *r) {
    const int V = tg->V;
    d->kind = kind;
    d->report_q = kind < Q_NULL_TOP;
    d->fixed = kind == Q_NULL_TOP || kind == Q_NULL_FIXED;
    memset(d->g, 0, sizeof d->g);
    for (int t = 0; t < NPOS; t++) {
        const float *p = tg->p[t];
        /* top tokens of p: selection sort by p descending, ties by id */
        for (int i = 0; i < V; i++) d->ord[t][i] = i;
        if (kind == Q_NULL_TOP) {
            for (int i = 0; i < V; i++)
                for (int k = i + 1; k < V; k++)
                    if (p[d->ord[t][k]] > p[d->ord[t][i]]) {
                        int32_t tmp = d->ord[t][i];
                        d->ord[t][i] = d->ord[t][k];
                        d->ord[t][k] = tmp;
                    }
        }
        for (int h = 0; h < (kind == Q_PREFIX ? NPREV : 1); h++)
            st_draft_row(qkind_law[kind], p, V, -1, r, d->g[h][t]);
    }
}

/* Up to m distinct candidates for the position t whose parent holds token
 * parent_tok: the fixed order, or draws without replacement from g (fewer
 * when g's support runs out). Returns the count. */
static int draft_siblings(const drafter *d, int V, int t, int32_t parent_tok, int m, sd_rng *r,
                          int32_t *out) {
    if (d->fixed) {
        for (int i = 0; i < m; i++) out[i] = d->ord[t][i];
        return m;
    }
    const float *g = d->g[law_index(d, parent_tok)][t];
    double w[VMAX];
    for (int i = 0; i < V; i++) w[i] = g[i];
    int c = 0;
    while (c < m) {
        int32_t x = st_draw_idx(w, V, r);
        if (x < 0) break;
        out[c++] = x;
        w[x] = 0.0;
    }
    return c;
}

/* ------------------------------------------------------- tree shapes */

typedef struct {
    const char *name;
    int m0;    /* drafts at the root                          */
    int m1;    /* drafts under each of the first nsub of them */
    int nsub;
    int chain; /* > 0: a chain of this many nodes instead     */
} shape;

static const shape g_shapes[] = {
    {"2 drafts", 2, 0, 0, 0},        {"3 drafts", 3, 0, 0, 0}, {"4 drafts", 4, 0, 0, 0},
    {"3+2 depth 2", 3, 2, 1, 0},     {"2x2 depth 2", 2, 2, 2, 0},
    {"chain 3", 0, 0, 0, 3},
};
enum { N_SHAPES = sizeof g_shapes / sizeof g_shapes[0] };

/* One draft tree at position pos after the token prev (the root; -1 at the
 * start): tok, parent, depth (1 = child of the root) and q rows (n, V) =
 * the law each node was drawn from. Returns n. */
static int build_tree(const drafter *d, const shape *sh, int V, int pos, int32_t prev, sd_rng *r,
                      int32_t *tok, int32_t *parent, int *depth, float *q) {
    int n = 0;
    if (sh->chain > 0) {
        int32_t pt = prev;
        for (int i = 0; i < sh->chain; i++) {
            if (draft_siblings(d, V, pos + i, pt, 1, r, tok + n) < 1) break;
            parent[n] = n - 1;
            depth[n] = i + 1;
            memcpy(q + (size_t)n * V, d->g[law_index(d, pt)][pos + i], (size_t)V * sizeof(float));
            pt = tok[n++];
        }
        return n;
    }
    int c0 = draft_siblings(d, V, pos, prev, sh->m0, r, tok);
    for (int i = 0; i < c0; i++) {
        parent[i] = -1;
        depth[i] = 1;
        memcpy(q + (size_t)i * V, d->g[law_index(d, prev)][pos], (size_t)V * sizeof(float));
    }
    n = c0;
    for (int k = 0; k < sh->nsub && k < c0; k++) {
        int c1 = draft_siblings(d, V, pos + 1, tok[k], sh->m1, r, tok + n);
        for (int i = n; i < n + c1; i++) {
            parent[i] = k;
            depth[i] = 2;
            memcpy(q + (size_t)i * V, d->g[law_index(d, tok[k])][pos + 1],
                   (size_t)V * sizeof(float));
        }
        n += c1;
    }
    return n;
}

/* -------------------------------------------- exact first acceptance */

/* P(every child is rejected): r the target (normalized), s the weights the
 * next child is drawn from (without replacement), m children left to draw.
 * Child x is drawn and rejected with probability max(0, s(x) - r(x)) (s
 * normalized); the residual after it, norm(max(0, r - s)), does not depend
 * on x, the next proposal is s without x. */
static double rej_all(const double *r, const double *s, int V, int m) {
    double S = 0.0;
    for (int i = 0; i < V; i++) S += s[i];
    if (m == 0 || !(S > 0.0)) return 1.0;
    double rn[VMAX], R = 0.0;
    for (int i = 0; i < V; i++) {
        rn[i] = fmax(0.0, r[i] - s[i] / S);
        R += rn[i];
    }
    if (!(R > 1e-15)) return 0.0;
    for (int i = 0; i < V; i++) rn[i] /= R;
    double tot = 0.0;
    for (int x = 0; x < V; x++) {
        double w = s[x] / S - r[x];
        if (!(w > 0.0)) continue;
        double s2[VMAX];
        memcpy(s2, s, (size_t)V * sizeof(double));
        s2[x] = 0.0;
        tot += w * rej_all(rn, s2, V, m - 1);
    }
    return tot;
}

/* P(the first call of a run, at position 0 after no token, accepts a root
 * child). */
static double first_acceptance(const drafter *d, const shape *sh, const st_target *tg) {
    const int V = tg->V, m = sh->chain > 0 ? 1 : sh->m0;
    if (d->fixed) {
        double a = 0.0;
        for (int i = 0; i < m; i++) a += tg->pd[0][d->ord[0][i]];
        return a;
    }
    if (!d->report_q) return (double)m / V; /* uniform one-hot: E sum_i p(x_i) */
    double s[VMAX];
    for (int i = 0; i < V; i++) s[i] = d->g[law_index(d, -1)][0][i];
    return 1.0 - rej_all(tg->pd[0], s, V, m);
}

/* ------------------------------------------------ broken verifiers */

typedef int (*tree_fn)(const int32_t *tok, const int32_t *parent, int n, const float *p,
                       const float *q, int V, sd_rng *rng, float *scratch, int32_t *path,
                       int32_t *next);

typedef enum {
    B_NO_REMOVAL,  /* later siblings tested against q, drawn ones not removed */
    B_RESAMPLE_P,  /* every child rejected: next from p, not the residual     */
    B_NO_RESIDUAL, /* siblings tested against p, not the running residual     */
    B_COUNT
} broken_mode;

static const char *broken_name[B_COUNT] = {"q not reduced", "resample from p", "no residual"};

static broken_mode g_broken_mode; /* the test's own switch */

/* The rule in plain double arithmetic with one deliberate mistake
 * (g_broken_mode); tree_broken's signature is sd_verify_tree_sample's.
 * Valid input only. */
static int tree_broken(const int32_t *tok, const int32_t *parent, int n, const float *p,
                       const float *q, int V, sd_rng *rng, float *scratch, int32_t *path,
                       int32_t *next) {
    (void)scratch;
    const broken_mode mode = g_broken_mode;
    int cur = -1, j = 0;
    for (;;) {
        double pr[VMAX], r[VMAX], s[VMAX];
        st_to_law(p + (size_t)(cur + 1) * V, V, pr);
        memcpy(r, pr, sizeof pr);
        bool have_s = false;
        int acc = -1;
        for (int c = cur + 1; c < n; c++) {
            if (parent[c] != cur) continue;
            const int32_t x = tok[c];
            if (q && !have_s) {
                st_to_law(q + (size_t)c * V, V, s);
                have_s = true;
            }
            const double sx = q ? s[x] : 1.0, rx = mode == B_NO_RESIDUAL ? pr[x] : r[x];
            const double u = sd_rng_uniform(rng);
            if (sx > 0.0 ? u * sx < rx : rx > 0.0) {
                acc = c;
                break;
            }
            const double *base = mode == B_NO_RESIDUAL ? pr : r;
            double nr[VMAX], sum = 0.0;
            for (int t = 0; t < V; t++) {
                nr[t] = fmax(0.0, base[t] - (q ? s[t] : (double)(t == x)));
                sum += nr[t];
            }
            for (int t = 0; t < V; t++) r[t] = sum > 0.0 ? nr[t] / sum : pr[t];
            if (q && mode != B_NO_REMOVAL) {
                double ss = 0.0;
                s[x] = 0.0;
                for (int t = 0; t < V; t++) ss += s[t];
                for (int t = 0; t < V; t++) s[t] = ss > 0.0 ? s[t] / ss : 0.0;
            }
        }
        if (acc < 0) {
            *next = st_draw_idx(mode == B_RESAMPLE_P ? pr : r, V, rng);
            return j;
        }
        path[j++] = acc;
        cur = acc;
    }
}

/* ------------------------------------------------------ simulation */

typedef struct {
    long runs;
    st_hist3 h; /* the first three tokens of each run */
    long first_acc;                   /* first calls that accepted a child */
    long bad_ret, bad_path, eq_off_first, calls, nodes;
} sim_counts;

/* n_runs runs of the miniature decode loop with tree shape sh. */
static void simulate(const st_target *tg, const drafter *d, const shape *sh, tree_fn fn,
                     uint64_t seed, long n_runs, sim_counts *sc) {
    const int V = tg->V;
    memset(sc, 0, sizeof *sc);
    sc->runs = n_runs;
    sd_rng drng, vrng; /* drafter's and verifier's generators, independent */
    sd_rng_seed(&drng, seed * 2 + 1);
    sd_rng_seed(&vrng, seed * 2 + 2);
    float q[NMAX * VMAX], pb[(NMAX + 1) * VMAX], scratch[3 * VMAX];
    for (long run = 0; run < n_runs; run++) {
        int32_t em[M + NMAX + 1];
        int n_em = 0, pos = 0;
        int32_t prev = -1;
        while (n_em < M) {
            int32_t tok[NMAX], parent[NMAX], path[NMAX];
            int depth[NMAX];
            const int n = build_tree(d, sh, V, pos, prev, &drng, tok, parent, depth, q);
            /* row 0: the root's position; node i: the position after it */
            memcpy(pb, tg->p[pos], (size_t)V * sizeof(float));
            for (int i = 0; i < n; i++)
                memcpy(pb + (size_t)(i + 1) * V, tg->p[pos + depth[i]], (size_t)V * sizeof(float));
            int32_t next = -1;
            const int j = fn(tok, parent, n, pb, d->report_q ? q : NULL, V, &vrng, scratch, path,
                             &next);
            sc->calls++;
            sc->nodes += n;
            if (j < 0 || j > n || next < 0 || next >= V) {
                sc->bad_ret++;
                break;
            }
            bool ok = true;
            for (int i = 0; i < j; i++)
                ok = ok && path[i] >= 0 && path[i] < n && parent[path[i]] == (i ? path[i - 1] : -1);
            if (!ok) {
                sc->bad_path++;
                break;
            }
            if (pos == 0 && j > 0) sc->first_acc++;
            if (d->kind == Q_EQ) {
                /* r = s bit for bit: the first child always wins, down to a
                 * node without children */
                int at = -1;
                for (int i = 0; i < j; i++) {
                    int first = at + 1;
                    while (parent[first] != at) first++;
                    if (path[i] != first) ok = false;
                    at = path[i];
                }
                for (int i = at + 1; i < n; i++)
                    if (parent[i] == at) ok = false;
                if (!ok) sc->eq_off_first++;
            }
            for (int i = 0; i < j; i++) em[n_em++] = tok[path[i]];
            em[n_em++] = next;
            pos += j + 1;
            prev = next;
        }
        if (n_em < M) continue;
        st_hist3_add(&sc->h, tg, em);
    }
}

/* |z| of the observed first-call acceptance against its exact value, after
 * checking it (exact when the value is 0 or 1). */
static double check_acceptance(const char *label, long acc, long n_runs, double alpha) {
    const double obs = (double)acc / (double)n_runs;
    if (alpha <= 1e-12) {
        CHECK(acc == 0, "%s: %ld first calls accepted, rate 0 expected", label, acc);
        return 0.0;
    }
    if (alpha >= 1.0 - 1e-9) {
        CHECK(acc == n_runs, "%s: first-call acceptance %.6f, 1 expected", label, obs);
        return 0.0;
    }
    const double z = fabs(obs - alpha) / sqrt(alpha * (1.0 - alpha) / (double)n_runs);
    CHECK(z < 5.0, "%s: first-call acceptance %.4f vs %.4f (%.1f SE)", label, obs, alpha, z);
    return z;
}

static void test_sampling_cases(void) {
    const int Vs[2] = {32, 8};
    int n_cases = 0;
    drafter *d = malloc(sizeof *d);
    sim_counts *sc = malloc(sizeof *sc);
    if (!d || !sc) {
        CHECK(0, "out of memory");
        free(d);
        free(sc);
        return;
    }
    for (int vi = 0; vi < 2; vi++) {
        const int V = Vs[vi];
        st_target tg;
        sd_rng r;
        sd_rng_seed(&r, 2000 + (uint64_t)V);
        st_make_target(&tg, V, &r);
        for (int si = 0; si < N_SHAPES; si++) {
            const shape *sh = &g_shapes[si];
            for (int kind = 0; kind < Q_COUNT; kind++) {
                make_drafter(d, (qkind)kind, &tg, &r);
                char label[96];
                snprintf(label, sizeof label, "V %d %s %s", V, sh->name, qkind_name[kind]);
                simulate(&tg, d, sh, sd_verify_tree_sample, 177 + (uint64_t)n_cases, N, sc);
                n_cases++;
                CHECK(sc->bad_ret == 0, "%s: %ld invalid returns", label, sc->bad_ret);
                CHECK(sc->bad_path == 0, "%s: %ld invalid paths", label, sc->bad_path);
                CHECK(sc->h.zero_emitted == 0, "%s: %ld zero-probability tokens emitted", label,
                      sc->h.zero_emitted);
                CHECK(sc->eq_off_first == 0, "%s: q = p left the first child %ld times", label,
                      sc->eq_off_first);
                st_res3 cr = st_eval3(&tg, &sc->h, sc->runs, Z_ALPHA);
                st_check3(&g_tally, label, &cr);
                const double alpha = first_acceptance(d, sh, &tg);
                const double z = check_acceptance(label, sc->first_acc, sc->runs, alpha);
                if (z > g_max_acc_z) g_max_acc_z = z;
                printf("%-36s chi2 %6.1f/%6.1f (df %2d) %7.1f/%6.1f (df %3d) %6.1f/%6.1f "
                       "TV %.4f/%.4f %.4f/%.4f  acc %.4f exp %.4f (%.2f SE) nodes/call %.2f\n",
                       label, cr.m0.chi, cr.m0.crit, cr.m0.df, cr.j01.chi, cr.j01.crit,
                       cr.j01.df, cr.m2.chi, cr.m2.crit, cr.m0.tv, cr.m0.tvb, cr.j01.tv,
                       cr.j01.tvb, (double)sc->first_acc / (double)sc->runs, alpha, z,
                       (double)sc->nodes / (double)sc->calls);
            }
        }
    }
    free(d);
    free(sc);
    printf("%d cases x %ld runs\n", n_cases, N);
}

/* On chains the tree sampler and sd_verify_sample have the same law of (j,
 * next): two-sample chi-square over the (k + 1) x V bins (bins with fewer
 * than 10 draws in both samples pooled), equal sample sizes. */
static void test_chain_law(void) {
    enum { K = 3 };
    static const qkind kinds[] = {Q_RANDOM, Q_SHARP, Q_PARTIAL, Q_NULL_TOP};
    for (size_t ci = 0; ci < sizeof kinds / sizeof kinds[0]; ci++) {
        const int V = 8;
        st_target tg;
        sd_rng r;
        sd_rng_seed(&r, 3000 + ci);
        st_make_target(&tg, V, &r);
        drafter *d = malloc(sizeof *d);
        if (!d) {
            CHECK(0, "out of memory");
            return;
        }
        make_drafter(d, kinds[ci], &tg, &r);
        long cnt[2][(K + 1) * VMAX];
        memset(cnt, 0, sizeof cnt);
        float q[K * VMAX], pk[(K + 1) * VMAX], scratch[3 * VMAX];
        for (int t = 0; t <= K; t++) memcpy(pk + (size_t)t * V, tg.p[t], (size_t)V * sizeof(float));
        const int32_t parent[K] = {-1, 0, 1};
        long bad = 0;
        for (int which = 0; which < 2; which++) {
            sd_rng drng, vrng;
            sd_rng_seed(&drng, 40 + 2 * ci + (uint64_t)which * 1000);
            sd_rng_seed(&vrng, 41 + 2 * ci + (uint64_t)which * 1000);
            for (long it = 0; it < N; it++) {
                int32_t draft[K], path[K], next = -1;
                int32_t pt = -1;
                for (int i = 0; i < K; i++) {
                    draft_siblings(d, V, i, pt, 1, &drng, draft + i);
                    memcpy(q + (size_t)i * V, d->g[law_index(d, pt)][i], (size_t)V * sizeof(float));
                    pt = draft[i];
                }
                const float *qq = d->report_q ? q : NULL;
                int j = which == 0 ? sd_verify_sample(draft, K, pk, qq, V, &vrng, scratch, &next)
                                   : sd_verify_tree_sample(draft, parent, K, pk, qq, V, &vrng,
                                                           scratch, path, &next);
                if (j < 0 || j > K || next < 0 || next >= V) {
                    bad++;
                    continue;
                }
                for (int i = 0; i < j && which == 1; i++)
                    if (path[i] != i) bad++;
                cnt[which][j * V + next]++;
            }
        }
        double chi = 0.0, pa = 0.0, pb = 0.0;
        int bins = 0;
        for (int b = 0; b < (K + 1) * V; b++) {
            double a = (double)cnt[0][b], c = (double)cnt[1][b];
            if (a + c < 10.0) {
                pa += a;
                pb += c;
                continue;
            }
            chi += (a - c) * (a - c) / (a + c);
            bins++;
        }
        if (pa + pb > 0.0) {
            chi += (pa - pb) * (pa - pb) / (pa + pb);
            bins++;
        }
        const int df = bins - 1;
        const double crit = st_chi2_crit(df, Z_ALPHA);
        st_note_chi(&g_tally, chi, df);
        printf("chain law V %d k %d %-14s tree vs chain (j, next): chi2 %.1f/%.1f (df %d)\n", V,
               K, qkind_name[kinds[ci]], chi, crit, df);
        CHECK(bad == 0, "chain %s: %ld bad returns", qkind_name[kinds[ci]], bad);
        CHECK(chi < crit, "chain %s: tree and chain laws differ, chi2 %.1f >= %.1f (df %d)",
              qkind_name[kinds[ci]], chi, crit, df);
        free(d);
    }
}

/* The same statistics must reject broken rules (always at N_FULL runs, so
 * that SD_TEST_QUICK does not weaken them). */
static void test_negative_controls(void) {
    static const struct {
        broken_mode mode;
        int V, shape;
        qkind kind;
    } cases[] = {
        /* shape: index in g_shapes (0: 2 drafts, 1: 3, 2: 4, 3: 3+2 depth 2) */
        {B_NO_REMOVAL, 8, 1, Q_SHARP},   {B_NO_REMOVAL, 32, 3, Q_SHARP},
        {B_RESAMPLE_P, 32, 0, Q_RANDOM}, {B_RESAMPLE_P, 8, 3, Q_FLAT},
        {B_NO_RESIDUAL, 8, 2, Q_FLAT},   {B_NO_RESIDUAL, 32, 1, Q_NULL_TOP},
    };
    drafter *d = malloc(sizeof *d);
    sim_counts *sc = malloc(sizeof *sc);
    if (!d || !sc) {
        CHECK(0, "out of memory");
        free(d);
        free(sc);
        return;
    }
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const shape *sh = &g_shapes[cases[c].shape];
        st_target tg;
        sd_rng r;
        sd_rng_seed(&r, 2000 + (uint64_t)cases[c].V);
        st_make_target(&tg, cases[c].V, &r);
        make_drafter(d, cases[c].kind, &tg, &r);
        g_broken_mode = cases[c].mode;
        simulate(&tg, d, sh, tree_broken, 9000 + c, N_FULL, sc);
        st_res3 cr = st_eval3(&tg, &sc->h, sc->runs, Z_ALPHA);
        const double worst = st_worst3(&cr);
        printf("negative control %-16s V %2d %-12s %-12s chi2/crit: first %.1f pair %.1f "
               "third %.1f  TV/bound %.2f %.2f\n",
               broken_name[cases[c].mode], cases[c].V, sh->name, qkind_name[cases[c].kind],
               cr.m0.chi / cr.m0.crit, cr.j01.chi / cr.j01.crit, cr.m2.chi / cr.m2.crit,
               cr.m0.tv / cr.m0.tvb, cr.j01.tv / cr.j01.tvb);
        CHECK(worst > 1.0, "negative control %s (V %d, %s, %s) not rejected",
              broken_name[cases[c].mode], cases[c].V, sh->name, qkind_name[cases[c].kind]);
        /* the real verifier on the very same setting passes */
        simulate(&tg, d, sh, sd_verify_tree_sample, 9000 + c, N_FULL, sc);
        cr = st_eval3(&tg, &sc->h, sc->runs, Z_ALPHA);
        st_check3(&g_tally, "control twin", &cr);
    }
    free(d);
    free(sc);
}

/* ---------------------------------------------------------------- greedy */

/* Reference: node i is on the accepted path iff every node from the root
 * down to it matches the argmax of its parent; those nodes form one chain
 * (siblings are distinct), the path ends at its deepest node. */
static int greedy_ref(const int32_t *tok, const int32_t *parent, int n, const int32_t *argmax,
                      int32_t *path, int32_t *next) {
    bool ok[NMAX];
    int dep[NMAX], last = -1;
    for (int i = 0; i < n; i++) {
        const int pa = parent[i];
        ok[i] = (pa < 0 || ok[pa]) && tok[i] == argmax[pa + 1];
        dep[i] = pa < 0 ? 1 : dep[pa] + 1;
        if (ok[i] && (last < 0 || dep[i] > dep[last])) last = i;
    }
    const int j = last < 0 ? 0 : dep[last];
    for (int i = j - 1, at = last; i >= 0; i--, at = parent[at]) path[i] = at;
    *next = argmax[last + 1];
    return j;
}

/* Compares the verifier with the reference on one tree over the given
 * argmax vectors (all of {0,1,2}^(n+1) when n_arg < 0, else n_arg random). */
static void greedy_one(const int32_t *tok, const int32_t *parent, int n, long n_arg, sd_rng *r,
                       long *n_tot, long *n_bad) {
    long total = 1;
    if (n_arg < 0)
        for (int i = 0; i <= n; i++) total *= 3;
    else total = n_arg;
    for (long a = 0; a < total; a++) {
        int32_t argmax[NMAX + 1];
        for (int i = 0, c = (int)a; i <= n; i++, c /= 3)
            argmax[i] = n_arg < 0 ? c % 3 : (int32_t)(sd_rng_next(r) % 3);
        int32_t p1[NMAX], p2[NMAX], n1 = -7, n2 = -7;
        const int j1 = sd_verify_tree_greedy(tok, parent, n, argmax, p1, &n1);
        const int j2 = greedy_ref(tok, parent, n, argmax, p2, &n2);
        bool same = j1 == j2 && n1 == n2;
        for (int i = 0; same && i < j1; i++) same = p1[i] == p2[i];
        (*n_tot)++;
        if (!same) (*n_bad)++;
    }
}

/* Valid trees: parents in order, siblings distinct. */
static bool siblings_distinct(const int32_t *tok, const int32_t *parent, int n) {
    for (int i = 0; i < n; i++)
        for (int k = 0; k < i; k++)
            if (parent[k] == parent[i] && tok[k] == tok[i]) return false;
    return true;
}

static void test_greedy(void) {
    long n_tot = 0, n_bad = 0, n_trees = 0;
    sd_rng r;
    sd_rng_seed(&r, 5);
    /* exhaustive: every tree of n <= 4 nodes (node i's parent in [-1, i)),
     * every token assignment with distinct siblings (V = 3), every argmax */
    for (int n = 0; n <= 4; n++) {
        int n_shape = 1, n_tok = 1;
        for (int i = 0; i < n; i++) {
            n_shape *= i + 1;
            n_tok *= 3;
        }
        for (int sc = 0; sc < n_shape; sc++) {
            int32_t parent[NMAX], tok[NMAX];
            for (int i = 0, c = sc; i < n; c /= i + 1, i++) parent[i] = c % (i + 1) - 1;
            for (int tc = 0; tc < n_tok; tc++) {
                for (int i = 0, c = tc; i < n; i++, c /= 3) tok[i] = c % 3;
                if (!siblings_distinct(tok, parent, n)) continue;
                n_trees++;
                greedy_one(tok, parent, n, -1, &r, &n_tot, &n_bad);
            }
        }
    }
    /* random trees of 5..12 nodes, tokens in [0, 3), random argmax */
    for (int it = 0; it < 20000; it++) {
        const int n = 5 + (int)(sd_rng_next(&r) % 8);
        int32_t parent[NMAX], tok[NMAX];
        for (int i = 0; i < n; i++) {
            /* bias to deep trees: parent among the last few nodes */
            const int lo = i > 3 ? i - 3 : 0;
            const int c = (int)(sd_rng_next(&r) % (uint64_t)(i - lo + 1));
            parent[i] = c == 0 ? -1 : lo + c - 1;
            int tries = 0;
            do tok[i] = (int32_t)(sd_rng_next(&r) % 3);
            while (!siblings_distinct(tok, parent, i + 1) && ++tries < 16);
            if (!siblings_distinct(tok, parent, i + 1)) parent[i] = i - 1, tok[i] = 0;
        }
        if (!siblings_distinct(tok, parent, n)) continue;
        greedy_one(tok, parent, n, 20, &r, &n_tot, &n_bad);
    }
    CHECK(n_bad == 0, "greedy tree: %ld of %ld cases differ from the reference", n_bad, n_tot);
    /* spot checks: root children {5, 7}, 7's children {8, 9}, 9's child 4 */
    const int32_t tok[5] = {5, 7, 8, 9, 4}, parent[5] = {-1, -1, 1, 1, 3};
    int32_t path[5], next = -1;
    const int32_t a1[6] = {7, 0, 9, 0, 4, 6}; /* 7 -> 9 -> 4, bonus 6 */
    CHECK(sd_verify_tree_greedy(tok, parent, 5, a1, path, &next) == 3 && path[0] == 1 &&
              path[1] == 3 && path[2] == 4 && next == 6,
          "greedy tree: full path");
    const int32_t a2[6] = {7, 0, 8, 0, 1, 0}; /* 7 -> 8 (a leaf), bonus argmax[3] */
    CHECK(sd_verify_tree_greedy(tok, parent, 5, a2, path, &next) == 2 && path[1] == 2 && next == 0,
          "greedy tree: leaf");
    const int32_t a3[6] = {6, 0, 0, 0, 0, 0};
    CHECK(sd_verify_tree_greedy(tok, parent, 5, a3, path, &next) == 0 && next == 6,
          "greedy tree: root rejected -> argmax[0]");
    CHECK(sd_verify_tree_greedy(tok, parent, 0, a3, NULL, &next) == 0 && next == 6,
          "greedy tree: no nodes -> argmax[0]");
    printf("greedy tree: %ld cases on %ld exhaustive trees (n <= 4) and 20000 random trees\n",
           n_tot, n_trees);
}

/* ---------------------------------------------------------- edge cases */

static void test_invalid_and_edges(void) {
    enum { V = 4 };
    float p[6 * V], q[5 * V], scratch[3 * V];
    for (int i = 0; i < 6 * V; i++) p[i] = 0.25f;
    for (int i = 0; i < 5 * V; i++) q[i] = 0.25f;
    const int32_t argmax[6] = {0, 1, 2, 3, 0, 1};
    sd_rng r;
    sd_rng_seed(&r, 9);
    int32_t path[5], next;
    struct {
        const char *what;
        int32_t tok[3], parent[3];
        int n;
        bool greedy_invalid; /* greedy does not know V */
    } bad[] = {
        {"parent = self", {0, 1, 2}, {-1, 1, 0}, 3, true},
        {"parent after child", {0, 1, 2}, {-1, 2, -1}, 3, true},
        {"parent < -1", {0, 1, 2}, {-1, -2, 0}, 3, true},
        {"first node with a parent", {0, 1, 2}, {0, -1, -1}, 1, true},
        {"equal siblings", {1, 2, 1}, {-1, -1, -1}, 3, true},
        {"token >= V", {0, V, 2}, {-1, 0, 1}, 3, false},
        {"token < 0", {0, 1, -1}, {-1, 0, 1}, 3, false},
        {"n < 0", {0, 1, 2}, {-1, 0, 1}, -1, true},
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        next = 7;
        int j = sd_verify_tree_sample(bad[c].tok, bad[c].parent, bad[c].n, p, q, V, &r, scratch,
                                      path, &next);
        CHECK(j == -1 && next == -1, "sample, %s: returned %d next %d", bad[c].what, j, next);
        next = 7;
        j = sd_verify_tree_sample(bad[c].tok, bad[c].parent, bad[c].n, p, NULL, V, &r, scratch,
                                  path, &next);
        CHECK(j == -1 && next == -1, "sample q NULL, %s: returned %d", bad[c].what, j);
        if (bad[c].greedy_invalid) {
            next = 7;
            j = sd_verify_tree_greedy(bad[c].tok, bad[c].parent, bad[c].n, argmax, path, &next);
            CHECK(j == -1 && next == -1, "greedy, %s: returned %d next %d", bad[c].what, j, next);
        }
    }
    const int32_t tok[3] = {1, 2, 3}, parent[3] = {-1, 0, 1};
    CHECK(sd_verify_tree_sample(tok, parent, 3, NULL, q, V, &r, scratch, path, &next) == -1,
          "NULL p");
    CHECK(sd_verify_tree_sample(tok, parent, 3, p, q, 0, &r, scratch, path, &next) == -1, "V 0");
    CHECK(sd_verify_tree_sample(tok, parent, 3, p, q, V, NULL, scratch, path, &next) == -1,
          "NULL rng");
    CHECK(sd_verify_tree_greedy(tok, parent, 3, NULL, path, &next) == -1, "greedy NULL argmax");

    /* a visited row with no mass (root zero, NaN, infinite) */
    float pz[4 * V];
    memcpy(pz, p, sizeof pz);
    for (int t = 0; t < V; t++) pz[t] = 0.0f;
    CHECK(sd_verify_tree_sample(tok, parent, 3, pz, q, V, &r, scratch, path, &next) == -1 &&
              next == -1,
          "root row without mass");
    for (int t = 0; t < V; t++) pz[t] = NAN;
    CHECK(sd_verify_tree_sample(tok, parent, 3, pz, q, V, &r, scratch, path, &next) == -1,
          "root row NaN");
    pz[0] = INFINITY;
    CHECK(sd_verify_tree_sample(tok, parent, 3, pz, q, V, &r, scratch, path, &next) == -1,
          "root row infinite");
    /* the root's p is a point mass at the only child's token, whose row is
     * empty: the child is always accepted, then its row is invalid */
    memcpy(pz, p, sizeof pz);
    for (int t = 0; t < V; t++) pz[t] = t == 1 ? 1.0f : 0.0f;
    for (int t = 0; t < V; t++) pz[V + t] = 0.0f;
    CHECK(sd_verify_tree_sample(tok, parent, 1, pz, NULL, V, &r, scratch, path, &next) == -1,
          "visited child row without mass");

    /* deterministic edges (each over many uniforms) */
    long bad_edge[5] = {0};
    for (int it = 0; it < 2000; it++) {
        /* a child with p = 0 is never accepted, with or without q */
        float pe[3 * V] = {0.0f, 0.5f, 0.5f, 0.0f, /* root */ 0.25f, 0.25f, 0.25f, 0.25f,
                           0.25f, 0.25f, 0.25f, 0.25f};
        float qe[2 * V] = {0.7f, 0.1f, 0.1f, 0.1f, 0.7f, 0.1f, 0.1f, 0.1f};
        const int32_t t2[2] = {0, 3}, p2[2] = {-1, -1};
        int j = sd_verify_tree_sample(t2, p2, 2, pe, qe, V, &r, scratch, path, &next);
        if (j != 0 || (next != 1 && next != 2)) bad_edge[0]++;
        j = sd_verify_tree_sample(t2, p2, 2, pe, NULL, V, &r, scratch, path, &next);
        if (j != 0 || (next != 1 && next != 2)) bad_edge[0]++;
        /* q(x) = 0 reported for a drawn child with p(x) > 0: accepted (as
         * the chain does) */
        float qz[2 * V] = {0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 1.0f, 0.0f};
        const int32_t t3[1] = {1}, p3[1] = {-1};
        j = sd_verify_tree_sample(t3, p3, 1, pe, qz, V, &r, scratch, path, &next);
        if (j != 1 || path[0] != 0) bad_edge[1]++;
        /* a q row with no mass: treated as q(x) = 0 */
        float q0[V] = {0.0f, 0.0f, 0.0f, 0.0f};
        j = sd_verify_tree_sample(t3, p3, 1, pe, q0, V, &r, scratch, path, &next);
        if (j != 1) bad_edge[1]++;
        /* more children than q's support (all of q's mass removed before
         * the last one) and NaN in q: no crash, a valid result */
        float qn[3 * V] = {0.5f, 0.5f, 0.0f, NAN, 0.5f, 0.5f, 0.0f, NAN, 0.5f, 0.5f, 0.0f, NAN};
        float pf[4 * V];
        for (int t = 0; t < 4 * V; t++) pf[t] = 0.25f;
        const int32_t t4[3] = {0, 1, 2}, p4[3] = {-1, -1, -1};
        j = sd_verify_tree_sample(t4, p4, 3, pf, qn, V, &r, scratch, path, &next);
        if (j < 0 || j > 1 || next < 0 || next >= V) bad_edge[2]++;
        /* p a float point mass at the child: always accepted, bonus from
         * the child's row */
        float pd[2 * V] = {0.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f};
        const int32_t t5[1] = {2};
        j = sd_verify_tree_sample(t5, p3, 1, pd, NULL, V, &r, scratch, path, &next);
        if (j != 1 || next != 3) bad_edge[3]++;
        /* no nodes: next from the root's row */
        j = sd_verify_tree_sample(NULL, NULL, 0, pd, NULL, V, &r, scratch, NULL, &next);
        if (j != 0 || next != 2) bad_edge[4]++;
    }
    CHECK(bad_edge[0] == 0, "a child with p = 0 accepted (%ld)", bad_edge[0]);
    CHECK(bad_edge[1] == 0, "a child with q(x) = 0 < p(x) rejected (%ld)", bad_edge[1]);
    CHECK(bad_edge[2] == 0, "children beyond q's support: invalid result (%ld)", bad_edge[2]);
    CHECK(bad_edge[3] == 0, "point mass: wrong result (%ld)", bad_edge[3]);
    CHECK(bad_edge[4] == 0, "empty tree: wrong result (%ld)", bad_edge[4]);
}

int main(void) {
    clock_t t0 = clock();
    if (getenv("SD_TEST_QUICK")) N = 20000; /* sanitizer runs */
    test_invalid_and_edges();
    test_greedy();
    test_sampling_cases();
    test_chain_law();
    test_negative_controls();
    /* Bonferroni: the per-test level times the number of tests */
    const double alpha1 = 0.5 * erfc(Z_ALPHA / sqrt(2.0));
    CHECK(g_tally.n_chi * alpha1 <= 1e-3, "%d chi-square tests at %.2g: raise Z_ALPHA",
          g_tally.n_chi, alpha1);
    printf("%d chi-square tests at %.2g each (family-wise %.2g); largest Wilson-Hilferty z %.2f "
           "(reject at %.2f); %d would be rejected at a per-test 1e-3; largest TV/bound %.2f; "
           "largest acceptance |z| %.2f\n",
           g_tally.n_chi, alpha1, g_tally.n_chi * alpha1, g_tally.max_z, Z_ALPHA,
           g_tally.n_rej_1e3, g_tally.max_tv_ratio, g_max_acc_z);
    printf("cpu time %.1f s\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
    return check_report("test_tree_verify");
}
