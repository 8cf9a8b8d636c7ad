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

static int serve_opt(const char *a, const char *next, void *user) {
    srv_config *c = user;
    static const char *const names[] = {"--host", "--port", "--parallel", "-np", "--queue", "--timeout",
                                        "--max-body", "--api-key", "--spec", "--ngram-cache",
                                        "--chat-template", "--alias", "--port-file", "--read-timeout",
                                        "--write-timeout", "--max-conn", "--max-conn-per-ip", "--http-threads"};
    int which = -1;
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(a, names[i])) which = i;
    if (which < 0) return tool_spec_opt(a, next, &c->spec);
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
    srv_config c = {.host = "127.0.0.1", .port = 8080, .n_parallel = 2, .n_queue = 16, .read_timeout_s = 10,
                    .write_timeout_s = 30, .max_conn = 4096, .max_conn_per_ip = 32, .http_threads = 2,
                    .max_body = 1L << 20, .method = "none", .spec = tool_spec_defaults()};
    if (tool_parse(argc, argv, 2, &c.o, serve_opt, &c) != 0) return 1;
    if (c.o.prompt || c.o.file) {
        fprintf(stderr, "error: serve takes prompts over HTTP, not -p / -f\n");
        return 1;
    }
    return srv_run(&c);
}
