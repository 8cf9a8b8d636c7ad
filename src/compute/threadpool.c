/* threadpool.c - persistent workers with a spinning barrier. */
#include "compute/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SD_PAUSE() _mm_pause()
#else
#define SD_PAUSE() ((void)0)
#endif

/* Spins before a worker sleeps: long enough to bridge the gaps between the
 * forwards of one decode step (sampling, drafting), short enough not to
 * burn a core when the pool idles. */
#define SD_SPIN_BEFORE_SLEEP 200000
/* Spins in a barrier or join before yielding the core: when more threads
 * are runnable than there are cores, pure spinning waits for a descheduled
 * thread for a whole time slice. */
#define SD_SPIN_BEFORE_YIELD 4096

/* One round of waiting: pause, and every SD_SPIN_BEFORE_YIELD rounds let
 * another thread run. */
static inline void wait_round(unsigned *spins) {
    if (++*spins % SD_SPIN_BEFORE_YIELD == 0) sched_yield();
    else SD_PAUSE();
}

struct sd_threadpool {
    int n_threads;
    pthread_t *threads;            /* (n_threads - 1) workers */
    int n_started;

    sd_job_fn fn;                  /* current job */
    void *arg;
    atomic_uint job_seq;           /* bumped once per job        */
    atomic_int n_done;             /* workers done with the job  */
    atomic_int stop;

    atomic_int barrier_count;
    atomic_uint barrier_phase;

    pthread_mutex_t mu;            /* sleeping workers only      */
    pthread_cond_t cv;
    atomic_int n_sleeping;
};

typedef struct {
    sd_threadpool *pool;
    int ith;
} worker_arg;

static void *worker_main(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    sd_threadpool *pool = wa.pool;
    unsigned last = 0;
    for (;;) {
        unsigned seq;
        int spins = 0;
        while ((seq = atomic_load(&pool->job_seq)) == last && !atomic_load(&pool->stop)) {
            if (++spins < SD_SPIN_BEFORE_SLEEP) {
                SD_PAUSE();
                continue;
            }
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->n_sleeping, 1);
            while (atomic_load(&pool->job_seq) == last && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->cv, &pool->mu);
            atomic_fetch_sub(&pool->n_sleeping, 1);
            pthread_mutex_unlock(&pool->mu);
            spins = 0;
        }
        if (atomic_load(&pool->stop)) break;
        last = seq;
        pool->fn(pool->arg, wa.ith, pool->n_threads);
        atomic_fetch_add(&pool->n_done, 1);
    }
    return NULL;
}

static void wake_all(sd_threadpool *pool) {
    if (atomic_load(&pool->n_sleeping) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->cv);
        pthread_mutex_unlock(&pool->mu);
    }
}

sd_status sd_threadpool_new(int n_threads, sd_threadpool **out) {
    if (!out || n_threads < 1 || n_threads > 512) return SD_ERR_INVALID_ARG;
    *out = NULL;
    sd_threadpool *pool = calloc(1, sizeof *pool);
    if (!pool) return SD_ERR_NOMEM;
    pool->n_threads = n_threads;
    atomic_init(&pool->job_seq, 0);
    atomic_init(&pool->n_done, 0);
    atomic_init(&pool->stop, 0);
    atomic_init(&pool->barrier_count, 0);
    atomic_init(&pool->barrier_phase, 0);
    atomic_init(&pool->n_sleeping, 0);
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    if (n_threads > 1) {
        pool->threads = calloc((size_t)n_threads - 1, sizeof *pool->threads);
        if (!pool->threads) {
            sd_threadpool_free(pool);
            return SD_ERR_NOMEM;
        }
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (!wa) {
                sd_threadpool_free(pool);
                return SD_ERR_NOMEM;
            }
            wa->pool = pool;
            wa->ith = i;
            if (pthread_create(&pool->threads[i - 1], NULL, worker_main, wa) != 0) {
                free(wa);
                sd_threadpool_free(pool);
                return SD_ERR_NOMEM;
            }
            pool->n_started++;
        }
    }
    *out = pool;
    return SD_OK;
}

void sd_threadpool_free(sd_threadpool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->n_started; i++) pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool->threads);
    free(pool);
}

int sd_threadpool_n_threads(const sd_threadpool *pool) { return pool ? pool->n_threads : 1; }

void sd_threadpool_run(sd_threadpool *pool, sd_job_fn fn, void *arg) {
    if (!pool || pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    atomic_store(&pool->n_done, 0);
    atomic_fetch_add(&pool->job_seq, 1);
    wake_all(pool);
    fn(arg, 0, pool->n_threads);
    unsigned spins = 0;
    while (atomic_load(&pool->n_done) < pool->n_threads - 1) wait_round(&spins);
}

void sd_threadpool_barrier(sd_threadpool *pool) {
    if (!pool || pool->n_threads == 1) return;
    unsigned phase = atomic_load(&pool->barrier_phase);
    if (atomic_fetch_add(&pool->barrier_count, 1) == pool->n_threads - 1) {
        atomic_store(&pool->barrier_count, 0);
        atomic_fetch_add(&pool->barrier_phase, 1);
    } else {
        unsigned spins = 0;
        while (atomic_load(&pool->barrier_phase) == phase) wait_round(&spins);
    }
}
