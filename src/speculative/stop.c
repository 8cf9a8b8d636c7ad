/* stop.c - the calibrated, cost-aware stopping rule (see stop.h). */
#include <stdlib.h>
#include <string.h>

#include "speculative/stop.h"

static const double k_decay = 0.995; /* per verified draft            */
static const double k_prior = 2.0;   /* weight of c itself in a(c)     */

void sd_stop_init(sd_stop *s) { memset(s, 0, sizeof *s); }

static int bin_of(float c) {
    int b = (int)(c * (float)SD_STOP_BINS);
    return b < 0 ? 0 : b >= SD_STOP_BINS ? SD_STOP_BINS - 1 : b;
}

/* a(c) from bin b (first choices: b < SD_STOP_BINS) */
static double accept_prob_bin(const sd_stop *s, float c, int b) {
    const double cc = c < 0.0f ? 0.0 : c > 1.0f ? 1.0 : (double)c;
    return (s->hit[b] + k_prior * cc) / (s->seen[b] + k_prior);
}

double sd_stop_accept_prob(const sd_stop *s, float c) { return accept_prob_bin(s, c, bin_of(c)); }

void sd_stop_begin(sd_stop *s, const sd_draft_costs *c) {
    s->n = 0;
    s->e = 1.0;
    s->p = 1.0;
    s->t = c->verify_ms[1] + c->call_ms;
}

bool sd_stop_keep(sd_stop *s, const sd_draft_costs *c, float conf, bool sure) {
    const int i = s->n;
    if (i >= SD_MAX_DRAFT || i + 2 > c->max_rows) return false;
    const double p = s->p * sd_stop_accept_prob(s, conf);
    const double e = s->e + p;
    double dv = c->verify_ms[i + 2] - c->verify_ms[i + 1];
    const double t = s->t + c->node_ms + (dv > 0.0 ? dv : 0.0);
    if (!sure && (!(t > 0.0) || e * s->t < s->e * t)) return false; /* e / t < s->e / s->t */
    s->p = p;
    s->e = e;
    s->t = t;
    s->conf[s->n++] = conf;
    return true;
}

static void decay(sd_stop *s) {
    for (int b = 0; b < 2 * SD_STOP_BINS; b++) {
        s->hit[b] *= k_decay;
        s->seen[b] *= k_decay;
    }
}

void sd_stop_observe(sd_stop *s, int n_accepted) {
    if (s->n == 0) return;
    decay(s);
    /* token j was reached when 0..j-1 were accepted */
    for (int j = 0; j < s->n && j <= n_accepted; j++) {
        const int b = bin_of(s->conf[j]);
        s->seen[b] += 1.0;
        if (j < n_accepted) s->hit[b] += 1.0;
    }
    s->n = 0;
}

typedef struct rank_item {
    double v;
    int sure, i;
} rank_item;

/* sure first, then value descending, then index ascending (parents first) */
static int rank_cmp(const void *x, const void *y) {
    const rank_item *a = x, *b = y;
    if (a->sure != b->sure) return a->sure > b->sure ? -1 : 1;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

int sd_stop_tree_select(const sd_stop *s, const sd_draft_costs *c, double spent_ms, int n, const int *parent,
                        const float *conf, const bool *alt, const bool *sure, int max_nodes, double *v, int *keep) {
    if (n <= 0) return 0;
    rank_item *r = malloc((size_t)n * sizeof *r);
    if (!r) return 0; /* NOMEM: verify nothing (plain step) */
    for (int i = 0; i < n; i++) {
        const int p = parent[i];
        const int b = bin_of(conf[i]) + (alt[i] ? SD_STOP_BINS : 0);
        v[i] = accept_prob_bin(s, conf[i], b) * (p >= 0 && p < i ? v[p] : 1.0);
        r[i] = (rank_item){v[i], sure[i] ? 1 : 0, i};
    }
    qsort(r, (size_t)n, sizeof *r, rank_cmp);
    int cap = n < max_nodes ? n : max_nodes;
    if (cap > c->max_rows - 1) cap = c->max_rows - 1;
    if (cap > SD_MAX_DRAFT) cap = SD_MAX_DRAFT;
    int m = 0, n_sure = 0;
    while (n_sure < cap && r[n_sure].sure) n_sure++;
    double e = 1.0, best = -1.0;
    for (int k = 0; k <= cap; k++) {
        if (k > 0) e += r[k - 1].v;
        const double t = spent_ms + c->verify_ms[k + 1];
        const double rate = t > 0.0 ? e / t : 0.0;
        if (k >= n_sure && rate > best) {
            best = rate;
            m = k;
        }
    }
    for (int k = 0; k < m; k++) keep[k] = r[k].i;
    free(r);
    return m;
}

void sd_stop_observe_tree(sd_stop *s, int n, const int32_t *parent, const float *conf, const bool *alt,
                          const bool *on_path) {
    if (n <= 0) return;
    decay(s);
    for (int i = 0; i < n; i++) {
        const int p = parent[i];
        if (p >= 0 && !on_path[p]) continue; /* not reached */
        const int b = bin_of(conf[i]) + (alt[i] ? SD_STOP_BINS : 0);
        s->seen[b] += 1.0;
        if (on_path[i]) s->hit[b] += 1.0;
    }
}
