/* stop.c - the calibrated, cost-aware stopping rule (see stop.h). */
#include <string.h>

#include "spec/stop.h"

static const double k_decay = 0.995; /* per verified draft            */
static const double k_prior = 2.0;   /* weight of c itself in a(c)     */

void sd_stop_init(sd_stop *s) { memset(s, 0, sizeof *s); }

static int bin_of(float c) {
    int b = (int)(c * (float)SD_STOP_BINS);
    return b < 0 ? 0 : b >= SD_STOP_BINS ? SD_STOP_BINS - 1 : b;
}

double sd_stop_accept_prob(const sd_stop *s, float c) {
    const double cc = c < 0.0f ? 0.0 : c > 1.0f ? 1.0 : (double)c;
    const int b = bin_of(c);
    return (s->hit[b] + k_prior * cc) / (s->seen[b] + k_prior);
}

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

void sd_stop_observe(sd_stop *s, int n_accepted) {
    if (s->n == 0) return;
    for (int b = 0; b < SD_STOP_BINS; b++) {
        s->hit[b] *= k_decay;
        s->seen[b] *= k_decay;
    }
    /* token j was reached when 0..j-1 were accepted */
    for (int j = 0; j < s->n && j <= n_accepted; j++) {
        const int b = bin_of(s->conf[j]);
        s->seen[b] += 1.0;
        if (j < n_accepted) s->hit[b] += 1.0;
    }
    s->n = 0;
}
