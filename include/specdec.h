/*
 * specdec.h - public API of libspecdec: GGUF models on CPU with lossless
 * speculative decoding.
 *
 * Conventions
 *  - Opaque handles; every object made by sd_X_new()/sd_X_load() is freed by
 *    the matching sd_X_free(), which accepts NULL.
 *  - Functions that can fail return sd_status (SD_OK == 0, errors < 0).
 *    Loaders take an optional (err, err_size) buffer that receives a
 *    human-readable message naming the problem (and the file offset for
 *    malformed files).
 *  - Library code never exits, aborts or asserts on bad input.
 *  - No global mutable state: any number of models and contexts can live in
 *    one process (a target and a draft model side by side).
 *
 * Shapes are written as (rows, cols), row-major, e.g. logits (n_vocab).
 */
#ifndef SPECDEC_H
#define SPECDEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SD_API __attribute__((visibility("default")))
#else
#define SD_API
#endif

/* ---------------------------------------------------------------- status */

typedef enum sd_status {
    SD_OK = 0,
    SD_ERR_INVALID_ARG = -1,  /* NULL or out-of-range argument                */
    SD_ERR_IO = -2,           /* open/stat/mmap/read/write failed              */
    SD_ERR_FORMAT = -3,       /* malformed or hostile file content             */
    SD_ERR_UNSUPPORTED = -4,  /* valid but not supported (arch, tensor type)   */
    SD_ERR_NOMEM = -5,        /* allocation failed                             */
    SD_ERR_NOT_FOUND = -6,    /* key, tensor or token absent                   */
    SD_ERR_CTX_FULL = -7,     /* the KV cache has no room for the batch        */
    SD_ERR_MISMATCH = -8,     /* objects that must agree do not (vocabularies) */
} sd_status;

/* Static string for a status code (never NULL). */
SD_API const char *sd_status_str(int status);

/* ------------------------------------------------------------ type ids */

/* Tensor element types; the values are ggml's (GGUF tensor_info.type). */
typedef enum sd_type {
    SD_TYPE_F32 = 0,
    SD_TYPE_F16 = 1,
    SD_TYPE_Q4_0 = 2,
    SD_TYPE_Q4_1 = 3,
    SD_TYPE_Q5_0 = 6,
    SD_TYPE_Q5_1 = 7,
    SD_TYPE_Q8_0 = 8,
    SD_TYPE_Q8_1 = 9,
    SD_TYPE_Q2_K = 10,
    SD_TYPE_Q3_K = 11,
    SD_TYPE_Q4_K = 12,
    SD_TYPE_Q5_K = 13,
    SD_TYPE_Q6_K = 14,
    SD_TYPE_Q8_K = 15,
    SD_TYPE_BF16 = 30,
    SD_TYPE_COUNT = 40,       /* upper bound of the id space, not a type      */
    SD_TYPE_NONE = -1,        /* "keep as stored" in sd_model_params.quantize */
} sd_type;

/* Name of a type ("f16", "q8_0", ...) or NULL if unknown. */
SD_API const char *sd_type_name(int type);

/* ------------------------------------------------------------ threads */

/* A persistent pool of worker threads shared by any number of contexts (a
 * target and a draft context should share one pool). A pool runs one job at
 * a time: do not decode on two contexts that share a pool from two threads
 * at once. The pool must outlive the contexts that use it. */
typedef struct sd_threadpool sd_threadpool;

/* n_threads >= 1 (the calling thread counts as one). */
SD_API sd_status sd_threadpool_new(int n_threads, sd_threadpool **out);
SD_API void sd_threadpool_free(sd_threadpool *pool);
SD_API int sd_threadpool_n_threads(const sd_threadpool *pool);

/* ------------------------------------------------------------ model */

/* The environment variable SPECDEC_CPU_CAP = ref | avx2 | avx512 |
 * avx512vnni makes the library use at most that kernel family, as a CPU
 * without the higher ones would (any other non-empty value: ref); a
 * backend above the cap is refused like one the CPU lacks. */
typedef enum sd_backend {
    SD_BACKEND_AUTO = 0,      /* best the CPU supports, chosen at run time */
    SD_BACKEND_REF = 1,       /* scalar reference kernels                  */
    SD_BACKEND_AVX2 = 2,
    SD_BACKEND_AVX512 = 3,
} sd_backend;

/* Name of the kernel table backend b gets on the running CPU ("ref",
 * "avx2", "avx512", "avx512vnni"), or "unavailable". */
SD_API const char *sd_backend_name(sd_backend b);

typedef struct sd_model_params {
    int quantize;        /* SD_TYPE_NONE (default) keeps weights as stored;
                            SD_TYPE_Q8_0 converts F16/F32 matrices on load */
    sd_backend backend;  /* kernels to use (default SD_BACKEND_AUTO)       */
    int pack;            /* 1 (default): quantized matrices (Q8_0, Q4_0,
                            Q5_0, Q4_K, Q5_K, Q6_K) are also held repacked
                            for the multi-row kernels: same results, faster;
                            0: the stored layout only                        */
} sd_model_params;

SD_API sd_model_params sd_model_default_params(void);

/* A model: weights, hyper-parameters and vocabulary; immutable after load
 * and safe to share between contexts and threads. A GGUF file holding only a
 * vocabulary (no tensors) loads as a vocab-only model: tokenizing works,
 * sd_ctx_new() returns SD_ERR_UNSUPPORTED. */
typedef struct sd_model sd_model;

/* Loads a GGUF v2/v3 file. On success *out owns the model (free with
 * sd_model_free). Errors: SD_ERR_IO, SD_ERR_FORMAT (hostile/corrupt file,
 * message names the offset), SD_ERR_UNSUPPORTED, SD_ERR_NOMEM. */
SD_API sd_status sd_model_load(const char *path, const sd_model_params *params,
                               sd_model **out, char *err, size_t err_size);
SD_API void sd_model_free(sd_model *model);

#define SD_MAX_EARLY_EXITS 8

typedef struct sd_model_info {
    const char *arch;        /* "llama", ... (owned by the model)          */
    const char *name;        /* general.name or ""                          */
    bool vocab_only;
    int n_vocab;
    int n_embd;              /* model width                                 */
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;            /* n_embd / n_head                             */
    int n_ff;
    int n_rot;               /* rope.dimension_count                        */
    int n_ctx_train;
    float rope_base;
    float norm_eps;
    int weight_type;         /* sd_type of the largest matrices             */
    size_t weight_bytes;     /* bytes of all weights as used at run time    */
    size_t weight_bytes_per_token; /* weight bytes read by one decode step
                                      (all matrices, one embedding row)     */
    double macs_int8_per_token;    /* multiply-adds per token in matrices
                                      computed with integer dots (quantized) */
    double macs_float_per_token;   /* ... and with F32 FMAs (F32/F16/BF16)  */
    int n_early_exit;        /* specdec.early_exit_layers                   */
    int early_exit[SD_MAX_EARLY_EXITS];
} sd_model_info;

