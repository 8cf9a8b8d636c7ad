/* quantize.c - `specdec quantize IN.gguf OUT.gguf TYPE [-t N]`: the model
 * re-encoded with a llama.cpp-style type mix (sd_model_quantize). */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model/gguf.h"
#include "model/quantize.h"
#include "progress.h"

/* sd_model_quantize_ex's progress, in MB of input tensor data. */
static void on_progress(void *user, int64_t done, int64_t total) {
    tool_progress_set_total(user, total / 1000000);
    tool_progress_update(user, done / 1000000);
}

int cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {NULL, NULL, NULL};
    int n_pos = 0, n_threads = 2;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 64) {
                fprintf(stderr, "error: -t needs a thread count in 1..64\n");
                return 1;
            }
            n_threads = (int)v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "error: unknown or incomplete option '%s' (see 'specdec quantize --help')\n", argv[i]);
            return 1;
        } else if (n_pos < 3) {
            pos[n_pos++] = argv[i];
        } else {
            fprintf(stderr, "error: unexpected argument '%s' (see 'specdec quantize --help')\n", argv[i]);
            return 1;
        }
    }
    if (n_pos != 3) {
        fprintf(stderr, "usage: specdec quantize IN.gguf OUT.gguf TYPE [-t N]\n  TYPE: %s\n",
                sd_quant_mix_names());
        return 1;
    }
    const sd_quant_mix *mix = sd_quant_mix_find(pos[2]);
    if (!mix) {
        fprintf(stderr, "error: unknown type '%s' (known: %s)\n", pos[2], sd_quant_mix_names());
        return 1;
    }
    char err[1024] = "";
    sd_quantize_stats s;
    double t0 = tool_now_ms();
    /* NULL off a terminal; the total (MB of tensor data) comes with the first
     * callback */
    tool_progress *prog = tool_progress_begin("quantize", 0, "MB");
    sd_status st = sd_model_quantize_ex(pos[0], pos[1], mix, n_threads, prog ? on_progress : NULL, prog, &s, err,
                                        sizeof err);
    tool_progress_end(prog);
    if (st != SD_OK) {
        fprintf(stderr, "error: %s (%s)\n", err[0] ? err : "quantize failed", sd_status_str(st));
        return 1;
    }
    fprintf(stderr, "quantize: %s -> %s as %s (file_type %d): %lld tensors, %lld converted (%lld matrices "
                    "not to the mix's own type), %.2f MB -> %.2f MB in %.0f ms\n  types:",
            pos[0], pos[1], mix->name, mix->ftype, (long long)s.n_tensors, (long long)s.n_quantized,
            (long long)s.n_fallback, s.bytes_in / 1e6, s.bytes_out / 1e6, tool_now_ms() - t0);
    for (int t = 0; t < SD_TYPE_COUNT; t++)
        if (s.count_by_type[t]) fprintf(stderr, " %s %lld", sd_type_name(t), (long long)s.count_by_type[t]);
    fprintf(stderr, "\n");
    return 0;
}
