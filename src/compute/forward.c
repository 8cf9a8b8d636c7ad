/*
 * forward.c - the transformer forward pass over a batch of rows from one or
 * more sequences, run by every thread of the pool with barriers between
 * phases (each phase splits its work by thread index ith of nth).
 *
 * Letters: N = rows in the batch (all sequences), E = n_embd, H = n_head,
 * Hkv = n_head_kv, D = head_dim, F = n_ff, V = n_vocab.
 *
 * Per layer (llama):  xn = rmsnorm(x) ; q,k,v = xn Wq, xn Wk, xn Wv (+ bias)
 *   rope(q, k) ; cache <- k, v ; att = softmax(q K^T / sqrt(D) + mask) V
 *   x += att Wo ; xn = rmsnorm(x) ; x += (silu(xn Wg) * (xn Wu)) Wd
 */
#include <math.h>
#include <stdatomic.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "compute/ctx.h"
#include "kernels/attn.h"
#include "kernels/quants.h"

#ifdef SD_FWD_PROFILE
#include <time.h>
static double prof_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
/* PMARK(slot): the time since the previous mark goes to slot (thread ith). */
#define PROF_START() double prof_t = prof_now()
#define PMARK(slot)                                                            \
    do {                                                                       \
        if (ith < 2) {                                                         \
            double prof_t1 = prof_now();                                       \
            J->s->prof[ith][slot] += prof_t1 - prof_t;                         \
            prof_t = prof_t1;                                                  \
        }                                                                      \
    } while (0)
#else
#define PROF_START() ((void)0)
#define PMARK(slot) ((void)0)
#endif
/* Profile slots (SD_FWD_PROFILE builds): work of each phase, and the
 * barriers' waits. */
enum { P_INPUT, P_BARRIER, P_NORM1, P_QKV, P_ROPE, P_ATTN, P_PREP_O, P_WO, P_NORM2, P_GATEUP,
       P_SWIGLU, P_DOWN, P_OUTNORM, P_HEAD, P_SCATTER };
#define BARRIER(slot)                                                          \
    do {                                                                       \
        PMARK(slot);                                                           \
        sd_threadpool_barrier(J->pool);                                        \
        PMARK(P_BARRIER);                                                      \
    } while (0)

/* Rows per thread from which a forward splits its rows, not its columns,
 * over the threads. A row split meets once per layer instead of 6 times,
 * but every thread reads every weight: when the shared L3 does not hold
 * the model, that doubles the DRAM traffic, and below ~8 rows per thread
 * (2 threads, F16 target, a loaded machine) the column split was faster
 * (bench/bench_fwd_profile.c, splits 1,2). */
#ifndef SD_ROW_SPLIT_MIN
#define SD_ROW_SPLIT_MIN 8
#endif

typedef struct fwd_seq {
    sd_ctx *ctx;
    const sd_batch *b;
    int row0;          /* first row of this sequence in the batch      */
    int out0;          /* first output row of this sequence            */
    int n_out;
} fwd_seq;

typedef struct fwd_job {
    const sd_model *m;
    const sd_kernels *kern;
    sd_threadpool *pool;
    sd_scratch *s;
    fwd_seq *seqs;     /* (n_seq) */
    int n_seq;
    int N;             /* rows */
    int *row_seq;      /* (N) sequence of each row */
    int *out_rows;     /* (n_out) row of each output */
    int n_out;
    int lb, le;        /* layer range */
    uint32_t flags;
    float *logits;     /* (n_out, V) destination (may be a combined buffer) */
    float *hidden;     /* (n_out, E) */
    /* VocabTrim (the contexts' vocab_subset; n_sub == 0: full head) */
    const sd_weight *sub_head; /* (S, E) compact output rows            */
    const int32_t *sub_ids;    /* (S) token id of each compact row, -1 = pad */
    int n_sub;                 /* S                                      */
    float *sub_logits;         /* (n_out, S) compact head output         */
    sd_attn_rows_fn attn_rows; /* the default (F32) attention kernel */
    int att_chunk;     /* rows per attention work item                  */
    int n_att_items;   /* attention work items per layer                */
    bool grp_fused;    /* each thread owns whole kv heads: q, k, v, RoPE,
                          cache and attention without barriers between   */
    bool row_split;    /* each thread owns whole rows (enough rows)      */
    /* Work counters of the column split, W_SLOTS per layer then the head's
     * (zeroed before the threads start): each thread takes the next chunk
     * of a matmul's columns (kv heads, attention items) until none is
     * left, so a thread that runs slower (a busier core) does less of the
     * work instead of keeping the other waiting at the barrier. Which
     * thread computes a column does not change its bits (matmul's rule
     * below), so results stay batch- and split-invariant. */
    atomic_int *work;
} fwd_job;

enum { W_Q, W_K, W_V, W_ATT, W_O, W_GATEUP, W_DOWN, W_SLOTS };

/* The counter of (layer il, slot); il = le: the output head's. */
static atomic_int *work_ctr(const fwd_job *J, int il, int slot) {
    return &J->work[(size_t)(il - J->lb) * W_SLOTS + (size_t)slot];
}

/* Next chunk index of a counter (each index handed out once). */
static int work_next(atomic_int *c) { return atomic_fetch_add_explicit(c, 1, memory_order_relaxed); }

/* Chunk size for n items over nth threads: about 6 chunks per thread, a
 * multiple of align. */
static int work_chunk(int n, int nth, int align) {
    int c = n / (6 * nth);
    c = (c + align - 1) / align * align;
    return c < align ? align : c;
}

/* Bytes of one activation row of K elements in the Q8_0 / Q8_1 / Q8_K
 * formats (K a multiple of the format's block). */