SD_API void sd_model_get_info(const sd_model *model, sd_model_info *info);

/* The machine's limits for a roofline (bench-forward): measured, not
 * looked up. */
typedef struct sd_machine {
    const char *table;       /* the kernel table probed ("avx512vnni", ...)  */
    int n_threads;           /* threads that ran the probes                  */
    double read_gbps;        /* streaming read of a 256 MB buffer, all threads */
    double dot_gmacs;        /* peak int8 multiply-adds (the quantized
                                kernels' dot instruction), G/s, all threads  */
    double fma_gmacs;        /* peak F32 fused multiply-adds, G/s, all threads */
} sd_machine;

/* Measures *out with backend's kernel table on the pool's threads (NULL:
 * this thread): about 1 s. SD_ERR_UNSUPPORTED (backend unavailable),
 * SD_ERR_NOMEM. Peaks are 0 for the "ref" table. */
SD_API sd_status sd_machine_probe(sd_backend backend, sd_threadpool *pool, sd_machine *out);

/* ------------------------------------------------------------ vocabulary */

typedef struct sd_vocab sd_vocab;

/* The model's vocabulary (owned by the model). */
SD_API const sd_vocab *sd_model_vocab(const sd_model *model);

SD_API int sd_vocab_n_tokens(const sd_vocab *vocab);
SD_API int32_t sd_vocab_bos(const sd_vocab *vocab);   /* -1 if none */
SD_API int32_t sd_vocab_eos(const sd_vocab *vocab);   /* -1 if none */
SD_API bool sd_vocab_add_bos(const sd_vocab *vocab);  /* tokenizer.ggml.add_bos_token */
/* True for end-of-generation tokens (EOS, EOT). */
SD_API bool sd_vocab_is_eog(const sd_vocab *vocab, int32_t id);
/* The token's text as stored in the vocabulary (e.g. "\xe2\x96\x81the",
 * "<0x0A>"), NUL-terminated, owned by the vocab; NULL if id is out of range. */
SD_API const char *sd_vocab_token_text(const sd_vocab *vocab, int32_t id);

/* Tokenizes text[0..len). Writes at most max_ids ids. Returns the number of
 * tokens the text needs (if larger than max_ids, only max_ids were written;
 * call again with a larger buffer), or a negative sd_status.
 * add_bos: prepend BOS (callers normally pass sd_vocab_add_bos()).
 * parse_special: text of control/user-defined tokens ("<s>") becomes those
 * tokens; otherwise it is tokenized as plain text. */
SD_API int sd_tokenize(const sd_vocab *vocab, const char *text, size_t len,
                       int32_t *ids, int max_ids, bool add_bos, bool parse_special);

/* Raw bytes of one token as it appears in text ("\xe2\x96\x81" -> ' ', byte
 * tokens "<0x0A>" -> one byte, control tokens -> nothing). May be an
 * incomplete UTF-8 sequence. Returns the number of bytes (written only if it
 * fits in size) or a negative sd_status. */
SD_API int sd_token_to_piece(const sd_vocab *vocab, int32_t id, char *buf, int size);

/* Streaming detokenizer: push ids one at a time and get only complete UTF-8;
 * bytes of a character split across tokens are held back until complete.
 * Invalid sequences come out as U+FFFD. */
typedef struct sd_detok sd_detok;

SD_API sd_detok *sd_detok_new(const sd_vocab *vocab);   /* NULL on NOMEM */
SD_API void sd_detok_free(sd_detok *d);
/* Appends the text that became complete to out (NUL-terminated if out_size
 * > 0). Returns the number of bytes written (excluding NUL) or a negative
 * sd_status. out_size >= 64 always suffices for one token of up to 48 bytes. */
SD_API int sd_detok_push(sd_detok *d, int32_t id, char *out, int out_size);
/* Emits whatever is held back (as U+FFFD if incomplete). */
SD_API int sd_detok_flush(sd_detok *d, char *out, int out_size);

/* ------------------------------------------------------------ context */

typedef struct sd_ctx_params {
    int n_ctx;             /* KV cells; 0 = the model's training context     */
    sd_threadpool *pool;   /* borrowed; NULL = single-threaded               */
    bool attn_compat;      /* attention with llama.cpp's CPU numerics (F16
                              value accumulator, online softmax per cell):
                              reproduces its outputs most closely, ~3x slower
                              attention. Default false: F32 accumulation.   */
    /* VocabTrim: the output head computes logits only for these token ids;
     * every other logit is -INFINITY, so samplers and drafters never pick
     * those tokens (a draft context built this way stays lossless: the
     * target verifies every draft). The ids are copied by sd_ctx_new (the
     * array is borrowed only during the call); they must be distinct and in
     * [0, n_vocab). Logits of listed ids are bit-identical to the full
     * head's. NULL / 0 (default): the full head. */
    const int32_t *vocab_subset;  /* (n_vocab_subset) token ids            */
    int n_vocab_subset;           /* 1..n_vocab; 0 when vocab_subset is NULL */
} sd_ctx_params;

SD_API sd_ctx_params sd_ctx_default_params(void);

/* One sequence: its KV cache, scratch buffers and last outputs. */
typedef struct sd_ctx sd_ctx;

/* On success *out owns the context (free with sd_ctx_free). Errors:
 * SD_ERR_INVALID_ARG (bad n_ctx; a vocab_subset with an id out of range, a
 * duplicate, or a count outside 1..n_vocab; a count without an array),
 * SD_ERR_UNSUPPORTED (vocab-only model), SD_ERR_NOMEM. */
SD_API sd_status sd_ctx_new(const sd_model *model, const sd_ctx_params *params,
                            sd_ctx **out);
SD_API void sd_ctx_free(sd_ctx *ctx);
SD_API const sd_model *sd_ctx_model(const sd_ctx *ctx);
SD_API int sd_ctx_n_ctx(const sd_ctx *ctx);

/* What a decode produces for the rows it outputs. */
enum {
    SD_OUTPUT_LOGITS = 1u,  /* output_norm + output head -> (n_vocab)          */
    SD_OUTPUT_HIDDEN = 2u,  /* hidden state after the last layer run, before
                               output_norm -> (n_embd)                         */
};

/* A batch of n_tokens rows for one sequence.
 *
 * KV cells: the cache holds cells [0, kv_len) per layer. Each layer run
 * appends the batch's n_tokens cells after its current cells. Every row
 * attends to all cells already in the cache, plus the batch rows the mask
 * allows. RoPE uses pos, stored with the cell, so cells can later be moved
 * (sd_ctx_kv_keep) without changing their meaning. */
