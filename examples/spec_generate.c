/* spec_generate.c - speculative decoding through include/specdec.h alone:
 * the shipped target drafts with its draft model ("draft:4"), greedy, and
 * prints the text and tokens per verification step.
 * usage: spec_generate [MODEL_DIR (default ../shared/models)] [METHOD_SPEC] */
#include <stdio.h>
#include <string.h>

#include "specdec.h"

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "../shared/models", *spec = argc > 2 ? argv[2] : "draft:4";
    char path_t[1024], path_d[1024], err[512] = "", text[64];
    snprintf(path_t, sizeof path_t, "%s/kernel-c-target.gguf", dir);
    snprintf(path_d, sizeof path_d, "%s/kernel-c-draft.gguf", dir);
    sd_model_params mp = sd_model_default_params();
    sd_model *target = NULL, *draft = NULL;
    sd_ctx *ctx = NULL;
    sd_drafter *drafter = NULL;
    sd_sampler *greedy = NULL;
    sd_ctx_params cp = sd_ctx_default_params();
    sd_sampler_params sp = sd_sampler_default_params();
    sp.temp = 0; /* greedy: the output is exactly plain decoding's */
    sd_spec_params params = sd_spec_default_params();
    int32_t prompt[64], out[64];
    int n_prompt, n_out = 0, budget = 0, rc = 1;
    if (sd_model_load(path_t, &mp, &target, err, sizeof err) || sd_model_load(path_d, &mp, &draft, err, sizeof err) ||
        sd_ctx_new(target, &cp, &ctx) || sd_sampler_new(&sp, sd_vocab_n_tokens(sd_model_vocab(target)), &greedy))
        goto done;
    sd_spec_models models = {.target = target, .target_ctx = ctx, .draft = draft};
    if (sd_drafter_from_spec(spec, &params, &models, &drafter, &budget, err, sizeof err)) goto done;
    const char *p = "static int btrfs_";
    n_prompt = sd_tokenize(sd_model_vocab(target), p, strlen(p), prompt, 64, true, false);
    sd_gen_params gp = sd_gen_default_params();
    gp.n_predict = 48;
    gp.draft_max = budget;
    sd_spec_stats st;
    if (n_prompt < 1 || sd_generate(ctx, greedy, drafter, prompt, n_prompt, &gp, out, &n_out, &st)) goto done;
    printf("%s", p);
    for (int i = 0; i < n_out; i++) {
        int k = sd_token_to_piece(sd_model_vocab(target), out[i], text, sizeof text);
        if (k > 0 && k <= (int)sizeof text) fwrite(text, 1, (size_t)k, stdout);
    }
    printf("\n[%s] %d tokens in %lld steps: %.2f tokens per step\n", spec, n_out, (long long)st.steps,
           st.steps ? (double)n_out / (double)st.steps : 0.0);
    rc = 0;
done:
    if (rc) fprintf(stderr, "error: %s\n", err[0] ? err : "failed");
    sd_drafter_free(drafter);
    sd_sampler_free(greedy);
    sd_ctx_free(ctx);
    sd_model_free(draft);
    sd_model_free(target);
    return rc;
}
