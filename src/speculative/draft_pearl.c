/*
 * draft_pearl.c - `pearl`: the draft model drafts on its own thread,
 * concurrently with verification (PEARL's post-verify overlap).
 *
 * A background thread keeps extending a speculative continuation of the
 * accepted history with the draft model (greedy: its argmax; it records
 * each token's draft probability), up to `ahead` tokens beyond it. draft()
 * hands the decode loop the tokens drafted so far (waiting only for the
 * first), at most `max` and only while their probability stays >= p_min;
 * the thread keeps drafting past them while the target verifies. accept()
 * then compares: when every handed-out token was accepted and the target's
 * bonus token equals the thread's next token, the continuation drafted
 * during verification stays valid and the next draft() returns at once;
 * otherwise the thread rolls its cache back to the longest valid prefix and
 * starts over from the corrected history.
 *
 * Greedy only: under sampling the drafter reports no tokens (plain
 * decoding), since its tokens are argmaxes, not draws from q.
 *
 * Threads: the draft context runs single-threaded on the background
 * thread; the decode loop's target context should get the other cores
 * (tools give the target n - 1 threads for `pearl`). PEARL's pre-verify
 * (verifying the first draft token early) is not implemented.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "speculative/drafter.h"

enum { AHEAD_MAX = SD_MAX_DRAFT };

typedef struct pearl_state {
    const sd_model *model;
    sd_ctx *ctx;              /* draft context: only the thread touches it  */
    int V, ahead;
    float p_min;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* signals: new work, new tokens             */
    bool started, quit;
    /* shared under mu */
    int32_t *hist;            /* (cap) accepted history                     */
    int n_hist, cap;
    int32_t spec[AHEAD_MAX];  /* continuation drafted after hist            */
    float prob[AHEAD_MAX];    /* the draft's probability of each            */
    int n_spec;
    unsigned gen;             /* bumped when hist changes incompatibly      */
    int handed;               /* tokens given to the last draft()           */
    sd_status err;
    /* thread-private */
    int32_t *seq;             /* tokens whose KV is in ctx                  */
    int n_seq;
} pearl_state;

/* Drafts forever: catch up with hist + spec, then one more token. */
static void *pearl_main(void *arg) {
    pearl_state *s = arg;
    int32_t *target = malloc((size_t)s->cap * sizeof *target);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->quit && (s->n_hist == 0 || s->n_spec >= s->ahead || s->err != SD_OK ||
                            s->n_hist + s->n_spec + 1 >= sd_ctx_n_ctx(s->ctx)))
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->quit || !target) break;
        /* the sequence to extend: hist + spec */
        const unsigned gen = s->gen;
        int n = s->n_hist;
        memcpy(target, s->hist, (size_t)n * sizeof *target);
        memcpy(target + n, s->spec, (size_t)s->n_spec * sizeof *target);
        n += s->n_spec;
        pthread_mutex_unlock(&s->mu);

        /* roll back to the common prefix, decode the rest */
        int c = 0;
        while (c < s->n_seq && c < n && s->seq[c] == target[c]) c++;
        if (c == n) c = n - 1; /* need the last token's logits */
        sd_ctx_kv_truncate(s->ctx, c);
        sd_batch b = sd_batch_simple(target + c, n - c);
        sd_status st = sd_ctx_decode(s->ctx, &b);
        int32_t tok = -1;
        float p = 0.0f;
        if (st == SD_OK) {
            memcpy(s->seq + c, target + c, (size_t)(n - c) * sizeof *target);
            s->n_seq = n;
            const float *l = sd_ctx_logits(s->ctx, 0);
            tok = sd_argmax(l, s->V);
            p = 1.0f / s->model->kern->sum_exp(l, s->V, l[tok]);
        } else {
            s->n_seq = 0;
            sd_ctx_kv_clear(s->ctx);
        }

        pthread_mutex_lock(&s->mu);
        if (st != SD_OK) s->err = st;
        else if (gen == s->gen && s->n_hist + s->n_spec == n && s->n_spec < AHEAD_MAX) {
            s->spec[s->n_spec] = tok;
            s->prob[s->n_spec] = p;
            s->n_spec++;
        }
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    free(target);
    return NULL;
}

static sd_status set_hist(pearl_state *s, const int32_t *ids, int n) {
    if (n > s->cap) return SD_ERR_CTX_FULL;
    memcpy(s->hist, ids, (size_t)n * sizeof *ids);
    s->n_hist = n;
    s->n_spec = 0;
    s->gen++;
    return SD_OK;
}

