/*
 * sched.c - the scheduler thread of `specdec serve`: slots, the bounded
 * queue and continuous batching over the step-wise generation API.
 *
 * One iteration:
 *   assign queued requests to free slots; prefill them (sd_gen_begin)
 *   for every active slot: drop it if its client went away, else
 *       sd_gen_prepare -> its verification batch (or done)
 *   group the batches by (layer_begin, out_flags) and run each group as ONE
 *       sd_decode_multi (the target's weights are read once for all rows)
 *   sd_gen_finish for every slot (verify, accept, KV rollback, tokens out)
 */
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "server/srv.h"

double srv_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ requests */

srv_req *srv_req_new(void) {
    srv_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return NULL;
    }
    r->refs = 1;
    r->fd = -1;
    return r;
}

void srv_req_ref(srv_req *r) {
    pthread_mutex_lock(&r->mu);
    r->refs++;
    pthread_mutex_unlock(&r->mu);
}

void srv_req_unref(srv_req *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left > 0) return;
    pthread_mutex_destroy(&r->mu);
    free(r->prompt);
    free(r->text);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r);
}

void srv_req_cancel(srv_req *r) {
    pthread_mutex_lock(&r->mu);
    if (!r->done) r->cancelled = true;
    pthread_mutex_unlock(&r->mu);
}

void *srv_req_unpark(srv_req *r) {
    void *c = r->parked;
    r->parked = NULL;
    return c;
}

static void req_resume(srv_req *r, void *conn) {
    if (conn && r->resume) r->resume(conn);
}

bool srv_client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return true;
    if (p.revents & POLLIN) {
        char ch;
        ssize_t r = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
        return r == 0;
    }
    return false;
}

/* Appends text under r->mu (held). False on NOMEM. */
static bool req_append(srv_req *r, const char *p, int n) {
    if (n <= 0) return true;
    if (r->len + (size_t)n + 1 > r->cap) {
        size_t cap = (r->cap + (size_t)n + 1) * 2;
        char *t = realloc(r->text, cap);
        if (!t) return false;
        r->text = t;
        r->cap = cap;
    }
    memcpy(r->text + r->len, p, (size_t)n);
    r->len += (size_t)n;
    r->text[r->len] = 0;
    return true;
}

/* on_tokens of every slot's generation: text out to the waiting client;
 * false (stop) once the client has gone. */
static bool slot_on_tokens(void *user, const int32_t *ids, int n) {
    srv_slot *sl = user;
    srv_req *r = sl->req;
    char piece[128];
    pthread_mutex_lock(&r->mu);
    bool ok = !r->cancelled && !r->hit_stop;
    for (int i = 0; i < n && ok; i++) {
        size_t before = r->len;
        int k = sd_detok_push(sl->dt, ids[i], piece, sizeof piece);
        if (k < 0 || !req_append(r, piece, k)) ok = false;
        /* a stop string ends the text where it starts (search only where
         * a match could involve the new bytes) */
        for (int s = 0; ok && s < r->n_stop && k > 0; s++) {
            size_t from = before > r->stop_hold ? before - r->stop_hold : 0;
            char *hit = memmem(r->text + from, r->len - from, r->stop[s], strlen(r->stop[s]));
            if (hit) {
                r->len = (size_t)(hit - r->text);
                r->text[r->len] = 0;
                r->hit_stop = true;
                ok = false;
            }
        }
    }
    if (r->n_gen == 0 && n > 0) r->t_first = srv_now_s();
    r->n_gen += n;
    void *conn = r->stream ? srv_req_unpark(r) : NULL; /* a plain request waits for done */
    pthread_mutex_unlock(&r->mu);
    req_resume(r, conn);
    return ok;
}

/* ------------------------------------------------------------ metrics */

static const double hist_le[SRV_N_BUCKETS] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

static void hist_add(srv_hist *h, double v) {
    for (int i = 0; i < SRV_N_BUCKETS; i++)
        if (v <= hist_le[i]) h->bucket[i]++;
    h->count++;
    h->sum += v;
}

