/*
 * threadpool.h - internal side of the persistent thread pool.
 *
 * sd_threadpool_run(pool, fn, arg) runs fn(arg, ith, nth) on every thread of
 * the pool (the caller is ith = 0) and returns when all have returned. Inside
 * fn, sd_threadpool_barrier() waits until all nth threads reach it (a
 * spinning barrier: phases of a forward pass are microseconds long).
 * Idle workers spin briefly, then sleep on a condition variable.
 */
#ifndef SD_THREADPOOL_H
#define SD_THREADPOOL_H

#include "specdec.h"

typedef void (*sd_job_fn)(void *arg, int ith, int nth);

/* pool may be NULL: fn runs on the caller with nth = 1. */
void sd_threadpool_run(sd_threadpool *pool, sd_job_fn fn, void *arg);
/* No-op for NULL or single-thread pools. */
void sd_threadpool_barrier(sd_threadpool *pool);

/* [begin, end) of the share of n items for thread ith of nth, with chunk
 * boundaries rounded to multiples of align (except the last end = n). */
static inline void sd_split(int n, int ith, int nth, int align, int *begin, int *end) {
    int units = (n + align - 1) / align;
    int b = (int)((long long)units * ith / nth) * align;
    int e = (int)((long long)units * (ith + 1) / nth) * align;
    *begin = b < n ? b : n;
    *end = e < n ? e : n;
}

#endif
