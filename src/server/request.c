/*
 * request.c - a generation request's body (/v1/completions and
 * /v1/chat/completions) parsed and validated into an srv_req: untrusted
 * JSON in, a tokenized prompt and checked settings out, or an HTTP status
 * and a message. No I/O and no server state (see srv_parse_env), so that
 * tests/fuzz_request.c can drive it directly.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server/request.h"

const char *const srv_methods[SRV_N_METHODS] = {
    "none", "draft", "lookup", "ngram-cache", "tree-draft", "tree-lookup", "aded", "self",
    "pearl", "rasd", "eagle", "hydra", "medusa", "eagle-chain", "hydra-chain", "medusa-chain"};

void srv_method_list(char *buf, size_t n) {
    size_t k = 0;
    if (n) buf[0] = 0;
    for (int i = 0; i < SRV_N_METHODS && k < n; i++) {
        int w = snprintf(buf + k, n - k, "%s%s", i ? ", " : "", srv_methods[i]);
        if (w < 0) break;
        k += (size_t)w;
    }
}

int srv_method_index(const char *name) {
    if (!strcmp(name, "ngram")) name = "ngram-cache";
    for (int i = 0; i < SRV_N_METHODS; i++)
        if (!strcmp(srv_methods[i], name)) return i;
    return -1;
}

/* Typed optional fields: 0 absent, 1 present, -1 wrong type or out of
 * [lo, hi] (msg set). */
static int get_number(json_t *o, const char *k, double lo, double hi, double *v, char *msg, size_t n) {
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
    if (!(*v >= lo && *v <= hi)) {
        snprintf(msg, n, "'%s' must be in [%g, %g]", k, lo, hi);
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

/* Renders chat messages with the template; NULL + msg on bad input. */
char *srv_render_chat(int tmpl, json_t *msgs, char *msg, size_t n) {
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
static unsigned parse_gen(const srv_parse_env *e, json_t *j, bool chat, srv_req *r, char *msg, size_t n) {
    const srv_config *cfg = e->cfg;
    json_t *x;
    /* text in */
    char *text = NULL;
    bool special = false;
    if (chat) {
        if (e->tmpl == SRV_TMPL_NONE) {
            snprintf(msg, n, "the model has no supported chat template (tokenizer.chat_template is absent or "
                             "not ChatML, Llama 2 or Llama 3; start the server with --chat-template)");
            return 400;
        }
        x = json_object_get(j, "messages");
        if (!x) {
            snprintf(msg, n, "'messages' is required");
            return 400;
        }
        if (!(text = srv_render_chat(e->tmpl, x, msg, n))) return 400;
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
            json_t *el_j = one ? one : json_array_get(x, i);
            size_t el = json_is_string(el_j) ? json_string_length(el_j) : 0;
            if (!json_is_string(el_j) || el == 0 || el > 64 || strlen(json_string_value(el_j)) != el) {
                free(text);
                snprintf(msg, n, "'stop' strings must be 1..64 bytes without NUL");
                return 400;
            }
            if (!(r->stop[r->n_stop] = strdup(json_string_value(el_j)))) {
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
    sd_sampler_params sp = cfg->sp;
    long long n_predict = chat ? -1 : 16;
    unsigned st = 400;
    if ((g = get_int(j, "max_tokens", 0, 1 << 30, &iv, msg, n)) < 0) goto bad;
    if (g > 0) n_predict = iv;
    if ((g = get_int(j, "max_completion_tokens", 0, 1 << 30, &iv, msg, n)) < 0) goto bad;
    if (g > 0) n_predict = iv;
    if ((g = get_int(j, "n_predict", -1, 1 << 30, &iv, msg, n)) < 0) goto bad;
    if (g > 0) n_predict = iv;
    if ((g = get_number(j, "temperature", 0, 100, &v, msg, n)) < 0) goto bad;
    if (g > 0) sp.temp = (float)v;
    if ((g = get_number(j, "top_p", 0, 1, &v, msg, n)) < 0) goto bad;
    if (g > 0) sp.top_p = (float)v;
    if ((g = get_number(j, "min_p", 0, 1, &v, msg, n)) < 0) goto bad;
    if (g > 0) sp.min_p = (float)v;
    if ((g = get_int(j, "top_k", 0, e->n_vocab, &iv, msg, n)) < 0) goto bad;
    if (g > 0) sp.top_k = (int)iv;
    if ((g = get_int(j, "seed", -1, INT64_MAX, &iv, msg, n)) < 0) goto bad;
    if (g > 0 && iv >= 0) sp.seed = (uint64_t)iv;
    else if (!cfg->seed_set)
        sp.seed = e->seed;
    bool ignore_eos = cfg->ignore_eos;
    if (get_bool(j, "ignore_eos", &ignore_eos, msg, n) < 0) goto bad;
    if ((g = get_int(j, "n", 1, 1, &iv, msg, n)) < 0) goto bad;
    bool echo = false;
    if (get_bool(j, "echo", &echo, msg, n) < 0) goto bad;
    if (echo) {
        snprintf(msg, n, "'echo' is not supported");
        goto bad;
    }
    /* speculation (extension fields) */
    int method = e->default_method;
    if ((x = json_object_get(j, "spec")) && !json_is_null(x)) {
        if (!json_is_string(x) || (method = srv_method_index(json_string_value(x))) < 0) {
            char list[256];
            srv_method_list(list, sizeof list);
            snprintf(msg, n, "'spec' must be one of: %s", list);
            goto bad;
        }
    }
    int draft_max = e->draft_max[method];
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
    bool bos = sd_vocab_add_bos(e->vocab);
    size_t tl = strlen(text);
    if (tl > (size_t)e->n_ctx * 64) {
        snprintf(msg, n, "the prompt is longer than the context (%d tokens)", e->n_ctx);
        goto bad;
    }
    int need = sd_tokenize(e->vocab, text, tl, NULL, 0, bos, special);
    if (need < 0) {
        snprintf(msg, n, "cannot tokenize the prompt: %s", sd_status_str(need));
        goto bad;
    }
    if (need == 0) {
        snprintf(msg, n, "the prompt is empty");
        goto bad;
    }
    if (need >= e->n_ctx) {
        snprintf(msg, n, "the prompt (%d tokens) does not fit the context (%d tokens)", need, e->n_ctx);
        goto bad;
    }
    if (n_predict < 0) n_predict = e->n_ctx - need; /* chat default / n_predict -1: up to the context */
    if (need + n_predict > e->n_ctx) {
        snprintf(msg, n, "prompt (%d tokens) + max_tokens (%lld) exceeds the context (%d tokens)", need, n_predict,
                 e->n_ctx);
        goto bad;
    }
    r->prompt = malloc((size_t)need * sizeof *r->prompt);
    if (!r->prompt) {
        st = 500;
        snprintf(msg, n, "out of memory");
        goto bad;
    }
    n_prompt = sd_tokenize(e->vocab, text, tl, r->prompt, need, bos, special);
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

unsigned srv_parse_request(const srv_parse_env *e, const char *body, size_t len, bool chat, bool *stream,
                           srv_req *r, char *msg, size_t n) {
    json_error_t je;
    *stream = false;
    json_t *j = json_loadb(body ? body : "", body ? len : 0, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        snprintf(msg, n, "malformed JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return 400;
    }
    unsigned st = 400;
    if (!json_is_object(j))
        snprintf(msg, n, "the body must be a JSON object");
    else if (get_bool(j, "stream", stream, msg, n) >= 0)
        st = parse_gen(e, j, chat, r, msg, n);
    json_decref(j);
    return st;
}
