/* auto.c - the target's cost table and the draft-length controller (see
 * auto.h and sd_cost_table in specdec.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "speculative/auto.h"
#include "speculative/drafter.h"

/* Rows measured exactly (1..COST_EXACT), then coarser points. */
enum { COST_EXACT = 9, COST_NPTS = COST_EXACT + 4, COST_REPS = 5 };
static const int k_rows[COST_NPTS] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 17, 24, 33};

struct sd_cost_table {
    int len[2];                     /* the two context lengths measured   */
    double ms[2][COST_NPTS];        /* ms of a forward of k_rows[i] rows   */
};

sd_status sd_cost_table_measure(sd_ctx *ctx, sd_cost_table **out) {
    if (!ctx || !out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    const int n_ctx = sd_ctx_n_ctx(ctx);
    const int V = sd_vocab_n_tokens(sd_model_vocab(sd_ctx_model(ctx)));
    const int rows_max = k_rows[COST_NPTS - 1];
    int len1 = n_ctx - rows_max - 1;
    if (len1 > 512) len1 = 512;
    if (len1 < 64 || V < 4) return SD_ERR_CTX_FULL;
    sd_cost_table *t = calloc(1, sizeof *t);
    int32_t *toks = malloc(((size_t)len1 + (size_t)rows_max) * sizeof *toks);
    if (!t || !toks) {
        free(t);
        free(toks);
        return SD_ERR_NOMEM;
    }
    for (int i = 0; i < len1 + rows_max; i++) toks[i] = (int32_t)(3 + (i * 7919 + 13) % (V - 3));
    sd_ctx_kv_clear(ctx);
    sd_batch b = sd_batch_simple(toks, len1);
    sd_status st = sd_ctx_decode(ctx, &b);
    t->len[0] = 32;
    t->len[1] = len1;
    uint8_t all[64];
    memset(all, 1, sizeof all);
    /* The fastest of COST_REPS forwards per point, the points visited round
     * robin so that a slow spell of a shared machine falls on all of them
     * alike rather than on a few (which made the table non-monotonic and
     * steered auto's choices run to run); then made non-decreasing in the
     * rows (more rows never cost less). */
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < COST_NPTS; i++) t->ms[c][i] = 1e30;
    for (int rep = 0; rep < COST_REPS && st == SD_OK; rep++)
        for (int c = 0; c < 2 && st == SD_OK; c++)
            for (int i = 0; i < COST_NPTS && st == SD_OK; i++) {
                sd_ctx_kv_truncate(ctx, t->len[c]);
                sd_batch bb = sd_batch_simple(toks + t->len[c], k_rows[i]);
                bb.output = all;
                double t0 = sd_now_ms();
                st = sd_ctx_decode(ctx, &bb);
                double ms = sd_now_ms() - t0;
                if (ms < t->ms[c][i]) t->ms[c][i] = ms;
            }
    for (int c = 0; c < 2; c++)
        for (int i = 1; i < COST_NPTS; i++)
            if (t->ms[c][i] < t->ms[c][i - 1]) t->ms[c][i] = t->ms[c][i - 1];
    sd_ctx_kv_clear(ctx);
    free(toks);
    if (st != SD_OK) {
        free(t);
        return st;
    }
    *out = t;
    return SD_OK;
}

void sd_cost_table_free(sd_cost_table *t) { free(t); }

sd_status sd_cost_table_linear(double a, double b, double c, sd_cost_table **out) {
    if (!out) return SD_ERR_INVALID_ARG;
    sd_cost_table *t = calloc(1, sizeof *t);
    if (!t) return SD_ERR_NOMEM;
    t->len[0] = 32;
    t->len[1] = 512;
    for (int c2 = 0; c2 < 2; c2++)
        for (int i = 0; i < COST_NPTS; i++)
            t->ms[c2][i] = a + b * k_rows[i] + c * k_rows[i] * t->len[c2];
    *out = t;
    return SD_OK;
}

/* Piecewise-linear in the rows, linear in the context length. */
double sd_cost_table_ms(const sd_cost_table *t, int rows, int n_past) {
    if (!t || rows < 1) return 0.0;
    double at[2];
    for (int c = 0; c < 2; c++) {
        int i = 0;
        while (i + 1 < COST_NPTS && k_rows[i + 1] <= rows) i++;
        if (i + 1 >= COST_NPTS || k_rows[i] == rows) {
            /* beyond the table: extend the last segment */
            int a = i + 1 >= COST_NPTS ? COST_NPTS - 2 : i, z = a + 1;
            double slope = (t->ms[c][z] - t->ms[c][a]) / (double)(k_rows[z] - k_rows[a]);
            at[c] = t->ms[c][i] + slope * (double)(rows - k_rows[i]);
        } else {
            double f = (double)(rows - k_rows[i]) / (double)(k_rows[i + 1] - k_rows[i]);
            at[c] = t->ms[c][i] + f * (t->ms[c][i + 1] - t->ms[c][i]);
        }
    }
    double f = (double)(n_past - t->len[0]) / (double)(t->len[1] - t->len[0]);
    double ms = at[0] + f * (at[1] - at[0]);
    return ms > 1e-6 ? ms : 1e-6;
}

/* ------------------------------------------------------------ controller */

enum { PLAIN_PROBE = 8 };
static const double k_decay = 0.97;          /* forgetting per step          */
static const double k_prior_s = 1.4, k_prior_f = 0.6; /* a = 0.7 before data */

