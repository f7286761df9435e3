/* The threads the C kernels run on (recoworld.kernels.build: run_parallel).
 *
 * A kernel's work is split into chunks of users, numbered 0..n_chunks-1, that the calling
 * thread and the pool's workers claim one at a time until none is left. The workers are
 * POSIX threads of their own, not Python's: a Python thread has to be woken through a queue
 * and then take the GIL before it can call a kernel, which on a virtual machine's idle core
 * costs about a tenth of a millisecond at each of the several kernel calls of an env step,
 * and another at its end. Here a worker that has just finished waits for the next job by
 * spinning for a short while (SPIN_NS) before it sleeps, so that the kernel calls of one
 * step, a few hundred microseconds apart, find it awake; a worker never spins longer, so a
 * pool beside other processes gives its core back.
 *
 * Claims are made on one 64-bit word holding the job's generation, its number of chunks
 * and the next chunk: a worker that saw an earlier job fails its claim instead of taking a
 * chunk of the next one, and a job's other fields are read only after a claim succeeds,
 * while that chunk keeps the caller from returning. One job runs at a time (run_lock).
 *
 * A process forked from one with a pool has none of its threads: it starts a pool of its own.
 * Plain C99 with POSIX threads, compiled by recoworld.kernels.build.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* A kernel's chunk: users [begin, end) with its arguments; returns the chunk's code. */
typedef int64_t (*chunk_fn)(int64_t begin, int64_t end, const void *args);

#define MAX_WORKERS 256
#define SPIN_NS 500000 /* how long an idle worker waits awake for the next job */
/* The claim word: generation (20 bits), chunks (22 bits), next chunk (22 bits). */
#define CHUNK_BITS 22
#define CHUNK_MASK ((UINT64_C(1) << CHUNK_BITS) - 1)
#define MAX_CHUNKS CHUNK_MASK

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;   /* one job at a time */
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER; /* idle workers sleep under it */
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int n_workers, sleeping;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The job: written by the caller before it publishes a new generation in `claim`. */
static uint64_t claim;
static int64_t done; /* chunks finished */
static chunk_fn job_fn;
static const void *job_args;
static int64_t job_n, job_chunk;
static int64_t *job_codes;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static inline uint64_t generation_of(uint64_t word) { return word >> (2 * CHUNK_BITS); }

/* Claims and runs the chunks of the job published as `generation` until none is left (or
 * a later job replaced it). */
static void work(uint64_t generation) {
    uint64_t word = __atomic_load_n(&claim, __ATOMIC_ACQUIRE);
    for (;;) {
        const uint64_t chunks = (word >> CHUNK_BITS) & CHUNK_MASK, next = word & CHUNK_MASK;
        if (generation_of(word) != generation || next >= chunks) return;
        if (!__atomic_compare_exchange_n(&claim, &word, word + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            continue; /* another thread claimed it: `word` now holds the new value */
        const int64_t begin = (int64_t)next * job_chunk;
        const int64_t end = begin + job_chunk < job_n ? begin + job_chunk : job_n;
        job_codes[next] = job_fn(begin, end, job_args);
        __atomic_add_fetch(&done, 1, __ATOMIC_RELEASE);
        word = __atomic_load_n(&claim, __ATOMIC_ACQUIRE);
    }
}

static void *worker(void *unused) {
    (void)unused;
    uint64_t seen = generation_of(__atomic_load_n(&claim, __ATOMIC_ACQUIRE));
    for (;;) {
        /* Wait awake for a while, then asleep, for a generation after `seen`. */
        uint64_t generation = generation_of(__atomic_load_n(&claim, __ATOMIC_ACQUIRE));
        const int64_t until = now_ns() + SPIN_NS;
        for (int spins = 0; generation == seen; spins++) {
            CPU_RELAX();
            if (spins % 256 == 255 && now_ns() > until) {
                pthread_mutex_lock(&sleep_lock);
                sleeping++;
                while ((generation = generation_of(__atomic_load_n(&claim, __ATOMIC_ACQUIRE))) == seen)
                    pthread_cond_wait(&wake, &sleep_lock);
                sleeping--;
                pthread_mutex_unlock(&sleep_lock);
            }
            generation = generation_of(__atomic_load_n(&claim, __ATOMIC_ACQUIRE));
        }
        seen = generation;
        work(generation);
    }
    return NULL;
}

/* A fork's child has none of the parent's workers, and its locks may have been held by
 * threads it does not have: it starts afresh. */
static void after_fork_in_child(void) {
    const pthread_mutex_t fresh_lock = PTHREAD_MUTEX_INITIALIZER;
    const pthread_cond_t fresh_wake = PTHREAD_COND_INITIALIZER;
    run_lock = sleep_lock = fresh_lock;
    wake = fresh_wake;
    n_workers = sleeping = 0;
}

static void init_pool(void) { pthread_atfork(NULL, NULL, after_fork_in_child); }

/* Workers for `threads` threads in all (the caller is one), started on first use. */
static void ensure_workers(int threads) {
    while (n_workers < threads - 1 && n_workers < MAX_WORKERS) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        const int failed = pthread_create(&thread, &attr, worker, NULL);
        pthread_attr_destroy(&attr);
        if (failed) break; /* run on the threads there are */
        n_workers++;
    }
}

/* Runs fn over users [0, n) in chunks of `chunk` users on up to `threads` threads, the
 * caller's among them, writing chunk i's code into codes[i]; returns the number of chunks,
 * or -1 if there would be more than MAX_CHUNKS (the caller then uses larger chunks). */
int64_t recoworld_run_parallel(chunk_fn fn, const void *args, int64_t n, int64_t chunk, int threads,
                               int64_t *codes) {
    if (chunk < 1) chunk = 1;
    const int64_t chunks = (n + chunk - 1) / chunk;
    if (chunks > (int64_t)MAX_CHUNKS) return -1;
    if (threads <= 1 || chunks <= 1) {
        for (int64_t i = 0; i < chunks; i++) codes[i] = fn(i * chunk, i * chunk + chunk < n ? i * chunk + chunk : n, args);
        return chunks;
    }
    pthread_once(&once, init_pool);
    pthread_mutex_lock(&run_lock);
    ensure_workers(threads);
    job_fn = fn;
    job_args = args;
    job_n = n;
    job_chunk = chunk;
    job_codes = codes;
    __atomic_store_n(&done, 0, __ATOMIC_RELAXED);
    const uint64_t generation = (generation_of(__atomic_load_n(&claim, __ATOMIC_RELAXED)) + 1) & 0xFFFFF;
    __atomic_store_n(&claim, (generation << (2 * CHUNK_BITS)) | ((uint64_t)chunks << CHUNK_BITS), __ATOMIC_RELEASE);
    pthread_mutex_lock(&sleep_lock);
    if (sleeping) pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&sleep_lock);
    work(generation);
    /* The workers' last chunks; a worker that lost its core to another process takes longer:
     * give the core up now and then rather than spin against it. */
    for (int64_t spins = 1; __atomic_load_n(&done, __ATOMIC_ACQUIRE) < chunks; spins++) {
        CPU_RELAX();
        if (spins % 4096 == 0) sched_yield();
    }
    pthread_mutex_unlock(&run_lock);
    return chunks;
}