typedef struct sd_batch {
    int32_t n_tokens;
    const int32_t *token;  /* (n_tokens) ids; required when layer_begin == 0
                              and embd is NULL                                */
    const float *embd;     /* (n_tokens, n_embd) states entering layer_begin;
                              required when layer_begin > 0; at layer 0 they
                              replace the token embeddings (token unused)     */
    const int32_t *pos;    /* (n_tokens) positions; NULL: kv_len + i          */
    const uint8_t *mask;   /* (n_tokens, n_tail + n_tokens) row-major; entry
                              [i][n_tail + j] != 0 lets row i attend to batch
                              row j, entry [i][t] to cached cell
                              kv_len - n_tail + t. NULL: causal (j <= i; all
                              cached cells; n_tail must be 0). A token tree
                              passes its ancestor mask (self included).       */
    int32_t n_tail;        /* the last n_tail cached cells are visible only
                              where mask allows (a tree drafted level by
                              level); 0 <= n_tail <= kv_len                   */
    const uint8_t *output; /* (n_tokens) nonzero: output this row.
                              NULL: the last row only                         */
    int32_t layer_begin;   /* run layers [layer_begin, layer_end)             */
    int32_t layer_end;     /* 0 means n_layer                                 */
    uint32_t out_flags;    /* SD_OUTPUT_* bits; 0 means SD_OUTPUT_LOGITS      */
} sd_batch;

/* A causal batch over all layers with logits for the last row. */
SD_API sd_batch sd_batch_simple(const int32_t *tokens, int32_t n_tokens);

/* Runs the batch. Returns SD_OK, SD_ERR_INVALID_ARG (bad ids, mask, layer
 * range, missing inputs), SD_ERR_CTX_FULL (not enough free cells in some
 * layer run). On error the cache is unchanged. */
SD_API sd_status sd_ctx_decode(sd_ctx *ctx, const sd_batch *batch);

/* Several sequences (contexts of the same model sharing ctxs[0]'s pool) in
 * one forward: weights are read once for all rows. All batches must have the
 * same layer range and out_flags, and all contexts the same vocab_subset
 * (same ids in the same order, or none). Outputs land in each context. */
SD_API sd_status sd_decode_multi(sd_ctx *const *ctxs, const sd_batch *batches, int n_seq);

/* Outputs of the last decode, i-th output row in batch order, valid until
 * the next decode on this context; NULL if absent or i out of range. */
SD_API int sd_ctx_n_outputs(const sd_ctx *ctx);
SD_API const float *sd_ctx_logits(const sd_ctx *ctx, int i);  /* (n_vocab) */
SD_API const float *sd_ctx_hidden(const sd_ctx *ctx, int i);  /* (n_embd)  */

/* Cells in layer il's cache (all layers agree except between partial-layer
 * decodes). */
SD_API int sd_ctx_kv_len(const sd_ctx *ctx, int il);
/* Minimum over layers. */
SD_API int sd_ctx_kv_min(const sd_ctx *ctx);
/* Drops every cell at index >= n in all layers (rollback). n >= 0. */
SD_API sd_status sd_ctx_kv_truncate(sd_ctx *ctx, int n);
/* Keeps cells [0, n_prefix) and then the listed cells (strictly increasing,
 * each >= n_prefix and < kv_len), moved down to follow the prefix; drops the
 * rest. Used to keep an accepted tree path. */
SD_API sd_status sd_ctx_kv_keep(sd_ctx *ctx, int n_prefix, const int32_t *cells, int n_cells);
SD_API void sd_ctx_kv_clear(sd_ctx *ctx);

/* ------------------------------------------------------------ VocabTrim files */

/* A VocabTrim file lists the token ids for sd_ctx_params.vocab_subset as
 * text: one decimal id per line (`specdec vocabtrim` writes the most
 * frequent first), lines starting with '#' (after blanks) are comments,
 * blank lines are ignored.
 *
 * sd_vocab_subset_load reads one for a vocabulary of n_vocab tokens and
 * checks it as hostile input: size bounded (1 MiB + 32 bytes per token),
 * every id plain digits in [0, n_vocab) alone on its line, no duplicates,
 * at least one id. On success *ids (free with sd_vocab_subset_free) holds
 * *n_ids ids in file order. Errors: SD_ERR_INVALID_ARG, SD_ERR_IO,
 * SD_ERR_FORMAT (err names the line), SD_ERR_NOMEM; *ids is then NULL. */
SD_API sd_status sd_vocab_subset_load(const char *path, int n_vocab, int32_t **ids, int *n_ids,
                                      char *err, size_t err_size);
/* The same checks on text[0..len) in memory. */
SD_API sd_status sd_vocab_subset_parse(const char *text, size_t len, int n_vocab, int32_t **ids,
                                       int *n_ids, char *err, size_t err_size);
SD_API void sd_vocab_subset_free(int32_t *ids);
/* Writes ids[0..n_ids) (non-negative) after comment (may be NULL; each of
 * its lines gets "# "). Errors: SD_ERR_INVALID_ARG, SD_ERR_IO. */
SD_API sd_status sd_vocab_subset_save(const char *path, const int32_t *ids, int n_ids,
                                      const char *comment, char *err, size_t err_size);

/* ------------------------------------------------------------ sampling */

/* xoshiro256** generator; a plain value, copy it to fork a stream. */
typedef struct sd_rng {
    uint64_t s[4];
} sd_rng;

SD_API void sd_rng_seed(sd_rng *rng, uint64_t seed);
SD_API uint64_t sd_rng_next(sd_rng *rng);
/* Uniform double in [0, 1) with 53 random bits. */
SD_API double sd_rng_uniform(sd_rng *rng);

/* Sampler settings. The chain is llama.cpp's: top-k, top-p, min-p on the
 * temperature-1 softmax, then temperature on the kept logits. temp <= 0 is
 * greedy (argmax, lowest id on ties). */
typedef struct sd_sampler_params {
    float temp;      /* default 0.8                    */
    int top_k;       /* default 40; <= 0 disables      */
    float top_p;     /* default 0.95; >= 1 disables    */
    float min_p;     /* default 0.05; <= 0 disables    */
    uint64_t seed;   /* default 0xFFFFFFFF             */
} sd_sampler_params;

SD_API sd_sampler_params sd_sampler_default_params(void);

typedef struct sd_sampler sd_sampler;
/* The settings a sampler was made with (owned by the sampler). */
SD_API const sd_sampler_params *sd_sampler_get_params(const sd_sampler *s);

/* Errors: SD_ERR_INVALID_ARG (n_vocab < 1, NaN or negative parameters),
 * SD_ERR_NOMEM. */
