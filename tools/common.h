/* common.h - shared pieces of the specdec command-line tools. */
#ifndef SD_TOOLS_COMMON_H
#define SD_TOOLS_COMMON_H

#include <stdio.h>

#include "specdec.h"

/* Options shared by the subcommands (llama.cpp spellings). */
typedef struct tool_opts {
    const char *model;       /* -m; NULL = shipped target                  */
    const char *prompt;      /* -p                                          */
    const char *file;        /* -f                                          */
    int n_predict;           /* -n                                          */
    int n_threads;           /* -t                                          */
    int n_ctx;               /* -c                                          */
    sd_sampler_params sp;    /* --temp --top-k --top-p --min-p --seed        */
    bool seed_set;
    bool ignore_eos;         /* --ignore-eos                                */
    bool json;               /* --json                                      */
    bool no_bos;             /* --no-bos                                    */
    bool parse_special;      /* --parse-special                             */
    int quantize;            /* --quantize q8_0                             */
    sd_backend backend;      /* --backend ref|avx2|avx512|auto              */
    bool attn_compat;        /* --attn-compat                               */
    bool no_pack;            /* --no-pack: weights in their stored layout only */
} tool_opts;

/* Speculation options shared by generate and bench. */
typedef struct tool_spec {
    const char *draft;          /* -md DRAFT (NULL: the shipped draft model) */
    int draft_max, draft_min;   /* --draft-max --draft-min                   */
    float p_min;                /* --draft-p-min                             */
    int lookup_min, lookup_max; /* --lookup-min --lookup-max                 */
    const char *ngram_static;   /* --ngram-static FILE                       */
    const char *ngram_dynamic;  /* --ngram-dynamic FILE                      */
    int tree_nodes;             /* --tree-nodes: node budget of tree methods */
    int self_exit;              /* --self-exit L (0: choose per step, DEL)   */
    float reject_max;           /* --draft-reject-max H (SpecDec++; 0: off)  */
    sd_tree_params tree;        /* --tree-depth --tree-width --tree-topk
                                   --tree-p-min --tree-branch a,b,c         */
    const char *draft_vocab;    /* --draft-vocab FILE: VocabTrim ids (specdec
                                   vocabtrim) for draft / tree-draft        */
    int draft_threads;          /* --draft-threads 1|2: the draft model's
                                   threads (1: single-threaded; 2, the
                                   default: the target's pool)              */
    const char *rasd_corpus;    /* --rasd-corpus FILE: text tokenized with the
                                   target's vocabulary (no BOS), the rasd
                                   drafter's corpus datastore               */
    bool tree_given;            /* one of the --tree-* shape options was given
                                   (heads methods otherwise use their own
                                   defaults, sd_heads_default_params)       */
    const char *heads_path;     /* -mh HEADS (NULL: the shipped heads)       */
    const sd_heads *heads;      /* loaded heads (borrowed; tool_load_heads)  */
    int heads_q8;               /* --heads-q8 0|1: draft with Q8_0 copies
                                   (-1: the method's default)               */
    const char *xtok_draft;     /* -mdx FILE: the draft model of draft-xtok
                                   (NULL: -md's), so that bench compares a
                                   cross-vocabulary draft with `draft`      */
    const sd_model *xtok_model; /* loaded -mdx model (borrowed; NULL: use
                                   the draft model passed to the factory)   */
} tool_spec;

/* The speculation methods (--spec, bench --methods), "none" first: the
 * library's registry (sd_spec_methods). */
#define TOOL_METHODS sd_spec_methods()
/* The library's speculation settings of s (sd_drafter_from_spec). */
sd_spec_params tool_spec_params(const tool_spec *s);
/* True for a method name tool_make_drafter knows. */
bool tool_method_known(const char *method);
/* True for methods that need the draft model. */
bool tool_method_needs_draft(const char *method);
/* True for methods that need trained heads (spec->heads): eagle, hydra,
 * medusa (token trees, budget --tree-nodes) and their -chain variants
 * (budget --draft-max, stop below --draft-p-min). */
bool tool_method_needs_heads(const char *method);
/* Loads s->heads_path (or the shipped heads) for target; prints errors;
 * NULL on failure. The caller frees it (sd_heads_free). */
sd_heads *tool_load_heads(const tool_spec *s, const sd_model *target);
/* True for methods that draft on a core of their own (the target then
 * gets n_threads - 1 threads). */
bool tool_method_own_core(const char *method);
/* Nodes (tree methods) or tokens (chains) drafted per step. */
int tool_method_budget(const char *method, const tool_spec *s);
/* Makes the drafter of a method or method spec (NULL for "none") through
 * the library's registry, sd_drafter_from_spec, with s's settings and
 * loaded models; target_ctx is the context the generation will run on
 * (`self` drafts on it); heads methods use s->heads. Errors as
 * sd_drafter_from_spec (message in err). */
sd_status tool_make_drafter(const char *method, const tool_spec *s, const sd_model *draft,
                            const sd_model *target, sd_ctx *target_ctx, sd_threadpool *pool, int n_ctx,
                            sd_drafter **out, char *err, size_t err_size);

/* Defaults: draft-max auto, draft-min 0, draft-p-min 0.5, lookup 1..4,
 * tree-nodes 8 (auto is available but picks too small trees for now),
 * tree params sd_tree_default_params(), draft-threads 2. */
tool_spec tool_spec_defaults(void);
/* Parses one speculation option: returns 2 if it used arg and next, 0 if
 * arg is not one, -1 after printing an error. */
int tool_spec_opt(const char *arg, const char *next, tool_spec *s);

/* Parses argv[first..argc) into o (after setting defaults). Unknown options
 * are handed to extra(arg, next, user) which returns how many arguments it
 * used (1 or 2) or 0 if it does not know the option. Returns 0 or prints an
 * error and returns -1. */
typedef int (*tool_extra_fn)(const char *arg, const char *next, void *user);
int tool_parse(int argc, char **argv, int first, tool_opts *o, tool_extra_fn extra, void *user);

/* Path of a shipped model file: $SPECDEC_MODEL_DIR/name, else
 * ../shared/models/name relative to the working directory or to the
 * repository the binary lives in. Writes into buf. */
const char *tool_model_path(const char *name, char *buf, size_t size);

/* Loads opts->model (or the shipped target); prints errors; NULL on failure. */
sd_model *tool_load_model(const tool_opts *o, const char *path_or_null);

/* The prompt text (-p or contents of -f; malloc'd) and its length; NULL on
 * failure (message printed). */
char *tool_read_prompt(const tool_opts *o, size_t *len);

/* Tokenizes with the vocab's BOS policy (unless no_bos); malloc'd ids. */
int32_t *tool_tokenize(const sd_vocab *v, const char *text, size_t len, bool add_bos,
                       bool parse_special, int *n_out);

/* Monotonic time in milliseconds. */
double tool_now_ms(void);

/* Writes s[0..n) as a JSON string literal (quotes included). */
void tool_json_str(FILE *f, const char *s, size_t n);
void tool_json_ids(FILE *f, const int32_t *ids, int n);

/* Help (help.c): cmd NULL prints the overview (every command and its
 * summary); else that command's usage, options with their defaults and an
 * example. Returns 0, or -1 (printing nothing) for an unknown command. */
int tool_help(const char *cmd, FILE *f);

int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_bench_forward(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_ngram_build(int argc, char **argv);
int cmd_vocabtrim(int argc, char **argv);
int cmd_heads_probe(int argc, char **argv);
int cmd_permute_vocab(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_quantize(int argc, char **argv);

#endif
