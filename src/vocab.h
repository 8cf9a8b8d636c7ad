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
 *   "gpt2"  -> SD_VOCAB_BPE: byte-level BPE; loads (tokens, merges are not
 *              read yet) but sd_tokenize returns SD_ERR_UNSUPPORTED.
 * A new tokenizer adds a type here, its loader step in vocab.c and a case in
 * sd_tokenize's switch (tokenizer.c).
 */
#ifndef SD_VOCAB_H
#define SD_VOCAB_H

#include "gguf.h"
#include "specdec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sd_vocab_type {
    SD_VOCAB_SPM = 1, /* tokenizer.ggml.model = "llama" */
    SD_VOCAB_BPE = 2, /* tokenizer.ggml.model = "gpt2"  */
} sd_vocab_type;

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
};

/* Builds the vocabulary from a validated GGUF (tokenizer.ggml.* keys). Checks
 * every count and id: token count == scores/token_type counts when present,
 * special token ids (bos/eos/unk/eot/pad) in range (else SD_ERR_FORMAT with a
 * message), unknown tokenizer.ggml.model -> SD_ERR_UNSUPPORTED. A file with
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

/* Length (1..4) of the valid UTF-8 sequence at s[0..n), or 0 if s[0] does
 * not start one (invalid, overlong, surrogate, truncated). */
int sd_utf8_valid_len(const unsigned char *s, size_t n);

#endif