static size_t q8_row_bytes(int K) { return (size_t)(K / SD_QK8_0) * sizeof(sd_block_q8_0); }
static size_t q81_row_bytes(int K) { return (size_t)(K / SD_QK8_1) * sizeof(sd_block_q8_1); }
static size_t q8k_row_bytes(int K) { return (size_t)(K / SD_QK_K) * sizeof(sd_block_q8_K); }

/* y (N, ld) columns [0, M) of w applied to x (N, K), or to the copy of x in
 * the weight type's activation format prepared by prepare_rows; this
 * thread's share of the columns. */
static int need_of(int type);
enum { NEED_Q8 = 1, NEED_F16 = 2, NEED_Q8_1 = 4, NEED_Q8_K = 8, NEED_BF16 = 16 };

static void matmul_cols(const fwd_job *J, int set, const sd_weight *w, const float *x, float *y, size_t ldy,
                        int ra, int rb, int m0, int m1) {
    const struct sd_prep *s = &J->s->prep[set];
    const int N = rb - ra;
    if (m0 >= m1 || N <= 0) return;
    const int K = (int)w->cols;
    const size_t fs = (size_t)K * sizeof(float), r = (size_t)ra;
    const void *xa;
    size_t xs;
    switch (need_of(w->type)) {
    case NEED_Q8: xa = (const char *)s->xq + r * q8_row_bytes(K), xs = q8_row_bytes(K); break;
    case NEED_Q8_1: xa = (const char *)s->xq1 + r * q81_row_bytes(K), xs = q81_row_bytes(K); break;
    case NEED_Q8_K: xa = (const char *)s->xqk + r * q8k_row_bytes(K), xs = q8k_row_bytes(K); break;
    /* ggml feeds F16 (BF16) matmuls F16- (BF16-) rounded activations */
    case NEED_F16: xa = s->xr + r * (size_t)K, xs = fs; break;
    case NEED_BF16: xa = s->xb + r * (size_t)K, xs = fs; break;
    default: xa = x + r * (size_t)K, xs = fs; break; /* F32 */
    }
    sd_weight_matmul(J->kern, w, xa, xs, N, y + r * ldy, ldy, m0, m1);
}

/* matmul_cols over this thread's share of the columns. Every kernel's
 * output column depends only on whether it falls in a complete group of 4
 * counted from a multiple of 16 (kernels.h), so any split into ranges that
 * start at multiples of 16 gives the same bits. */
static void matmul(const fwd_job *J, int nth, atomic_int *ctr, int set, const sd_weight *w, const float *x,
                   float *y, size_t ldy, int N) {
    const int M = (int)w->rows, ch = work_chunk(M, nth, 16);
    for (int c; (c = work_next(ctr)) * ch < M;)
        matmul_cols(J, set, w, x, y, ldy, 0, N, c * ch, c * ch + ch < M ? c * ch + ch : M);
}

/* Which input formats the weights reading one activation buffer need. */
static int need_of(int type) {
    switch (type) {
    case SD_TYPE_Q8_0: case SD_TYPE_Q4_0: case SD_TYPE_Q5_0: return NEED_Q8;
    case SD_TYPE_Q4_1: case SD_TYPE_Q5_1: return NEED_Q8_1;
    case SD_TYPE_Q4_K: case SD_TYPE_Q5_K: case SD_TYPE_Q6_K: return NEED_Q8_K;
    case SD_TYPE_F16: return NEED_F16;
    case SD_TYPE_BF16: return NEED_BF16;
    default: return 0;
    }
}
static int needs(const sd_weight *a, const sd_weight *b, const sd_weight *c) {
    const sd_weight *w[3] = {a, b, c};
    int f = 0;
    for (int i = 0; i < 3; i++)
        if (w[i]) f |= need_of(w[i]->type);
    return f;
}

/* Converts rows [r0, r1), columns [c0, c1) of x (rows of K floats) into
 * the formats the next matmuls read: Q8_0 / Q8_1 / Q8_K blocks in xq / xq1
 * / xqk, F16- and BF16-rounded floats in xr / xb of the scratch's
 * prep[set]. (The model loader guarantees that K is a multiple of the block
 * of every format a weight of width K needs; column ranges: need_block.) */
static void prepare_range(const fwd_job *J, int set, const float *x, int K, int r0, int r1, int c0, int c1,
                          int need) {
    const struct sd_prep *s = &J->s->prep[set];
    const int nc = c1 - c0;
    if (nc <= 0) return;
    for (int r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * K + c0;
        if (need & NEED_Q8)
            J->kern->quantize_row_q8_0((char *)s->xq + (size_t)r * q8_row_bytes(K) + q8_row_bytes(c0), xr, nc);
        if (need & NEED_Q8_1)
            sd_quantize_row_q8_1((char *)s->xq1 + (size_t)r * q81_row_bytes(K) + q81_row_bytes(c0), xr, nc);
        if (need & NEED_Q8_K)
            J->kern->quantize_row_q8_K((char *)s->xqk + (size_t)r * q8k_row_bytes(K) + q8k_row_bytes(c0), xr, nc);
        if (need & NEED_F16) {
            float *dst = s->xr + (size_t)r * K + c0;
            memcpy(dst, xr, (size_t)nc * sizeof(float));
            J->kern->round_f16_row(dst, (size_t)nc);
        }
        if (need & NEED_BF16) {
            float *dst = s->xb + (size_t)r * K + c0;
            memcpy(dst, xr, (size_t)nc * sizeof(float));
            J->kern->round_bf16_row(dst, (size_t)nc);
        }
    }
}