static sd_status pearl_begin(void *self, const int32_t *ids, int n) {
    pearl_state *s = self;
    pthread_mutex_lock(&s->mu);
    sd_status st = set_hist(s, ids, n);
    s->err = SD_OK;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return st;
}

static sd_status pearl_draft(void *self, const int32_t *ids, int n, int max, const sd_draft_env *env,
                             sd_draft *out) {
    pearl_state *s = self;
    out->n = 0;
    if (env->sp->temp > 0.0f || max <= 0) return SD_OK;
    pthread_mutex_lock(&s->mu);
    sd_status st = SD_OK;
    /* the history must be ours (accept() keeps it so); else start over */
    if (n != s->n_hist || memcmp(ids, s->hist, (size_t)n * sizeof *ids) != 0) {
        st = set_hist(s, ids, n);
        pthread_cond_broadcast(&s->cv);
    }
    while (st == SD_OK && s->err == SD_OK && s->n_spec == 0 && n + 1 < sd_ctx_n_ctx(s->ctx))
        pthread_cond_wait(&s->cv, &s->mu);
    if (st == SD_OK) st = s->err;
    int k = 0;
    while (k < s->n_spec && k < max && s->prob[k] >= s->p_min) {
        out->tok[k] = s->spec[k];
        k++;
    }
    out->n = k;
    s->handed = k;
    pthread_mutex_unlock(&s->mu);
    return st;
}

static void pearl_accept(void *self, const int32_t *ids, int n, int n_accepted) {
    pearl_state *s = self;
    pthread_mutex_lock(&s->mu);
    const int bonus_at = n - 1; /* ids[n - 1] is the correction / bonus token */
    const int used = n_accepted + 1;
    bool keep = n_accepted == s->handed && s->n_hist + used == n && used <= s->n_spec &&
                s->spec[n_accepted] == ids[bonus_at];
    if (keep) { /* the continuation drafted during verification stays valid */
        memcpy(s->hist + s->n_hist, s->spec, (size_t)used * sizeof *ids);
        s->n_hist += used;
        memmove(s->spec, s->spec + used, (size_t)(s->n_spec - used) * sizeof *s->spec);
        memmove(s->prob, s->prob + used, (size_t)(s->n_spec - used) * sizeof *s->prob);
        s->n_spec -= used;
    } else if (set_hist(s, ids, n) != SD_OK) {
        s->err = SD_ERR_CTX_FULL;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void pearl_end(void *self) {
    pearl_state *s = self;
    pthread_mutex_lock(&s->mu);
    s->n_hist = 0; /* park the thread */
    s->n_spec = 0;
    s->gen++;
    pthread_mutex_unlock(&s->mu);
}

static void pearl_free(void *self) {
    pearl_state *s = self;
    if (!s) return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->quit = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    sd_ctx_free(s->ctx);
    free(s->hist);
    free(s->seq);
    free(s);
}

static const sd_drafter_ops pearl_ops = {pearl_begin, pearl_draft, pearl_accept, pearl_end, pearl_free, NULL};

sd_status sd_drafter_new_pearl(const sd_model *draft, const sd_model *target, int n_ctx, float p_min,
                               int ahead, sd_drafter **out, char *err, size_t err_size) {
    if (!draft || !target || !out || !(p_min >= 0.0f && p_min <= 1.0f) || ahead < 1 || ahead > AHEAD_MAX)
        return SD_ERR_INVALID_ARG;
    *out = NULL;
    pearl_state *s = calloc(1, sizeof *s);
    if (!s) return SD_ERR_NOMEM;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->model = draft;
    s->V = sd_vocab_n_tokens(sd_model_vocab(draft));
    s->p_min = p_min;
    s->ahead = ahead;
    /* single-threaded (no pool): the thread below is its core */
    sd_status st = sd_draft_ctx_new(draft, target, NULL, n_ctx, NULL, 0, &s->ctx, err, err_size);
    if (st != SD_OK) {
        pearl_free(s);
        return st;
    }
    s->cap = sd_ctx_n_ctx(s->ctx);
    s->hist = malloc((size_t)s->cap * sizeof *s->hist);
    s->seq = malloc((size_t)s->cap * sizeof *s->seq);
    if (!s->hist || !s->seq) {
        pearl_free(s);
        return SD_ERR_NOMEM;
    }
    if (pthread_create(&s->thread, NULL, pearl_main, s) != 0) {
        pearl_free(s);
        return SD_ERR_NOMEM;
    }
    s->started = true;
    *out = sd_drafter_make("pearl", &pearl_ops, s);
    return *out ? SD_OK : SD_ERR_NOMEM;
}