SD_API sd_status sd_sampler_new(const sd_sampler_params *params, int n_vocab,
                                sd_sampler **out);
SD_API void sd_sampler_free(sd_sampler *s);
SD_API bool sd_sampler_is_greedy(const sd_sampler *s);
/* The generator the sampler draws from (owned by the sampler). */
SD_API sd_rng *sd_sampler_rng(sd_sampler *s);

/* Writes probs (n_vocab): the exact distribution sd_sampler_sample() draws
 * from for these logits (zeros outside the kept set; one-hot when greedy). */
SD_API void sd_sampler_dist(sd_sampler *s, const float *logits, float *probs);
/* Samples a token for these logits (argmax when greedy). */
SD_API int32_t sd_sampler_sample(sd_sampler *s, const float *logits);
/* Draws an index from a distribution over n entries (need not sum to 1;
 * must have a positive entry) with the sampler's generator; -1 if none. */
SD_API int32_t sd_sampler_draw(sd_sampler *s, const float *probs, int n);
/* Argmax of n logits (lowest index on ties). */
SD_API int32_t sd_argmax(const float *x, int n);

/* ------------------------------------------------------------ speculation */

/* A drafter proposes tokens that the target verifies in one batched forward
 * (src/speculative/drafter.h has the interface). Create one with a constructor
 * below; free it with sd_drafter_free. A drafter is used by one generation
 * at a time. */
typedef struct sd_drafter sd_drafter;

SD_API void sd_drafter_free(sd_drafter *d);
SD_API const char *sd_drafter_name(const sd_drafter *d);

/* `draft`: a smaller model with the target's vocabulary and its own KV cache
 * (n_ctx cells), kept in step with the target. Errors: SD_ERR_MISMATCH when
 * the vocabularies differ (message in err), SD_ERR_UNSUPPORTED for a
 * vocab-only model, SD_ERR_NOMEM. The models and the pool are borrowed. */
SD_API sd_status sd_drafter_new_model(const sd_model *draft, const sd_model *target,
                                      sd_threadpool *pool, int n_ctx, float p_min,
                                      sd_drafter **out, char *err, size_t err_size);
/* As sd_drafter_new_model with VocabTrim: the draft context's output head
 * keeps only vocab_subset[0..n_subset) (sd_ctx_params.vocab_subset; copied;
 * NULL / 0 = the full head), so the draft never proposes other tokens.
 * Errors also SD_ERR_INVALID_ARG for a bad subset. */
SD_API sd_status sd_drafter_new_model_ex(const sd_model *draft, const sd_model *target,
                                         sd_threadpool *pool, int n_ctx, float p_min,
                                         const int32_t *vocab_subset, int n_subset,
                                         sd_drafter **out, char *err, size_t err_size);

/* SpecDec++'s stopping rule for a `draft` drafter: stop drafting once the
 * estimated probability that some drafted token is rejected, 1 - prod(max
 * q_i) with the draft's own top probabilities, exceeds reject_max (0 turns
 * it off, the default; the first token is always drafted when p_min allows).
 * SD_ERR_INVALID_ARG for another drafter or a value outside [0, 1]. */
SD_API sd_status sd_drafter_model_set_reject_max(sd_drafter *d, float reject_max);

/* `tree-draft`: the draft model drafts a token tree (src/speculative/draft_tree.c).
 * Greedy: a dynamic tree (EAGLE-2 style): per level the `width` best nodes
 * by cumulative draft probability are expanded into their `topk` children;
 * the best nodes (at most the step's budget, draft_max) with cumulative
 * probability >= p_min are verified. Sampling: a static spine tree: branch[d]
 * children drawn without replacement at depth d, the first continues. */
#define SD_TREE_MAX_DEPTH 16
typedef struct sd_tree_params {
    int depth;                      /* max depth (default 6)                  */
    int width;                      /* nodes expanded per level (default 2)   */
    int topk;                       /* children per expanded node (default 3) */
    float p_min;                    /* min cumulative probability (0.1)       */
    int branch[SD_TREE_MAX_DEPTH];  /* sampling: children per depth (3,2,2,1..) */
} sd_tree_params;
SD_API sd_tree_params sd_tree_default_params(void);
/* As sd_drafter_new_model; errors also SD_ERR_INVALID_ARG for bad params. */
SD_API sd_status sd_drafter_new_model_tree(const sd_model *draft, const sd_model *target,
                                           sd_threadpool *pool, int n_ctx, const sd_tree_params *tp,
                                           sd_drafter **out, char *err, size_t err_size);
/* As sd_drafter_new_model_tree with a VocabTrim subset (see
 * sd_drafter_new_model_ex). */
SD_API sd_status sd_drafter_new_model_tree_ex(const sd_model *draft, const sd_model *target,
                                              sd_threadpool *pool, int n_ctx,
                                              const sd_tree_params *tp,
                                              const int32_t *vocab_subset, int n_subset,
                                              sd_drafter **out, char *err, size_t err_size);

/* `self`: self-speculative drafting with the target's own early exit
 * (src/speculative/draft_self.c): the first exit_layer layers of the target plus
 * its final norm and head draft, on target_ctx itself, which must be the
 * context passed to sd_generate (borrowed; the drafter refuses to draft on
 * a context out of step with the history). Verification then runs only the
 * remaining layers for the drafted rows. exit_layer 0: DEL, choose per step
 * among the model's trained exits (specdec.early_exit_layers). Drafting
 * stops when the exit's top probability < p_min (Kangaroo). Errors:
 * SD_ERR_INVALID_ARG, SD_ERR_UNSUPPORTED (exit_layer 0 and no trained
 * exits), SD_ERR_NOMEM. */
SD_API sd_status sd_drafter_new_self(sd_ctx *target_ctx, int exit_layer, float p_min, sd_drafter **out);

/* `draft-xtok` (universal assisted decoding, src/speculative/draft_xtok.c): a draft
 * model whose vocabulary may differ from the target's. The drafter keeps the
 * draft model's own context over the draft-vocabulary tokenization of the
 * accepted text (prompt + accepted tokens, re-tokenized near the end after
 * every step); the draft model's greedy continuation is detokenized and
 * tokenized with the target's vocabulary in context, and only target tokens
 * that extend the accepted history are proposed, while the draft's top
 * probability >= p_min. No draft distribution: proposals are one-hot, so
 * greedy and sampled verification stay lossless (the draft's argmax is
 * proposed also when the target samples). Any SentencePiece or byte-level
 * BPE pair works, equal vocabularies too. n_ctx: the draft context's KV
 * cells (0 = the draft model's training context; the draft's tokenization
 * of a text may be longer than the target's); a history that outgrows it is
 * not drafted for. The models and the pool are borrowed. Errors:
 * SD_ERR_INVALID_ARG, SD_ERR_UNSUPPORTED (a vocab-only draft model),
 * SD_ERR_NOMEM (message in err). */