static void prepare_rows(const fwd_job *J, int set, const float *x, int K, int r0, int r1, int need) {
    prepare_range(J, set, x, K, r0, r1, 0, K, need);
}

/* Columns a block of the formats in need spans: prepare_range converts
 * column ranges that start (and end, or end at K) at multiples of it to the
 * same bytes as whole rows (blocks and the F16 / BF16 roundings are
 * independent of each other). */
static int need_block(int need) {
    if (need & NEED_Q8_K) return SD_QK_K;
    if (need & (NEED_Q8 | NEED_Q8_1)) return SD_QK8_0;
    return 1;
}

/* cos/sin table of row r at position pos (ggml's incremental theta; pair
 * i's angle divided by rope_freqs[i] and scaled by the linear factor as
 * ggml's rope does, theta = freq_scale * theta / freq_factor). */
static void rope_table(const sd_model *m, float *t, int pos) {
    const float theta_scale = powf(m->rope_base, -2.0f / (float)m->n_rot);
    const float *ff = m->rope_freqs;
    const float fs = m->rope_freq_scale;
    float theta = (float)pos;
    for (int i = 0; i < m->n_rot / 2; i++) {
        float th = ff ? theta / ff[i] : theta;
        if (fs > 0.0f && fs != 1.0f) th = fs * th; /* 0: a model made without it */
        t[2 * i] = cosf(th);
        t[2 * i + 1] = sinf(th);
        theta *= theta_scale;
    }
}

/* Rotates n_heads heads of D values in place. */
static void rope_apply(const sd_model *m, float *x, int n_heads, const float *t) {
    const int D = m->head_dim, half = m->n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * D;
        if (m->rope_type == SD_ROPE_NORM) {
            for (int i = 0; i < half; i++) {
                float c = t[2 * i], s = t[2 * i + 1];
                float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * c - b * s;
                v[2 * i + 1] = a * s + b * c;
            }
        } else {
            for (int i = 0; i < half; i++) {
                float c = t[2 * i], s = t[2 * i + 1];
                float a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = a * s + b * c;
            }
        }
    }
}

static int row_pos(const fwd_seq *q, int i, int kv0) { return q->b->pos ? q->b->pos[i] : kv0 + i; }

/* Attention work: an item is (sequence, kv head g, chunk of att_chunk rows
 * of that sequence); items are numbered sequence by sequence. Chunks let
 * the rows that share the cached prefix read each K/V block once. */
static void attn_plan(fwd_job *J, int nth) {
    const int Hkv = J->m->n_head_kv, n_rep = J->m->n_head / J->m->n_head_kv;
    int max_rows = 32 / n_rep > 0 ? 32 / n_rep : 1;
    int max_n = 1;
    for (int k = 0; k < J->n_seq; k++)
        if (J->seqs[k].b->n_tokens > max_n) max_n = J->seqs[k].b->n_tokens;
    /* enough items to keep every thread busy */
    int per_g = (nth + Hkv - 1) / Hkv;
    int chunk = (max_n + per_g - 1) / per_g;
    J->att_chunk = chunk < 1 ? 1 : chunk > max_rows ? max_rows : chunk;
    J->n_att_items = 0;
    for (int k = 0; k < J->n_seq; k++)
        J->n_att_items += Hkv * ((J->seqs[k].b->n_tokens + J->att_chunk - 1) / J->att_chunk);
}

/* Attention of rows [i0, i1) of sequence k for kv head g. */
static void attend_rows(const fwd_job *J, int il, int k, int g, int i0, int i1) {
    const sd_model *m = J->m;
    const int D = m->head_dim, Hkv = m->n_head_kv, KVD = Hkv * D, n_rep = m->n_head / Hkv;
    const int QD = m->n_head * D;
    const fwd_seq *q = &J->seqs[k];
    const sd_ctx *ctx = q->ctx;
    const sd_batch *b = q->b;
    const size_t off = (size_t)il * (size_t)ctx->n_ctx * KVD + (size_t)g * D;
    const float scale = 1.0f / sqrtf((float)D);
    sd_attn_row rows[64];
    int nr = 0;
    for (int i = i0; i < i1; i++) {
        const int r = q->row0 + i;
        float *out = J->s->att + (size_t)r * QD + (size_t)g * n_rep * D;
        const float *qr = J->s->q + (size_t)r * QD + (size_t)g * n_rep * D;
        int n_batch = i + 1;
        const uint8_t *vis = NULL;
        if (b->mask) { /* the tail cells and the batch cells, one mask row */
            n_batch = b->n_tail + b->n_tokens;
            vis = b->mask + (size_t)i * (size_t)n_batch;
        }
        if (ctx->attn_compat) {
            J->kern->attn_f16(out, qr, n_rep, D, scale, ctx->k_cache + off, ctx->v_cache + off, (size_t)KVD,
                              ctx->n_cells[il] - b->n_tail, n_batch, vis);
            continue;
        }
        rows[nr++] = (sd_attn_row){.out = out, .q = qr, .n_batch = n_batch, .vis = vis};
    }
    if (nr > 0)
        J->attn_rows(rows, nr, n_rep, D, scale, ctx->k_cache + off, ctx->v_cache + off, (size_t)KVD,
                     ctx->n_cells[il] - b->n_tail);
}

static void attend_item(const fwd_job *J, int il, int item) {
    const int Hkv = J->m->n_head_kv;
    int k = 0;
    for (;; k++) {
        int n_items = Hkv * ((J->seqs[k].b->n_tokens + J->att_chunk - 1) / J->att_chunk);
        if (item < n_items) break;
        item -= n_items;
    }
    const int n_tok = J->seqs[k].b->n_tokens;
    const int n_chunks = (n_tok + J->att_chunk - 1) / J->att_chunk;
    const int g = item / n_chunks, i0 = (item % n_chunks) * J->att_chunk;
    attend_rows(J, il, k, g, i0, i0 + J->att_chunk < n_tok ? i0 + J->att_chunk : n_tok);
}

