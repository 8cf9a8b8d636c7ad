/*
 * http.c - the HTTP side of `specdec serve` (libmicrohttpd, event-driven:
 * a small pool of epoll threads, no thread per connection; JSON with
 * jansson): routing, request validation, chat templates, responses (plain
 * JSON or server-sent events), start-up and shutdown.
 *
 * A generation request: the body is collected (at most max_body bytes,
 * else 413; all of it within --read-timeout of the headers, else 408),
 * parsed and validated (4xx with a JSON error body), tokenized and only
 * then queued (503 + Retry-After when the queue is full): slots and queue
 * count requests, never sockets. Non-streaming requests park their
 * connection until the generation is done and answer with one JSON object;
 * streaming requests answer with a chunked response whose reader callback
 * parks the connection whenever it has nothing to send and sends
 * `data: {...}\n\n` events, then `data: [DONE]\n\n`. The scheduler resumes a
 * parked connection when there is output, and polls its socket meanwhile:
 * a client that went away cancels its generation, which frees the slot at
 * the scheduler's next step. A client that stops reading its response is
 * dropped after --write-timeout, and its generation cancelled.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "model/gguf.h"
#include "server/request.h"
#include "server/srv.h"

/* ------------------------------------------------------------ responses */

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, char *body,
                                 size_t len, bool retry_after) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (retry_after) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Sends j (stolen) as the body. */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *j, bool retry_after) {
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body) return MHD_NO;
    return send_text(c, status, "application/json", body, strlen(body), retry_after);
}

static json_t *error_body(unsigned status, const char *msg) {
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status == 503 ? "unavailable_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    return json_pack("{s:{s:s, s:s, s:i}}", "error", "message", msg, "type", type, "code", (int)status);
}

static enum MHD_Result send_error(server *s, struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result send_error(server *s, struct MHD_Connection *c, unsigned status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (status >= 400 && status < 500) {
        pthread_mutex_lock(&s->mu);
        s->m.bad++;
        pthread_mutex_unlock(&s->mu);
    }
    return send_json(c, status, error_body(status, msg), status == 503);
}

/* ------------------------------------------------------------ connections */

typedef struct gen_opts {
    bool chat, stream;
    int64_t id;
} gen_opts;

/* Per-request state of a connection (MHD's con_cls). */
typedef struct conn {
    char *body;
    size_t len, cap;
    bool too_big;
    bool answered;   /* a response was queued before the body was read */
    double t_start;  /* srv_now_s() when the headers were in          */
    srv_req *req;    /* the connection's reference, once admitted     */
    bool stream;     /* req answers with server-sent events           */
    gen_opts go;     /* req's response settings                       */
} conn;

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* srv_req.resume: the scheduler has output for a parked connection. */
static void conn_resume(void *c) { MHD_resume_connection(c); }

/* Suspends c until r has news (r->mu held): the scheduler resumes it
 * (srv_req_unpark + r->resume) and polls the client's socket meanwhile. */
static void park(srv_req *r, struct MHD_Connection *c) {
    r->parked = c;
    MHD_suspend_connection(c);
}

/* End of the text a stream may send now: all of it once done, else short of
 * the bytes that could still start a stop string, backed off to a UTF-8
 * character boundary. */
static size_t sendable(const srv_req *r) {
    if (r->done || r->stop_hold == 0) return r->len;
    size_t to = r->len > r->stop_hold ? r->len - r->stop_hold : 0;
    while (to > 0 && to < r->len && ((unsigned char)r->text[to] & 0xC0) == 0x80) to--;
    return to;
}

/* ------------------------------------------------------------ request parsing */

/* The settings a request is checked against (request.h). */
static void parse_env(server *s, srv_parse_env *e) {
    e->cfg = s->cfg;
    e->vocab = s->vocab;
    e->n_ctx = s->n_ctx;
    e->n_vocab = s->info.n_vocab;
    e->tmpl = s->tmpl;
    e->default_method = s->default_method;
    memcpy(e->draft_max, s->method_budget, sizeof e->draft_max);
    pthread_mutex_lock(&s->mu);
    uint64_t k = ++s->next_id;
    pthread_mutex_unlock(&s->mu);
    e->seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull + k;
}

/* ------------------------------------------------------------ generation responses */

static const char *finish_reason(const srv_req *r) { return r->hit_length ? "length" : "stop"; }


static json_t *usage_json(const srv_req *r) {
    return json_pack("{s:i, s:i, s:i, s:I, s:I, s:I, s:s}", "prompt_tokens", r->n_prompt, "completion_tokens",
                     r->n_gen, "total_tokens", r->n_prompt + r->n_gen, "drafted_tokens", (json_int_t)r->st.drafted,
                     "accepted_tokens", (json_int_t)r->st.accepted, "verify_steps", (json_int_t)r->st.steps,
                     "spec", srv_methods[r->method]);
}

/* One response object (chunk: a streaming event with text delta). */
static json_t *gen_json(server *s, const gen_opts *go, const srv_req *r, const char *text, size_t len, bool chunk,
                        bool final, bool first) {
    char id[48];
    snprintf(id, sizeof id, "%s-%lld", go->chat ? "chatcmpl" : "cmpl", (long long)go->id);
    json_t *choice;
    json_t *fr = final ? json_string(finish_reason(r)) : json_null();
    if (go->chat) {
        json_t *m = json_object();
        if (!chunk || first) json_object_set_new(m, "role", json_string("assistant"));
        if (!chunk || len > 0 || !final) json_object_set_new(m, "content", json_stringn(text, len));
        choice = json_pack("{s:i, s:o, s:o, s:n}", "index", 0, chunk ? "delta" : "message", m, "finish_reason", fr,
                           "logprobs");
    } else {
        choice = json_pack("{s:i, s:s%, s:n, s:o}", "index", 0, "text", text, len, "logprobs", "finish_reason", fr);
    }
    const char *object = go->chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", id, "object", object, "created",
                          (json_int_t)time(NULL), "model", s->model_name, "choices", choice);
    if (o && final) json_object_set_new(o, "usage", usage_json(r));
    return o;
}