static void hist_print(srv_buf *b, const char *name, const char *help, const srv_hist *h) {
    srv_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int i = 0; i < SRV_N_BUCKETS; i++)
        srv_buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, hist_le[i], (unsigned long long)h->bucket[i]);
    srv_buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                   (unsigned long long)h->count, name, h->sum, name, (unsigned long long)h->count);
}

void srv_metrics_text(server *s, srv_buf *b) {
    pthread_mutex_lock(&s->mu);
    srv_metrics m = s->m;
    int busy = s->n_active, queued = s->q_len;
    pthread_mutex_unlock(&s->mu);
    struct {
        const char *name, *help;
        uint64_t v;
    } counters[] = {
        {"specdec_requests_total", "HTTP requests received", m.requests},
        {"specdec_requests_ok_total", "generations completed", m.completed},
        {"specdec_requests_bad_total", "requests answered with a 4xx", m.bad},
        {"specdec_requests_rejected_total", "requests rejected with 503 (queue full)", m.rejected},
        {"specdec_requests_cancelled_total", "generations cancelled by a client disconnect", m.cancelled},
        {"specdec_requests_failed_total", "generations that failed inside the engine", m.failed},
        {"specdec_read_timeouts_total", "requests not received within --read-timeout (408)", m.read_timeouts},
        {"specdec_write_timeouts_total", "responses dropped: the client read nothing for --write-timeout",
         m.write_timeouts},
        {"specdec_connections_opened_total", "TCP connections accepted", m.conn_opened},
        {"specdec_connections_closed_total", "TCP connections closed", m.conn_closed},
        {"specdec_prompt_tokens_total", "prompt tokens prefilled", m.prompt_tokens},
        {"specdec_generated_tokens_total", "tokens generated", m.gen_tokens},
        {"specdec_drafted_tokens_total", "drafted tokens sent to verification", m.drafted},
        {"specdec_accepted_tokens_total", "drafted tokens accepted", m.accepted},
        {"specdec_verify_steps_total", "verification steps (target forwards per request)", m.steps},
        {"specdec_batched_forwards_total", "target forwards of the scheduler (one per group per iteration)",
         m.forwards},
        {"specdec_batched_rows_total", "rows in those forwards", m.forward_rows},
        {"specdec_batched_seqs_total", "sequences in those forwards", m.forward_seqs},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        srv_buf_printf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[i].name, counters[i].help,
                       counters[i].name, counters[i].name, (unsigned long long)counters[i].v);
    /* tokens per verification step: the accepted drafts plus the bonus token */
    double mean_acc = m.steps ? (double)(m.accepted + m.steps) / (double)m.steps : 0.0;
    srv_buf_printf(b, "# HELP specdec_mean_accepted_tokens_per_step tokens emitted per verification step\n"
                      "# TYPE specdec_mean_accepted_tokens_per_step gauge\nspecdec_mean_accepted_tokens_per_step %.4f\n",
                   mean_acc);
    srv_buf_printf(b, "# HELP specdec_slots_busy slots generating\n# TYPE specdec_slots_busy gauge\nspecdec_slots_busy %d\n"
                      "# HELP specdec_slots_total slots (--parallel)\n# TYPE specdec_slots_total gauge\nspecdec_slots_total %d\n"
                      "# HELP specdec_queue_length requests waiting for a slot\n# TYPE specdec_queue_length gauge\n"
                      "specdec_queue_length %d\n",
                   busy, s->n_slots, queued);
    srv_buf_printf(b, "# HELP specdec_connections_open TCP connections open\n# TYPE specdec_connections_open gauge\n"
                      "specdec_connections_open %llu\n",
                   (unsigned long long)(m.conn_opened - m.conn_closed));
    hist_print(b, "specdec_request_duration_seconds", "time from arrival to the last token", &m.latency);
    hist_print(b, "specdec_time_to_first_token_seconds", "time from arrival to the first token", &m.ttft);
}

/* ------------------------------------------------------------ slots */