/* Biases, RoPE and the F16 cache append of q, k, v for rows [ra, rb) and
 * the columns [qc0, qc1) of q and [kc0, kc1) of k and v (whole heads). */
static void qkv_post(const fwd_job *J, int il, int ra, int rb, int qc0, int qc1, int kc0, int kc1) {
    const sd_model *m = J->m;
    const sd_layer *L = &m->layers[il];
    const sd_scratch *s = J->s;
    const int D = m->head_dim, QD = m->n_head * D, KVD = m->n_head_kv * D;
    for (int r = ra; r < rb; r++) {
        const fwd_seq *q = &J->seqs[J->row_seq[r]];
        sd_ctx *ctx = q->ctx;
        float *qr = s->q + (size_t)r * QD, *kr = s->k + (size_t)r * KVD, *vr = s->v + (size_t)r * KVD;
        if (L->bq) {
            for (int e = qc0; e < qc1; e++) qr[e] += L->bq[e];
            for (int e = kc0; e < kc1; e++) kr[e] += L->bk[e];
            for (int e = kc0; e < kc1; e++) vr[e] += L->bv[e];
        }
        const float *t = s->rope + (size_t)r * m->n_rot;
        rope_apply(m, qr + qc0, (qc1 - qc0) / D, t);
        rope_apply(m, kr + kc0, (kc1 - kc0) / D, t);
        size_t cell = (size_t)ctx->n_cells[il] + (size_t)(r - q->row0);
        size_t base = ((size_t)il * (size_t)ctx->n_ctx + cell) * (size_t)KVD + (size_t)kc0;
        J->kern->fp32_to_fp16_row(ctx->k_cache + base, kr + kc0, (size_t)(kc1 - kc0));
        J->kern->fp32_to_fp16_row(ctx->v_cache + base, vr + kc0, (size_t)(kc1 - kc0));
    }
}

static void add_rows(float *x, const float *y, int E, int r0, int r1) {
    for (int r = r0; r < r1; r++) {
        float *xr = x + (size_t)r * E;
        const float *yr = y + (size_t)r * E;
        for (int e = 0; e < E; e++) xr[e] += yr[e];
    }
}

/* Flush denormals to zero (FTZ + DAZ) while a forward runs: attention
 * weights and rescale factors below 1e-38 otherwise cost ~100x in microcode
 * assists, and they cannot change any output. Returns the previous mode. */
static unsigned denormals_off(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040u);
    return csr;
#else
    return 0;
#endif
}

static void denormals_restore(unsigned csr) {
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(csr);
#else
    (void)csr;
#endif
}

static void forward_layers(const fwd_job *J, int ith, int nth);

static void forward_worker(void *arg, int ith, int nth) {
    unsigned csr = denormals_off();
    forward_layers(arg, ith, nth);
    denormals_restore(csr);
}