/* The streaming response's state (owned by the response). */
typedef struct stream_st {
    server *s;
    srv_req *req;          /* a reference */
    struct MHD_Connection *c;
    gen_opts go;
    srv_buf pend;          /* bytes formatted, not yet handed to MHD */
    size_t pend_off;
    size_t sent;           /* text bytes already in events */
    int phase;             /* 0 text, 1 final event out, 2 [DONE] out */
    bool first;
} stream_st;

static void event(stream_st *ss, json_t *o) {
    char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!t) {
        ss->pend.oom = true;
        return;
    }
    srv_buf_add(&ss->pend, "data: ", 6);
    srv_buf_add(&ss->pend, t, strlen(t));
    srv_buf_add(&ss->pend, "\n\n", 2);
    free(t);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    stream_st *ss = cls;
    (void)pos;
    while (ss->pend_off >= ss->pend.len) {
        ss->pend.len = ss->pend_off = 0;
        if (ss->pend.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (ss->phase == 2) return MHD_CONTENT_READER_END_OF_STREAM;
        if (ss->phase == 1) {
            srv_buf_add(&ss->pend, "data: [DONE]\n\n", 14);
            ss->phase = 2;
            continue;
        }
        srv_req *r = ss->req;
        pthread_mutex_lock(&r->mu);
        size_t from = ss->sent, to = sendable(r);
        bool done = r->done;
        if (!done && to <= from) { /* nothing new: wait for the scheduler */
            park(r, ss->c);
            pthread_mutex_unlock(&r->mu);
            return 0;
        }
        json_t *o = NULL;
        if (done && r->status != SD_OK) {
            o = json_pack("{s:{s:s, s:s}}", "error", "message", sd_status_str(r->status), "type", "server_error");
            ss->phase = 1;
        } else if (to > from || done) {
            o = gen_json(ss->s, &ss->go, r, r->text ? r->text + from : "", to - from, true, done, ss->first);
            ss->first = false;
            ss->sent = to;
            r->taken = to;
            if (done) ss->phase = 1;
        }
        pthread_mutex_unlock(&r->mu);
        srv_stream_took(ss->s, r);
        if (o) event(ss, o);
    }
    size_t k = ss->pend.len - ss->pend_off;
    if (k > max) k = max;
    memcpy(buf, ss->pend.p + ss->pend_off, k);
    ss->pend_off += k;
    return (ssize_t)k;
}

