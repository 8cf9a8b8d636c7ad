/* help.c - the help texts: `specdec --help` (the overview), and
 * `specdec COMMAND --help` / `specdec help COMMAND` (one command's usage,
 * every option it reads with the default the code uses, and one example
 * that runs on the shipped models).
 *
 * One entry per command of main.c's dispatch (tests/test_cli.sh checks that
 * the two lists agree, and that every option a command's parsers name is in
 * its entry). Options that a command accepts through the shared
 * parser (tool_parse) but never reads (e.g. --temp for tokenize) are left
 * out of its entry. When a parser or a default changes, change its entry
 * here too. */
#include <string.h>

#include "common.h"

typedef struct help_entry {
    const char *name;    /* as dispatched by main.c                        */
    const char *summary; /* one line, for the overview                     */
    const char *usage;   /* after "usage: specdec NAME "; may span lines    */
    const char *options; /* option lines (defaults in parentheses)          */
    const char *example; /* one command line (and maybe a comment line)     */
} help_entry;

/* Option lines shared by several entries: two spaces, the option padded to
 * 28 columns, its meaning and default. */
#define H_MODEL   "  -m, --model FILE            target model (../shared/models/kernel-c-target.gguf)\n"
#define H_PROMPT  "  -p, --prompt TEXT           the prompt (-p or -f is required)\n" \
                  "  -f, --file FILE             read the prompt from FILE\n"
#define H_THREADS "  -t, --threads N             threads, 1..512 (the CPU count, at most 8)\n"
#define H_TOKENS  "  --no-bos                    do not add BOS (off: the vocabulary's add_bos policy)\n" \
                  "  --parse-special             read special-token texts (e.g. <s>) as special tokens (off)\n"
/* Loading and running the model; bench-forward takes only H_KERNELS (it
 * measures every model both as stored and at Q8_0 itself). */
#define H_KERNELS "  --backend NAME              kernels: auto, ref, avx2 or avx512 (auto: the best the CPU has)\n" \
                  "  --attn-compat               llama.cpp's CPU attention numerics (off)\n" \
                  "  --no-pack                   keep the weights in their stored layout (off: repacked)\n"
#define H_LOAD    "  --quantize q8_0             quantize the weights to Q8_0 on load (off: as stored)\n" H_KERNELS
#define H_SAMPLE_REST "  --top-k K                   keep the K most probable tokens, <= 0: off (40)\n" \
                      "  --top-p P                   keep the smallest set of probability >= P, >= 1: off (0.95)\n" \
                      "  --min-p P                   keep tokens of probability >= P x the top one's, 0: off (0.05)\n"

/* Speculation options (tool_spec_opt): the models, then the drafters'
 * settings. H_SPEC_XTOK and H_NGRAM_DYN are not read by serve. */
#define H_SPEC_MODELS \
    "  -md, --model-draft FILE     the draft model of the methods that use one\n" \
    "                              (../shared/models/kernel-c-draft.gguf)\n" \
    "  -mh, --model-heads FILE     trained heads of eagle, hydra, medusa and their -chain variants\n" \
    "                              (../shared/models/kernel-c-target-heads.gguf)\n"
#define H_SPEC_XTOK \
    "  -mdx, --model-draft-xtok FILE\n" \
    "                              draft-xtok's draft model, of another vocabulary (-md's)\n"
#define H_SPEC_TUNE \
    "  --draft-max K|auto|feedback\n" \
    "                              chain methods' tokens per step, 0..64 (auto: chosen each step from\n" \
    "                              measured forward costs; feedback: +2 after a full accept, else -1)\n" \
    "  --draft-min K               drafts shorter than K are not verified (0)\n" \
    "  --draft-p-min P             draft, pearl, draft-xtok, self, heads chains: stop drafting when the\n" \
    "                              draft's top probability < P, 0..1 (0.5)\n" \
    "  --draft-reject-max H        draft: also stop once the estimated chance that a drafted token is\n" \
    "                              rejected exceeds H (SpecDec++), 0..1 (0: off)\n" \
    "  --draft-threads 1|2         the draft model's threads: 1 its own single thread, 2 the target's (2)\n" \
    "  --draft-vocab FILE          restrict the draft's (or heads') output head to the ids of a\n" \
    "                              VocabTrim file, see 'specdec vocabtrim --help' (off)\n" \
    "  --lookup-min N              lookup, tree-lookup, rasd: shortest n-gram matched, 1..16 (1)\n" \
    "  --lookup-max N              longest n-gram matched, 1..16 (4)\n" \
    "  --ngram-static FILE         ngram-cache: a static cache from 'specdec ngram-build' (none)\n"