static void forward_layers(const fwd_job *J, int ith, int nth) {
    const sd_model *m = J->m;
    const sd_kernels *kern = J->kern;
    sd_scratch *s = J->s;
    const int N = J->N, E = m->n_embd, D = m->head_dim, H = m->n_head, Hkv = m->n_head_kv;
    const int QD = H * D, KVD = Hkv * D, F = m->n_ff, n_rep = H / Hkv;
    int r0, r1;
    sd_split(N, ith, nth, 1, &r0, &r1);
    PROF_START();

    /* Inputs and RoPE tables for this thread's rows. */
    for (int r = r0; r < r1; r++) {
        const fwd_seq *q = &J->seqs[J->row_seq[r]];
        int i = r - q->row0;
        if (J->lb == 0 && !q->b->embd) sd_weight_get_row(&m->tok_embd, q->b->token[i], s->x + (size_t)r * E);
        else memcpy(s->x + (size_t)r * E, q->b->embd + (size_t)i * E, (size_t)E * sizeof(float));
        rope_table(m, s->rope + (size_t)r * m->n_rot, row_pos(q, i, q->ctx->n_cells[J->lb]));
    }

    /* Row split: each thread runs whole layers over its own rows, all
     * columns of every matmul (a row's bits do not depend on the rows it
     * is computed with), and the threads meet once per layer, when every
     * row's k and v are in the cache and attention can start. */
    for (int il = J->lb; J->row_split && il < J->le; il++) {
        const sd_layer *L = &m->layers[il];
        for (int r = r0; r < r1; r++) {
            if (il > J->lb) add_rows(s->x, s->tmp, E, r, r + 1); /* previous layer's FFN */
            kern->rmsnorm(s->xn + (size_t)r * E, s->x + (size_t)r * E, L->attn_norm, m->norm_eps, E);
        }
        prepare_rows(J, 0, s->xn, E, r0, r1, needs(&L->wq, &L->wk, &L->wv));
        PMARK(P_NORM1);
        matmul_cols(J, 0, &L->wq, s->xn, s->q, QD, r0, r1, 0, QD);
        matmul_cols(J, 0, &L->wk, s->xn, s->k, KVD, r0, r1, 0, KVD);
        matmul_cols(J, 0, &L->wv, s->xn, s->v, KVD, r0, r1, 0, KVD);
        PMARK(P_QKV);
        qkv_post(J, il, r0, r1, 0, QD, 0, KVD);
        BARRIER(P_ROPE);
        for (int k = 0; k < J->n_seq; k++) { /* this thread's rows of each sequence */
            const int row0 = J->seqs[k].row0, n_tok = J->seqs[k].b->n_tokens;
            const int i0 = r0 > row0 ? r0 - row0 : 0, i1 = r1 - row0 < n_tok ? r1 - row0 : n_tok;
            for (int g = 0; g < Hkv; g++)
                for (int a = i0; a < i1; a += J->att_chunk)
                    attend_rows(J, il, k, g, a, a + J->att_chunk < i1 ? a + J->att_chunk : i1);
        }
        PMARK(P_ATTN);
        prepare_rows(J, 1, s->att, QD, r0, r1, needs(&L->wo, NULL, NULL));
        PMARK(P_PREP_O);
        matmul_cols(J, 1, &L->wo, s->att, s->tmp, E, r0, r1, 0, E);
        PMARK(P_WO);
        add_rows(s->x, s->tmp, E, r0, r1);
        for (int r = r0; r < r1; r++)
            kern->rmsnorm(s->xn + (size_t)r * E, s->x + (size_t)r * E, L->ffn_norm, m->norm_eps, E);
        prepare_rows(J, 0, s->xn, E, r0, r1, needs(&L->w_gate, &L->w_up, NULL));
        PMARK(P_NORM2);
        matmul_cols(J, 0, &L->w_gate, s->xn, s->gate, F, r0, r1, 0, F);
        matmul_cols(J, 0, &L->w_up, s->xn, s->up, F, r0, r1, 0, F);
        PMARK(P_GATEUP);
        for (int r = r0; r < r1; r++) kern->swiglu(s->gate + (size_t)r * F, s->up + (size_t)r * F, F);
        prepare_rows(J, 2, s->gate, F, r0, r1, needs(&L->w_down, NULL, NULL));
        PMARK(P_SWIGLU);
        matmul_cols(J, 2, &L->w_down, s->gate, s->tmp, E, r0, r1, 0, E);
        PMARK(P_DOWN);
    }

    for (int il = J->lb; !J->row_split && il < J->le; il++) {
        const sd_layer *L = &m->layers[il];
        /* --- attention block: xn = rmsnorm(x); q, k, v */
        for (int r = r0; r < r1; r++) {
            if (il > J->lb) add_rows(s->x, s->tmp, E, r, r + 1); /* previous layer's FFN */
            kern->rmsnorm(s->xn + (size_t)r * E, s->x + (size_t)r * E, L->attn_norm, m->norm_eps, E);
        }
        prepare_rows(J, 0, s->xn, E, r0, r1, needs(&L->wq, &L->wk, &L->wv));
        BARRIER(P_NORM1);
        if (J->grp_fused) {
            /* kv heads taken one at a time: their q, k, v columns, RoPE,
             * cache, attention and wo input, no barrier in between */
            const int need = needs(&L->wo, NULL, NULL);
            const bool prep_here = (n_rep * D) % need_block(need) == 0;
            for (int g; (g = work_next(work_ctr(J, il, W_ATT))) < Hkv;) {
                const int qc0 = g * n_rep * D, qc1 = (g + 1) * n_rep * D, kc0 = g * D, kc1 = (g + 1) * D;
                matmul_cols(J, 0, &L->wq, s->xn, s->q, QD, 0, N, qc0, qc1);
                matmul_cols(J, 0, &L->wk, s->xn, s->k, KVD, 0, N, kc0, kc1);
                matmul_cols(J, 0, &L->wv, s->xn, s->v, KVD, 0, N, kc0, kc1);
                PMARK(P_QKV);
                qkv_post(J, il, 0, N, qc0, qc1, kc0, kc1);
                PMARK(P_ROPE);
                for (int k = 0; k < J->n_seq; k++)
                    for (int i0 = 0; i0 < J->seqs[k].b->n_tokens; i0 += J->att_chunk) {
                        int i1 = i0 + J->att_chunk;
                        attend_rows(J, il, k, g, i0, i1 < J->seqs[k].b->n_tokens ? i1 : J->seqs[k].b->n_tokens);
                    }
                PMARK(P_ATTN);
                if (prep_here) prepare_range(J, 1, s->att, QD, 0, N, qc0, qc1, need);
            }
            if (prep_here) {
                BARRIER(P_PREP_O);
            } else {
                BARRIER(P_ATTN);
                prepare_rows(J, 1, s->att, QD, r0, r1, need);
                BARRIER(P_PREP_O);
            }
        } else {
            matmul(J, nth, work_ctr(J, il, W_Q), 0, &L->wq, s->xn, s->q, QD, N);
            matmul(J, nth, work_ctr(J, il, W_K), 0, &L->wk, s->xn, s->k, KVD, N);
            matmul(J, nth, work_ctr(J, il, W_V), 0, &L->wv, s->xn, s->v, KVD, N);
            BARRIER(P_QKV);
            qkv_post(J, il, r0, r1, 0, QD, 0, KVD);
            BARRIER(P_ROPE);
            /* attention: work items (sequence, kv head, chunk of rows) */
            for (int a; (a = work_next(work_ctr(J, il, W_ATT))) < J->n_att_items;) attend_item(J, il, a);
            BARRIER(P_ATTN);
            int need = needs(&L->wo, NULL, NULL);
            if (need) {
                prepare_rows(J, 1, s->att, QD, r0, r1, need);
                BARRIER(P_PREP_O);
            }
        }
        matmul(J, nth, work_ctr(J, il, W_O), 1, &L->wo, s->att, s->tmp, E, N);
        BARRIER(P_WO);
        /* --- feed-forward block */
        add_rows(s->x, s->tmp, E, r0, r1);
        for (int r = r0; r < r1; r++)
            kern->rmsnorm(s->xn + (size_t)r * E, s->x + (size_t)r * E, L->ffn_norm, m->norm_eps, E);
        prepare_rows(J, 0, s->xn, E, r0, r1, needs(&L->w_gate, &L->w_up, NULL));
        BARRIER(P_NORM2);
        /* gate and up over this thread's columns, then SwiGLU and the down
         * projection's input format on the same columns: the split is
         * aligned to the format's blocks, and SwiGLU (every table) treats
         * a range starting at a multiple of 16 as it treats whole rows */
        {
            const int need = needs(&L->w_down, NULL, NULL);
            const int ch = work_chunk(F, nth, need_block(need) > 16 ? need_block(need) : 16);
            for (int c; (c = work_next(work_ctr(J, il, W_GATEUP))) * ch < F;) {
                const int f0 = c * ch, f1 = f0 + ch < F ? f0 + ch : F;
                matmul_cols(J, 0, &L->w_gate, s->xn, s->gate, F, 0, N, f0, f1);
                matmul_cols(J, 0, &L->w_up, s->xn, s->up, F, 0, N, f0, f1);
                PMARK(P_GATEUP);
                for (int r = 0; r < N; r++)
                    kern->swiglu(s->gate + (size_t)r * F + f0, s->up + (size_t)r * F + f0, f1 - f0);
                prepare_range(J, 2, s->gate, F, 0, N, f0, f1, need);
            }
            BARRIER(P_SWIGLU);
        }
        matmul(J, nth, work_ctr(J, il, W_DOWN), 2, &L->w_down, s->gate, s->tmp, E, N);
        BARRIER(P_DOWN);
    }
    add_rows(s->x, s->tmp, E, r0, r1);
    BARRIER(P_INPUT);

    /* --- outputs: gather the rows asked for into (n_out, E) */
    int o0, o1;
    sd_split(J->n_out, ith, nth, 1, &o0, &o1);
    for (int o = o0; o < o1; o++) {
        const float *xr = s->x + (size_t)J->out_rows[o] * E;
        if (J->flags & SD_OUTPUT_HIDDEN) memcpy(J->hidden + (size_t)o * E, xr, (size_t)E * sizeof(float));
        if (J->flags & SD_OUTPUT_LOGITS) kern->rmsnorm(s->xn + (size_t)o * E, xr, m->output_norm, m->norm_eps, E);
    }
    if (!(J->flags & SD_OUTPUT_LOGITS)) return;
    prepare_rows(J, 0, s->xn, E, o0, o1, needs(&m->output, NULL, NULL));
    BARRIER(P_OUTNORM);
    if (J->n_sub == 0) {
        matmul(J, nth, work_ctr(J, J->le, 0), 0, &m->output, s->xn, J->logits, (size_t)m->n_vocab, J->n_out);
        PMARK(P_HEAD);
        return;
    }
    /* VocabTrim: the head over the S compact rows (same type and kernel as
     * the full head, so the same bits), then each thread scatters its output
     * rows; the other V - S entries of a row are already -inf (ctx.h). */
    matmul(J, nth, work_ctr(J, J->le, 0), 0, J->sub_head, s->xn, J->sub_logits, (size_t)J->n_sub, J->n_out);
    BARRIER(P_HEAD);
    for (int o = o0; o < o1; o++) {
        float *dst = J->logits + (size_t)o * (size_t)m->n_vocab;
        const float *src = J->sub_logits + (size_t)o * (size_t)J->n_sub;
        for (int j = 0; j < J->n_sub; j++)
            if (J->sub_ids[j] >= 0) dst[J->sub_ids[j]] = src[j];
    }
    PMARK(P_SCATTER);
}

