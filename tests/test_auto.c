/* test_auto.c - `--draft-max auto` (src/speculative/auto.c):
 *  - the cost table: measured on the shipped draft model it is finite and
 *    positive; a synthetic linear table is reproduced exactly (inside and
 *    beyond the measured rows and context lengths);
 *  - the controller, fed simulated verifications: it picks the budget that
 *    maximizes expected tokens per ms within 1 of the brute-force optimum
 *    for several acceptance rates and cost shapes; it drafts nothing when
 *    verification has no batching gain, drafts the maximum when drafts are
 *    always accepted and verification is cheap, and keeps probing (one
 *    draft after 8 plain steps; the whole budget for a drafter that stops
 *    itself) so acceptance stays measured;
 *  - the drafters' stopping rule (src/speculative/stop.c): its calibration learns
 *    acceptance rates that contradict the drafter's confidence; it keeps a
 *    token exactly when that raises the step's expected tokens per ms
 *    (checked against the formula), drafts long chains when rows are free,
 *    none when they are dear, and stops where the cost of a row jumps;
 *  - its tree form: on random trees and random calibration states every
 *    node's value is a(c) v(parent) computed here from the definition
 *    (runner-up children in their own bins), and the kept nodes form a
 *    subtree holding every sure node whose rate, by those values, is the
 *    best of all subtrees (an exact search, not stop.c's ranking);
 *    runner-up children are calibrated apart from first choices;
 *    unreached nodes are not counted; auto hands a self-sizing tree
 *    drafter the whole budget and costs trees by the nodes they drafted. */
#include <math.h>
#include <stdlib.h>

#include "specdec.h"
#include "speculative/auto.h"
#include "speculative/stop.h"
#include "util/check.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double unif(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
}

/* One simulated step: k drafted, each accepted with probability acc while
 * the previous were; returns j. */
static int simulate(int k, double acc) {
    int j = 0;
    while (j < k && unif() < acc) j++;
    return j;
}

/* Brute force: argmax_k E(k) / (cost(k+1) + node_ms k) for geometric acc. */
static int best_k(const sd_cost_table *t, double acc, double node_ms, int n_past, int kmax) {
    int best = 0;
    double best_rate = 1.0 / sd_cost_table_ms(t, 1, n_past);
    double e = 1.0, p = 1.0;
    for (int k = 1; k <= kmax; k++) {
        p *= acc;
        e += p;
        double rate = e / (sd_cost_table_ms(t, k + 1, n_past) + node_ms * k);
        if (rate > best_rate) {
            best_rate = rate;
            best = k;
        }
    }
    return best;
}

static void check_converges(double a, double b, double c, double acc, double node_ms) {
    sd_cost_table *t = NULL;
    CHECK(sd_cost_table_linear(a, b, c, &t) == SD_OK, "linear table");
    if (!t) return;
    sd_auto au;
    sd_auto_init(&au, t, SD_AUTO_KMAX);
    const int n_past = 300;
    int want = best_k(t, acc, node_ms, n_past, SD_AUTO_KMAX), sum = 0, n = 0;
    for (int step = 0; step < 600; step++) {
        int k = sd_auto_choose(&au, n_past);
        int j = simulate(k, acc);
        sd_auto_update(&au, k, false, k, k, j, node_ms * k);
        if (step >= 300) {
            sum += k;
            n++;
        }
    }
    double mean = (double)sum / n;
    fprintf(stderr, "cost %.2f + %.3f rows + %.5f rows ctx, acc %.2f, draft %.2f ms/node: optimum %d, "
                    "chosen %.2f on average\n", a, b, c, acc, node_ms, want, mean);
    /* measured |mean - optimum| <= 0.49 over the six cases (and two random
     * streams); the controller's choice moves between neighbouring budgets
     * as its acceptance estimate moves: within 1, twice that */
    CHECK(fabs(mean - want) <= 1.0, "acc %.2f: chose %.2f, optimum %d", acc, mean, want);
    sd_cost_table_free(t);
}

