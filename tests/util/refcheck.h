/* refcheck.h - the engine against llama.cpp's reference outputs in
 * ../shared/reference (shared by test_reference.c and test_quant_models.c).
 *
 * For one model file and one task (code-btrfs / docs-filesystems):
 *  - prompt_ids reproduced exactly (tokenizer, BOS as the vocabulary says);
 *  - free-running greedy continuation (incremental decode) against
 *    greedy_ids over the first RC_N_GREEDY tokens: every prompt must agree,
 *    or first diverge at a near tie of the reference, i.e. at a step where
 *    the token we pick has a reference log-prob within the tie margin
 *    (RC_TIE_MARGIN unless the model states its own) of the reference's
 *    top, so the reference's top-2 margin is below it too;
 *    optionally also a count of exact agreements;
 *  - teacher-forced on the reference continuation (one batched forward, so
 *    every step compares like with like even after a greedy divergence):
 *    max |ours - ref| over every reference top-5 log-prob of all steps, per
 *    prompt, and its mean over all prompts of a task, both bounded. */
#ifndef SD_TEST_REFCHECK_H
#define SD_TEST_REFCHECK_H
#include <stdbool.h>

#define RC_N_GREEDY 32
/* A free-running continuation may first differ from the reference only at a
 * step where the reference itself is within this log-prob of choosing our
 * token: there a numerics change of the size the log-prob bounds allow can
 * flip the argmax. The default; a model whose arithmetic is noisier (the
 * quantized files, test_quant_models.c) states its own. Measured on F16 and
 * qwen2: splits at reference margins up to 0.007 (test_reference.c,
 * test_quant_models.c). */
#define RC_TIE_MARGIN 0.1

typedef struct rc_model {
    const char *ref;      /* reference name: kernel-c-target-Q4_0, ...      */
    const char *file;     /* GGUF path relative to the model dir             */
    int quantize;         /* sd_model_params.quantize                        */
    bool compat;          /* llama.cpp-compatible attention numerics         */
    int n_tasks;          /* 1: code-btrfs only, 2: also docs-filesystems    */
    double lp_tol;        /* bound on each prompt's max top-5 log-prob gap   */
    double lp_mean_tol;   /* bound on the mean top-5 log-prob gap of a task  */
    double tie_margin;    /* near-tie bound of a greedy split (0: default)   */
    int need[2];          /* exact greedy-32 agreements required out of 24 /
                             12 (0: none; the near-tie rule always holds)    */
    int stride;           /* use every stride-th prompt (1 = all; quick runs) */
} rc_model;

typedef struct rc_result {
    int n[2], ok_ids[2], ok_greedy[2];
    int n_tie[2];            /* prompts that first diverge at a near tie     */
    double worst_tie[2];     /* largest reference margin at such a split     */
    double worst_lp[2], mean_lp[2];
} rc_result;

/* Runs the checks (CHECK counts failures); fills res when non-NULL. The
 * count requirement scales with the prompts used (need * n / 24 or 12). A
 * missing model or reference file is a failed check. */
void rc_run_model(const rc_model *spec, rc_result *res);

#endif