/* Fills n floats with -INFINITY (logits outside a vocab subset). */
static void fill_neg_inf(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = -INFINITY;
}

/* Grows the scratch to hold N rows. */
static sd_status scratch_reserve(sd_scratch *s, const sd_model *m, size_t N) {
    if (N <= s->cap_rows) return SD_OK;
    size_t E = (size_t)m->n_embd, QD = (size_t)m->n_head * m->head_dim;
    size_t KVD = (size_t)m->n_head_kv * m->head_dim, F = (size_t)m->n_ff;
    size_t W = E > QD ? E : QD;
    if (F > W) W = F;
    size_t cap = N < 8 ? 8 : N;
    enum { NB = 16 };
    const size_t widths[NB] = {E, W, W, W, W, W, W, W, QD, KVD, KVD, QD, E, F, F, (size_t)m->n_rot};
    float *bufs[NB];
    /* activation blocks: one more block than W needs covers W rounding */
    const size_t qbytes[3] = {cap * (W / SD_QK8_0 + 1) * sizeof(sd_block_q8_0),
                              cap * (W / SD_QK8_1 + 1) * sizeof(sd_block_q8_1),
                              cap * (W / SD_QK_K + 1) * sizeof(sd_block_q8_K)};
    void *qb[3][3];
    bool ok = true;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            qb[i][j] = malloc(qbytes[j]);
            ok = ok && qb[i][j];
        }
    for (int i = 0; i < NB; i++) {
        bufs[i] = malloc(cap * widths[i] * sizeof(float) + 64);
        ok = ok && bufs[i];
    }
    if (!ok) {
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) free(qb[i][j]);
        for (int i = 0; i < NB; i++) free(bufs[i]);
        return SD_ERR_NOMEM;
    }
    float **dst[NB] = {&s->x, &s->xn, &s->prep[0].xr, &s->prep[0].xb, &s->prep[1].xr, &s->prep[1].xb,
                       &s->prep[2].xr, &s->prep[2].xb, &s->q,
                       &s->k, &s->v, &s->att, &s->tmp, &s->gate, &s->up, &s->rope};
    for (int i = 0; i < NB; i++) {
        free(*dst[i]);
        *dst[i] = bufs[i];
    }
    for (int i = 0; i < 3; i++) {
        void **q[3] = {&s->prep[i].xq, &s->prep[i].xq1, &s->prep[i].xqk};
        for (int j = 0; j < 3; j++) {
            free(*q[j]);
            *q[j] = qb[i][j];
        }
    }
    s->cap_rows = cap;
    return SD_OK;
}