/* Costs with verify(r) = a + b r for r <= knee, steeper by b2 per row after. */
static sd_draft_costs costs_of(double a, double b, int knee, double b2, double node_ms) {
    sd_draft_costs c = {.max_rows = SD_MAX_DRAFT + 1, .node_ms = node_ms, .call_ms = 0.0};
    for (int r = 1; r <= SD_MAX_DRAFT + 1; r++) c.verify_ms[r] = a + b * r + (r > knee ? b2 * (r - knee) : 0.0);
    return c;
}

/* How many tokens of constant confidence conf the rule keeps. */
static int kept(sd_stop *s, const sd_draft_costs *c, float conf) {
    sd_stop_begin(s, c);
    int n = 0;
    while (n < SD_MAX_DRAFT && sd_stop_keep(s, c, conf, false)) n++;
    return n;
}

static void test_stop(void) {
    sd_stop s;
    sd_stop_init(&s);
    /* before any observation a(c) = c */
    CHECK(fabs(sd_stop_accept_prob(&s, 0.3f) - 0.3) < 1e-6 && fabs(sd_stop_accept_prob(&s, 0.95f) - 0.95) < 1e-6,
          "prior a(c) = c");
    /* calibration: tokens at confidence 0.3 always accepted, at 0.9 never */
    sd_draft_costs free_rows = costs_of(1.0, 0.0, 64, 0.0, 0.0);
    for (int it = 0; it < 400; it++) {
        sd_stop_begin(&s, &free_rows);
        CHECK(sd_stop_keep(&s, &free_rows, 0.3f, false) && sd_stop_keep(&s, &free_rows, 0.3f, false) &&
                  sd_stop_keep(&s, &free_rows, 0.9f, false), "free rows keep every token");
        sd_stop_observe(&s, 2); /* the two 0.3s accepted, the 0.9 rejected */
    }
    double a3 = sd_stop_accept_prob(&s, 0.3f), a9 = sd_stop_accept_prob(&s, 0.9f);
    CHECK(a3 > 0.97 && a9 < 0.03, "calibrated a(0.3) %.3f, a(0.9) %.3f", a3, a9);
    CHECK(fabs(sd_stop_accept_prob(&s, 0.6f) - 0.6) < 1e-6, "an unseen bin keeps its prior");
    /* unreached tokens are not observed: after a rejection at position 1 */
    sd_stop t;
    sd_stop_init(&t);
    sd_stop_begin(&t, &free_rows);
    for (int i = 0; i < 3; i++) sd_stop_keep(&t, &free_rows, 0.55f, false);
    sd_stop_observe(&t, 0);
    CHECK(fabs(sd_stop_accept_prob(&t, 0.55f) - (0.0 + 2.0 * 0.55) / (1.0 + 2.0)) < 1e-6,
          "only the first token was reached: a = %.4f", sd_stop_accept_prob(&t, 0.55f));

    /* the rule against its formula, for random confidences and costs */
    sd_stop_init(&t);
    int agree = 0, total = 0;
    for (int it = 0; it < 200; it++) {
        sd_draft_costs c = costs_of(1.0, 0.05 + 0.3 * unif(), 1 + (int)(8 * unif()), 0.5 * unif(), 0.1 * unif());
        sd_stop_begin(&t, &c);
        double e = 1.0, tm = c.verify_ms[1], p = 1.0;
        for (int i = 0; i < 20; i++) {
            float conf = (float)unif();
            double p2 = p * conf, e2 = e + p2, t2 = tm + c.node_ms + c.verify_ms[i + 2] - c.verify_ms[i + 1];
            bool want = e2 / t2 >= e / tm, got = sd_stop_keep(&t, &c, conf, false);
            agree += want == got;
            total++;
            if (!got) break;
            e = e2, tm = t2, p = p2;
        }
    }
    CHECK(agree == total, "rule vs formula: %d of %d decisions agree", agree, total);

    /* long chains when rows are free, none when they are dear */
    sd_stop_init(&t);
    CHECK(kept(&t, &free_rows, 0.7f) == SD_MAX_DRAFT, "free rows: %d kept", kept(&t, &free_rows, 0.7f));
    sd_draft_costs dear = costs_of(0.0, 1.0, 64, 0.0, 0.0); /* each row costs a plain step */
    CHECK(kept(&t, &dear, 0.7f) == 0, "dear rows: %d kept", kept(&t, &dear, 0.7f));
    /* rows cheap up to 4, then each a plain step: stops at the knee */
    sd_draft_costs knee = costs_of(1.0, 0.05, 4, 1.0, 0.0);
    int n = kept(&t, &knee, 0.8f);
    CHECK(n == 3, "knee at 4 rows: kept %d (want 3)", n);
    /* a confident drafter keeps more than an unsure one */
    sd_draft_costs mid = costs_of(1.0, 0.25, 64, 0.0, 0.02);
    CHECK(kept(&t, &mid, 0.95f) > kept(&t, &mid, 0.5f), "0.95: %d, 0.5: %d", kept(&t, &mid, 0.95f),
          kept(&t, &mid, 0.5f));
    /* max_rows caps the chain */
    sd_draft_costs capped = free_rows;
    capped.max_rows = 5;
    CHECK(kept(&t, &capped, 0.9f) == 4, "max_rows 5: %d kept", kept(&t, &capped, 0.9f));
    /* a sure token is kept where the rule alone would stop, and counts */
    sd_stop_begin(&t, &dear);
    CHECK(!sd_stop_keep(&t, &dear, 0.7f, false), "dear rows: unsure token dropped");
    CHECK(sd_stop_keep(&t, &dear, 0.7f, true) && t.n == 1 && t.e > 1.0 && t.t > dear.verify_ms[1],
          "dear rows: sure token kept (n %d, E %.3f, T %.3f)", t.n, t.e, t.t);
}