SD_API sd_status sd_drafter_new_xtok(const sd_model *draft, const sd_model *target, sd_threadpool *pool,
                                     int n_ctx, float p_min, sd_drafter **out, char *err, size_t err_size);

/* `pearl`: the draft model drafts on a background thread of its own while
 * the target verifies (PEARL's post-verify overlap; src/speculative/draft_pearl.c):
 * up to `ahead` tokens beyond the accepted history; a step verifies the
 * drafted tokens whose draft probability is >= p_min. Greedy only (under
 * sampling it drafts nothing). Give the target's pool one core less. The
 * models are borrowed. Errors as sd_drafter_new_model. */
SD_API sd_status sd_drafter_new_pearl(const sd_model *draft, const sd_model *target, int n_ctx, float p_min,
                                      int ahead, sd_drafter **out, char *err, size_t err_size);

/* `lookup` (prompt lookup decoding): the most recent earlier occurrence of
 * the last n tokens of the history, n from ngram_max down to ngram_min, and
 * the tokens that followed it. 1 <= ngram_min <= ngram_max <= 16. */
SD_API sd_status sd_drafter_new_lookup(int ngram_min, int ngram_max, sd_drafter **out);
/* `tree-lookup`: the same index, but up to 8 earlier occurrences (longest
 * n-gram first, then most recent) merged into a trie of continuations; the
 * step's node budget keeps the most supported nodes. */
SD_API sd_status sd_drafter_new_lookup_tree(int ngram_min, int ngram_max, sd_drafter **out);

/* `rasd` (retrieval-augmented speculative decoding, src/speculative/draft_rasd.c):
 * a retrieval tree - `tree-lookup` continuations of the prompt and
 * generated text (n-grams ngram_min..ngram_max) plus, if n_corpus > 0,
 * continuations counted in a corpus of token ids (n-grams up to 4) - is
 * pruned with the draft model's probabilities and merged with the
 * `tree-draft` tree (params tp, NULL = defaults) by longest common prefix;
 * the fused tree (at most the step's node budget) is verified at once.
 * Greedy only: when sampling it drafts exactly as `tree-draft`. The models
 * and the pool are borrowed; corpus_ids is copied into a datastore (the
 * caller keeps its array). Errors: as sd_drafter_new_model_tree, and
 * SD_ERR_INVALID_ARG (message in err) for bad n-gram sizes, corpus_ids NULL
 * with n_corpus > 0, a corpus over 2^20 tokens or with ids outside the
 * target's vocabulary. */
SD_API sd_status sd_drafter_new_rasd(const sd_model *draft, const sd_model *target, sd_threadpool *pool,
                                     int n_ctx, const sd_tree_params *tp, int ngram_min, int ngram_max,
                                     const int32_t *corpus_ids, size_t n_corpus, sd_drafter **out,
                                     char *err, size_t err_size);

/* `ngram-cache` (llama.cpp's lookup decoding): a context cache built from
 * the history, a dynamic cache that persists across generations of this
 * drafter (loaded from and saved to dynamic_path if not NULL), and an
 * optional static cache built offline from a corpus (static_path; see
 * sd_ngram_cache_build). Errors: SD_ERR_IO / SD_ERR_FORMAT for bad files. */
SD_API sd_status sd_drafter_new_ngram_cache(const char *static_path, const char *dynamic_path,
                                            sd_drafter **out, char *err, size_t err_size);
/* Saves the dynamic cache now (also done by sd_drafter_free when a
 * dynamic_path was given). */
SD_API sd_status sd_drafter_ngram_cache_save(sd_drafter *d, char *err, size_t err_size);
/* A new `ngram-cache` drafter with its own context cache that drafts from
 * and merges into owner's dynamic cache (and reads its static cache):
 * several generations at once (a server's slots) learn one shared cache.
 * owner (an ngram-cache drafter) is borrowed and must outlive the fork; it
 * saves the shared cache. The caller serializes calls on owner and its
 * forks (no locking inside). Errors: SD_ERR_INVALID_ARG (owner is not an
 * ngram-cache drafter), SD_ERR_NOMEM. */
SD_API sd_status sd_drafter_ngram_cache_fork(sd_drafter *owner, sd_drafter **out);
/* Builds a static n-gram cache file from token ids. */
SD_API sd_status sd_ngram_cache_build(const int32_t *ids, size_t n, const char *path,
                                      char *err, size_t err_size);

/* `aded` (ADED, Adaptive Draft-Verification; training-free): a tri-gram
 * model of (a, b) -> c counts (with a b -> c fallback) over the history
 * (the prompt at begin, every accepted token after; fading with age), kept
 * across the generations of this drafter, plus an optional fixed
 * distribution counted from a corpus of token ids. Each draft is a token
 * tree (is_tree) chosen by a Monte-Carlo tree search (PUCT) over the
 * continuations of the last two tokens (src/speculative/draft_aded.c).
 * Deterministic, no draft distribution (has_q false). Memory is bounded by
 * max_contexts and max_succ (two tables: history and corpus). */
typedef struct sd_aded_params {
    int n_sims;          /* simulations per draft (default 128), 1..4096              */
    int max_depth;       /* deepest drafted token (default 8), 1..64                  */
    float c_puct;        /* exploration weight (default 4), 0..100                    */
    int topk_children;   /* candidates per expanded node (default 4), 1..16           */
    int max_succ;        /* successors kept per context (default 12), 1..32           */
    int max_contexts;    /* contexts per table (default 1 << 18), 64..1 << 24; a
                            context takes 32 + 8 * max_succ bytes at most. A full
                            history table forgets all but its recent tokens; corpus
                            contexts beyond it are not kept                           */
    int half_life;       /* history tokens after which a count weighs half (default
                            256), 0..1 << 20; 0: counts never fade                    */
    float corpus_weight; /* the corpus distribution of a context counts as this many
                            history observations (default 0.5), 0..1e6               */
    bool adapt;          /* scale c_puct by 1.5 - the recent accepted / drafted depth
                            (default true)                                            */
    float p_min;         /* draft only nodes whose path probability under the tri-gram
                            model is at least this (default 0.4), 0..1               */
} sd_aded_params;

SD_API sd_aded_params sd_aded_default_params(void);
/* params NULL = defaults. corpus_ids[0..n_corpus) (may be NULL when n_corpus
 * is 0) is read during the call only; the caller keeps it. The drafter is
 * freed with sd_drafter_free. Errors: SD_ERR_INVALID_ARG (out NULL, a
 * parameter out of range or NaN, corpus_ids NULL with n_corpus > 0, a
 * negative corpus id), SD_ERR_NOMEM; *out is NULL on error. */
