/*
 * request.h - parsing and validating the JSON body of a generation request
 * (request.c). Pure: the body and the settings below in, an srv_req's
 * inputs out; fuzzed by tests/fuzz_request.c.
 */
#ifndef SD_SERVER_REQUEST_H
#define SD_SERVER_REQUEST_H

#include <jansson.h>

#include "server/srv.h"

/* What a request is checked against: the server's settings. */
typedef struct srv_parse_env {
    const srv_config *cfg;          /* request defaults: cfg->sp, seed_set,
                                       ignore_eos                            */
    const sd_vocab *vocab;          /* tokenizes the prompt                   */
    int n_ctx;                      /* cells per slot: prompt + max_tokens   */
    int n_vocab;                    /* top_k's upper bound                    */
    int tmpl;                       /* SRV_TMPL_*: the chat template         */
    int default_method;             /* index into srv_methods                 */
    int draft_max[SRV_N_METHODS];   /* each method's default budget           */
    uint64_t seed;                  /* the seed of a request without one when
                                       cfg sets none                          */
} srv_parse_env;

/* Parses body (len bytes, untrusted; need not be NUL-terminated) into r's
 * inputs (prompt, n_prompt, sp, n_predict, ignore_eos, method, draft_max,
 * stop strings): 0, or an HTTP status (400 bad request, 500 out of memory)
 * with the reason in msg. *stream gets the body's 'stream' flag. On error,
 * what r was given (prompt, stop strings) is still r's to free. */
unsigned srv_parse_request(const srv_parse_env *e, const char *body, size_t len, bool chat, bool *stream,
                           srv_req *r, char *msg, size_t n);

/* The chat messages (a JSON array of {role, content}) rendered with
 * template tmpl (SRV_TMPL_*); a malloc'd string, or NULL with msg. */
char *srv_render_chat(int tmpl, json_t *msgs, char *msg, size_t n);

#endif