/* The slot's drafter for method mi, made on first use (NULL for none). */
static sd_status slot_drafter(server *s, srv_slot *sl, int mi, sd_drafter **out, char *err, size_t n) {
    *out = NULL;
    if (mi == 0) return SD_OK;
    if (sl->dr[mi]) {
        *out = sl->dr[mi];
        return SD_OK;
    }
    const char *m = srv_methods[mi];
    sd_status st;
    if (!strcmp(m, "ngram-cache") && s->ngram_owner) {
        st = sd_drafter_ngram_cache_fork(s->ngram_owner, &sl->dr[mi]);
    } else {
        unsigned needs = sd_spec_method_needs(m);
        char lerr[512] = "";
        if ((needs & SD_SPEC_NEEDS_DRAFT) && !s->draft) {
            st = sd_model_load(s->cfg->draft_path, &s->cfg->mp, &s->draft, lerr, sizeof lerr);
            if (st != SD_OK) {
                snprintf(err, n, "cannot load the draft model '%s': %s", s->cfg->draft_path, lerr);
                return st;
            }
        }
        if ((needs & SD_SPEC_NEEDS_HEADS) && !s->heads) {
            st = sd_heads_load(s->cfg->heads_path, s->model, &s->heads, lerr, sizeof lerr);
            if (st != SD_OK) {
                snprintf(err, n, "cannot load the trained heads '%s': %s", s->cfg->heads_path, lerr);
                return st;
            }
        }
        sd_spec_params sp = s->cfg->spec;
        sp.ngram_dynamic = NULL; /* the shared cache is the server's */
        sd_spec_models mm = {.target = s->model, .target_ctx = sl->ctx, .draft = s->draft, .heads = s->heads,
                             .pool = s->pool, .n_ctx = s->n_ctx};
        st = sd_drafter_from_spec(m, &sp, &mm, &sl->dr[mi], NULL, err, n);
    }
    *out = sl->dr[mi];
    return st;
}

/* Ends the slot's request: final text and stats, wakes the client. */
static void slot_complete(server *s, srv_slot *sl, sd_status rc) {
    srv_req *r = sl->req;
    sd_spec_stats st;
    memset(&st, 0, sizeof st);
    if (sl->g) sd_gen_stats(sl->g, &st);
    char piece[128];
    int k = sl->dt ? sd_detok_flush(sl->dt, piece, sizeof piece) : 0;
    double now = srv_now_s();
    pthread_mutex_lock(&r->mu);
    bool cancelled = r->cancelled;
    if (k > 0 && !r->hit_stop) req_append(r, piece, k);
    r->st = st;
    r->status = rc;
    r->hit_length = !r->hit_stop && r->n_gen >= r->n_predict;
    r->t_done = now;
    r->done = true;
    void *conn = srv_req_unpark(r);
    double t_first = r->t_first, t_arrive = r->t_arrive;
    pthread_mutex_unlock(&r->mu);
    req_resume(r, conn);
    pthread_mutex_lock(&s->mu);
    if (cancelled) s->m.cancelled++;
    else if (rc != SD_OK) s->m.failed++;
    else {
        s->m.completed++;
        hist_add(&s->m.latency, now - t_arrive);
        if (t_first > 0) hist_add(&s->m.ttft, t_first - t_arrive);
    }
    s->m.prompt_tokens += (uint64_t)r->n_prompt;
    s->m.gen_tokens += (uint64_t)st.n_generated;
    s->m.drafted += (uint64_t)st.drafted;
    s->m.accepted += (uint64_t)st.accepted;
    s->m.steps += (uint64_t)st.steps;
    s->n_active--;
    pthread_mutex_unlock(&s->mu);
    sd_gen_free(sl->g);
    sl->g = NULL;
    sd_sampler_free(sl->smp);
    sl->smp = NULL;
    sd_detok_free(sl->dt);
    sl->dt = NULL;
    sl->req = NULL;
    srv_req_unref(r);
}

