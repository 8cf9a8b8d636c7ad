/*
 * srv.h - internals of `specdec serve`, an OpenAI-compatible HTTP server
 * (libmicrohttpd + jansson) over the step-wise generation API.
 *
 * Threads: libmicrohttpd runs a small pool of event-driven threads (epoll)
 * that read requests, parse and tokenize them and send the output; a
 * connection costs no thread, so idle clients cost nothing but a socket.
 * ONE scheduler thread (sched.c) owns the slots - a target context and its
 * drafters each - and runs every forward (continuous batching). A request
 * passes between them as an srv_req: refcounted, its own lock; the
 * connection fills the inputs before queueing, the scheduler appends text
 * under the lock and sets done. While a connection waits for output it is
 * suspended ("parked" in its srv_req); the scheduler resumes it when there
 * is something to send, and polls the parked client's socket at each step
 * so that a client that went away cancels its generation.
 */
#ifndef SD_SERVER_SRV_H
#define SD_SERVER_SRV_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "specdec.h"

#define SRV_N_METHODS 16
extern const char *const srv_methods[SRV_N_METHODS]; /* "none" first */
/* srv_methods joined by ", " into buf (for messages; truncated to n). */
void srv_method_list(char *buf, size_t n);
/* Index of a method name in srv_methods ("ngram" = "ngram-cache"), or -1. */
int srv_method_index(const char *name);

typedef struct srv_config {
    const char *host;          /* --host (default 127.0.0.1)                 */
    int port;                  /* --port (default 8080; 0 = any free port)   */
    int n_parallel;            /* --parallel slots (default 2)               */
    int n_queue;               /* --queue: requests waiting beyond the free
                                  slots before a 503 (default 16)            */
    int read_timeout_s;        /* --read-timeout: a request's headers and
                                  body must arrive within this (10 s); an
                                  idle connection is closed after it       */
    int write_timeout_s;       /* --write-timeout: a client that accepts no
                                  byte of its response for this long is
                                  dropped, its generation cancelled (30 s) */
    int max_conn;              /* --max-conn: open connections (4096)        */
    int max_conn_per_ip;       /* --max-conn-per-ip (32)                     */
    int http_threads;          /* --http-threads: event loop threads (2)     */
    long max_body;             /* --max-body bytes (default 1 MiB)           */
    const char *api_key;       /* --api-key (NULL: none)                     */
    const char *method;        /* --spec: the default method (none)          */
    const char *ngram_cache;   /* --ngram-cache FILE: shared online cache    */
    const char *chat_template; /* --chat-template chatml|llama2|llama3       */
    const char *alias;         /* --alias: the model's name in the API       */
    const char *port_file;     /* --port-file: the bound port is written here */
    /* models: paths as the command line resolved them (tools/serve.c) */
    const char *model_path;    /* the target                                 */
    const char *draft_path;    /* the draft model, loaded on first use       */
    bool draft_at_start;       /* load it at start (-md given, or the default
                                  method needs it): fail early              */
    const char *heads_path;    /* trained heads, loaded on first use         */
    sd_model_params mp;        /* --quantize --backend --no-pack             */
    int n_threads;             /* -t                                         */
    int n_ctx;                 /* -c: cells per slot (0: training context)   */
    bool attn_compat;          /* --attn-compat                              */
    /* request defaults */
    sd_sampler_params sp;      /* --temp --top-k --top-p --min-p --seed      */
    bool seed_set;             /* --seed given: requests without one use it  */
    bool ignore_eos;           /* --ignore-eos                               */
    sd_spec_params spec;       /* --draft-max --tree-nodes ...: speculation  */
    int draft_min;             /* --draft-min                                */
} srv_config;