static void stream_free(void *cls) {
    stream_st *ss = cls;
    srv_req_cancel(ss->req); /* a no-op once done */
    srv_req_unref(ss->req);
    free(ss->pend.p);
    free(ss);
}

/* The answer of an admitted plain (non-streaming) request: once the
 * scheduler is done with it, one JSON object; until then the connection is
 * parked and this runs again when the scheduler resumes it. */
static enum MHD_Result answer_plain(server *s, struct MHD_Connection *c, conn *cn) {
    srv_req *r = cn->req;
    pthread_mutex_lock(&r->mu);
    if (!r->done) {
        park(r, c);
        pthread_mutex_unlock(&r->mu);
        return MHD_YES;
    }
    cn->answered = true;
    bool gone = r->cancelled;
    int status = r->status;
    json_t *o = NULL;
    if (!gone && status == SD_OK) o = gen_json(s, &cn->go, r, r->text ? r->text : "", r->len, false, true, true);
    pthread_mutex_unlock(&r->mu);
    if (gone) return MHD_NO; /* the client went away: close */
    if (status != SD_OK) return send_error(s, c, 500, "generation failed: %s", sd_status_str(status));
    return send_json(c, 200, o, false);
}

static enum MHD_Result handle_gen(server *s, struct MHD_Connection *c, conn *cn, bool chat) {
    gen_opts go = {.chat = chat};
    char msg[512] = "";
    bool stream = false;
    srv_req *r = srv_req_new();
    if (!r) return send_error(s, c, 500, "out of memory");
    srv_parse_env env;
    parse_env(s, &env);
    unsigned st = srv_parse_request(&env, cn->body, cn->len, chat, &stream, r, msg, sizeof msg);
    if (st) {
        srv_req_unref(r);
        return send_error(s, c, st, "%s", msg);
    }
    go.stream = stream;
    pthread_mutex_lock(&s->mu);
    go.id = (int64_t)++s->next_id;
    pthread_mutex_unlock(&s->mu);
    r->stream = stream;
    r->resume = conn_resume;
    r->fd = conn_fd(c);
    int q = srv_enqueue(s, r);
    if (q < 0) {
        srv_req_unref(r);
        return send_error(s, c, 503, q == -1 ? "the server is busy (queue full), retry later" : "shutting down");
    }
    cn->req = r; /* the connection's reference: cancelled when it ends */
    cn->stream = stream;
    cn->go = go;
    /* from here on the connection's timeout is the write timeout: it runs
     * only while a response waits for the client (a parked connection has
     * none), so generation time does not count */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->cfg->write_timeout_s);
    if (!stream) return answer_plain(s, c, cn);
    cn->answered = true;
    stream_st *ss = calloc(1, sizeof *ss);
    if (!ss) return MHD_NO;
    ss->s = s;
    ss->c = c;
    ss->go = go;
    ss->first = true;
    srv_req_ref(r);
    ss->req = r;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, ss, stream_free);
    if (!resp) {
        stream_free(ss);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result rc = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* ------------------------------------------------------------ routing */

/* Constant-time comparison of the Authorization header with the key. */
static bool authorized(const server *s, struct MHD_Connection *c) {
    const char *key = s->cfg->api_key;
    if (!key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    size_t kl = strlen(key), hl = strlen(h);
    unsigned char diff = (unsigned char)(kl != hl);
    for (size_t i = 0; i < kl; i++) diff |= (unsigned char)(key[i] ^ (i < hl ? h[i] : 0));
    return diff == 0;
}

/* 408 for a body still incomplete after --read-timeout. libmicrohttpd
 * 0.9.75 cannot queue a response before the whole body is in (it reports
 * an internal error), so these few bytes go straight to the socket (it is
 * non-blocking; a client whose buffer is full gets only the close) and the
 * connection is then closed. */
static void send_408(server *s, struct MHD_Connection *c) {
    char msg[128], head[256];
    snprintf(msg, sizeof msg, "the request was not received within %d s", s->cfg->read_timeout_s);
    json_t *j = error_body(408, msg);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int fd = conn_fd(c);
    if (body && fd >= 0) {
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         strlen(body));
        if (send(fd, head, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == n)
            (void)!send(fd, body, strlen(body), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    free(body);
}

/* Counts connections (the gauge of /metrics). */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    server *s = cls;
    (void)socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        int fd = conn_fd(c), sz = SRV_SNDBUF;
        if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }
    pthread_mutex_lock(&s->mu);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) s->m.conn_opened++;
    else s->m.conn_closed++;
    pthread_mutex_unlock(&s->mu);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    server *s = cls;
    (void)version;
    conn *cn = *con_cls;
    bool post = !strcmp(method, "POST");
    if (!cn) {
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        *con_cls = cn;
        cn->t_start = srv_now_s();
        pthread_mutex_lock(&s->mu);
        s->m.requests++;
        pthread_mutex_unlock(&s->mu);
        if (post) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl) {
                char *end;
                errno = 0;
                unsigned long long v = strtoull(cl, &end, 10);
                if (errno || *end || v > (unsigned long long)s->cfg->max_body) {
                    cn->answered = true;
                    return send_error(s, c, 413, "the body is larger than %ld bytes", s->cfg->max_body);
                }
            }
        }
        /* answer on the next call: a response queued on this first call
         * (before MHD knows the body is read) closes the connection */
        return MHD_YES;
    }
    if (cn->req && !cn->stream && !cn->answered) return answer_plain(s, c, cn); /* resumed */
    if (post && *upload_size > 0) {
        /* a body trickling in (each byte restarts the idle timeout) must
         * still be complete within --read-timeout seconds of its headers */
        if (!cn->answered && srv_now_s() - cn->t_start > (double)s->cfg->read_timeout_s) {
            cn->answered = true;
            pthread_mutex_lock(&s->mu);
            s->m.read_timeouts++;
            pthread_mutex_unlock(&s->mu);
            *upload_size = 0;
            send_408(s, c);
            return MHD_NO; /* close */
        }
        if (!cn->answered && !cn->too_big) {
            if (cn->len + *upload_size > (size_t)s->cfg->max_body) {
                cn->too_big = true;
            } else {
                srv_buf b = {.p = cn->body, .len = cn->len, .cap = cn->cap};
                srv_buf_add(&b, upload, *upload_size);
                if (b.oom) cn->too_big = true;
                cn->body = b.p;
                cn->len = b.len;
                cn->cap = b.cap;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (cn->answered) return MHD_YES;
    if (cn->too_big) return send_error(s, c, 413, "the body is larger than %ld bytes", s->cfg->max_body);
    bool get = !strcmp(method, "GET");
    if (!strcmp(url, "/health")) {
        if (!get) return send_error(s, c, 405, "use GET");
        return send_json(c, 200, json_pack("{s:s}", "status", "ok"), false);
    }
    if (!authorized(s, c)) return send_error(s, c, 401, "invalid or missing API key");
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/models")) {
        if (!get) return send_error(s, c, 405, "use GET");
        return send_json(c, 200,
                         json_pack("{s:s, s:[{s:s, s:s, s:I, s:s, s:{s:i, s:i, s:i}}]}", "object", "list", "data",
                                   "id", s->model_name, "object", "model", "created", (json_int_t)s->created,
                                   "owned_by", "specdec", "meta", "n_vocab", s->info.n_vocab, "n_ctx", s->n_ctx,
                                   "n_parallel", s->n_slots),
                         false);
    }
    if (!strcmp(url, "/metrics")) {
        if (!get) return send_error(s, c, 405, "use GET");
        srv_buf b = {0};
        srv_metrics_text(s, &b);
        if (b.oom || !b.p) {
            free(b.p);
            return MHD_NO;
        }
        return send_text(c, 200, "text/plain; version=0.0.4", b.p, b.len, false);
    }
    bool is_chat = !strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions");
    bool is_cmpl = !strcmp(url, "/v1/completions") || !strcmp(url, "/completions");
    if (is_chat || is_cmpl) {
        if (!post) return send_error(s, c, 405, "use POST");
        return handle_gen(s, c, cn, is_chat);
    }
    return send_error(s, c, 404, "no such endpoint: %s %s", method, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    server *s = cls;
    conn *cn = *con_cls;
    if (!cn) return;
    /* a kept-alive connection waits for its next request on the read clock */
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->cfg->read_timeout_s);
    if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED) {
        pthread_mutex_lock(&s->mu);
        if (cn->req) s->m.write_timeouts++; /* admitted: its response was not read */
        else s->m.read_timeouts++;
        pthread_mutex_unlock(&s->mu);
    }
    if (cn->req) {
        srv_req *r = cn->req;
        pthread_mutex_lock(&r->mu);
        r->fd = -1; /* the socket closes after this: never poll it again */
        r->parked = NULL;
        if (!r->done) r->cancelled = true;
        pthread_mutex_unlock(&r->mu);
        srv_req_unref(r);
    }
    free(cn->body);
    free(cn);
    *con_cls = NULL;
}