/* Prefills the slot's new request. */
static void slot_start(server *s, srv_slot *sl) {
    srv_req *r = sl->req;
    char err[256] = "";
    sd_drafter *d = NULL;
    sd_status st = sd_sampler_new(&r->sp, s->info.n_vocab, &sl->smp);
    if (st == SD_OK && !(sl->dt = sd_detok_new(s->vocab))) st = SD_ERR_NOMEM;
    if (st == SD_OK) st = slot_drafter(s, sl, r->method, &d, err, sizeof err);
    sd_gen_params gp = sd_gen_default_params();
    gp.n_predict = r->n_predict;
    gp.ignore_eos = r->ignore_eos;
    gp.draft_max = d ? r->draft_max : 0;
    gp.draft_min = s->cfg->draft_min;
    gp.on_tokens = slot_on_tokens;
    gp.user = sl;
    if (st == SD_OK && d && gp.draft_max == SD_DRAFT_AUTO) {
        if (!s->costs) st = sd_cost_table_measure(sl->ctx, &s->costs); /* once; clears this ctx */
        gp.costs = s->costs;
    }
    if (st == SD_OK) st = sd_gen_begin(sl->ctx, sl->smp, d, r->prompt, r->n_prompt, &gp, &sl->g);
    if (st != SD_OK) {
        if (err[0]) fprintf(stderr, "serve: request failed: %s: %s\n", sd_status_str(st), err);
        slot_complete(s, sl, st);
        return;
    }
    if (sd_gen_done(sl->g)) slot_complete(s, sl, SD_OK);
}

/* True if r is a stream whose client lags (see SRV_STREAM_AHEAD): marks it
 * paused, so that srv_stream_took wakes the scheduler. */
static bool req_lagging(srv_req *r) {
    pthread_mutex_lock(&r->mu);
    bool lag = r->stream && r->len > r->taken + SRV_STREAM_AHEAD;
    r->paused = lag;
    pthread_mutex_unlock(&r->mu);
    return lag;
}

