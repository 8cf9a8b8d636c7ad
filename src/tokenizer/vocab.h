/*
 * vocab.h - the vocabulary (tokens, scores, types, special ids) and the
 * internal pieces shared by the tokenizers.
 *
 * A vocabulary is built once from a validated GGUF (sd_vocab_load) and is
 * immutable afterwards: tokenizing and detokenizing only read it, so one
 * vocabulary can serve any number of threads.
 *
 * Tokenizers by tokenizer.ggml.model:
 *   "llama" -> SD_VOCAB_SPM: SentencePiece BPE with byte fallback (tokenizer.c)
 *   "gpt2"  -> SD_VOCAB_BPE: GPT-2 style byte-level BPE (tokenizer_bpe.c): a
 *              pre-tokenizer chosen by tokenizer.ggml.pre splits the text,
 *              each piece's bytes become GPT-2 byte characters, merges
 *              (tokenizer.ggml.merges) are applied by rank.
 * A new tokenizer adds a type here, its loader step in vocab.c and a case in
 * sd_tokenize's switch (tokenizer.c).
 */
#ifndef SD_VOCAB_H
#define SD_VOCAB_H

#include "model/gguf.h"
#include "specdec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sd_vocab_type {
    SD_VOCAB_SPM = 1, /* tokenizer.ggml.model = "llama" */
    SD_VOCAB_BPE = 2, /* tokenizer.ggml.model = "gpt2"  */
} sd_vocab_type;

/* BPE pre-tokenizers, by tokenizer.ggml.pre (llama.cpp's
 * LLAMA_VOCAB_PRE_TYPE_*); each is a list of regex splits (tokenizer_bpe.c).
 * A missing or unknown "pre" selects SD_BPE_PRE_DEFAULT, as in llama.cpp. */
typedef enum sd_bpe_pre {
    SD_BPE_PRE_DEFAULT = 0,
    SD_BPE_PRE_GPT2,           /* gpt-2, mpt, olmo, phi-2, jais            */
    SD_BPE_PRE_LLAMA3,         /* llama3, llama-v3, llama-bpe, falcon3, dbrx, smaug-bpe */
    SD_BPE_PRE_QWEN2,          /* qwen2, stablelm2, deepseek-r1-qwen, megrez */
    SD_BPE_PRE_DEEPSEEK_LLM,   /* deepseek-llm                             */
    SD_BPE_PRE_DEEPSEEK_CODER, /* deepseek-coder                           */
    SD_BPE_PRE_FALCON,         /* falcon                                   */
    SD_BPE_PRE_STARCODER,      /* starcoder, refact, command-r, smollm, codeshell, exaone, minerva-7b */
    SD_BPE_PRE_COUNT
} sd_bpe_pre;

/* One usable BPE merge: tokens left and right (adjacent symbols) become
 * token result. Merges are applied lowest rank first. */
typedef struct sd_bpe_merge {
    int32_t left, right, result; /* token ids                                  */
    int32_t rank;                /* index in tokenizer.ggml.merges             */
} sd_bpe_merge;

/* Token types (tokenizer.ggml.token_type values, as llama.cpp's). */
enum {
    SD_TOKEN_NORMAL = 1,
    SD_TOKEN_UNKNOWN = 2,
    SD_TOKEN_CONTROL = 3,
    SD_TOKEN_USER_DEFINED = 4,
    SD_TOKEN_UNUSED = 5,
    SD_TOKEN_BYTE = 6,
};

/* Per-token flags (sd_vocab_token.flags). */
enum {
    SD_TOKFLAG_EOG = 1u,    /* ends generation                                 */
    SD_TOKFLAG_LSTRIP = 2u, /* special-token match eats whitespace to its left  */
    SD_TOKFLAG_RSTRIP = 4u, /* ... and to its right                             */
};

typedef struct sd_vocab_token {
    const char *text; /* NUL-terminated, inside sd_vocab.text_pool           */
    uint32_t len;     /* bytes of text                                       */
    float score;      /* tokenizer.ggml.scores (0 if absent)                 */
    uint8_t type;     /* SD_TOKEN_*; unknown values load as SD_TOKEN_UNUSED  */
    uint8_t flags;    /* SD_TOKFLAG_*                                        */
    int16_t byte;     /* the byte of a "<0xXX>" byte token, else -1          */
} sd_vocab_token;

struct sd_vocab {
    sd_vocab_type type;
    int32_t n_tokens;
    sd_vocab_token *tokens; /* (n_tokens)                                  */
    char *text_pool;        /* all token texts, each NUL-terminated        */

    /* text -> id: open addressing, linear probing; -1 = empty slot. */
    int32_t *hash;     /* (hash_mask + 1)                                  */
    uint32_t hash_mask;

    int32_t bos, eos, eot, unk, pad; /* -1 if none                          */
    bool add_bos;
    bool add_eos;
    bool add_space_prefix; /* SPM: prepend ' ' to the first raw text       */

    /* Byte fallback (SPM): id for each byte value, -1 if the vocabulary
     * has neither "<0xXX>" nor the one-byte text (then UNK is used). */
    int32_t byte_token[256];

    /* Tokens that are matched in raw text before tokenizing (control,
     * user-defined, unknown), longest text first (ties: lower id first). */
    int32_t *special;  /* (n_special) */
    int32_t n_special;