/* ------------------------------------------------------------ start-up */

static int detect_template(const char *model_path, const char *forced) {
    if (forced) {
        if (!strcmp(forced, "chatml")) return SRV_TMPL_CHATML;
        if (!strcmp(forced, "llama2")) return SRV_TMPL_LLAMA2;
        if (!strcmp(forced, "llama3")) return SRV_TMPL_LLAMA3;
        return -1;
    }
    sd_gguf *g = NULL;
    if (sd_gguf_open(model_path, &g, NULL, 0) != SD_OK) return SRV_TMPL_NONE;
    sd_gguf_str t;
    int r = SRV_TMPL_NONE;
    if (sd_gguf_get_str(g, "tokenizer.chat_template", &t, NULL, 0) == SD_OK && t.ptr) {
        char *z = strndup(t.ptr, t.len);
        if (z) {
            if (strstr(z, "<|im_start|>")) r = SRV_TMPL_CHATML;
            else if (strstr(z, "<|start_header_id|>")) r = SRV_TMPL_LLAMA3;
            else if (strstr(z, "[INST]")) r = SRV_TMPL_LLAMA2;
            free(z);
        }
    }
    sd_gguf_close(g);
    return r;
}

int srv_run(srv_config *cfg) {
    int rc = 1;
    server *s = calloc(1, sizeof *s);
    if (!s) return 1;
    s->cfg = cfg;
    s->created = (long)time(NULL);
    bool mu_ok = false, sched_ok = false;
    struct MHD_Daemon *d = NULL;
    const char *mpath = cfg->model_path;
    if ((s->default_method = srv_method_index(cfg->method)) < 0) {
        char list[256];
        srv_method_list(list, sizeof list);
        fprintf(stderr, "error: unknown --spec method '%s' (%s)\n", cfg->method, list);
        goto done;
    }
    for (int i = 0; i < SRV_N_METHODS; i++) s->method_budget[i] = sd_spec_method_budget(srv_methods[i], &cfg->spec);
    if ((s->tmpl = detect_template(mpath, cfg->chat_template)) < 0) {
        fprintf(stderr, "error: --chat-template expects chatml, llama2 or llama3\n");
        goto done;
    }
    {
        char err[512] = "";
        sd_status lst = sd_model_load(mpath, &cfg->mp, &s->model, err, sizeof err);
        if (lst != SD_OK) {
            fprintf(stderr, "error: cannot load model '%s': %s (%s)\n", mpath, err, sd_status_str(lst));
            goto done;
        }
    }
    s->vocab = sd_model_vocab(s->model);
    sd_model_get_info(s->model, &s->info);
    const char *base = strrchr(mpath, '/');
    snprintf(s->model_name, sizeof s->model_name, "%s", cfg->alias ? cfg->alias : base ? base + 1 : mpath);
    sd_status st = sd_threadpool_new(cfg->n_threads, &s->pool);
    if (st != SD_OK) goto fail_st;
    s->n_slots = cfg->n_parallel;
    if (!(s->slots = calloc((size_t)s->n_slots, sizeof *s->slots))) goto done;
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = cfg->n_ctx;
    cp.pool = s->pool;
    cp.attn_compat = cfg->attn_compat;
    for (int i = 0; i < s->n_slots; i++)
        if ((st = sd_ctx_new(s->model, &cp, &s->slots[i].ctx)) != SD_OK) goto fail_st;
    s->n_ctx = sd_ctx_n_ctx(s->slots[0].ctx);
    {
        char err[512] = "";
        st = sd_drafter_new_ngram_cache(cfg->spec.ngram_static, cfg->ngram_cache, &s->ngram_owner, err, sizeof err);
        if (st != SD_OK) {
            fprintf(stderr, "error: --ngram-cache / --ngram-static: %s: %s\n", sd_status_str(st), err);
            goto done;
        }
    }
    if (cfg->draft_at_start) { /* fail early on a bad -md */
        char err[512] = "";
        sd_status lst = sd_model_load(cfg->draft_path, &cfg->mp, &s->draft, err, sizeof err);
        if (lst != SD_OK) {
            fprintf(stderr, "error: cannot load model '%s': %s (%s)\n", cfg->draft_path, err, sd_status_str(lst));
            goto done;
        }
    }
    if (pthread_mutex_init(&s->mu, NULL) != 0) goto done;
    if (pthread_cond_init(&s->cv, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        goto done;
    }
    mu_ok = true;
    /* SIGTERM / SIGINT are taken by sigwait below: block them in every thread */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t sched;
    if (pthread_create(&sched, NULL, srv_sched_main, s) != 0) goto done;
    sched_ok = true;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        fprintf(stderr, "error: --host expects an IPv4 address, got '%s'\n", cfg->host);
        goto done;
    }
    /* every connection is a file descriptor: make room for --max-conn of
     * them (the soft limit is often 1024; the hard one much higher) */
    unsigned max_conn = (unsigned)cfg->max_conn;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < max_conn + 64u) {
        rlim_t want = max_conn + 64u;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) want = rl.rlim_max;
        rl.rlim_cur = want;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < max_conn + 64u) {
            max_conn = rl.rlim_cur > 128 ? (unsigned)rl.rlim_cur - 64u : 64u;
            fprintf(stderr, "serve: the open-file limit (%llu) allows %u connections, not %d\n",
                    (unsigned long long)rl.rlim_cur, max_conn, cfg->max_conn);
        }
    }
    /* Event-driven: a few threads poll every connection (epoll); a request
     * waiting for its generation is suspended, not a blocked thread. A
     * connection's memory pool is 64 KiB: above 32 KiB libmicrohttpd maps it
     * (mmap) so that it goes back to the system when the connection closes. */
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                             MHD_USE_ERROR_LOG,
                         (uint16_t)cfg->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->read_timeout_s,
                         MHD_OPTION_CONNECTION_LIMIT, max_conn, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                         (unsigned)cfg->max_conn_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                         MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "error: cannot listen on %s:%d\n", cfg->host, cfg->port);
        goto done;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    int port = di ? di->port : cfg->port;
    fprintf(stderr, "serve: listening on http://%s:%d (%d slots, %d cells each, spec %s, chat template %s)\n",
            cfg->host, port, s->n_slots, s->n_ctx, cfg->method,
            s->tmpl == SRV_TMPL_CHATML   ? "chatml"
            : s->tmpl == SRV_TMPL_LLAMA2 ? "llama2"
            : s->tmpl == SRV_TMPL_LLAMA3 ? "llama3"
                                         : "none");
    if (cfg->port_file) {
        FILE *f = fopen(cfg->port_file, "w");
        if (f) {
            fprintf(f, "%d\n", port);
            fclose(f);
        }
    }
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "serve: signal %d, shutting down\n", sig);
    rc = 0;
    goto done;
fail_st:
    fprintf(stderr, "error: %s\n", sd_status_str(st));
done:
    if (sched_ok) {
        pthread_mutex_lock(&s->mu);
        s->quit = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(sched, NULL);
    }
    if (d) MHD_stop_daemon(d);
    if (s->ngram_owner && cfg->ngram_cache) {
        char err[256] = "";
        st = sd_drafter_ngram_cache_save(s->ngram_owner, err, sizeof err);
        if (st != SD_OK) fprintf(stderr, "serve: cannot save the n-gram cache: %s %s\n", sd_status_str(st), err);
        else fprintf(stderr, "serve: n-gram cache saved to %s\n", cfg->ngram_cache);
    }
    for (int i = 0; s->slots && i < s->n_slots; i++) {
        for (int k = 0; k < SRV_N_METHODS; k++) sd_drafter_free(s->slots[i].dr[k]);
        sd_ctx_free(s->slots[i].ctx);
    }
    free(s->slots);
    sd_drafter_free(s->ngram_owner);
    sd_cost_table_free(s->costs);
    sd_heads_free(s->heads);
    sd_model_free(s->draft);
    sd_threadpool_free(s->pool);
    sd_model_free(s->model);
    if (mu_ok) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
    }
    free(s);
    return rc;
}