SD_API sd_status sd_drafter_new_aded(const sd_aded_params *params, const int32_t *corpus_ids,
                                     size_t n_corpus, sd_drafter **out);

/* ------------------------------------------------------------ trained heads */

/* Draft heads trained for a target (GGUF architecture `specdec-heads`;
 * definitions in ../shared/models/README.md): Medusa (independent heads, one
 * per offset), Hydra (sequentially dependent heads) and EAGLE (a one-layer
 * transformer over the target's features). The file holds only the heads;
 * token_embd, output_norm and output are the target's. Immutable after
 * load; any number of drafters and threads may share one. */
typedef struct sd_heads sd_heads;

#define SD_HEADS_MAX 8  /* Medusa / Hydra heads, probe chain length */

/* Loads path for target (borrowed: it must outlive the heads), checking
 * every dimension against the target. On success *out owns the heads (free
 * with sd_heads_free). Errors: SD_ERR_INVALID_ARG, SD_ERR_IO, SD_ERR_FORMAT
 * (corrupt or hostile file, not `specdec-heads`, a missing tensor or one of
 * the wrong shape, a non-finite bias), SD_ERR_MISMATCH (the heads' width is
 * not the target's), SD_ERR_UNSUPPORTED (tensor type, vocab-only target),
 * SD_ERR_NOMEM; the message names the problem. */
SD_API sd_status sd_heads_load(const char *path, const sd_model *target, sd_heads **out, char *err,
                               size_t err_size);
SD_API void sd_heads_free(sd_heads *h);

typedef struct sd_heads_info {
    const char *target_name;  /* specdec-heads.target or "" (owned by the heads) */
    int n_embd;
    int n_medusa;             /* Medusa heads (0: none)                     */
    int n_hydra;              /* Hydra heads (0: none)                      */
    bool has_eagle;
    int eagle_n_head, eagle_n_head_kv, eagle_n_ff;
    size_t bytes;             /* weight bytes of the heads file's tensors   */
} sd_heads_info;

SD_API void sd_heads_get_info(const sd_heads *h, sd_heads_info *info);

/* Greedy predictions of every head after a prompt, as
 * ../shared/reference/kernel-c-target-heads.*.jsonl defines them:
 * next_token, the target's argmax after the prompt; medusa_top1, the argmax
 * of Medusa heads 1..n_medusa at the last prompt position; hydra_chain and
 * eagle_chain, the greedy chains of n_hydra = min(n_chain, Hydra heads) and
 * n_eagle = n_chain tokens after next_token (0 when the file lacks them).
 * Runs the prompt on target_ctx (a context of the heads' target, cleared
 * first; its pool is used). 1 <= n_chain <= SD_HEADS_MAX. */
typedef struct sd_heads_probe {
    int32_t next_token;
    int n_medusa, n_hydra, n_eagle;
    int32_t medusa_top1[SD_HEADS_MAX];
    int32_t hydra_chain[SD_HEADS_MAX];
    int32_t eagle_chain[SD_HEADS_MAX];
} sd_heads_probe;

SD_API sd_status sd_heads_run_probe(const sd_heads *h, sd_ctx *target_ctx, const int32_t *prompt, int n_prompt,
                                    int n_chain, sd_heads_probe *out);

/* `eagle`, `hydra`, `medusa`: drafters on trained heads
 * (src/speculative/draft_heads.c and draft_{eagle,hydra,medusa}.c). They draft
 * from the target's hidden states of the accepted positions, which the
 * decode loop hands them through the drafter interface's features hook, so
 * they cost the target nothing extra. All three end in the target's
 * output_norm + output (the largest cost of a draft step).
 *  - chain (tree = false): greedy, the argmax of each step while its
 *    probability >= p_min; sampling, draws from each step's distribution
 *    under the target's sampler settings (q reported).
 *  - tree, greedy: a dynamic tree (EAGLE-2): per level the `width` best
 *    nodes by cumulative draft probability are expanded into their `topk`
 *    children, and the best nodes (at most the step's budget) with
 *    cumulative probability >= tree_params.p_min are verified. Medusa's
 *    heads do not depend on the path: its tree is the best nodes of the
 *    Cartesian product of each head's `topk` candidates.
 *  - tree, sampling: a static spine tree: tree_params.branch[d] children
 *    drawn WITHOUT replacement at depth d; the first continues.
 * Medusa and Hydra draft at most as deep as they have heads; EAGLE feeds
 * its own predicted features back (depth tree_params.depth, or the budget
 * for chains). */
typedef struct sd_heads_params {
    bool tree;                  /* token tree (default) or chain             */
    float p_min;                /* chains: min top probability (default 0)   */
    sd_tree_params tree_params; /* trees: depth, width, topk, p_min, branch  */
    bool q8;                    /* draft with Q8_0 copies of the output head
                                   and of EAGLE's fc and block (made at load):
                                   about half the bytes per draft step; the
                                   drafts may differ slightly from the F16
                                   heads', verification is unchanged        */
    /* VocabTrim for heads: the draft head computes logits only for these
     * target ids (a copy of those rows of the output matrix, in the type q8
     * selects, is made by the constructor; the array is borrowed during the
     * call only); every other token gets -INFINITY, so it is never drafted.
     * The listed ids' logits are bit-identical to the full head's. Ids must
     * be distinct and in [0, n_vocab). NULL / 0 (default): the full head. */
    const int32_t *vocab_subset;
    int n_vocab_subset;
} sd_heads_params;

/* Defaults for "eagle", "hydra" or "medusa" (tuned on the shipped target;
 * another name gets EAGLE's). */
SD_API sd_heads_params sd_heads_default_params(const char *method);

/* heads and pool are borrowed (the pool runs the heads' matrix products and
 * should be the target's: drafting and verifying never overlap). params
 * NULL = the method's defaults. eagle: n_ctx cells of its KV cache (0 = the
 * target's training context + SD_MAX_DRAFT_POS). Errors: SD_ERR_INVALID_ARG
 * (bad params), SD_ERR_UNSUPPORTED (the file has no such heads),
 * SD_ERR_NOMEM. */
SD_API sd_status sd_drafter_new_eagle(const sd_heads *heads, sd_threadpool *pool, int n_ctx,
                                      const sd_heads_params *params, sd_drafter **out);
SD_API sd_status sd_drafter_new_hydra(const sd_heads *heads, sd_threadpool *pool, const sd_heads_params *params,
                                      sd_drafter **out);
SD_API sd_status sd_drafter_new_medusa(const sd_heads *heads, sd_threadpool *pool, const sd_heads_params *params,
                                       sd_drafter **out);