/* A growable text buffer. */
typedef struct srv_buf {
    char *p;
    size_t len, cap;
    bool oom;
} srv_buf;
void srv_buf_printf(srv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_buf_add(srv_buf *b, const char *s, size_t n);

typedef struct srv_req {
    pthread_mutex_t mu;
    int refs;
    /* inputs: set before srv_enqueue, read-only after */
    int32_t *prompt;           /* (n_prompt) ids, BOS included              */
    int n_prompt;
    sd_sampler_params sp;
    int n_predict;
    bool ignore_eos;
    bool stream;               /* wake the connection at every new text     */
    void (*resume)(void *conn);/* resumes a parked connection (http.c)      */
    int method;                /* index into srv_methods                    */
    int draft_max;             /* >= 0, SD_DRAFT_AUTO or SD_DRAFT_FEEDBACK  */
    double t_arrive;           /* srv_now_s() when queued                   */
#define SRV_MAX_STOP 4
    char *stop[SRV_MAX_STOP];  /* stop strings (owned; at most 64 bytes)    */
    int n_stop;
    size_t stop_hold;          /* longest stop string - 1: bytes a stream
                                  holds back until they cannot start one   */
    /* outputs, under mu */
    char *text;                /* generated text so far (complete UTF-8)    */
    size_t len, cap;
    int n_gen;                 /* tokens generated                          */
    double t_first, t_done;
    size_t taken;              /* text bytes a stream has put into events   */
    bool paused;               /* the scheduler skips it: a stream whose
                                  client lags SRV_STREAM_AHEAD bytes behind */
    bool done;                 /* the scheduler is finished with it         */
    void *parked;              /* the suspended connection waiting for
                                  output, or NULL; whoever clears it
                                  resumes it (srv_req_unpark)              */
    int fd;                    /* the client's socket while its connection
                                  lives, else -1 (polled for a hang-up)    */
    bool cancelled;            /* the client went away                      */
    bool hit_length;           /* stopped at n_predict                      */
    bool hit_stop;             /* stopped at a stop string (text cut there) */
    int status;                /* sd_status of the generation               */
    sd_spec_stats st;          /* final statistics                          */
    struct srv_req *next;      /* queue link (under server.mu)              */
} srv_req;

/* A stream's generation pauses while this many bytes of its text wait
 * beyond what the client's socket has taken: a client that does not read
 * costs no compute (and is dropped after --write-timeout). */
#define SRV_STREAM_AHEAD 1024
/* The send buffer of every connection (SO_SNDBUF; the kernel doubles it):
 * bounds the kernel memory a slow reader holds and makes its lag visible. */
#define SRV_SNDBUF (32 * 1024)

srv_req *srv_req_new(void);    /* refs = 1; NULL on NOMEM */
void srv_req_ref(srv_req *r);
void srv_req_unref(srv_req *r);
void srv_req_cancel(srv_req *r);
/* r->mu held: takes the parked connection (NULL if none) that waits for
 * r's output; the caller passes it to r->resume after unlocking r->mu
 * (resuming under r->mu could meet the HTTP thread taking r->mu inside
 * libmicrohttpd). */
void *srv_req_unpark(srv_req *r);
/* True if the peer of socket fd hung up (a non-blocking poll). */
bool srv_client_gone(int fd);

typedef struct srv_slot {
    sd_ctx *ctx;
    sd_drafter *dr[SRV_N_METHODS];  /* made on first use                  */
    srv_req *req;                   /* NULL: free                          */
    sd_gen *g;
    sd_sampler *smp;
    sd_detok *dt;
} srv_slot;

#define SRV_N_BUCKETS 10
typedef struct srv_hist {
    uint64_t bucket[SRV_N_BUCKETS]; /* cumulative counts per upper bound */
    uint64_t count;
    double sum;
} srv_hist;

typedef struct srv_metrics {
    uint64_t requests, completed, bad, rejected, cancelled, failed;
    uint64_t read_timeouts;         /* requests answered 408                */
    uint64_t write_timeouts;        /* responses dropped: client not reading */
    uint64_t conn_opened, conn_closed; /* TCP connections accepted / closed */
    uint64_t prompt_tokens, gen_tokens, drafted, accepted, steps;
    uint64_t forwards, forward_rows, forward_seqs;
    srv_hist latency, ttft;
} srv_metrics;

enum { SRV_TMPL_NONE, SRV_TMPL_CHATML, SRV_TMPL_LLAMA2, SRV_TMPL_LLAMA3 };

typedef struct server {
    srv_config *cfg;
    sd_model *model, *draft;        /* draft: loaded on first use         */
    sd_heads *heads;                /* loaded on first use                */
    sd_threadpool *pool;            /* shared by every slot's forwards    */
    const sd_vocab *vocab;
    sd_model_info info;
    int n_ctx;                      /* cells per slot                     */
    int default_method;
    int method_budget[SRV_N_METHODS]; /* each method's default draft_max     */
    srv_slot *slots;
    int n_slots;
    sd_drafter *ngram_owner;        /* the shared online n-gram cache     */
    sd_cost_table *costs;           /* for draft_max auto, measured once  */
    int tmpl;                       /* SRV_TMPL_*                          */
    char model_name[256];
    long created;                   /* start time (Unix seconds)          */
    pthread_mutex_t mu;             /* queue, n_active, quit, metrics, id  */
    pthread_cond_t cv;              /* scheduler wake-up                   */
    srv_req *q_head, *q_tail;
    int q_len, n_active;
    bool quit, sched_dead;
    uint64_t next_id;
    srv_metrics m;
} server;

double srv_now_s(void);
/* Queues r (takes a reference). 0, -1 when the queue is full (503), -2
 * when the server is shutting down. */
int srv_enqueue(server *s, srv_req *r);
/* A stream took text (r->taken moved): wakes the scheduler if r was paused. */
void srv_stream_took(server *s, srv_req *r);
void *srv_sched_main(void *server_ptr);
/* Prometheus text of the metrics. */
void srv_metrics_text(server *s, srv_buf *b);

/* http.c: runs until SIGTERM / SIGINT; the exit code. */
int srv_run(srv_config *cfg);

#endif