/* The tree rule against its definition (stop.h), computed here without
 * stop.c. A node of confidence c in bin b (first choices: bins 0..19 by c,
 * runner-up children: 20..39) has the calibrated acceptance
 * a = (hit[b] + 2 c) / (seen[b] + 2) (prior weight 2) and the value
 * v = a v(parent), v(root) = 1. The best tree is the subtree (every kept
 * node's parent kept) of at most cap = min(n, max_nodes, max_rows - 1,
 * SD_MAX_DRAFT) nodes that holds every sure node (when the sure nodes
 * exceed the cap: cap sure nodes) and maximizes the step's rate
 * (1 + sum of v) / (spent + verify(m + 1)). The search is exact over all
 * subtrees (best value sum per size: a tree knapsack, itself checked
 * against enumeration of every node subset on small trees), so it does
 * not rest on stop.c's argument that the m most valuable nodes form the
 * best tree. The test draws each node's bin itself and puts c inside it,
 * away from the bin's edges: it never maps a confidence to a bin. */
enum { TREE_N = 48 };

typedef struct tree_case {
    int n, parent[TREE_N];
    float conf[TREE_N];
    bool alt[TREE_N], sure[TREE_N];
    bool allowed[TREE_N], required[TREE_N]; /* what a valid selection may / must hold */
    double v[TREE_N];                        /* the independent values          */
} tree_case;

/* best[k]: the largest value sum of a valid subtree of k nodes (-inf if
 * none), k = 0..n; a tree knapsack over the forest (children after their
 * parent, so a reverse sweep finishes every child before its parent). */
static void tree_best_sums(const tree_case *t, double *best) {
    double f[TREE_N][TREE_N + 1]; /* f[u][k]: the best k nodes rooted at u */
    double g[TREE_N + 1], h[TREE_N + 1];
    bool need[TREE_N]; /* u's subtree holds a required node */
    const int n = t->n;
    for (int u = 0; u < n; u++) need[u] = t->required[u];
    for (int u = n - 1; u >= 0; u--)
        if (need[u] && t->parent[u] >= 0) need[t->parent[u]] = true;
    for (int u = n - 1; u >= -1; u--) { /* u = -1: the virtual root, worth 0 */
        for (int k = 0; k <= n; k++) g[k] = -INFINITY;
        if (u < 0) g[0] = 0.0;
        else if (t->allowed[u]) g[1] = t->v[u];
        for (int c = u + 1; c < n; c++) {
            if (t->parent[c] != u) continue;
            for (int k = 0; k <= n; k++) {
                h[k] = need[c] ? -INFINITY : g[k]; /* c left out */
                for (int j = 1; j <= k; j++)
                    if (g[k - j] + f[c][j] > h[k]) h[k] = g[k - j] + f[c][j];
            }
            for (int k = 0; k <= n; k++) g[k] = h[k];
        }
        if (u < 0) for (int k = 0; k <= n; k++) best[k] = g[k];
        else for (int k = 0; k <= n; k++) f[u][k] = g[k];
    }
}

