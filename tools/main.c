/* main.c - the specdec command-line tool: one subcommand per file. */
#include <stdio.h>
#include <string.h>

#include "common.h"

static void usage(void) {
    fprintf(stderr,
            "usage: specdec COMMAND [options]\n"
            "commands:\n"
            "  generate      [-m MODEL] (-p TEXT | -f FILE) -n N [--temp T] [--top-k K] [--top-p P]\n"
            "                [--min-p P] [--seed S] [-t N] [-c N] [--ignore-eos] [--json] [--quantize q8_0]\n"
            "                [--spec METHOD] [-md DRAFT] [-mh HEADS]  (METHOD: none draft lookup ngram-cache\n"
            "                tree-draft tree-lookup aded rasd self pearl draft-xtok eagle hydra medusa\n"
            "                eagle-chain hydra-chain medusa-chain) [-mdx DRAFT: draft-xtok's draft]\n"
            "                [--draft-max K|auto|feedback] [--tree-nodes N|auto] [--rasd-corpus FILE]\n"
            "                [--draft-min K] [--draft-p-min P] [--lookup-min N] [--lookup-max N]\n"
            "                [--ngram-static FILE] [--ngram-dynamic FILE]\n"
            "  tokenize      [-m MODEL] (-p TEXT | -f FILE) [--no-bos] [--parse-special]\n"
            "  perplexity    [-m MODEL] -f FILE [-c 512] [-t N] [--json]\n"
            "  bench-forward [-m MODEL] [-md DRAFT] [--draft-vocab FILE] [--single] [--reps R] [-t N] [--json]\n"
            "  bench         [-m MODEL] [-md DRAFT] [-mdx DRAFT] --prompts FILE.jsonl... --methods none,draft,...\n"
            "                [--temp T] [-t N] [--runs R] [--out results.json] (see docs in README)\n"
            "                a method entry: METHOD[:K|:auto][/pX] (budget K, its own --draft-p-min X)\n"
            "  ngram-build   [-m MODEL] -f CORPUS -o FILE\n"
            "  vocabtrim     [-m TARGET] -f CORPUS [-n N_TOKENS] [-k K] [-c CHUNK] [--gen G] [-t N] -o FILE\n"
            "                the K ids the target produces most (greedy continuations of G tokens, --gen 0:\n"
            "                teacher-forced argmax) for --draft-vocab FILE (generate, bench, bench-forward)\n"
            "  heads-probe   [-m TARGET] [-mh HEADS] (-p TEXT | -f FILE) [--json]\n"
            "  quantize      IN.gguf OUT.gguf TYPE [-t N]  (TYPE: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1\n"
            "                q4_k q4_k_m q4_k_s q5_k q5_k_m q5_k_s q6_k; llama.cpp's type mixes)\n"
            "  permute-vocab IN.gguf OUT.gguf --seed S [--map FILE]\n"
            "                the model with its token ids permuted (cross-tokenizer tests)\n"
            "  serve         [-m MODEL] [-md DRAFT] [--host 127.0.0.1] [--port 8080] [--parallel N] [-t N]\n"
            "                [-c N_CTX_PER_SLOT] [--spec METHOD] [--draft-max K|auto] [--queue N]\n"
            "                [--read-timeout S (10)] [--write-timeout S (30)] [--max-conn N (4096)]\n"
            "                [--max-conn-per-ip N (32)] [--http-threads N (2)] [--max-body BYTES]\n"
            "                [--api-key KEY] [--ngram-cache FILE] [--chat-template chatml|llama2|llama3]\n"
            "                [--alias NAME] [--port-file FILE]  (OpenAI-compatible HTTP)\n"
            "Trained heads (--spec / --methods eagle, hydra, medusa: trees, budget --tree-nodes;\n"
            "eagle-chain, hydra-chain, medusa-chain: budget --draft-max) load -mh HEADS, default\n"
            "../shared/models/kernel-c-target-heads.gguf.\n"
            "Without -m the shipped target ../shared/models/kernel-c-target.gguf is used\n"
            "($SPECDEC_MODEL_DIR overrides the folder).\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage();
        return argc < 2 ? 1 : 0;
    }
    const char *cmd = argv[1];
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
    usage();
    return 1;
}