/* Where a heads drafter's time went since it was made (ms): in its draft
 * calls (which include catching up with the features of the accepted
 * tokens; EAGLE's rows of the prompt are computed in begin, during the
 * prefill, and not counted) and, within them, in the shared output head
 * (output_norm + output, n_vocab x n_embd), with the rows that head
 * computed and the number of draft calls. SD_ERR_INVALID_ARG for other
 * drafters. */
typedef struct sd_heads_timing {
    double draft_ms;
    double head_ms;
    int64_t head_rows;
    int64_t n_draft;
} sd_heads_timing;

SD_API sd_status sd_drafter_heads_timing(const sd_drafter *d, sd_heads_timing *out);

#define SD_MAX_DRAFT_POS 64

/* Statistics of one generation. */
typedef struct sd_spec_stats {
    int64_t n_prompt;        /* prompt tokens                                   */
    int64_t n_generated;     /* generated tokens (EOS excluded)                 */
    int64_t steps;           /* target forwards after the prompt (verifications) */
    int64_t drafted;         /* drafted tokens sent to verification            */
    int64_t accepted;        /* of those, accepted                             */
    int64_t drafted_at[SD_MAX_DRAFT_POS];  /* per draft position               */
    int64_t accepted_at[SD_MAX_DRAFT_POS];
    double prompt_ms;        /* prefill                                         */
    double draft_ms;         /* in the drafter                                  */
    double verify_ms;        /* target forwards + verification after prefill    */
    double gen_ms;           /* everything after prefill                        */
} sd_spec_stats;

/* Called with newly accepted tokens (in order); return false to stop. */
typedef bool (*sd_token_cb)(void *user, const int32_t *ids, int n);

/* The target's cost of one forward of n rows (all with logits, as a
 * verification has), measured at two context lengths; `--draft-max auto`
 * plans with it. Measuring takes ~80 forwards (a fraction of a second) and
 * CLEARS ctx's cache; do it once at start-up, outside timed regions.
 * Errors: SD_ERR_CTX_FULL (n_ctx < ~100), SD_ERR_NOMEM, decode errors. */
typedef struct sd_cost_table sd_cost_table;
SD_API sd_status sd_cost_table_measure(sd_ctx *ctx, sd_cost_table **out);
SD_API void sd_cost_table_free(sd_cost_table *t);
/* Estimated ms of a forward of `rows` rows at n_past cells of context. */
SD_API double sd_cost_table_ms(const sd_cost_table *t, int rows, int n_past);

/* draft_max = SD_DRAFT_AUTO: each step picks the draft length (chains) or
 * node budget (trees), 0..16, that maximizes expected tokens per ms from
 * the cost table and the acceptance seen so far (src/speculative/auto.h). */
#define SD_DRAFT_AUTO (-1)
/* draft_max = SD_DRAFT_FEEDBACK: the length follows recent acceptance
 * without a cost model (Hugging Face's schedule, as in DiffuSpec's
 * controller): +2 after a fully accepted draft, -1 otherwise, in 1..16. */
#define SD_DRAFT_FEEDBACK (-2)

typedef struct sd_gen_params {
    int n_predict;           /* tokens to generate (default 128)                */
    bool ignore_eos;         /* default false: stop at an end-of-generation token */
    int draft_max;           /* tokens (chains) or nodes (trees) drafted per step
                                (default 6), 0..SD_MAX_DRAFT_POS, SD_DRAFT_AUTO
                                or SD_DRAFT_FEEDBACK                         */
    int draft_min;           /* drafts shorter than this are not verified (default 0) */
    const sd_cost_table *costs; /* for SD_DRAFT_AUTO (borrowed); NULL: measured
                                at the start of each generation (slow)      */
    sd_token_cb on_tokens;   /* optional streaming callback                    */
    void *user;
} sd_gen_params;

SD_API sd_gen_params sd_gen_default_params(void);

/* Generates after prompt[0..n_prompt) on an empty or cleared ctx, with
 * drafter (NULL: plain decoding) and smp (greedy or sampling; speculative
 * sampling keeps the distribution exact). Writes up to gp->n_predict ids to
 * out (capacity >= n_predict) and their count to *n_out; stats may be NULL.
 * Errors: SD_ERR_CTX_FULL (prompt + n_predict > n_ctx), SD_ERR_INVALID_ARG,
 * SD_ERR_NOMEM, and errors of the drafter. */
SD_API sd_status sd_generate(sd_ctx *ctx, sd_sampler *smp, sd_drafter *drafter,
                             const int32_t *prompt, int n_prompt, const sd_gen_params *gp,
                             int32_t *out, int *n_out, sd_spec_stats *stats);

/* ------------------------------------------------------------ drafters by name */
/*
 * The method registry: one place that knows every method's name, what it
 * needs and how to make it, for programs that pick a drafter from a string
 * (the CLI, bench and the server all use it). A method spec is
 *
 *   METHOD[:K|:auto|:feedback][/pX]
 *
 * METHOD one of sd_spec_methods() ("ngram" is accepted for "ngram-cache");
 * :K the budget (tokens for chains, nodes for trees; 0..SD_MAX_DRAFT_POS);
 * /pX the draft's stop threshold p_min in [0, 1]. Examples: "draft",
 * "eagle:auto", "lookup:8", "draft:6/p0.4".
 */

/* Every setting a method may read; each method ignores the others. */
typedef struct sd_spec_params {
    int draft_max;          /* chain budget: tokens, SD_DRAFT_AUTO (default) or
                               SD_DRAFT_FEEDBACK; pearl: its window (16 if <= 0) */
    int tree_nodes;         /* tree budget: nodes (default 8) or SD_DRAFT_AUTO */
    float p_min;            /* draft model / heads chains: stop drafting below
                               this probability (default 0.5)                 */
    int lookup_min, lookup_max; /* lookup, tree-lookup, rasd: n-gram sizes (1, 4) */
    const char *ngram_static;   /* ngram-cache: a static cache file or NULL    */
    const char *ngram_dynamic;  /* ngram-cache: the dynamic cache file or NULL */
    int self_exit;          /* self: the exit layer (0: chosen per step)       */
    float reject_max;       /* draft: SpecDec++'s stop rule (0: off)           */
    sd_tree_params tree;    /* tree shapes (default sd_tree_default_params())  */
    bool tree_given;        /* heads methods use .tree instead of their own    */
    const char *draft_vocab;/* VocabTrim ids file for draft, tree-draft and the
                               heads' output head, or NULL                     */
    const char *rasd_corpus;/* rasd: a text file for its datastore, or NULL    */
    int heads_q8;           /* heads: draft with Q8_0 copies (1), not (0), the
                               method's default (-1, default)                  */
    bool draft_single_thread; /* the draft model without the pool (default false) */
} sd_spec_params;

SD_API sd_spec_params sd_spec_default_params(void);

