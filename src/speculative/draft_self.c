/*
 * draft_self.c - `self`: self-speculative drafting with the target's own
 * early exit (the shipped target was trained to predict the next token
 * from the hidden state after layers 2 and 4 through its final norm and
 * output head; GGUF key specdec.early_exit_layers).
 *
 * A draft step runs ONE token through the target's layers [0, L) on the
 * decode loop's own context (writing the KV cells of those layers) and
 * reads both the state after layer L and the early-exit logits (output
 * norm + head of that state). The chain [root, d1..dk] thus has its layer
 * 0..L-1 cells and its layer-L states already; the decode loop verifies
 * from layer L on (sd_draft.layer_begin / embd), so drafting costs the
 * first L layers plus the head per token and verification the remaining
 * N - L layers: the shared layers are computed once.
 *
 * The early exit's logits come from a Q8_0 copy of the output matrix
 * (made at construction): a draft token only has to be likely, not exact
 * (the verifier decides), and on the shipped target the F16 head was half
 * of a draft step's weight traffic (2 layers + head, 6.3 MB each). Under
 * sampling q is that head's distribution, from which the token is drawn,
 * so the speculative sampling rule stays exact. The states after layer L,
 * which verification continues from, are the exact ones.
 *
 * Kangaroo's stop: drafting stops when the early exit's top probability
 * falls below p_min. DEL: with exit_layer = 0 the exit is chosen per step
 * among the model's trained exits, maximizing expected tokens per ms:
 * each exit's acceptance rate a_l (decayed counts; the exit not in use is
 * tried every 16th step) and its cost per draft step d_l (measured) give
 * E = (1 - a^(k+1)) / (1 - a) over k d_l + (N - l)/N c(k+1), with c the
 * full forward's measured cost of k+1 rows (approximated from the draft
 * steps' timing: one row of all N layers ~ d_l N / l).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compute/ctx.h"
#include "speculative/drafter.h"

enum { SELF_MAX_EXITS = SD_MAX_EARLY_EXITS, EXPLORE_EVERY = 16 };

typedef struct self_state {
    sd_ctx *ctx;                 /* the target's context (borrowed)        */
    const sd_model *model;
    int n_layer, E, V;
    int fixed_exit;              /* > 0: always this layer                 */
    int exits[SELF_MAX_EXITS], n_exits;
    double hit[SELF_MAX_EXITS], reach[SELF_MAX_EXITS]; /* decayed counts   */
    double step_ms[SELF_MAX_EXITS];                    /* ms per draft step */
    int cur;                     /* exit index used by the last draft      */
    int last_n;                  /* tokens of the last draft               */
    int steps;
    float p_min;
    float *embd;                 /* (SD_MAX_DRAFT + 1, E)                  */
    sd_weight head;              /* the drafting head: a Q8_0 copy of the
                                    target's output matrix (see below)     */
    void *head_owned;
    void *head_packed;           /* head packed for the table (or NULL)   */
    float *logits;               /* (V) early-exit logits                  */
    sd_sampler *smp;
} self_state;

static sd_status self_begin(void *self, const int32_t *ids, int n) {
    (void)self;
    (void)ids;
    (void)n;
    return SD_OK;
}

/* Expected tokens per ms of exit i at its best draft length (1..8). */
static double exit_rate(const self_state *s, int i) {
    const double a = (s->hit[i] + 1.4) / (s->reach[i] + 2.0);
    const int l = s->exits[i];
    const double d = s->step_ms[i] > 0 ? s->step_ms[i] : 0.1 * l;
    const double full_row = d * (double)s->n_layer / (double)l; /* upper estimate of c(1) */
    double best = 0.0, e = 1.0, p = 1.0;
    for (int k = 1; k <= 8; k++) {
        p *= a;
        e += p;
        /* verification: the remaining layers for k + 1 rows; rows beyond the
         * first cost ~1/4 of a row (batched weights) */
        double verify = full_row * (double)(s->n_layer - l) / (double)s->n_layer * (1.0 + 0.25 * k);
        double r = e / ((double)k * d + verify);
        if (r > best) best = r;
    }
    return best;
}

static int pick_exit(self_state *s) {
    if (s->fixed_exit > 0 || s->n_exits == 1) return 0;
    s->steps++;
    if (s->steps % EXPLORE_EVERY == 0) return (s->cur + 1) % s->n_exits; /* keep measuring the others */
    int best = 0;
    for (int i = 1; i < s->n_exits; i++)
        if (exit_rate(s, i) > exit_rate(s, best)) best = i;
    return best;
}