    /* ---- byte-level BPE (SD_VOCAB_BPE only; zero / NULL otherwise) */
    sd_bpe_pre pre;
    bool ignore_merges; /* a whole pre-token that is a token is emitted as is (llama3) */
    /* Merges whose parts and result are all tokens, in rank order; (left,
     * right) -> index via open addressing on merge_hash (-1 = empty). A
     * merge string without a separating ' ', or with a part or result that
     * is not a token, is skipped (counted in n_merges_skipped), as is a
     * repeated pair (the first, lowest rank, wins). */
    sd_bpe_merge *merges; /* (n_merges) */
    int32_t n_merges;
    int32_t n_merges_skipped;
    int32_t *merge_hash;  /* (merge_mask + 1) */
    uint32_t merge_mask;
    /* Token of each byte's GPT-2 character (bytes_to_unicode), -1 if the
     * vocabulary lacks it. */
    int32_t bpe_byte_token[256];
};

/* Builds the vocabulary from a validated GGUF (tokenizer.ggml.* keys). Checks
 * every count and id: token count == scores/token_type counts when present,
 * special token ids (bos/eos/unk/eot/pad) in range (else SD_ERR_FORMAT with a
 * message), unknown tokenizer.ggml.model -> SD_ERR_UNSUPPORTED. gpt2: a
 * missing or non-string-array tokenizer.ggml.merges, or a non-string
 * tokenizer.ggml.pre -> SD_ERR_FORMAT; bad merge strings are skipped. A file with
 * no tokenizer.ggml.model key -> SD_ERR_NOT_FOUND (no vocabulary).
 * On success *out owns the vocabulary (free with sd_vocab_free); it copies
 * what it needs, so g may be closed afterwards. */
sd_status sd_vocab_load(const sd_gguf *g, sd_vocab **out, char *err, size_t err_size);
void sd_vocab_free(sd_vocab *v);

/* Id of the token whose text is exactly text[0..len), or -1. */
int32_t sd_vocab_find(const sd_vocab *v, const char *text, size_t len);

/* A piece of the input after special-token partitioning: either a special
 * token (token >= 0) or raw text text[offset .. offset+len) (token == -1). */
typedef struct sd_vocab_fragment {
    int32_t token;
    size_t offset;
    size_t len;
} sd_vocab_fragment;

/* Splits text[0..len) into raw-text fragments and special tokens, as
 * llama.cpp's tokenizer_st_partition: for each special token, longest first,
 * every occurrence inside a remaining raw fragment becomes that token
 * (honouring LSTRIP/RSTRIP). User-defined tokens are always matched; control
 * and unknown tokens only when parse_special. Empty text gives no fragments.
 * *out is malloc'd (free it), *n_out its length. SD_ERR_NOMEM on failure. */
sd_status sd_vocab_partition(const sd_vocab *v, const char *text, size_t len, bool parse_special,
                             sd_vocab_fragment **out, size_t *n_out);

/* Token output of a tokenizer: ids are written while n < max, n counts all
 * (so the caller learns the needed size). */
typedef struct sd_tok_out {
    int32_t *ids; /* (max) */
    int max;
    int64_t n;
} sd_tok_out;

static inline void sd_tok_out_push(sd_tok_out *o, int32_t id) {
    if (o->n < o->max) o->ids[o->n] = id;
    o->n++;
}

/* SentencePiece BPE over already-escaped text (spaces are U+2581): splits
 * into UTF-8 characters (each invalid byte is its own symbol), merges the
 * best-scoring adjacent pair that forms a token until none is left, and
 * emits each final symbol as its token or, failing that, its bytes as byte
 * tokens. SD_ERR_NOMEM on allocation failure. */
sd_status sd_spm_tokenize(const sd_vocab *v, const char *text, size_t len, sd_tok_out *out);

/* The merge of tokens (left, right), or NULL if there is none. */
const sd_bpe_merge *sd_vocab_find_merge(const sd_vocab *v, int32_t left, int32_t right);

/* GPT-2 bytes_to_unicode: the UTF-8 of the character that stands for byte
 * b in byte-level BPE token texts (1 or 2 bytes, written to dst). Bytes
 * '!'..'~', 0xA1..0xAC and 0xAE..0xFF are their own code point; the other
 * 68 map in order to U+0100..U+0143. */
size_t sd_gpt2_byte_char(unsigned char b, char dst[2]);

/* Pre-tokenizes text[0..len) with pre-tokenizer pre: *ends (malloc'd, free
 * it) receives the byte offset where each piece ends, in order (the last is
 * len; no empty pieces; none when len == 0). Invalid UTF-8 bytes are one
 * pseudo character each, classed like U+FFFD (a symbol). SD_ERR_NOMEM. */
sd_status sd_bpe_pretokenize(sd_bpe_pre pre, const char *text, size_t len, size_t **ends, size_t *n_ends);

/* Byte-level BPE over one raw text fragment: pre-tokenize, map each
 * piece's bytes to GPT-2 characters, merge by rank, emit the token ids.
 * An invalid UTF-8 byte becomes its own byte character's token when that
 * is a normal token (lossless), else U+FFFD's tokens (llama.cpp's
 * behaviour for every invalid byte). SD_ERR_NOMEM on allocation failure. */
sd_status sd_bpe_tokenize(const sd_vocab *v, const char *text, size_t len, sd_tok_out *out);

/* Length (1..4) of the valid UTF-8 sequence at s[0..n), or 0 if s[0] does
 * not start one (invalid, overlong, surrogate, truncated). */
int sd_utf8_valid_len(const unsigned char *s, size_t n);

#endif