/* Grows a context's output buffers. */
static sd_status outputs_reserve(sd_ctx *ctx, size_t n_out) {
    if (n_out <= ctx->cap_out && ctx->logits) return SD_OK;
    const sd_model *m = ctx->model;
    size_t cap = n_out < 4 ? 4 : n_out;
    float *lg = malloc(cap * (size_t)m->n_vocab * sizeof(float));
    float *hd = malloc(cap * (size_t)m->n_embd * sizeof(float));
    if (!lg || !hd) {
        free(lg);
        free(hd);
        return SD_ERR_NOMEM;
    }
    free(ctx->logits);
    free(ctx->hidden);
    if (ctx->n_sub > 0) fill_neg_inf(lg, cap * (size_t)m->n_vocab); /* the invariant of ctx.h */
    ctx->logits = lg;
    ctx->hidden = hd;
    ctx->cap_out = cap;
    return SD_OK;
}

/* Grows the compact head output of a subset context to n_out rows. */
static sd_status sub_logits_reserve(sd_ctx *ctx, size_t n_out) {
    if (ctx->n_sub == 0 || (n_out <= ctx->cap_sub && ctx->sub_logits)) return SD_OK;
    size_t cap = n_out < 4 ? 4 : n_out;
    float *b = malloc(cap * (size_t)ctx->n_sub * sizeof(float));
    if (!b) return SD_ERR_NOMEM;
    free(ctx->sub_logits);
    ctx->sub_logits = b;
    ctx->cap_sub = cap;
    return SD_OK;
}

/* True if a and b restrict the head to the same ids in the same order (or
 * neither restricts it). */
static bool same_subset(const sd_ctx *a, const sd_ctx *b) {
    return a->n_sub == b->n_sub &&
           (a->n_sub == 0 || memcmp(a->sub_ids, b->sub_ids, (size_t)a->n_sub * sizeof *a->sub_ids) == 0);
}

/* Checks one batch against its context; returns its output count or < 0. */
static int validate(const sd_ctx *ctx, const sd_batch *b, int lb, int le) {
    const sd_model *m = ctx->model;
    if (b->n_tokens < 1 || b->n_tokens > ctx->n_ctx) return b->n_tokens < 1 ? SD_ERR_INVALID_ARG : SD_ERR_CTX_FULL;
    if (lb == 0 && !b->token && !b->embd) return SD_ERR_INVALID_ARG;
    if (lb > 0 && !b->embd) return SD_ERR_INVALID_ARG;
    if (lb == 0 && !b->embd)
        for (int i = 0; i < b->n_tokens; i++)
            if (b->token[i] < 0 || b->token[i] >= m->n_vocab) return SD_ERR_INVALID_ARG;
    if (b->n_tail < 0 || (b->n_tail > 0 && !b->mask)) return SD_ERR_INVALID_ARG;
    for (int il = lb; il < le; il++) {
        if (ctx->n_cells[il] + b->n_tokens > ctx->n_ctx) return SD_ERR_CTX_FULL;
        if (b->n_tail > ctx->n_cells[il]) return SD_ERR_INVALID_ARG;
    }
    if (b->pos)
        for (int i = 0; i < b->n_tokens; i++)
            if (b->pos[i] < 0 || b->pos[i] > (1 << 24)) return SD_ERR_INVALID_ARG;
    if (!b->pos && ctx->n_cells[lb] + b->n_tokens > (1 << 24)) return SD_ERR_INVALID_ARG;
    int n_out = 0;
    for (int i = 0; i < b->n_tokens; i++) n_out += b->output ? (b->output[i] != 0) : (i == b->n_tokens - 1);
    return n_out;
}