static sd_status self_draft(void *self, const int32_t *ids, int n, int max, const sd_draft_env *env,
                            sd_draft *out) {
    self_state *s = self;
    out->n = 0;
    if (max > SD_MAX_DRAFT) max = SD_MAX_DRAFT;
    if (!ids || n < 1 || max < 1) return SD_OK;
    /* the loop's context must hold exactly the history but its last token */
    const int n_past = n - 1;
    for (int il = 0; il < s->n_layer; il++)
        if (sd_ctx_kv_len(s->ctx, il) != n_past) return SD_ERR_INVALID_ARG; /* not the decode loop's ctx */
    if (n_past + max + 1 > sd_ctx_n_ctx(s->ctx)) max = sd_ctx_n_ctx(s->ctx) - n_past - 1;
    if (max < 1) return SD_OK;
    s->cur = pick_exit(s);
    const int L = s->fixed_exit > 0 ? s->fixed_exit : s->exits[s->cur];
    const bool greedy = env->sp->temp <= 0.0f;
    sd_status st;
    if (!greedy && !s->smp && (st = sd_sampler_new(env->sp, s->V, &s->smp)) != SD_OK) return st;
    int32_t x = ids[n - 1];
    const double t0 = sd_now_ms();
    int rows = 0;
    for (int i = 0; i <= max; i++) {
        const bool last = i == max; /* only the state: no head */
        sd_batch b = sd_batch_simple(&x, 1);
        b.layer_end = L;
        b.out_flags = SD_OUTPUT_HIDDEN;
        if ((st = sd_ctx_decode(s->ctx, &b)) != SD_OK) return st;
        float *h = s->embd + (size_t)i * s->E;
        memcpy(h, sd_ctx_hidden(s->ctx, 0), (size_t)s->E * sizeof(float));
        rows++;
        if (last) break;
        if ((st = sd_model_head_logits(s->model, s->ctx->pool, &s->head, h, 1, s->logits, (size_t)s->V)) != SD_OK)
            return st;
        const float *l = s->logits;
        int32_t tok;
        if (greedy) {
            tok = sd_argmax(l, s->V);
            float p = 1.0f / s->model->kern->sum_exp(l, s->V, l[tok]);
            if (p < s->p_min) break;
        } else {
            float *q = out->q + (size_t)i * s->V;
            sd_sampler_dist(s->smp, l, q);
            float mx = 0.0f;
            for (int t = 0; t < s->V; t++) mx = q[t] > mx ? q[t] : mx;
            if (mx < s->p_min) break;
            double u = sd_rng_uniform(env->rng), c = 0.0;
            tok = -1;
            for (int t = 0; t < s->V; t++) {
                if (!(q[t] > 0.0f)) continue;
                c += q[t];
                tok = t;
                if (u < c) break;
            }
            if (tok < 0) break;
            out->has_q = true;
        }
        out->tok[out->n++] = tok;
        x = tok;
    }
    const double ms = sd_now_ms() - t0;
    double *sm = &s->step_ms[s->cur];
    *sm = *sm > 0 ? 0.9 * *sm + 0.1 * ms / rows : ms / rows;
    out->layer_begin = L;
    out->embd = s->embd;
    s->last_n = out->n;
    return SD_OK;
}

static void self_accept(void *self, const int32_t *ids, int n, int n_accepted) {
    self_state *s = self;
    (void)ids;
    (void)n;
    /* position-wise acceptance of the exit used: n_accepted of the chain */
    for (int i = 0; i < s->n_exits; i++) {
        s->hit[i] *= 0.98;
        s->reach[i] *= 0.98;
    }
    s->hit[s->cur] += (double)n_accepted;
    s->reach[s->cur] += (double)n_accepted + (n_accepted < s->last_n ? 1.0 : 0.0);
}

static void self_end(void *self) { (void)self; }

static void self_free(void *self) {
    self_state *s = self;
    if (!s) return;
    free(s->embd);
    free(s->head_owned);
    free(s->head_packed);
    free(s->logits);
    sd_sampler_free(s->smp);
    free(s);
}

static const sd_drafter_ops self_ops = {self_begin, self_draft, self_accept, self_end, self_free, NULL};

sd_status sd_drafter_new_self(sd_ctx *target_ctx, int exit_layer, float p_min, sd_drafter **out) {
    if (!target_ctx || !out || !(p_min >= 0.0f && p_min <= 1.0f)) return SD_ERR_INVALID_ARG;
    *out = NULL;
    const sd_model *m = sd_ctx_model(target_ctx);
    sd_model_info info;
    sd_model_get_info(m, &info);
    if (exit_layer < 0 || exit_layer >= info.n_layer) return SD_ERR_INVALID_ARG;
    if (exit_layer == 0 && info.n_early_exit == 0) return SD_ERR_UNSUPPORTED; /* nothing to choose from */
    self_state *s = calloc(1, sizeof *s);
    if (!s) return SD_ERR_NOMEM;
    s->ctx = target_ctx;
    s->model = m;
    s->n_layer = info.n_layer;
    s->E = info.n_embd;
    s->V = info.n_vocab;
    s->fixed_exit = exit_layer;
    s->p_min = p_min;
    for (int i = 0; i < info.n_early_exit && i < SELF_MAX_EXITS; i++)
        if (info.early_exit[i] > 0 && info.early_exit[i] < info.n_layer) s->exits[s->n_exits++] = info.early_exit[i];
    if (exit_layer > 0) {
        s->exits[0] = exit_layer;
        s->n_exits = 1;
    }
    if (s->n_exits == 0) {
        free(s);
        return SD_ERR_UNSUPPORTED;
    }
    s->embd = malloc(((size_t)SD_MAX_DRAFT + 1) * (size_t)s->E * sizeof(float));
    s->logits = malloc((size_t)s->V * sizeof(float));
    sd_status st = s->embd && s->logits ? sd_weight_q8_copy(&m->output, &s->head, &s->head_owned) : SD_ERR_NOMEM;
    if (st == SD_OK) st = sd_weight_pack_copy(m->kern, &s->head, &s->head_packed);
    if (st != SD_OK) {
        self_free(s);
        return st;
    }
    *out = sd_drafter_make("self", &self_ops, s);
    if (*out) (*out)->stops_itself = p_min > 0.0f; /* Kangaroo's stop */
    return *out ? SD_OK : SD_ERR_NOMEM;
}