/* What a method needs besides the target (flags of sd_spec_method_needs). */
enum {
    SD_SPEC_KNOWN = 1,       /* the name is a method                          */
    SD_SPEC_NEEDS_DRAFT = 2, /* a draft model (draft, tree-draft, pearl, rasd,
                                draft-xtok)                                    */
    SD_SPEC_NEEDS_HEADS = 4, /* trained heads (eagle, hydra, medusa, -chain)   */
    SD_SPEC_TREE = 8,        /* drafts trees: the budget is tree_nodes         */
    SD_SPEC_OWN_CORE = 16,   /* drafts on a core of its own (pearl): give the
                                target one thread less                         */
};

/* The models and resources a drafter borrows (the caller keeps them alive
 * while the drafter lives). */
typedef struct sd_spec_models {
    const sd_model *target;     /* required                                     */
    sd_ctx *target_ctx;         /* the context the generation runs on (self)    */
    const sd_model *draft;      /* SD_SPEC_NEEDS_DRAFT methods                  */
    const sd_model *xtok_draft; /* draft-xtok's draft (NULL: .draft)            */
    const sd_heads *heads;      /* SD_SPEC_NEEDS_HEADS methods                  */
    sd_threadpool *pool;        /* for the draft model and heads (may be NULL)  */
    int n_ctx;                  /* the target context's cells (0: training ctx) */
} sd_spec_models;

/* The method names, comma-separated, "none" first (static storage). */
SD_API const char *sd_spec_methods(void);
/* SD_SPEC_* flags of a method name (not a spec); 0 if unknown. */
SD_API unsigned sd_spec_method_needs(const char *method);
/* The budget a method drafts with under p: draft_max or tree_nodes. */
SD_API int sd_spec_method_budget(const char *method, const sd_spec_params *p);

/* Parses a spec: its method name (canonical, e.g. "ngram-cache") into
 * method[0..method_size), and in p the budget (:K into draft_max or
 * tree_nodes, as the method drafts) and p_min (/pX); other fields of p are
 * kept. *explicit_budget (may be NULL) tells whether :K was given.
 * SD_ERR_INVALID_ARG with a message in err for an unknown method or a bad
 * suffix; p is unchanged then. */
SD_API sd_status sd_spec_parse(const char *spec, char *method, size_t method_size, sd_spec_params *p,
                               bool *explicit_budget, char *err, size_t err_size);

/* Makes the drafter of spec (sd_spec_parse, over a copy of p) with the
 * models of m. *out = NULL for "none". *budget (may be NULL) gets the
 * draft_max to pass in sd_gen_params. Errors: SD_ERR_INVALID_ARG (unknown
 * method, bad spec, a needed model or heads missing: err says which), the
 * constructor's status otherwise (SD_ERR_MISMATCH for a draft of another
 * vocabulary, SD_ERR_IO for an unreadable file). The caller frees *out
 * with sd_drafter_free. */
SD_API sd_status sd_drafter_from_spec(const char *spec, const sd_spec_params *p, const sd_spec_models *m,
                                      sd_drafter **out, int *budget, char *err, size_t err_size);

/* ------------------------------------------------------------ step-wise generation */

/* The generation of sd_generate cut into steps, so that a caller (a server
 * doing continuous batching) can run the target forwards of several
 * generations together with sd_decode_multi:
 *
 *     sd_gen *g;
 *     sd_gen_begin(ctx, smp, drafter, prompt, n, &gp, &g);   prefill
 *     while (sd_gen_prepare(g, &b) > 0) {                    draft, build b
 *         sd_ctx_decode(ctx, &b);     or one sd_decode_multi over many b
 *         sd_gen_finish(g);                                  verify, accept
 *     }
 *     sd_gen_output(g, &n); sd_gen_stats(g, &st); sd_gen_free(g);
 *
 * sd_generate is exactly this loop (same outputs, bit for bit). */
typedef struct sd_gen sd_gen;

/* Prefills prompt[0..n_prompt) on ctx (cleared first) and samples the first
 * token (on_tokens sees it). ctx, smp, drafter (NULL: plain decoding) and
 * gp->costs are borrowed and must outlive the generation; prompt and gp are
 * copied. A drafter and a ctx serve one generation at a time. On success
 * *out owns the state (free with sd_gen_free); on error *out is NULL.
 * Errors: as sd_generate (SD_ERR_INVALID_ARG also for a prompt id outside
 * the vocabulary). */
SD_API sd_status sd_gen_begin(sd_ctx *ctx, sd_sampler *smp, sd_drafter *drafter, const int32_t *prompt,
                              int n_prompt, const sd_gen_params *gp, sd_gen **out);
/* Runs the drafter and writes the next verification batch to *batch: its
 * arrays belong to g and stay valid until sd_gen_finish / sd_gen_abort /
 * sd_gen_free. The caller runs it on the generation's ctx (alone, or in an
 * sd_decode_multi with other batches of the same layer_begin and
 * out_flags: self-speculation drafts set layer_begin > 0, drafters on the
 * target's features ask for SD_OUTPUT_HIDDEN) and then calls
 * sd_gen_finish. Returns 1 (a batch is ready), 0 (done: EOS, n_predict,
 * or on_tokens returned false) or a negative sd_status (the drafter
 * failed; the generation is over). Calling it again before finish is
 * SD_ERR_INVALID_ARG. */
SD_API int sd_gen_prepare(sd_gen *g, sd_batch *batch);
/* After the prepared batch ran on ctx: verifies the draft, keeps the KV
 * cells of the accepted tokens (rollback of the rest), emits the accepted
 * tokens and the bonus token (on_tokens) and tells the drafter. Errors:
 * SD_ERR_INVALID_ARG (no batch prepared, or ctx lacks the batch's outputs),
 * SD_ERR_NOMEM; the generation is then over. */
SD_API sd_status sd_gen_finish(sd_gen *g);
/* Ends the generation without finishing the prepared step (the target
 * forward failed, or the client went away); why (< 0) is kept as its
 * status. The ctx's cache is then undefined until the next begin. */
SD_API void sd_gen_abort(sd_gen *g, sd_status why);
/* True once prepare would return 0 or an error. */
SD_API bool sd_gen_done(const sd_gen *g);
/* The ids generated so far (owned by g, valid until the next step or
 * sd_gen_free) and their count. */
SD_API const int32_t *sd_gen_output(const sd_gen *g, int *n_out);
/* Statistics so far (final once done). */
SD_API void sd_gen_stats(const sd_gen *g, sd_spec_stats *stats);
/* Ends the generation if needed (the drafter's end hook) and frees g;
 * NULL is fine. */
SD_API void sd_gen_free(sd_gen *g);

#ifdef __cplusplus
}
#endif
#endif /* SPECDEC_H */
