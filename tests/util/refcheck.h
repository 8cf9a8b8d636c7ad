/* refcheck.h - the engine against llama.cpp's reference outputs in
 * ../shared/reference (shared by test_reference.c and test_quant_models.c).
 *
 * For one model file and one task (code-btrfs / docs-filesystems):
 *  - prompt_ids reproduced exactly (tokenizer, BOS as the vocabulary says);
 *  - free-running greedy continuation (incremental decode) equal to
 *    greedy_ids over the first RC_N_GREEDY tokens, counted over prompts;
 *  - teacher-forced on the reference continuation (one batched forward),
 *    max |ours - ref| over every reference top-5 log-prob of all steps. */
#ifndef SD_TEST_REFCHECK_H
#define SD_TEST_REFCHECK_H
#include <stdbool.h>

#define RC_N_GREEDY 32

typedef struct rc_model {
    const char *ref;      /* reference name: kernel-c-target-Q4_0, ...      */
    const char *file;     /* GGUF path relative to the model dir             */
    int quantize;         /* sd_model_params.quantize                        */
    bool compat;          /* llama.cpp-compatible attention numerics         */
    int n_tasks;          /* 1: code-btrfs only, 2: also docs-filesystems    */
    double lp_tol;        /* bound on the log-prob difference (checked)      */
    int need[2];          /* greedy-32 agreements required out of 24 / 12    */
    int stride;           /* use every stride-th prompt (1 = all; quick runs) */
} rc_model;

typedef struct rc_result {
    int n[2], ok_ids[2], ok_greedy[2];
    double worst_lp[2];
} rc_result;

/* Runs the checks (CHECK counts failures); fills res when non-NULL. The
 * greedy requirement scales with the prompts used (need * n / 24 or 12). */
void rc_run_model(const rc_model *spec, rc_result *res);

#endif
