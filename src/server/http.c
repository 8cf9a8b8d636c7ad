/*
 * http.c - the HTTP side of `specdec serve` (libmicrohttpd, one thread per
 * connection; JSON with jansson): routing, request validation, chat
 * templates, responses (plain JSON or server-sent events), start-up and
 * shutdown.
 *
 * A generation request: the body is collected (at most max_body bytes,
 * else 413), parsed and validated (4xx with a JSON error body), tokenized
 * and queued (503 + Retry-After when the queue is full). Non-streaming
 * requests wait in the handler and answer with one JSON object; streaming
 * requests answer with a chunked response whose reader callback waits for
 * text and sends `data: {...}\n\n` events, then `data: [DONE]\n\n`. While
 * waiting, both poll the client's socket: a client that went away cancels
 * its generation, which frees the slot at the scheduler's next step.
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "server/srv.h"

/* ------------------------------------------------------------ buffers */

void srv_buf_add(srv_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap + n + 1) * 2;
        char *t = realloc(b->p, cap);
        if (!t) {
            b->oom = true;
            return;
        }
        b->p = t;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void srv_buf_printf(srv_buf *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        srv_buf_add(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    srv_buf_add(b, big, (size_t)n);
    free(big);
}

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

/* Per-request state of a connection (MHD's con_cls). */
typedef struct conn {
    char *body;
    size_t len, cap;
    bool too_big;
    bool answered;   /* a response was queued before the body was read */
    double t_start;  /* srv_now_s() when the headers were in          */
    srv_req *req;    /* the connection's reference, for cancelling    */
} conn;

/* True if the peer of fd closed the connection. */
static bool client_gone(int fd) {
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

/* The idle timeout (--timeout) is for clients that stall while sending a
 * request; while the server generates it is off (0), and turning it back on
 * restarts its clock (libmicrohttpd refreshes the last activity when a
 * connection's timeout goes from 0 to non-zero). */
static void gen_timeout(server *s, struct MHD_Connection *c, bool on) {
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, on ? (unsigned)s->cfg->timeout_s : 0u);
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
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

/* Waits (r->mu held) until r has more than `have` bytes of sendable text or is done;
 * marks r cancelled when the client goes away (the scheduler then drops it
 * at its next step) and returns false. A stopping server ends every request
 * (done with an error status). */
static bool wait_output(srv_req *r, size_t have, int fd) {
    while (!r->done && sendable(r) <= have) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        if (!r->done && sendable(r) <= have && client_gone(fd)) {
            r->cancelled = true; /* the scheduler drops it at its next step */
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------ request parsing */

typedef struct gen_opts {
    bool chat, stream;
    int64_t id;
} gen_opts;

/* Typed optional fields: 0 absent, 1 present, -1 wrong type (msg set). */
static int get_number(json_t *o, const char *k, double *v, char *msg, size_t n) {
    json_t *x = json_object_get(o, k);
    if (!x || json_is_null(x)) return 0;
    if (!json_is_number(x)) {
        snprintf(msg, n, "'%s' must be a number", k);
        return -1;
    }
    *v = json_number_value(x);
    if (!isfinite(*v)) {
        snprintf(msg, n, "'%s' must be finite", k);
        return -1;
    }
    return 1;
}

static int get_int(json_t *o, const char *k, long long lo, long long hi, long long *v, char *msg, size_t n) {
    json_t *x = json_object_get(o, k);
    if (!x || json_is_null(x)) return 0;
    if (!json_is_integer(x)) {
        snprintf(msg, n, "'%s' must be an integer", k);
        return -1;
    }
    *v = json_integer_value(x);
    if (*v < lo || *v > hi) {
        snprintf(msg, n, "'%s' must be in [%lld, %lld], got %lld", k, lo, hi, *v);
        return -1;
    }
    return 1;
}

static int get_bool(json_t *o, const char *k, bool *v, char *msg, size_t n) {
    json_t *x = json_object_get(o, k);
    if (!x || json_is_null(x)) return 0;
    if (!json_is_boolean(x)) {
        snprintf(msg, n, "'%s' must be a boolean", k);
        return -1;
    }
    *v = json_is_true(x);
    return 1;
}

static bool in_range(double v, double lo, double hi) { return v >= lo && v <= hi; }

/* Renders chat messages with the template; NULL + msg on bad input. */
static char *render_chat(int tmpl, json_t *msgs, char *msg, size_t n) {
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        snprintf(msg, n, "'messages' must be a non-empty array");
        return NULL;
    }
    srv_buf b = {0};
    const char *sys = NULL;
    size_t i;
    json_t *m;
    bool first_user = true;
    json_array_foreach(msgs, i, m) {
        json_t *jr = json_object_get(m, "role"), *jc = json_object_get(m, "content");
        if (!json_is_object(m) || !json_is_string(jr) || !json_is_string(jc)) {
            snprintf(msg, n, "messages[%zu] must be an object with string 'role' and 'content'", i);
            free(b.p);
            return NULL;
        }
        const char *role = json_string_value(jr), *content = json_string_value(jc);
        if (strlen(content) != json_string_length(jc)) {
            snprintf(msg, n, "messages[%zu].content contains a NUL character", i);
            free(b.p);
            return NULL;
        }
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")) {
            snprintf(msg, n, "messages[%zu].role must be system, user or assistant", i);
            free(b.p);
            return NULL;
        }
        switch (tmpl) {
        case SRV_TMPL_CHATML:
            srv_buf_printf(&b, "<|im_start|>%s\n%s<|im_end|>\n", role, content);
            break;
        case SRV_TMPL_LLAMA3:
            srv_buf_printf(&b, "<|start_header_id|>%s<|end_header_id|>\n\n%s<|eot_id|>", role, content);
            break;
        default: /* Llama 2: the system prompt goes into the first [INST] */
            if (!strcmp(role, "system")) sys = content;
            else if (!strcmp(role, "user")) {
                if (!first_user) srv_buf_printf(&b, "<s>");
                if (sys && first_user) srv_buf_printf(&b, "[INST] <<SYS>>\n%s\n<</SYS>>\n\n%s [/INST]", sys, content);
                else srv_buf_printf(&b, "[INST] %s [/INST]", content);
                first_user = false;
            } else {
                srv_buf_printf(&b, " %s </s>", content);
            }
        }
    }
    if (tmpl == SRV_TMPL_CHATML) srv_buf_printf(&b, "<|im_start|>assistant\n");
    else if (tmpl == SRV_TMPL_LLAMA3) srv_buf_printf(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    if (b.oom || !b.p) {
        snprintf(msg, n, "out of memory");
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* Fills r from the request body; 0 or an HTTP status with msg. */
static unsigned parse_gen(server *s, json_t *j, const gen_opts *go, srv_req *r, char *msg, size_t n) {
    const srv_config *cfg = s->cfg;
    json_t *x;
    /* text in */
    char *text = NULL;
    bool special = false;
    if (go->chat) {
        if (s->tmpl == SRV_TMPL_NONE) {
            snprintf(msg, n, "the model has no supported chat template (tokenizer.chat_template is absent or "
                             "not ChatML, Llama 2 or Llama 3; start the server with --chat-template)");
            return 400;
        }
        x = json_object_get(j, "messages");
        if (!x) {
            snprintf(msg, n, "'messages' is required");
            return 400;
        }
        if (!(text = render_chat(s->tmpl, x, msg, n))) return 400;
        special = true;
    } else {
        x = json_object_get(j, "prompt");
        if (!x) {
            snprintf(msg, n, "'prompt' is required");
            return 400;
        }
        if (json_is_array(x) && json_array_size(x) == 1) x = json_array_get(x, 0);
        if (!json_is_string(x)) {
            snprintf(msg, n, "'prompt' must be a string");
            return 400;
        }
        if (strlen(json_string_value(x)) != json_string_length(x)) {
            snprintf(msg, n, "'prompt' contains a NUL character");
            return 400;
        }
        text = strdup(json_string_value(x));
        if (!text) {
            snprintf(msg, n, "out of memory");
            return 500;
        }
    }
    if ((x = json_object_get(j, "model")) && !json_is_null(x) && !json_is_string(x)) {
        free(text);
        snprintf(msg, n, "'model' must be a string");
        return 400;
    }
    if ((x = json_object_get(j, "stop")) && !json_is_null(x)) { /* a string or up to 4 strings */
        json_t *one = json_is_string(x) ? x : NULL;
        size_t ns = one ? 1 : json_is_array(x) ? json_array_size(x) : (size_t)-1;
        if (ns > SRV_MAX_STOP) {
            free(text);
            snprintf(msg, n, "'stop' must be a string or an array of at most %d strings", SRV_MAX_STOP);
            return 400;
        }
        for (size_t i = 0; i < ns; i++) {
            json_t *e = one ? one : json_array_get(x, i);
            size_t el = json_is_string(e) ? json_string_length(e) : 0;
            if (!json_is_string(e) || el == 0 || el > 64 || strlen(json_string_value(e)) != el) {
                free(text);
                snprintf(msg, n, "'stop' strings must be 1..64 bytes without NUL");
                return 400;
            }
            if (!(r->stop[r->n_stop] = strdup(json_string_value(e)))) {
                free(text);
                snprintf(msg, n, "out of memory");
                return 500;
            }
            r->n_stop++;
            if (el - 1 > r->stop_hold) r->stop_hold = el - 1;
        }
    }
    /* sampling and limits */
    double v;
    long long iv;
    int g;
    sd_sampler_params sp = cfg->o.sp;
    long long n_predict = go->chat ? -1 : 16;
    unsigned st = 400;
    if ((g = get_int(j, "max_tokens", 0, 1 << 30, &iv, msg, n)) < 0) goto bad;
    if (g > 0) n_predict = iv;
    if ((g = get_int(j, "max_completion_tokens", 0, 1 << 30, &iv, msg, n)) < 0) goto bad;
    if (g > 0) n_predict = iv;
    if ((g = get_int(j, "n_predict", -1, 1 << 30, &iv, msg, n)) < 0) goto bad;
    if (g > 0) n_predict = iv;
    if ((g = get_number(j, "temperature", &v, msg, n)) < 0) goto bad;
    if (g > 0) {
        if (!in_range(v, 0, 100)) {
            snprintf(msg, n, "'temperature' must be in [0, 100]");
            goto bad;
        }
        sp.temp = (float)v;
    }
    if ((g = get_number(j, "top_p", &v, msg, n)) < 0) goto bad;
    if (g > 0) {
        if (!in_range(v, 0, 1)) {
            snprintf(msg, n, "'top_p' must be in [0, 1]");
            goto bad;
        }
        sp.top_p = (float)v;
    }
    if ((g = get_number(j, "min_p", &v, msg, n)) < 0) goto bad;
    if (g > 0) {
        if (!in_range(v, 0, 1)) {
            snprintf(msg, n, "'min_p' must be in [0, 1]");
            goto bad;
        }
        sp.min_p = (float)v;
    }
    if ((g = get_int(j, "top_k", 0, s->info.n_vocab, &iv, msg, n)) < 0) goto bad;
    if (g > 0) sp.top_k = (int)iv;
    if ((g = get_int(j, "seed", -1, INT64_MAX, &iv, msg, n)) < 0) goto bad;
    if (g > 0 && iv >= 0) sp.seed = (uint64_t)iv;
    else if (!cfg->o.seed_set) {
        pthread_mutex_lock(&s->mu);
        uint64_t k = ++s->next_id;
        pthread_mutex_unlock(&s->mu);
        sp.seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull + k;
    }
    bool ignore_eos = cfg->o.ignore_eos;
    if (get_bool(j, "ignore_eos", &ignore_eos, msg, n) < 0) goto bad;
    if ((g = get_int(j, "n", 1, 1, &iv, msg, n)) < 0) goto bad;
    bool echo = false;
    if (get_bool(j, "echo", &echo, msg, n) < 0) goto bad;
    if (echo) {
        snprintf(msg, n, "'echo' is not supported");
        goto bad;
    }
    /* speculation (extension fields) */
    int method = s->default_method;
    if ((x = json_object_get(j, "spec")) && !json_is_null(x)) {
        if (!json_is_string(x) || (method = srv_method_index(json_string_value(x))) < 0) {
            snprintf(msg, n, "'spec' must be one of: %s", TOOL_METHODS);
            goto bad;
        }
    }
    tool_spec ts = cfg->spec;
    int draft_max = tool_method_budget(srv_methods[method], &ts);
    if ((x = json_object_get(j, "draft_max")) && !json_is_null(x)) {
        if (json_is_string(x) && !strcmp(json_string_value(x), "auto")) draft_max = SD_DRAFT_AUTO;
        else if (json_is_string(x) && !strcmp(json_string_value(x), "feedback")) draft_max = SD_DRAFT_FEEDBACK;
        else if (json_is_integer(x) && json_integer_value(x) >= 0 && json_integer_value(x) <= SD_MAX_DRAFT_POS)
            draft_max = (int)json_integer_value(x);
        else {
            snprintf(msg, n, "'draft_max' must be an integer in [0, %d], \"auto\" or \"feedback\"", SD_MAX_DRAFT_POS);
            goto bad;
        }
    }
    /* tokens */
    int n_prompt = 0;
    bool bos = sd_vocab_add_bos(s->vocab);
    size_t tl = strlen(text);
    if (tl > (size_t)s->n_ctx * 64) {
        snprintf(msg, n, "the prompt is longer than the context (%d tokens)", s->n_ctx);
        goto bad;
    }
    int need = sd_tokenize(s->vocab, text, tl, NULL, 0, bos, special);
    if (need < 0) {
        snprintf(msg, n, "cannot tokenize the prompt: %s", sd_status_str(need));
        goto bad;
    }
    if (need == 0) {
        snprintf(msg, n, "the prompt is empty");
        goto bad;
    }
    if (need >= s->n_ctx) {
        snprintf(msg, n, "the prompt (%d tokens) does not fit the context (%d tokens)", need, s->n_ctx);
        goto bad;
    }
    if (n_predict < 0) n_predict = s->n_ctx - need; /* chat default / n_predict -1: up to the context */
    if (need + n_predict > s->n_ctx) {
        snprintf(msg, n, "prompt (%d tokens) + max_tokens (%lld) exceeds the context (%d tokens)", need, n_predict,
                 s->n_ctx);
        goto bad;
    }
    r->prompt = malloc((size_t)need * sizeof *r->prompt);
    if (!r->prompt) {
        st = 500;
        snprintf(msg, n, "out of memory");
        goto bad;
    }
    n_prompt = sd_tokenize(s->vocab, text, tl, r->prompt, need, bos, special);
    if (n_prompt != need) {
        st = 500;
        snprintf(msg, n, "tokenizer disagreed with itself");
        goto bad;
    }
    free(text);
    r->n_prompt = n_prompt;
    r->sp = sp;
    r->n_predict = (int)n_predict;
    r->ignore_eos = ignore_eos;
    r->method = method;
    r->draft_max = draft_max;
    return 0;
bad:
    free(text);
    return st;
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
        if (!wait_output(r, ss->sent, conn_fd(ss->c))) {
            pthread_mutex_unlock(&r->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        size_t from = ss->sent, to = sendable(r);
        bool done = r->done;
        if (done) gen_timeout(ss->s, ss->c, true);
        json_t *o = NULL;
        if (done && r->status != SD_OK) {
            o = json_pack("{s:{s:s, s:s}}", "error", "message", sd_status_str(r->status), "type", "server_error");
            ss->phase = 1;
        } else if (to > from || done) {
            o = gen_json(ss->s, &ss->go, r, r->text ? r->text + from : "", to - from, true, done, ss->first);
            ss->first = false;
            ss->sent = to;
            if (done) ss->phase = 1;
        }
        pthread_mutex_unlock(&r->mu);
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

static enum MHD_Result handle_gen(server *s, struct MHD_Connection *c, conn *cn, bool chat) {
    json_error_t je;
    json_t *j = json_loadb(cn->body ? cn->body : "", cn->len, JSON_REJECT_DUPLICATES, &je);
    if (!j) return send_error(s, c, 400, "malformed JSON: %s (line %d, column %d)", je.text, je.line, je.column);
    if (!json_is_object(j)) {
        json_decref(j);
        return send_error(s, c, 400, "the body must be a JSON object");
    }
    gen_opts go = {.chat = chat};
    char msg[512] = "";
    bool stream = false;
    if (get_bool(j, "stream", &stream, msg, sizeof msg) < 0) {
        json_decref(j);
        return send_error(s, c, 400, "%s", msg);
    }
    go.stream = stream;
    srv_req *r = srv_req_new();
    if (!r) {
        json_decref(j);
        return send_error(s, c, 500, "out of memory");
    }
    unsigned st = parse_gen(s, j, &go, r, msg, sizeof msg);
    json_decref(j);
    if (st) {
        srv_req_unref(r);
        return send_error(s, c, st, "%s", msg);
    }
    pthread_mutex_lock(&s->mu);
    go.id = (int64_t)++s->next_id;
    pthread_mutex_unlock(&s->mu);
    int q = srv_enqueue(s, r);
    if (q < 0) {
        srv_req_unref(r);
        return send_error(s, c, 503, q == -1 ? "the server is busy (queue full), retry later" : "shutting down");
    }
    cn->req = r; /* the connection's reference: cancelled when it ends */
    gen_timeout(s, c, false);
    if (stream) {
        stream_st *ss = calloc(1, sizeof *ss);
        if (!ss) return MHD_NO;
        ss->s = s;
        ss->c = c;
        ss->go = go;
        ss->first = true;
        srv_req_ref(r);
        ss->req = r;
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, ss,
                                                                      stream_free);
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
    pthread_mutex_lock(&r->mu);
    bool ok = wait_output(r, SIZE_MAX, conn_fd(c));
    gen_timeout(s, c, true);
    json_t *o = NULL;
    int status = r->status;
    if (ok && status == SD_OK) o = gen_json(s, &go, r, r->text ? r->text : "", r->len, false, true, true);
    pthread_mutex_unlock(&r->mu);
    if (!ok) return MHD_NO; /* the client is gone: close */
    if (status != SD_OK) return send_error(s, c, 500, "generation failed: %s", sd_status_str(status));
    return send_json(c, 200, o, false);
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
    if (post && *upload_size > 0) {
        /* a body trickling in (each byte restarts the idle timeout) must
         * still be complete within --timeout seconds: else drop the client */
        if (srv_now_s() - cn->t_start > (double)s->cfg->timeout_s) return MHD_NO;
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
    (void)cls;
    (void)c;
    (void)toe;
    conn *cn = *con_cls;
    if (!cn) return;
    if (cn->req) {
        srv_req_cancel(cn->req);
        srv_req_unref(cn->req);
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
    char path_buf[4096];
    const char *mpath = cfg->o.model ? cfg->o.model : tool_model_path("kernel-c-target.gguf", path_buf, sizeof path_buf);
    if ((s->default_method = srv_method_index(cfg->method)) < 0) {
        fprintf(stderr, "error: unknown --spec method '%s' (%s)\n", cfg->method, TOOL_METHODS);
        goto done;
    }
    if ((s->tmpl = detect_template(mpath, cfg->chat_template)) < 0) {
        fprintf(stderr, "error: --chat-template expects chatml, llama2 or llama3\n");
        goto done;
    }
    if (!(s->model = tool_load_model(&cfg->o, mpath))) goto done;
    s->vocab = sd_model_vocab(s->model);
    sd_model_get_info(s->model, &s->info);
    const char *base = strrchr(mpath, '/');
    snprintf(s->model_name, sizeof s->model_name, "%s", cfg->alias ? cfg->alias : base ? base + 1 : mpath);
    sd_status st = sd_threadpool_new(cfg->o.n_threads, &s->pool);
    if (st != SD_OK) goto fail_st;
    s->n_slots = cfg->n_parallel;
    if (!(s->slots = calloc((size_t)s->n_slots, sizeof *s->slots))) goto done;
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = cfg->o.n_ctx;
    cp.pool = s->pool;
    cp.attn_compat = cfg->o.attn_compat;
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
    if (tool_method_needs_draft(cfg->method) || cfg->spec.draft) { /* fail early on a bad -md */
        char buf[4096];
        const char *p = cfg->spec.draft ? cfg->spec.draft : tool_model_path("kernel-c-draft.gguf", buf, sizeof buf);
        if (!(s->draft = tool_load_model(&cfg->o, p))) goto done;
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
    d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                         (uint16_t)cfg->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)(cfg->n_parallel + cfg->n_queue + 64),
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
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