sd_status sd_decode_multi(sd_ctx *const *ctxs, const sd_batch *batches, int n_seq) {
    if (!ctxs || !batches || n_seq < 1 || !ctxs[0]) return SD_ERR_INVALID_ARG;
    const sd_model *m = ctxs[0]->model;
    const int lb = batches[0].layer_begin;
    const int le = batches[0].layer_end ? batches[0].layer_end : m->n_layer;
    const uint32_t flags = batches[0].out_flags ? batches[0].out_flags : SD_OUTPUT_LOGITS;
    if (lb < 0 || le > m->n_layer || lb >= le) return SD_ERR_INVALID_ARG;
    if (flags & ~(uint32_t)(SD_OUTPUT_LOGITS | SD_OUTPUT_HIDDEN)) return SD_ERR_INVALID_ARG;

    fwd_seq *seqs = calloc((size_t)n_seq, sizeof *seqs);
    if (!seqs) return SD_ERR_NOMEM;
    int N = 0, n_out = 0, max_ctx = 0;
    sd_status st = SD_OK;
    for (int k = 0; k < n_seq && st == SD_OK; k++) {
        const sd_batch *b = &batches[k];
        sd_ctx *ctx = ctxs[k];
        if (!ctx || ctx->model != m || !same_subset(ctx, ctxs[0]) || b->layer_begin != lb ||
            (b->layer_end ? b->layer_end : m->n_layer) != le ||
            (b->out_flags ? b->out_flags : SD_OUTPUT_LOGITS) != flags) {
            st = SD_ERR_INVALID_ARG;
            break;
        }
        for (int j = 0; j < k; j++)
            if (ctxs[j] == ctx) st = SD_ERR_INVALID_ARG;
        int no = validate(ctx, b, lb, le);
        if (no < 0) st = (sd_status)no;
        if (st != SD_OK) break;
        seqs[k] = (fwd_seq){.ctx = ctx, .b = b, .row0 = N, .out0 = n_out, .n_out = no};
        N += b->n_tokens;
        n_out += no;
        if (ctx->n_ctx > max_ctx) max_ctx = ctx->n_ctx;
    }
    sd_ctx *owner = ctxs[0];
    int *row_seq = NULL, *out_rows = NULL;
    float *comb_logits = NULL, *comb_hidden = NULL;
    if (st == SD_OK) st = scratch_reserve(&owner->s, m, (size_t)N);
    if (st == SD_OK && (flags & SD_OUTPUT_LOGITS)) st = sub_logits_reserve(owner, (size_t)n_out);
    for (int k = 0; k < n_seq && st == SD_OK; k++) st = outputs_reserve(seqs[k].ctx, (size_t)seqs[k].n_out);
    if (st == SD_OK) {
        row_seq = malloc((size_t)N * sizeof *row_seq);
        out_rows = malloc(((size_t)n_out + 1) * sizeof *out_rows);
        if (!row_seq || !out_rows) st = SD_ERR_NOMEM;
    }
    if (st == SD_OK && n_seq > 1) {
        comb_logits = malloc(((size_t)n_out + 1) * (size_t)m->n_vocab * sizeof(float));
        comb_hidden = malloc(((size_t)n_out + 1) * (size_t)m->n_embd * sizeof(float));
        if (!comb_logits || !comb_hidden) st = SD_ERR_NOMEM;
        else if (owner->n_sub > 0) fill_neg_inf(comb_logits, ((size_t)n_out + 1) * (size_t)m->n_vocab);
    }
    if (st == SD_OK) {
        int o = 0;
        for (int k = 0; k < n_seq; k++) {
            const sd_batch *b = seqs[k].b;
            for (int i = 0; i < b->n_tokens; i++) {
                row_seq[seqs[k].row0 + i] = k;
                bool want = b->output ? b->output[i] != 0 : i == b->n_tokens - 1;
                if (want) out_rows[o++] = seqs[k].row0 + i;
            }
        }
        fwd_job J = {.m = m, .kern = m->kern, .pool = owner->pool, .s = &owner->s, .seqs = seqs,
                     .n_seq = n_seq, .N = N, .row_seq = row_seq, .out_rows = out_rows,
                     .n_out = n_out, .lb = lb, .le = le, .flags = flags,
                     .logits = n_seq > 1 ? comb_logits : owner->logits,
                     .hidden = n_seq > 1 ? comb_hidden : owner->hidden,
                     .sub_head = &owner->sub_output, .sub_ids = owner->sub_ids, .n_sub = owner->n_sub,
                     .sub_logits = owner->sub_logits,
                     .attn_rows = m->kern->attn_f32_rows};
        const int nth = sd_threadpool_n_threads(owner->pool);
        attn_plan(&J, nth);
        /* kv heads split evenly over the threads; column ranges of whole
         * heads start at multiples of 16 (matmul's bit-identity rule) */
        J.grp_fused = nth <= m->n_head_kv && m->n_head_kv % nth == 0 && m->head_dim % 16 == 0;
        /* enough rows per thread that the weights' compute, not their
         * traffic, bounds each thread (see SD_ROW_SPLIT_MIN) */
        J.row_split = nth > 1 && (owner->split == 2 || (owner->split == 0 && N >= SD_ROW_SPLIT_MIN * nth));
        /* the work counters: on the stack up to 63 layers */
        const size_t n_work = (size_t)(le - lb + 1) * W_SLOTS;
        atomic_int work_stack[64 * W_SLOTS];
        J.work = n_work <= sizeof work_stack / sizeof work_stack[0] ? work_stack : malloc(n_work * sizeof *J.work);
        if (!J.work) st = SD_ERR_NOMEM;
        for (size_t i = 0; J.work && i < n_work; i++) atomic_init(&J.work[i], 0);
        if (J.work) sd_threadpool_run(owner->pool, forward_worker, &J);
        if (J.work != work_stack) free(J.work);
        for (int k = 0; k < n_seq && st == SD_OK; k++) {
            sd_ctx *ctx = seqs[k].ctx;
            if (n_seq > 1) {
                memcpy(ctx->logits, comb_logits + (size_t)seqs[k].out0 * m->n_vocab,
                       (size_t)seqs[k].n_out * m->n_vocab * sizeof(float));
                memcpy(ctx->hidden, comb_hidden + (size_t)seqs[k].out0 * m->n_embd,
                       (size_t)seqs[k].n_out * m->n_embd * sizeof(float));
            }
            for (int il = lb; il < le; il++) ctx->n_cells[il] += seqs[k].b->n_tokens;
            ctx->n_out = seqs[k].n_out;
            ctx->out_logits = (flags & SD_OUTPUT_LOGITS) != 0;
            ctx->out_hidden = (flags & SD_OUTPUT_HIDDEN) != 0;
        }
    }
    free(comb_logits);
    free(comb_hidden);
    free(row_seq);
    free(out_rows);
    free(seqs);
    return st;
}

sd_status sd_ctx_decode(sd_ctx *ctx, const sd_batch *batch) {
    if (!ctx || !batch) return SD_ERR_INVALID_ARG;
    return sd_decode_multi(&ctx, batch, 1);
}
