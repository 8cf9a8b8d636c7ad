/*
 * test_reference.c - the engine against llama.cpp's outputs in
 * ../shared/reference, for both shipped models:
 *  - prompt_ids reproduced exactly (tokenizer + BOS);
 *  - free-running greedy continuation (incremental decode) equal to
 *    greedy_ids over the first 32 tokens for >= 22/24 code and >= 11/12
 *    docs prompts;
 *  - teacher-forced on the reference continuation (one batched forward),
 *    every reference top-5 log-prob within 0.02 of ours, all 64 steps, with
 *    llama.cpp-compatible attention (attn_compat); within 0.035 with the
 *    default F32 attention (see main).
 * (llama.cpp's quantized files are checked in test_quant_models.c; Q8_0
 * converted on load by perplexity in test_cli.sh.)
 */
#include <stdlib.h>

#include "specdec.h"
#include "util/check.h"
#include "util/refcheck.h"

#define LP_TOL 0.02
#define LP_TOL_F32 0.035

static void run_model(const char *model, const char *file, int quantize, bool compat, int n_tasks,
                      double lp_tol, int need_code) {
    rc_model spec = {.ref = model, .file = file, .quantize = quantize, .compat = compat,
                     .n_tasks = n_tasks, .lp_tol = lp_tol, .need = {need_code, 11}, .stride = 1};
    rc_run_model(&spec, NULL);
}

int main(void) {
    /* SD_TEST_QUICK (sanitizer runs): the target in llama.cpp's numerics only */
    const bool quick = getenv("SD_TEST_QUICK") != NULL;
    /* llama.cpp-compatible attention numerics: the bound, 0.02. */
    run_model("kernel-c-target", "kernel-c-target.gguf", SD_TYPE_NONE, true, 2, LP_TOL, 22);
    if (!quick) run_model("kernel-c-draft", "kernel-c-draft.gguf", SD_TYPE_NONE, true, 2, LP_TOL, 22);
    /* The default F32 attention is more exact than llama.cpp's F16
     * accumulator, so it differs from the reference by the reference's own
     * rounding noise: measured max 0.0305 (draft) and 0.0171 (target). */
    if (!quick) run_model("kernel-c-target", "kernel-c-target.gguf", SD_TYPE_NONE, false, 2, LP_TOL_F32, 22);
    if (!quick) run_model("kernel-c-draft", "kernel-c-draft.gguf", SD_TYPE_NONE, false, 2, LP_TOL_F32, 22);
    return check_report("test_reference");
}
