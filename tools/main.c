/* main.c - the specdec command-line tool: one subcommand per file; their
 * help texts are in help.c (one entry per command dispatched here). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

/* True when argv asks for the command's help: -h or --help right after
 * the command, or --help anywhere among its arguments (checked before the
 * command's own parser, which would reject them as unknown options). */
static bool wants_help(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[2], "-h")) return true;
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help")) return true;
    return false;
}

/* `specdec help [COMMAND]`: the overview, or that command's help. */
static int run_help(int argc, char **argv) {
    if (argc < 3 || !strcmp(argv[2], "-h") || !strcmp(argv[2], "--help")) {
        tool_help(NULL, stdout);
        return 0;
    }
    if (argc > 3) {
        fprintf(stderr, "error: unexpected argument '%s' (usage: specdec help [COMMAND])\n", argv[3]);
        return 1;
    }
    if (tool_help(argv[2], stdout) != 0) {
        fprintf(stderr, "error: unknown command '%s' (see 'specdec --help')\n", argv[2]);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) { /* a bare `specdec` is a usage error */
        tool_help(NULL, stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        tool_help(NULL, stdout);
        return 0;
    }
    if (!strcmp(cmd, "help")) return run_help(argc, argv);
    /* an unknown command falls through to its error below */
    if (wants_help(argc, argv) && tool_help(cmd, stdout) == 0) return 0;
    if (!strcmp(cmd, "generate")) return cmd_generate(argc, argv);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc, argv);
    if (!strcmp(cmd, "perplexity")) return cmd_perplexity(argc, argv);
    if (!strcmp(cmd, "bench-forward")) return cmd_bench_forward(argc, argv);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc, argv);
    if (!strcmp(cmd, "ngram-build")) return cmd_ngram_build(argc, argv);
    if (!strcmp(cmd, "vocabtrim")) return cmd_vocabtrim(argc, argv);
    if (!strcmp(cmd, "heads-probe")) return cmd_heads_probe(argc, argv);
    if (!strcmp(cmd, "quantize")) return cmd_quantize(argc, argv);
    if (!strcmp(cmd, "permute-vocab")) return cmd_permute_vocab(argc, argv);
    if (!strcmp(cmd, "serve")) return cmd_serve(argc, argv);
    fprintf(stderr, "error: unknown command '%s'\n", cmd);
    tool_help(NULL, stderr);
    return 1;
}