#define H_NGRAM_DYN \
    "  --ngram-dynamic FILE        ngram-cache: a dynamic cache, loaded and saved back (none)\n"
#define H_SPEC_TREE \
    "  --tree-nodes N|auto         tree methods' node budget per step, 1..64 or auto: sized per step (8)\n" \
    "  --tree-depth D              tree shape: max depth, 1..16 (6)\n" \
    "  --tree-width W              nodes expanded per level, 1..16 (2)\n" \
    "  --tree-topk K               children per expanded node, 1..16 (3)\n" \
    "  --tree-p-min P              min cumulative draft probability of a node, 0..1 (0.1)\n" \
    "  --tree-branch a,b,...       sampling: children per depth, last repeated (3,2,2,1)\n" \
    "                              (eagle, hydra, medusa use their own shapes unless a --tree-* shape\n" \
    "                              option is given)\n" \
    "  --self-exit L               self: the exit layer (0: chosen per step among the trained exits)\n" \
    "  --rasd-corpus FILE          rasd: text whose continuations it also drafts from (none)\n" \
    "  --heads-q8 0|1              heads draft with Q8_0 copies of their weights (1)\n"

static const help_entry k_entries[] = {
    {"generate", "prompt in, text out: plain or speculative decoding (--spec)",
     "[-m MODEL] (-p TEXT | -f FILE) [-n N] [--spec METHOD] [options]",
     H_MODEL H_PROMPT
     "  -n, --n-predict N           tokens to generate (128)\n"
     "  -c, --ctx-size N            context cells (0: the model's training context)\n"
     H_THREADS
     "  --temp T                    temperature, 0: greedy (0.8)\n"
     H_SAMPLE_REST
     "  --seed S                    sampling seed (from the clock; --json prints it)\n"
     "  --ignore-eos                go on after an end-of-generation token (off)\n"
     "  --json                      one JSON object: prompt_ids, ids, text, seed, timings, spec\n"
     "                              (off: the text on stdout, timings on stderr)\n"
     H_TOKENS H_LOAD
     "speculation:\n"
     "  --spec METHOD               the drafter (none; draft when -md is given): none, draft, lookup,\n"
     "                              ngram-cache, tree-draft, tree-lookup, aded, self, pearl, rasd,\n"
     "                              draft-xtok, eagle, hydra, medusa, eagle-chain, hydra-chain,\n"
     "                              medusa-chain\n"
     H_SPEC_MODELS H_SPEC_XTOK H_SPEC_TUNE H_NGRAM_DYN H_SPEC_TREE,
     "specdec generate --spec draft -p \"static int btrfs_\" -n 64 --temp 0"},

    {"tokenize", "print the token ids of a text as one JSON array",
     "[-m MODEL] (-p TEXT | -f FILE) [--no-bos] [--parse-special]",
     "  -m, --model FILE            model or vocab-only GGUF (../shared/models/kernel-c-target.gguf)\n"
     H_PROMPT H_TOKENS,
     "specdec tokenize -p \"static int btrfs_\""},

    {"perplexity", "perplexity of a text, llama.cpp's method (chunks, second halves scored)",
     "[-m MODEL] -f FILE [-c N] [-t N] [--json]",
     H_MODEL
     "  -f, --file FILE             the text (-p TEXT gives it inline)\n"
     "  -c, --ctx-size N            chunk size in tokens, >= 4; each chunk starts with BOS (512)\n"
     H_THREADS
     "  --json                      one JSON object: ppl, chunks, n_ctx, scored, tokens, ms\n"
     "                              (off: 'ppl = X' on stdout, progress on stderr)\n"
     H_LOAD,
     "specdec perplexity -f ../shared/reference/heldout-btrfs.txt -c 512"},

    {"bench-forward", "decode speed and the cost of verifying n tokens, per model and weight type",
     "[-m MODEL] [-md DRAFT] [--draft-vocab FILE] [--single] [--reps R]\n"
     "                             [-t N] [--json]",
     H_MODEL
     "  -md, --model-draft FILE     draft model (../shared/models/kernel-c-draft.gguf)\n"
     "  --single                    only the -m model at its stored types (off: target and draft,\n"
     "                              each as stored and at Q8_0)\n"
     "  --draft-vocab FILE          also the draft with its head restricted to a VocabTrim file's ids\n"
     "                              (rows draft-K; none)\n"
     "  --reps R                    forwards per measurement, the median is kept, >= 1 (100)\n"
     H_THREADS
     "  --json                      one JSON object (off: markdown tables)\n"
     H_KERNELS,
     "specdec bench-forward -t 2 --reps 20"},

    {"bench", "every benchmark prompt with every method: speedups, acceptance, losslessness",
     "--prompts FILE.jsonl[,FILE...] [--methods LIST] [-m MODEL]\n"
     "                     [-md DRAFT] [options]",
     "  --prompts FILE[,FILE...]    benchmark prompts, JSON lines {id, prompt, task, max_tokens (128)};\n"
     "                              repeatable, up to 32 files (required)\n"
     "  --methods LIST              comma-separated entries METHOD[:K|:auto|:feedback][/pX]: budget K\n"
     "                              (tokens, or nodes for trees), /pX its own --draft-p-min; none is\n"
     "                              always run first as the baseline (none,draft,lookup,ngram-cache)\n"
     "  --runs R                    runs over all prompts, 1..1000 (1)\n"
     "  --limit N                   only the first N prompts of each file (all)\n"
     "  --out FILE                  write every record and the summary as JSON (none)\n"
     "  --svg FILE                  write a chart of the speedups (none)\n"
     H_MODEL
     "  -n, --n-predict N           tokens per prompt, for every prompt (each prompt's max_tokens)\n"
     "  -c, --ctx-size N            context cells (the longest prompt + its max_tokens + 72)\n"
     "  -t, --threads N             threads, 1..512 (2)\n"
     "  --temp T                    temperature, 0: greedy (0)\n"
     H_SAMPLE_REST
     "  --seed S                    sampling seed; run r uses S + r (4294967295)\n"
     H_LOAD
     "speculation (for the entries of --methods):\n"
     H_SPEC_MODELS H_SPEC_XTOK H_SPEC_TUNE H_NGRAM_DYN H_SPEC_TREE
     "exit status: 0, 1 on errors, 2 when a greedy run's speculative output differs from none\n",
     "specdec bench --prompts ../shared/bench/code-btrfs.jsonl --limit 2 -n 32 --methods draft,eagle"},

    {"ngram-build", "the static n-gram cache of the ngram-cache drafter, from a corpus",
     "[-m MODEL] -f CORPUS -o FILE",
     "  -m, --model FILE            the model whose vocabulary tokenizes the corpus\n"
     "                              (../shared/models/kernel-c-target.gguf)\n"
     "  -f, --file CORPUS           the corpus (-p TEXT gives it inline; required)\n"
     "  -o, --output FILE           the cache to write, for --ngram-static FILE (required)\n"
     H_TOKENS,
     "specdec ngram-build -f ../shared/reference/heldout-btrfs.txt -o /tmp/btrfs.ngram"},

    {"vocabtrim", "the K ids the target produces most: a VocabTrim file for --draft-vocab",
     "[-m TARGET] -f CORPUS -o FILE [-n N_TOKENS] [-k K] [-c CHUNK]\n"
     "                         [--gen G] [-t N]",
     H_MODEL
     "  -f, --file CORPUS           calibration text, not the text the drafter is evaluated on (required)\n"
     "  -o, --output FILE           the ids to write, most frequent first (required)\n"
     "  -k K                        ids to keep, 1..1048576 (1024)\n"
     "  -n, --n-predict N           tokens to count in all (65536)\n"
     "  --gen G                     count the target's greedy continuations of G tokens after each\n"
     "                              chunk; 0: its argmax at every corpus position instead (128)\n"
     "  -c, --ctx-size CHUNK        chunk size in tokens, BOS included, >= 2 (256; 512 with --gen 0)\n"
     H_THREADS H_TOKENS H_LOAD,
     "specdec vocabtrim -f ../shared/reference/heldout-btrfs.txt -n 8192 -k 256 -o /tmp/vocab.txt"},

    {"heads-probe", "the trained heads' greedy predictions after a prompt",
     "[-m TARGET] [-mh HEADS] (-p TEXT | -f FILE) [--json]",
     H_MODEL
     "  -mh, --model-heads FILE     trained heads (../shared/models/kernel-c-target-heads.gguf)\n"
     H_PROMPT
     "  -c, --ctx-size N            context cells (the prompt + 16)\n"
     H_THREADS
     "  --json                      one JSON object: n_prompt, next_token, medusa_top1, hydra_chain,\n"
     "                              eagle_chain (off: ids and their texts, one line per field)\n"
     H_TOKENS H_LOAD,
     "specdec heads-probe -p \"static int btrfs_\" --json"},

    {"quantize", "re-encode a model with a llama.cpp-style type mix",
     "IN.gguf OUT.gguf TYPE [-t N]",
     "  IN.gguf OUT.gguf            the model to read, the file to write\n"
     "  TYPE                        f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k (= q4_k_m) q4_k_s\n"
     "                              q5_k (= q5_k_m) q5_k_s q6_k (llama.cpp's mixes per tensor)\n"
     "  -t N                        threads, 1..64 (2)\n",
     "specdec quantize ../shared/models/kernel-c-target.gguf /tmp/target-q4_k.gguf q4_k"},

    {"permute-vocab", "a model with its token ids permuted (cross-tokenizer tests of draft-xtok)",
     "IN.gguf OUT.gguf --seed S [--map FILE]",
     "  IN.gguf OUT.gguf            the model to read, the file to write\n"
     "  --seed S                    the permutation's seed, an unsigned integer (required)\n"
     "  --map FILE                  also write one line 'OLD NEW' per id (none)\n",
     "specdec permute-vocab ../shared/models/kernel-c-draft.gguf /tmp/draft-perm.gguf --seed 1"},

    {"serve", "OpenAI-compatible HTTP server: continuous batching, speculation per request",
     "[-m MODEL] [--host ADDR] [--port N] [--parallel N] [--spec METHOD] [options]",
     "  --host ADDR                 address to bind (127.0.0.1)\n"
     "  --port N                    port, 0: any free one (8080)\n"
     "  --port-file FILE            write the bound port to FILE (none)\n"
     "  --parallel N, -np N         slots (concurrent generations), 1..64 (2)\n"
     "  --queue N                   requests waiting beyond the free slots before a 503, 0..4096 (16)\n"
     "  --read-timeout S            seconds a request's headers and body may take; an idle connection\n"
     "                              is closed after it too, 1..3600 (10); --timeout S is the same\n"
     "  --write-timeout S           drop a client that takes no byte of its response for S seconds\n"
     "                              and cancel its generation, 1..86400 (30)\n"
     "  --max-conn N                open connections, 16..1000000 (4096)\n"
     "  --max-conn-per-ip N         open connections per client address, 1..1000000 (32)\n"
     "  --http-threads N            event loop threads, 1..64 (2)\n"
     "  --max-body BYTES            largest request body, 1024..1073741824 (1048576)\n"
     "  --api-key KEY               require 'Authorization: Bearer KEY' (none)\n"
     "  --chat-template NAME        chatml, llama2 or llama3 (from the model's tokenizer.chat_template)\n"
     "  --alias NAME                the model's name in the API (the model file's name)\n"
     "  --ngram-cache FILE          ngram-cache's dynamic cache shared by all slots, loaded at start,\n"
     "                              saved on SIGTERM / SIGINT (none)\n"
     H_MODEL
     "  -c, --ctx-size N            context cells per slot (0: the model's training context)\n"
     H_THREADS H_LOAD
     "request defaults (a request's own fields override them):\n"
     "  --temp T                    temperature, 0: greedy (0.8)\n"
     H_SAMPLE_REST
     "  --seed S                    sampling seed (from the clock and the request's number)\n"
     "  --ignore-eos                go on after an end-of-generation token (off)\n"
     "speculation:\n"
     "  --spec METHOD               requests' default method (none): none, draft, lookup, ngram-cache,\n"
     "                              tree-draft, tree-lookup, aded, self, pearl, rasd, eagle, hydra,\n"
     "                              medusa, eagle-chain, hydra-chain, medusa-chain\n"
     H_SPEC_MODELS H_SPEC_TUNE H_SPEC_TREE,
     "specdec serve --spec draft --port 8080\n"
     "  curl -s localhost:8080/v1/completions -d '{\"prompt\": \"static int btrfs_\", \"max_tokens\": 32}'"},
};

enum { N_ENTRIES = (int)(sizeof k_entries / sizeof k_entries[0]) };

/* The overview: every command with its summary. */
static void print_overview(FILE *f) {
    fprintf(f, "usage: specdec COMMAND [options]\n\ncommands:\n");
    for (int i = 0; i < N_ENTRIES; i++) fprintf(f, "  %-14s %s\n", k_entries[i].name, k_entries[i].summary);
    fprintf(f, "\n'specdec COMMAND --help' (or 'specdec help COMMAND') prints its options, defaults and an "
               "example.\nWithout -m: the shipped ../shared/models/kernel-c-target.gguf ($SPECDEC_MODEL_DIR sets "
               "the folder).\n");
}

int tool_help(const char *cmd, FILE *f) {
    if (!cmd) {
        print_overview(f);
        return 0;
    }
    for (int i = 0; i < N_ENTRIES; i++) {
        const help_entry *e = &k_entries[i];
        if (strcmp(cmd, e->name) != 0) continue;
        fprintf(f, "specdec %s - %s\n\nusage: specdec %s %s\n\noptions (defaults in parentheses):\n%s\n"
                   "example:\n  %s\n",
                e->name, e->summary, e->name, e->usage, e->options, e->example);
        return 0;
    }
    return -1;
}