void srv_stream_took(server *s, srv_req *r) {
    pthread_mutex_lock(&r->mu);
    bool was = r->paused && r->len <= r->taken + SRV_STREAM_AHEAD;
    if (was) r->paused = false;
    pthread_mutex_unlock(&r->mu);
    if (!was) return;
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* True if r was cancelled or its client hung up while its connection is
 * parked (a parked connection is not watched by libmicrohttpd). */
static bool req_cancelled(srv_req *r) {
    pthread_mutex_lock(&r->mu);
    if (!r->cancelled && r->parked && srv_client_gone(r->fd)) r->cancelled = true;
    bool c = r->cancelled;
    pthread_mutex_unlock(&r->mu);
    return c;
}

void *srv_sched_main(void *arg) {
    server *s = arg;
    const int S = s->n_slots;
    int *act = malloc((size_t)S * sizeof *act);
    int *grp = malloc((size_t)S * sizeof *grp);
    sd_batch *bs = malloc((size_t)S * sizeof *bs);
    sd_batch *gb = malloc((size_t)S * sizeof *gb);
    sd_ctx **gc = malloc((size_t)S * sizeof *gc);
    bool *ok = malloc((size_t)S * sizeof *ok);
    if (!act || !grp || !bs || !gb || !gc || !ok) {
        fprintf(stderr, "serve: out of memory in the scheduler\n");
        pthread_mutex_lock(&s->mu);
        s->sched_dead = true;
        pthread_mutex_unlock(&s->mu);
        free(act); free(grp); free(bs); free(gb); free(gc); free(ok);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->quit && s->q_len == 0 && s->n_active == 0) pthread_cond_wait(&s->cv, &s->mu);
        if (s->quit) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        /* assign queued requests to free slots */
        int n_new = 0;
        for (int i = 0; i < S && s->q_head; i++) {
            if (s->slots[i].req) continue;
            srv_req *r = s->q_head;
            s->q_head = r->next;
            if (!s->q_head) s->q_tail = NULL;
            s->q_len--;
            r->next = NULL;
            s->slots[i].req = r;
            s->n_active++;
            act[n_new++] = i;
        }
        pthread_mutex_unlock(&s->mu);
        for (int k = 0; k < n_new; k++) {
            srv_slot *sl = &s->slots[act[k]];
            if (req_cancelled(sl->req)) slot_complete(s, sl, SD_OK);
            else slot_start(s, sl);
        }
        /* prepare every active slot's verification batch */
        int n = 0, n_paused = 0;
        for (int i = 0; i < S; i++) {
            srv_slot *sl = &s->slots[i];
            if (!sl->req) continue;
            if (req_cancelled(sl->req)) {
                sd_gen_abort(sl->g, SD_ERR_INVALID_ARG);
                slot_complete(s, sl, SD_OK);
                continue;
            }
            if (req_lagging(sl->req)) {
                n_paused++;
                continue;
            }
            int pr = sd_gen_prepare(sl->g, &bs[n]);
            if (pr <= 0) {
                slot_complete(s, sl, pr < 0 ? (sd_status)pr : SD_OK);
                continue;
            }
            act[n] = i;
            grp[n] = -1;
            ok[n] = false;
            n++;
        }
        if (n == 0 && n_paused > 0) { /* only lagging streams: wait for a reader or news */
            pthread_mutex_lock(&s->mu);
            if (!s->quit && s->q_len == 0) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 50 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            }
            pthread_mutex_unlock(&s->mu);
        }
        /* one forward per group of equal layer range and outputs */
        for (int a = 0; a < n; a++) {
            if (grp[a] >= 0) continue;
            int m = 0;
            for (int b = a; b < n; b++) {
                if (grp[b] >= 0 || bs[b].layer_begin != bs[a].layer_begin || bs[b].out_flags != bs[a].out_flags)
                    continue;
                grp[b] = a;
                gb[m] = bs[b];
                gc[m] = s->slots[act[b]].ctx;
                m++;
            }
            sd_status rc = sd_decode_multi(gc, gb, m);
            int rows = 0;
            for (int k = 0; k < m; k++) rows += gb[k].n_tokens;
            pthread_mutex_lock(&s->mu);
            s->m.forwards++;
            s->m.forward_rows += (uint64_t)rows;
            s->m.forward_seqs += (uint64_t)m;
            pthread_mutex_unlock(&s->mu);
            for (int b = a; b < n; b++) {
                if (grp[b] != a) continue;
                if (rc == SD_OK) ok[b] = true;
                else {
                    srv_slot *sl = &s->slots[act[b]];
                    sd_gen_abort(sl->g, rc);
                    slot_complete(s, sl, rc);
                }
            }
        }
        /* verify and accept */
        for (int a = 0; a < n; a++) {
            if (!ok[a]) continue;
            srv_slot *sl = &s->slots[act[a]];
            sd_status rc = sd_gen_finish(sl->g);
            if (rc != SD_OK) slot_complete(s, sl, rc);
            else if (sd_gen_done(sl->g)) slot_complete(s, sl, SD_OK);
        }
    }
    /* shutting down: end every request still here */
    for (int i = 0; i < S; i++)
        if (s->slots[i].req) {
            sd_gen_abort(s->slots[i].g, SD_ERR_INVALID_ARG);
            slot_complete(s, &s->slots[i], SD_ERR_INVALID_ARG);
        }
    pthread_mutex_lock(&s->mu);
    while (s->q_head) {
        srv_req *r = s->q_head;
        s->q_head = r->next;
        s->q_len--;
        pthread_mutex_lock(&r->mu);
        r->status = SD_ERR_INVALID_ARG;
        r->done = true;
        void *conn = srv_req_unpark(r);
        pthread_mutex_unlock(&r->mu);
        req_resume(r, conn);
        srv_req_unref(r);
    }
    s->q_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    free(act); free(grp); free(bs); free(gb); free(gc); free(ok);
    return NULL;
}

int srv_enqueue(server *s, srv_req *r) {
    pthread_mutex_lock(&s->mu);
    if (s->quit || s->sched_dead) {
        pthread_mutex_unlock(&s->mu);
        return -2;
    }
    int free_slots = s->n_slots - s->n_active;
    if (s->q_len - free_slots >= s->cfg->n_queue) {
        s->m.rejected++;
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    srv_req_ref(r); /* the queue's / slot's reference */
    r->t_arrive = srv_now_s();
    if (s->q_tail) s->q_tail->next = r;
    else s->q_head = r;
    s->q_tail = r;
    s->q_len++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}