/* The same by enumerating every node subset (n <= 14). */
static void tree_best_sums_enum(const tree_case *t, double *best) {
    for (int k = 0; k <= t->n; k++) best[k] = -INFINITY;
    for (unsigned mask = 0; mask < (1u << t->n); mask++) {
        double sum = 0.0;
        int k = 0;
        bool ok = true;
        for (int i = 0; i < t->n && ok; i++) {
            const bool in = mask >> i & 1;
            ok = in ? t->allowed[i] && (t->parent[i] < 0 || (mask >> t->parent[i] & 1)) : !t->required[i];
            if (in) sum += t->v[i], k++;
        }
        if (ok && sum > best[k]) best[k] = sum;
    }
}

static void test_tree_rule(void) {
    sd_stop s;
    int bad_value = 0, bad_tree = 0, bad_sure = 0, bad_rank = 0, bad_rate = 0, bad_search = 0, n_enum = 0;
    int sizes[4] = {0}, n_alt = 0, n_deep = 0, n_sure_over = 0;
    double worst_v = 0.0;
    for (int it = 0; it < 400; it++) {
        /* a calibration state of arbitrary decayed counts (hit <= seen),
         * a quarter of the bins empty (a = c there) */
        sd_stop_init(&s);
        for (int b = 0; b < 2 * SD_STOP_BINS; b++) {
            if (unif() < 0.25) continue;
            s.seen[b] = 40.0 * unif();
            s.hit[b] = s.seen[b] * unif();
        }
        tree_case t;
        t.n = 1 + (int)(unif() * (it % 4 == 0 ? 14 : TREE_N));
        bool first_seen[TREE_N + 1] = {false};
        int n_sure = 0;
        for (int i = 0; i < t.n; i++) {
            const int p = t.parent[i] = i == 0 || unif() < 0.3 ? -1 : (int)(unif() * i);
            const int bin = (int)(unif() * SD_STOP_BINS);
            t.conf[i] = (float)((bin + 0.05 + 0.9 * unif()) / SD_STOP_BINS);
            t.alt[i] = first_seen[p + 1];
            first_seen[p + 1] = true;
            t.sure[i] = t.conf[i] > 0.8f && (p < 0 || t.sure[p]);
            const int b = bin + (t.alt[i] ? SD_STOP_BINS : 0);
            const double a = (s.hit[b] + 2.0 * (double)t.conf[i]) / (s.seen[b] + 2.0);
            t.v[i] = a * (p < 0 ? 1.0 : t.v[p]);
            n_sure += t.sure[i];
            n_alt += t.alt[i];
            n_deep += p >= 0 && t.parent[p] >= 0;
        }
        sd_draft_costs c = costs_of(1.0, 0.02 + 0.3 * unif(), 1 + (int)(8 * unif()), 0.5 * unif(), 0.0);
        if (unif() < 0.2) c.max_rows = 2 + (int)(unif() * 12);
        const double spent = 0.3 * unif();
        const int max_nodes = 1 + (int)(unif() * 24);
        int cap = t.n < max_nodes ? t.n : max_nodes;
        if (cap > c.max_rows - 1) cap = c.max_rows - 1;
        if (cap > SD_MAX_DRAFT) cap = SD_MAX_DRAFT;
        const bool over = n_sure > cap; /* then: cap sure nodes */
        n_sure_over += over;
        for (int i = 0; i < t.n; i++) {
            t.allowed[i] = !over || t.sure[i];
            t.required[i] = !over && t.sure[i];
        }
        double best[TREE_N + 1];
        tree_best_sums(&t, best);
        if (t.n <= 14) {
            double best_enum[TREE_N + 1];
            tree_best_sums_enum(&t, best_enum);
            for (int k = 0; k <= t.n; k++)
                bad_search += !(best[k] == best_enum[k] || fabs(best[k] - best_enum[k]) < 1e-12);
            n_enum++;
        }
        double best_rate = -1.0;
        for (int k = over ? cap : n_sure; k <= cap; k++)
            if (best[k] > -INFINITY && (1.0 + best[k]) / (spent + c.verify_ms[k + 1]) > best_rate)
                best_rate = (1.0 + best[k]) / (spent + c.verify_ms[k + 1]);

        int keep[TREE_N];
        double v[TREE_N];
        const int m = sd_stop_tree_select(&s, &c, spent, t.n, t.parent, t.conf, t.alt, t.sure, max_nodes, v, keep);
        for (int i = 0; i < t.n; i++) {
            const double d = fabs(v[i] - t.v[i]);
            if (d > worst_v) worst_v = d;
            bad_value += !(d <= 1e-12);
        }
        bool kept[TREE_N] = {false};
        double sum = 0.0;
        int bad_here = m < 0 || m > cap;
        for (int k = 0; k < m && !bad_here; k++) {
            const int i = keep[k];
            if (i < 0 || i >= t.n || kept[i]) { bad_here = 1; break; }
            /* a node's parent precedes it in keep */
            if (t.parent[i] >= 0 && !kept[t.parent[i]]) bad_tree++;
            if (!t.allowed[i]) bad_sure++;
            kept[i] = true;
            sum += t.v[i];
        }
        bad_tree += bad_here;
        if (bad_here) continue;
        for (int i = 0; i < t.n; i++) bad_sure += t.required[i] && !kept[i];
        /* no dropped unsure node is worth more than a kept unsure one */
        double min_kept = 2.0, max_dropped = -1.0;
        for (int i = 0; i < t.n; i++) {
            if (t.sure[i]) continue;
            if (kept[i] && t.v[i] < min_kept) min_kept = t.v[i];
            if (!kept[i] && t.v[i] > max_dropped) max_dropped = t.v[i];
        }
        bad_rank += max_dropped > min_kept + 1e-12;
        /* the selection's rate, by the independent values, is the optimum */
        const double rate = (1.0 + sum) / (spent + c.verify_ms[m + 1]);
        bad_rate += rate < best_rate * (1.0 - 1e-12);
        sizes[m == 0 ? 0 : m < cap ? 1 : 2]++;
    }
    fprintf(stderr, "tree rule: %d empty, %d partial, %d full trees (%d also enumerated), %d over the sure cap; "
                    "%d runner-ups, %d nodes below depth 1; values off by at most %g\n", sizes[0], sizes[1],
            sizes[2], n_enum, n_sure_over, n_alt, n_deep, worst_v);
    CHECK(bad_search == 0 && n_enum > 50, "the test's tree search: %d sizes differ from enumeration (%d trees)",
          bad_search, n_enum);
    CHECK(bad_value == 0, "tree rule: %d node values differ from a(c) v(parent) (worst by %g)", bad_value, worst_v);
    CHECK(bad_tree == 0 && bad_sure == 0 && bad_rank == 0 && bad_rate == 0,
          "tree rule: %d not subtrees, %d sure nodes dropped (or unsure kept over the cap), %d rank inversions, "
          "%d rates below the best subtree's", bad_tree, bad_sure, bad_rank, bad_rate);
    CHECK(sizes[0] > 0 && sizes[1] > 0 && sizes[2] > 0 && n_alt > 100 && n_deep > 100 && n_sure_over > 0,
          "tree rule coverage: %d empty, %d partial, %d full trees; %d runner-ups, %d nodes below depth 1, "
          "%d trees with more sure nodes than the cap", sizes[0], sizes[1], sizes[2], n_alt, n_deep, n_sure_over);

    /* calibration: first choices at 0.4 always accepted, runners-up at 0.4
     * never; a child of a rejected node is not reached */
    sd_stop_init(&s);
    const int32_t par[4] = {-1, -1, 0, 1}; /* 0: first, 1: runner-up, 2: child of 0, 3: child of 1 */
    const float cf[4] = {0.4f, 0.4f, 0.4f, 0.4f};
    const bool al[4] = {false, true, false, false}, on[4] = {true, false, true, false};
    for (int it = 0; it < 300; it++) sd_stop_observe_tree(&s, 4, par, cf, al, on);
    int p2[2] = {-1, -1}, kp[2];
    float c2[2] = {0.4f, 0.4f};
    bool a2[2] = {false, true}, s2[2] = {false, false};
    double v2[2];
    sd_draft_costs free_rows = costs_of(1.0, 0.0, 64, 0.0, 0.0);
    int m2 = sd_stop_tree_select(&s, &free_rows, 0.0, 2, p2, c2, a2, s2, 2, v2, kp);
    CHECK(v2[0] > 0.97 && v2[1] < 0.03 && m2 == 2, "first choice a(0.4) %.3f, runner-up %.3f (kept %d)", v2[0],
          v2[1], m2);
    /* node 3 (under the rejected runner-up) was never reached: a first
     * choice at 0.4 saw 600 acceptances and no rejection */
    CHECK(s.seen[8] > 0.0 && fabs(s.hit[8] - s.seen[8]) < 1e-9, "unreached nodes not counted (seen %.1f, hit %.1f)",
          s.seen[8], s.hit[8]);
}

