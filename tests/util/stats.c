#include "util/stats.h"

#include <math.h>
#include <string.h>

#include "util/check.h"

/* Upper 1e-3 normal quantile: the per-test level st_tally reports at. */
static const double Z_1E3 = 3.090232;

double st_chi2_crit(int df, double z) {
    double a = 2.0 / (9.0 * df);
    double t = 1.0 - a + z * sqrt(a);
    return df * t * t * t;
}

double st_chi2_z(double chi, int df) {
    double a = 2.0 / (9.0 * df);
    return (cbrt(chi / df) - (1.0 - a)) / sqrt(a);
}

double st_chi2_stat(const long *cnt, const double *p, int n, long n_tot, int *df) {
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

double st_tv_dist(const long *cnt, const double *p, int n, long n_tot) {
    double tv = 0.0;
    for (int i = 0; i < n; i++) tv += fabs((double)cnt[i] / (double)n_tot - p[i]);
    return 0.5 * tv;
}

double st_tv_bound(const double *p, int n, long n_tot) {
    double e = 0.0;
    for (int i = 0; i < n; i++) e += sqrt(p[i] * (1.0 - p[i]) / (double)n_tot);
    return 0.5 * e + sqrt(log(1e6) / (2.0 * (double)n_tot));
}

st_res st_eval_hist(const long *cnt, const double *p, int n, long n_tot, double z_alpha) {
    st_res r;
    r.chi = st_chi2_stat(cnt, p, n, n_tot, &r.df);
    r.crit = r.df >= 1 ? st_chi2_crit(r.df, z_alpha) : INFINITY;
    r.tv = st_tv_dist(cnt, p, n, n_tot);
    r.tvb = st_tv_bound(p, n, n_tot);
    return r;
}

void st_note_chi(st_tally *t, double chi, int df) {
    if (df < 1) return;
    double z = st_chi2_z(chi, df);
    if (z > t->max_z) t->max_z = z;
    t->n_chi++;
    if (chi >= st_chi2_crit(df, Z_1E3)) t->n_rej_1e3++;
}

void st_check(st_tally *t, const char *what, const char *label, const st_res *s) {
    st_note_chi(t, s->chi, s->df);
    if (s->tv / s->tvb > t->max_tv_ratio) t->max_tv_ratio = s->tv / s->tvb;
    CHECK(s->df < 1 || s->chi < s->crit, "%s: %s chi2 %.1f >= crit %.1f (df %d)", label, what,
          s->chi, s->crit, s->df);
    CHECK(s->tv < s->tvb, "%s: %s TV %.4f >= bound %.4f", label, what, s->tv, s->tvb);
}

double st_gauss(sd_rng *r) {
    double u = 0.0;
    for (int i = 0; i < 12; i++) u += sd_rng_uniform(r);
    return u - 6.0;
}

int32_t st_draw_idx(const double *w, int n, sd_rng *r) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += w[i];
    if (!(s > 0.0)) return -1;
    double u = sd_rng_uniform(r) * s, c = 0.0;
    int32_t last = -1;
    for (int i = 0; i < n; i++) {
        if (w[i] <= 0.0) continue;
        c += w[i];
        last = i;
        if (u < c) return i;
    }
    return last;
}

void st_to_row(const double *w, int n, float *out) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += w[i];
    for (int i = 0; i < n; i++) out[i] = (float)(w[i] / s);
}

void st_to_law(const float *w, int n, double *out) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += w[i];
    for (int i = 0; i < n; i++) out[i] = w[i] / s;
}

void st_make_target(st_target *tg, int V, sd_rng *r) {
    tg->V = V;
    for (int t = 0; t < ST_NPOS; t++) {
        double *w = tg->pd[t]; /* the weights first, then the law */
        const double scale = t % 3 == 0 ? 2.5 : t % 3 == 1 ? 0.5 : 1.5;
        for (int i = 0; i < V; i++) {
            w[i] = exp(scale * st_gauss(r));
            if ((i + 3 * t) % 4 == 0) w[i] = 0.0;
        }
        if (t % 3 == 2) {
            int rare = (5 + t) % V;
            if (w[rare] > 0.0) w[rare] = 1e-4;
        }
        st_to_row(w, V, tg->p[t]);
        st_to_law(tg->p[t], V, tg->pd[t]);
    }
}

void st_draft_row(st_qlaw law, const float *p, int V, int32_t at, sd_rng *r, float *q) {
    double w[ST_VMAX];
    int n_supp = 0;
    for (int i = 0; i < V; i++) {
        double u = exp(1.5 * st_gauss(r));
        switch (law) {
        case ST_Q_EQ: w[i] = p[i]; break;
        case ST_Q_DISJOINT: w[i] = p[i] == 0.0f ? u : 0.0; break;
        case ST_Q_PARTIAL:
            if (p[i] > 0.0f) w[i] = (n_supp++ % 2) ? u : 0.0;
            else w[i] = u;
            break;
        case ST_Q_SHARP: w[i] = pow(p[i], 3.0); break;
        case ST_Q_FLAT: w[i] = pow(p[i], 0.3); break;
        case ST_Q_RANDOM: w[i] = u; break;
        case ST_Q_ONEHOT: w[i] = i == at; break;
        default: w[i] = 1.0; break; /* ST_Q_UNIFORM */
        }
    }
    if (law == ST_Q_FLAT) {
        double s = 0.0;
        for (int i = 0; i < V; i++) s += w[i];
        for (int i = 0; i < V; i++) w[i] = 0.8 * w[i] / s + 0.2 / V;
    }
    if (law == ST_Q_EQ) memcpy(q, p, (size_t)V * sizeof(float)); /* bit-identical */
    else st_to_row(w, V, q);
}

void st_hist3_add(st_hist3 *h, const st_target *tg, const int32_t *em) {
    for (int t = 0; t < 3; t++)
        if (tg->p[t][em[t]] == 0.0f) h->zero_emitted++;
    h->c0[em[0]]++;
    h->c01[em[0] * tg->V + em[1]]++;
    h->c2[em[2]]++;
}

st_res3 st_eval3(const st_target *tg, const st_hist3 *h, long n_tot, double z_alpha) {
    const int V = tg->V;
    const double *p0 = tg->pd[0], *p1 = tg->pd[1], *p2 = tg->pd[2];
    double pj[ST_VMAX * ST_VMAX];
    for (int a = 0; a < V; a++)
        for (int b = 0; b < V; b++) pj[a * V + b] = p0[a] * p1[b];
    st_res3 r;
    r.m0 = st_eval_hist(h->c0, p0, V, n_tot, z_alpha);
    r.j01 = st_eval_hist(h->c01, pj, V * V, n_tot, z_alpha);
    r.m2 = st_eval_hist(h->c2, p2, V, n_tot, z_alpha);
    return r;
}

void st_check3(st_tally *t, const char *label, const st_res3 *r) {
    st_check(t, "first token", label, &r->m0);
    st_check(t, "(first, second)", label, &r->j01);
    st_check(t, "third token", label, &r->m2);
}

double st_worst3(const st_res3 *r) {
    return fmax(r->m0.chi / r->m0.crit, fmax(r->j01.chi / r->j01.crit, r->m2.chi / r->m2.crit));
}
