/* serve.c - `specdec serve`: the OpenAI-compatible HTTP server
 * (src/server/); this file only parses the command line. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "server/srv.h"

static int int_opt(const char *a, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "error: %s expects an integer in [%ld, %ld], got '%s'\n", a, lo, hi, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

/* What the command line fills: the server's settings, and the shared
 * options (tool_parse) and speculation options (tool_spec_opt) that are
 * mapped into them. */
typedef struct serve_args {
    srv_config c;
    tool_opts o;
    tool_spec spec;
} serve_args;

static int serve_opt(const char *a, const char *next, void *user) {
    serve_args *sa = user;
    srv_config *c = &sa->c;
    static const char *const names[] = {"--host", "--port", "--parallel", "-np", "--queue", "--timeout",
                                        "--max-body", "--api-key", "--spec", "--ngram-cache",
                                        "--chat-template", "--alias", "--port-file", "--read-timeout",
                                        "--write-timeout", "--max-conn", "--max-conn-per-ip", "--http-threads"};
    int which = -1;
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(a, names[i])) which = i;
    if (which < 0) return tool_spec_opt(a, next, &sa->spec);
    if (!next) {
        fprintf(stderr, "error: %s needs a value\n", a);
        return -1;
    }
    long v = 0;
    int rc = 0;
    switch (which) {
    case 0: c->host = next; break;
    case 1: rc = int_opt(a, next, 0, 65535, &v); c->port = (int)v; break;
    case 2: case 3: rc = int_opt(a, next, 1, 64, &v); c->n_parallel = (int)v; break;
    case 4: rc = int_opt(a, next, 0, 4096, &v); c->n_queue = (int)v; break;
    case 5: case 13: rc = int_opt(a, next, 1, 3600, &v); c->read_timeout_s = (int)v; break;
    case 6: rc = int_opt(a, next, 1024, 1L << 30, &v); c->max_body = v; break;
    case 7: c->api_key = next; break;
    case 8: c->method = next; break;
    case 9: c->ngram_cache = next; break;
    case 10: c->chat_template = next; break;
    case 11: c->alias = next; break;
    case 12: c->port_file = next; break;
    case 14: rc = int_opt(a, next, 1, 86400, &v); c->write_timeout_s = (int)v; break;
    case 15: rc = int_opt(a, next, 16, 1000000, &v); c->max_conn = (int)v; break;
    case 16: rc = int_opt(a, next, 1, 1000000, &v); c->max_conn_per_ip = (int)v; break;
    case 17: rc = int_opt(a, next, 1, 64, &v); c->http_threads = (int)v; break;
    }
    return rc ? -1 : 2;
}

int cmd_serve(int argc, char **argv) {
    serve_args sa = {.c = {.host = "127.0.0.1", .port = 8080, .n_parallel = 2, .n_queue = 16, .read_timeout_s = 10,
                           .write_timeout_s = 30, .max_conn = 4096, .max_conn_per_ip = 32, .http_threads = 2,
                           .max_body = 1L << 20, .method = "none"},
                     .spec = tool_spec_defaults()};
    if (tool_parse(argc, argv, 2, &sa.o, serve_opt, &sa) != 0) return 1;
    if (sa.o.prompt || sa.o.file) {
        fprintf(stderr, "error: serve takes prompts over HTTP, not -p / -f\n");
        return 1;
    }
    srv_config *c = &sa.c;
    char mbuf[4096], dbuf[4096], hbuf[4096];
    c->model_path = sa.o.model ? sa.o.model : tool_model_path("kernel-c-target.gguf", mbuf, sizeof mbuf);
    c->draft_path = sa.spec.draft ? sa.spec.draft : tool_model_path("kernel-c-draft.gguf", dbuf, sizeof dbuf);
    c->draft_at_start = sa.spec.draft != NULL || tool_method_needs_draft(c->method);
    c->heads_path = sa.spec.heads_path ? sa.spec.heads_path
                                       : tool_model_path("kernel-c-target-heads.gguf", hbuf, sizeof hbuf);
    c->mp = sd_model_default_params();
    c->mp.quantize = sa.o.quantize;
    c->mp.backend = sa.o.backend;
    c->mp.pack = !sa.o.no_pack;
    c->n_threads = sa.o.n_threads;
    c->n_ctx = sa.o.n_ctx;
    c->attn_compat = sa.o.attn_compat;
    c->sp = sa.o.sp;
    c->seed_set = sa.o.seed_set;
    c->ignore_eos = sa.o.ignore_eos;
    c->spec = tool_spec_params(&sa.spec);
    c->draft_min = sa.spec.draft_min;
    return srv_run(c);
}