int main(void) {
    test_stop();
    test_tree_rule();
    /* synthetic table: exact */
    sd_cost_table *t = NULL;
    CHECK(sd_cost_table_linear(0.5, 0.1, 0.0002, &t) == SD_OK, "linear table");
    double worst = 0.0;
    const int rows[] = {1, 2, 5, 10, 13, 20, 33, 40};
    const int ctxs[] = {0, 32, 100, 512, 900};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        for (size_t c = 0; c < sizeof ctxs / sizeof ctxs[0]; c++) {
            double want = 0.5 + 0.1 * rows[i] + 0.0002 * rows[i] * ctxs[c];
            double d = fabs(sd_cost_table_ms(t, rows[i], ctxs[c]) - want);
            if (d > worst) worst = d;
        }
    CHECK(worst < 1e-9, "interpolation off by %g", worst);
    sd_cost_table_free(t);

    /* controller */
    check_converges(1.0, 0.05, 0.0, 0.8, 0.0);   /* lookup-like: free drafts  */
    check_converges(1.0, 0.05, 0.0, 0.5, 0.0);
    check_converges(1.0, 0.25, 0.0, 0.8, 0.0);   /* compute-bound verify      */
    check_converges(1.0, 0.25, 0.0, 0.8, 0.1);   /* plus a draft model        */
    check_converges(0.6, 0.2, 0.0002, 0.9, 0.05);
    check_converges(0.0, 1.0, 0.0, 0.9, 0.0);    /* no batching gain: 0       */

    /* always accepted, cheap verification: the maximum */
    CHECK(sd_cost_table_linear(1.0, 0.01, 0.0, &t) == SD_OK, "table");
    sd_auto au;
    sd_auto_init(&au, t, SD_AUTO_KMAX);
    int k = 0;
    for (int s = 0; s < 50; s++) {
        k = sd_auto_choose(&au, 100);
        sd_auto_update(&au, k, false, k, k, k, 0.0);
    }
    CHECK(k == SD_AUTO_KMAX, "perfect drafts: chose %d", k);
    /* never accepted (verification rows cost 20%): 0, with a probe of 1
     * after 8 plain steps */
    sd_cost_table_free(t);
    CHECK(sd_cost_table_linear(1.0, 0.2, 0.0, &t) == SD_OK, "table");
    sd_auto_init(&au, t, SD_AUTO_KMAX);
    int n_zero = 0, n_probe = 0;
    for (int s = 0; s < 200; s++) {
        k = sd_auto_choose(&au, 100);
        sd_auto_update(&au, k, false, k, k, 0, 0.0);
        if (s >= 100) {
            n_zero += k == 0;
            n_probe += k == 1;
        }
    }
    /* one probe after every 8 plain steps (auto.h): 11 or 12 in any 100
     * steps, exactly (measured 11; the check was >= 5 probes) */
    CHECK(n_probe >= 11 && n_probe <= 12 && n_zero + n_probe == 100, "useless drafts: %d plain, %d probes",
          n_zero, n_probe);
    /* a drafter that stops itself is probed with the whole budget (it
     * drafts 1 of the budget and is rejected: still plain in between) */
    sd_auto_init(&au, t, SD_AUTO_KMAX);
    au.probe_full = true;
    n_zero = n_probe = 0;
    for (int s = 0; s < 200; s++) {
        k = sd_auto_choose(&au, 100);
        sd_auto_update(&au, k, false, k > 0 ? 1 : 0, k > 0 ? 1 : 0, 0, 0.0);
        if (s >= 100) {
            n_zero += k == 0;
            n_probe += k == SD_AUTO_KMAX;
        }
    }
    CHECK(n_probe >= 11 && n_probe <= 12 && n_zero + n_probe == 100,
          "self-stopping drafter: %d plain, %d full probes", n_zero, n_probe);
    /* trees are costed by the nodes drafted, not the budget: a tree
     * drafter that always drafts 2 nodes, both accepted, keeps drafting
     * (rows cost 20%: 3 tokens for 3 rows pays, for 17 rows it would not),
     * and once it sizes itself (probe_full) it gets the whole budget */
    for (int self_sizing = 0; self_sizing < 2; self_sizing++) {
        sd_auto_init(&au, t, SD_AUTO_KMAX);
        au.probe_full = self_sizing;
        int n_draft = 0, n_full = 0;
        for (int s = 0; s < 200; s++) {
            k = sd_auto_choose(&au, 100);
            int nd = k < 2 ? k : 2;
            sd_auto_update(&au, k, true, nd, nd, nd, 0.0);
            if (s >= 100) {
                n_draft += k > 0;
                n_full += k == SD_AUTO_KMAX;
            }
        }
        CHECK(n_draft == 100 && (!self_sizing || n_full == 100), "tree of 2 accepted nodes (self-sizing %d): "
              "drafted %d of 100 steps, %d with the whole budget", self_sizing, n_draft, n_full);
    }
    sd_auto_init(&au, t, 0);
    CHECK(sd_auto_choose(&au, 100) == 0, "kmax 0");
    sd_cost_table_free(t);

    /* measured on the shipped draft model: finite, positive, and a forward
     * of 33 rows costs more than one of 1 */
    char path[1024];
    snprintf(path, sizeof path, "%s/kernel-c-draft.gguf", test_model_dir());
    sd_model *m = NULL;
    char err[256];
    sd_model_params mp = sd_model_default_params();
    if (sd_model_load(path, &mp, &m, err, sizeof err) == SD_OK) {
        sd_ctx_params cp = sd_ctx_default_params();
        cp.n_ctx = 1024;
        sd_ctx *c = NULL;
        CHECK(sd_ctx_new(m, &cp, &c) == SD_OK, "ctx");
        sd_cost_table *mt = NULL;
        CHECK(c && sd_cost_table_measure(c, &mt) == SD_OK, "measure");
        if (mt) {
            double c1 = sd_cost_table_ms(mt, 1, 300), c33 = sd_cost_table_ms(mt, 33, 300);
            fprintf(stderr, "draft model: %.3f ms for 1 row, %.3f ms for 33 rows at 300 cells\n", c1, c33);
            CHECK(isfinite(c1) && c1 > 0 && isfinite(c33) && c33 > c1, "measured %.4f %.4f", c1, c33);
            CHECK(sd_ctx_kv_min(c) == 0, "measuring leaves the cache cleared");
        }
        sd_cost_table_free(mt);
        sd_ctx_free(c);
        sd_model_free(m);
        /* too small a context */
        cp.n_ctx = 40;
        CHECK(sd_model_load(path, &mp, &m, err, sizeof err) == SD_OK, "reload");
        CHECK(sd_ctx_new(m, &cp, &c) == SD_OK, "small ctx");
        mt = NULL;
        CHECK(sd_cost_table_measure(c, &mt) == SD_ERR_CTX_FULL && !mt, "small context refused");
        sd_ctx_free(c);
        sd_model_free(m);
    } else {
        CHECK(0, "load %s: %s", path, err);
    }
    CHECK(sd_cost_table_measure(NULL, &t) == SD_ERR_INVALID_ARG, "NULL ctx");
    return check_report("test_auto");
}
