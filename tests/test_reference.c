/*
 * test_reference.c - the engine against llama.cpp's outputs in
 * ../shared/reference, for both shipped models:
 *  - prompt_ids reproduced exactly (tokenizer + BOS);
 *  - free-running greedy continuation (incremental decode) over the first
 *    32 tokens: every prompt agrees or first splits at a near tie of the
 *    reference (refcheck.h, RC_TIE_MARGIN 0.1), and >= 22/24 code and
 *    >= 11/12 docs prompts agree exactly;
 *  - teacher-forced on the reference continuation (one batched forward),
 *    every reference top-5 log-prob within 0.02 of ours, all 64 steps, with
 *    llama.cpp-compatible attention (attn_compat); within 0.035 with the
 *    default F32 attention (see main); the mean over all prompts within the
 *    bound beside each run.
 * Measured (AMD EPYC with AVX-512 VNNI, default table avx512vnni and the
 * avx2 table via SPECDEC_CPU_CAP=avx2): greedy 24/24 and 12/12 exact on
 * every run but the draft's docs with F32 attention, 11/12 + one split at a
 * reference margin of 0.0016 (docs-006); mean |dlogprob| per task:
 *   target compat 0.00134-0.00135 (code), 0.00102-0.00104 (docs)
 *   draft  compat 0.00098-0.00099, 0.00083-0.00084
 *   target f32    0.00129, 0.00094-0.00098
 *   draft  f32    0.00153-0.00154, 0.00130-0.00131
 * Mean bounds: the largest of a run's means + 10%, rounded up (the tables
 * differ by under 5%).
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
                      double lp_tol, double lp_mean_tol, int need_code) {
    rc_model spec = {.ref = model, .file = file, .quantize = quantize, .compat = compat,
                     .n_tasks = n_tasks, .lp_tol = lp_tol, .lp_mean_tol = lp_mean_tol, .need = {need_code, 11},
                     .stride = 1};
    rc_run_model(&spec, NULL);
}

int main(void) {
    /* SD_TEST_QUICK (sanitizer runs): the target in llama.cpp's numerics only */
    const bool quick = getenv("SD_TEST_QUICK") != NULL;
    /* llama.cpp-compatible attention numerics: the bound, 0.02. */
    run_model("kernel-c-target", "kernel-c-target.gguf", SD_TYPE_NONE, true, 2, LP_TOL, 0.0015, 22);
    if (!quick) run_model("kernel-c-draft", "kernel-c-draft.gguf", SD_TYPE_NONE, true, 2, LP_TOL, 0.0011, 22);
    /* The default F32 attention is more exact than llama.cpp's F16
     * accumulator, so it differs from the reference by the reference's own
     * rounding noise: measured max 0.0305 (draft) and 0.0171 (target);
     * now 0.0297 and 0.0224 (avx512vnni), 0.0297 and 0.0156 (avx2). */
    if (!quick) {
        run_model("kernel-c-target", "kernel-c-target.gguf", SD_TYPE_NONE, false, 2, LP_TOL_F32, 0.0015, 22);
        run_model("kernel-c-draft", "kernel-c-draft.gguf", SD_TYPE_NONE, false, 2, LP_TOL_F32, 0.0017, 22);
    }
    return check_report("test_reference");
}