void sd_auto_init(sd_auto *a, const sd_cost_table *ct, int kmax) {
    memset(a, 0, sizeof *a);
    a->ct = ct;
    a->kmax = kmax < 0 ? 0 : kmax > SD_AUTO_KMAX ? SD_AUTO_KMAX : kmax;
    a->verify_frac = 1.0;
}

void sd_auto_verify_share(sd_auto *a, double frac) {
    if (frac > 0.0 && frac <= 1.0) a->verify_frac += 0.2 * (frac - a->verify_frac);
}

/* E(k) (tokens) and R(k) (rows verified) for k = 0..kmax from the
 * per-position rates. */
static void chain_tokens(const sd_auto *a, double *e, double *rows) {
    double prev = k_prior_s / (k_prior_s + k_prior_f), prev_d = 1.0, p = 1.0, pd = 1.0;
    e[0] = 1.0;
    rows[0] = 1.0;
    for (int i = 1; i <= a->kmax; i++) {
        double ai = (a->hit[i] + 2.0 * prev) / (a->reach[i] + 2.0);
        double di = (a->made[i] + 2.0 * prev_d) / (a->offer[i] + 2.0);
        pd *= di;
        p *= ai * di;
        e[i] = e[i - 1] + p;
        rows[i] = rows[i - 1] + pd;
        prev = ai;
        prev_d = di;
    }
}

/* Cost of a forward of a fractional number of rows (linear between). */
static double cost_rows(const sd_cost_table *t, double rows, int n_past) {
    int r0 = (int)rows;
    double f = rows - (double)r0;
    double c0 = sd_cost_table_ms(t, r0, n_past);
    return f > 0.0 ? c0 + f * (sd_cost_table_ms(t, r0 + 1, n_past) - c0) : c0;
}

int sd_auto_choose(sd_auto *a, int n_past) {
    if (a->kmax == 0) return 0;
    /* A probe of one token measures only position 1, where a self-
     * speculative draft pays least (it carries the call's fixed cost): self
     * on code completion stayed plain for 163 of 184 steps of a generation
     * where chains of 4 and more pay. A drafter that stops itself gets the
     * whole budget; its confidence rule bounds the probe's cost. */
    if (a->plain_run >= PLAIN_PROBE) return a->probe_full ? a->kmax : 1;
    double ek[SD_AUTO_KMAX + 1], rk[SD_AUTO_KMAX + 1];
    chain_tokens(a, ek, rk);
    int best = 0;
    /* plain decoding runs every layer; a verification verify_frac of them */
    double best_rate = 1.0 / sd_cost_table_ms(a->ct, 1, n_past);
    for (int k = 1; k <= a->kmax; k++) {
        double e = ek[k], rows = rk[k];
        if (a->tree && a->n[k] >= 2.0) {
            e = a->tok[k] / a->n[k];
            rows = 1.0 + a->nodes[k] / a->n[k];
        }
        double ms = a->verify_frac * cost_rows(a->ct, rows, n_past) + a->call_ms + a->node_ms * (rows - 1.0);
        double rate = e / ms;
        if (rate > best_rate * 1.0001) {
            best_rate = rate;
            best = k;
        }
    }
    /* a tree drafter that sizes its trees itself (spec/stop.h) gets the
     * whole budget whenever drafting pays: a budget would only cap it */
    if (best > 0 && a->tree && a->probe_full) best = a->kmax;
    return best;
}

void sd_auto_update(sd_auto *a, int k, bool tree, int n_drafted, int depth, int j, double draft_ms) {
    a->plain_run = k == 0 ? a->plain_run + 1 : 0;
    if (k == 0) return;
    a->tree = tree;
    for (int i = 1; i <= SD_AUTO_KMAX; i++) {
        a->reach[i] *= k_decay;
        a->hit[i] *= k_decay;
        a->offer[i] *= k_decay;
        a->made[i] *= k_decay;
    }
    /* position i was offered when k >= i and the drafter drafted i - 1 */
    for (int i = 1; i <= k && i <= SD_AUTO_KMAX && i <= depth + 1; i++) {
        a->offer[i] += 1.0;
        if (i <= depth) a->made[i] += 1.0;
    }
    /* position i is reached when it was drafted and 1..i-1 were accepted */
    for (int i = 1; i <= depth && i <= SD_AUTO_KMAX && i <= j + 1; i++) {
        a->reach[i] += 1.0;
        if (i <= j) a->hit[i] += 1.0;
    }
    if (k <= SD_AUTO_KMAX) {
        for (int i = 0; i <= SD_AUTO_KMAX; i++) {
            a->tok[i] *= k_decay;
            a->n[i] *= k_decay;
            a->nodes[i] *= k_decay;
        }
        a->tok[k] += (double)(j + 1);
        a->n[k] += 1.0;
        a->nodes[k] += (double)n_drafted;
    }
    /* drafting cost: calls that drafted nothing measure the fixed part
     * (catching up with the history), the rest the per-node part */
    const double w = a->n_updates < 4 ? 0.5 : 0.1;
    if (n_drafted > 0) {
        double per = (draft_ms - a->call_ms) / (double)n_drafted;
        a->node_ms += w * ((per > 0.0 ? per : 0.0) - a->node_ms);
    } else {
        a->call_ms += w * (draft_ms - a->call_ms);
    }
    a->n_updates++;
}
