/* The bookkeeping of one SlateWorld step (recoworld.envs), fused for CPU (kernel="c").
 *
 * Per user, in one pass: the start of a new episode where one starts at this step, the
 * observable click history (newest first, with watch fraction and like), the latest
 * instruction and its age, the session counters, the step count, and the next request's
 * candidates (a + j s) mod N, writing the observation as it goes (the candidates' features
 * too, when the env observes them).
 * The torch path (envs/bookkeeping.py, envs/candidates.py) is the reference; this does
 * the same, value for value, without its [B, H] and [B, C] temporaries. It also validates
 * the agents' slates of candidate indices and turns them into item ids, the hot path of
 * action decoding (envs/actions.py names any bad entry), and starts the episodes of
 * restarted slots.
 *
 * Plain C99, compiled by recoworld.kernels.build; WorldStep is mirrored in
 * recoworld/kernels/world.py and checked against the LAYOUT table at the end at load time.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "clones.h"
#include "layout.h"
#include "rng.h"

#define MAX_K 256

/* The candidates' features are written once and read later by the agent, not by this
 * kernel: on x86-64, non-temporal stores write them without first reading each line into
 * the cache. */
#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
#define STREAM_FENCE() _mm_sfence()
#else
#define STREAM_FENCE() ((void)0)
#endif

/* Copies n floats from `from` to `to`, which the agent reads later, not this kernel: with
 * non-temporal stores where `to` is aligned to 16 bytes and n a multiple of 4. */
static inline void stream_floats(float *to, const float *from, int64_t n) {
#if defined(__x86_64__) || defined(_M_X64)
    if (n % 4 == 0 && ((uintptr_t)to & 15) == 0) {
        for (int64_t d = 0; d < n; d += 4) _mm_stream_ps(to + d, _mm_loadu_ps(from + d));
        return;
    }
#endif
    memcpy(to, from, (size_t)n * sizeof(float));
}

/* bits mod n, by a 32-bit division where n fits in 32 bits (the same remainder, in a
 * fraction of a 64-bit division's time). */
static inline int64_t bits_modulo(uint32_t bits, int64_t n) {
    return n <= (int64_t)UINT32_MAX ? (int64_t)(bits % (uint32_t)n) : (int64_t)bits % n;
}

/* Writes one user's candidates (start + offsets[j]) mod n_items, j < C, into `observed`
 * (`offsets`: the user's row of the offsets table), and their features into
 * `features_obs` when it is not NULL. The ids come without a branch or a chain from one to
 * the next, so the compiler writes them several at a time; plain stores, since the features
 * read them back at once (non-temporal ones one id at a time were slower). */
static inline void write_candidates(int64_t start, const int64_t *offsets, int64_t n_items, int64_t C,
                                    int64_t *observed, const float *features, float *features_obs, int64_t D) {
    for (int64_t j = 0; j < C; j++) {
        const int64_t past_end = start + offsets[j] - n_items; /* negative unless the sum wraps */
        observed[j] = past_end + (n_items & (past_end >> 63)); /* >> of a negative: all ones (gcc, clang, MSVC) */
    }
    if (features_obs != NULL)
        for (int64_t j = 0; j < C; j++) stream_floats(features_obs + j * D, features + observed[j] * D, D);
}

/* Everything a world step reads and writes, [B, ...] row-major (recoworld/kernels/world.py mirrors it). */
typedef struct {
    int64_t K, H, G, C, n_items, n_strides;
    /* the step: slates shown, the response, slots to hold (NULL: none) */
    const int64_t *slates;
    const uint8_t *clicked, *liked, *voiced, *voiced_more, *voiced_less, *left_session, *idle;
    const float *watch;
    const int8_t *voiced_novelty;
    /* the history, updated in place */
    int64_t *history;
    float *feedback;
    /* the latest instruction and the session counters, updated in place */
    uint8_t *active, *more, *less;
    int8_t *novelty;
    float *instruction_age, *session_index, *session_step;
    /* the next candidates */
    int64_t *step_count;
    int64_t *key; /* written where an episode starts */
    uint32_t candidate_stream;
    const int64_t *offsets; /* [S, C]: j s mod n_items for each stride s of the table */
    int64_t *draw; /* [B, 2]: start and stride row of each user's candidates */
    /* the observation, handed out to the agents: copies of the history and the candidates,
     * the instruction [B, 2G + 1] (+1 more, -1 less, novelty) and the session [B, 3] */
    int64_t *history_obs, *candidates_obs;
    float *feedback_obs, *instruction_obs, *session_obs;
    /* the slate's totals per user [B, 3], for the reward: clicks, watch time, likes (zeros when held) */
    float *totals;
    /* the candidates' features [B, C, D], copied from the catalog's [N, D] (NULL: not observed) */
    int64_t D;
    const float *features;
    float *features_obs;
    /* users whose episode starts at this step, before it (NULL: none), with their keys [B]
     * (read where starting) */
    const uint8_t *starting;
    const int64_t *start_keys;
} WorldStep;

/* User b starts an episode with the random key `key` (envs/bookkeeping.py's start): no
 * history, no instruction, session counters and step count at zero. */
static inline void start_user(const WorldStep *w, int64_t b, int64_t key) {
    const int64_t H = w->H, G = w->G;
    w->key[b] = key;
    w->step_count[b] = 0;
    for (int64_t h = 0; h < H; h++) {
        w->history[b * H + h] = -1;
        w->feedback[2 * (b * H + h)] = w->feedback[2 * (b * H + h) + 1] = 0.0f;
    }
    for (int64_t g = 0; g < G; g++) w->more[b * G + g] = w->less[b * G + g] = 0;
    w->active[b] = 0;
    w->novelty[b] = 0;
    w->instruction_age[b] = w->session_index[b] = w->session_step[b] = 0.0f;
}

/* A user's rows are read from some twenty arrays at once, more streams than the hardware
 * prefetchers follow, and after the users' kernel they are no longer in the cache: the
 * step asks for the rows of the user PREFETCH_AHEAD places on while it works on this one.
 * Not when it copies the candidates' features, whose writes bound the step: there the
 * requests only compete with them (benchmarks/RESULTS.md). */
#define PREFETCH_AHEAD 8
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(p, for_writing) __builtin_prefetch((p), (for_writing))
#else
#define PREFETCH(p, for_writing) ((void)(p))
#endif

static inline void prefetch_user(const WorldStep *w, int64_t b) {
    const int64_t K = w->K, H = w->H, G = w->G;
    PREFETCH(w->history + b * H, 1);
    PREFETCH(w->feedback + b * H * 2, 1);
    PREFETCH(w->feedback + b * H * 2 + 16, 1);
    PREFETCH(w->slates + b * K, 0);
    PREFETCH(w->watch + b * K, 0);
    PREFETCH(w->clicked + b * K, 0);
    PREFETCH(w->liked + b * K, 0);
    PREFETCH(w->more + b * G, 1);
    PREFETCH(w->less + b * G, 1);
    PREFETCH(w->voiced_more + b * G, 0);
    PREFETCH(w->voiced_less + b * G, 0);
    PREFETCH(w->key + b, 0);
    PREFETCH(w->step_count + b, 1);
    PREFETCH(w->draw + 2 * b, 1);
}

/* One step of users [begin, end) of the WorldStep `frame` (a chunk of recoworld_run_parallel,
 * pool.c). Returns 0, or 1 if K exceeds MAX_K. Compiled for AVX2 too, where the CPU has it
 * (clones.h). */
AVX2_CLONES
int64_t recoworld_world_step(int64_t begin, int64_t end, const void *frame) {
    /* A local copy: stores through the output pointers cannot change it, so the compiler
     * keeps its fields in registers instead of reloading them after every store. */
    const WorldStep local = *(const WorldStep *)frame, *w = &local;
    const int64_t K = w->K, H = w->H, G = w->G, C = w->C;
    if (K > MAX_K) return 1;
    const int64_t prefetched_end = w->features_obs == NULL ? end - PREFETCH_AHEAD : begin;
    for (int64_t b = begin; b < end; b++) {
        if (b < prefetched_end) prefetch_user(w, b + PREFETCH_AHEAD);
        /* An autoreset's new episode starts here, in the pass that reads the same rows,
         * rather than in a pass of its own over scattered slots before the step. */
        if (w->starting != NULL && w->starting[b]) start_user(w, b, w->start_keys[b]);
        const int held = w->idle != NULL && w->idle[b];
        int64_t *history = w->history + b * H;
        float *feedback = w->feedback + b * H * 2;
        float n_clicks = 0.0f, watch_time = 0.0f, n_likes = 0.0f;
        if (!held) {
            /* This step's clicks in slate order, then the older history. No branch on a
             * click, which is random: an unclicked item adds zeros (the same sums), and its
             * index in `clicks` is overwritten by the next click's. */
            int64_t clicks[MAX_K], n_new = 0;
            for (int64_t k = 0; k < K; k++) {
                const int click = w->clicked[b * K + k] != 0;
                n_clicks += click ? 1.0f : 0.0f;
                watch_time += click ? w->watch[b * K + k] : 0.0f;
                n_likes += click && w->liked[b * K + k] ? 1.0f : 0.0f;
                clicks[n_new] = k;
                n_new += click & (n_new < H);
            }
            for (int64_t h = H - 1; n_new > 0 && h >= n_new; h--) {
                history[h] = history[h - n_new];
                feedback[2 * h] = feedback[2 * (h - n_new)];
                feedback[2 * h + 1] = feedback[2 * (h - n_new) + 1];
            }
            for (int64_t i = 0; i < n_new; i++) {
                const int64_t k = clicks[i];
                history[i] = w->slates[b * K + k];
                feedback[2 * i] = w->watch[b * K + k];
                feedback[2 * i + 1] = w->liked[b * K + k] ? 1.0f : 0.0f;
            }
        }
        w->totals[3 * b] = n_clicks;
        w->totals[3 * b + 1] = watch_time;
        w->totals[3 * b + 2] = n_likes;
        for (int64_t h = 0; h < H; h++) w->history_obs[b * H + h] = history[h];
        for (int64_t h = 0; h < 2 * H; h++) w->feedback_obs[b * H * 2 + h] = feedback[h];
        if (!held) {
            if (w->voiced[b]) {
                for (int64_t g = 0; g < G; g++) {
                    w->more[b * G + g] = w->voiced_more[b * G + g];
                    w->less[b * G + g] = w->voiced_less[b * G + g];
                }
                w->novelty[b] = w->voiced_novelty[b];
                w->active[b] = 1;
                w->instruction_age[b] = 1.0f;
            } else if (w->instruction_age[b] > 0.0f) {
                w->instruction_age[b] += 1.0f;
            }
            if (w->left_session[b]) {
                w->session_index[b] += 1.0f;
                w->session_step[b] = 0.0f;
            } else {
                w->session_step[b] += 1.0f;
            }
            w->step_count[b] += 1;
        }
        float *instruction = w->instruction_obs + b * (2 * G + 1), *session = w->session_obs + b * 3;
        for (int64_t g = 0; g < G; g++) {
            instruction[g] = w->more[b * G + g] ? 1.0f : 0.0f;
            instruction[G + g] = w->less[b * G + g] ? -1.0f : -0.0f;
        }
        instruction[2 * G] = (float)w->novelty[b];
        session[0] = w->session_index[b];
        session[1] = w->session_step[b];
        session[2] = w->instruction_age[b];
        /* envs/candidates.py's draw: rng.bits(key, step_count, S_CANDIDATES, 2). */
        const uint64_t base = user_base(w->key[b], (int32_t)w->step_count[b]);
        const int64_t start = bits_modulo(bits_at(base, w->candidate_stream, 0), w->n_items);
        const int64_t row = bits_modulo(bits_at(base, w->candidate_stream, 1), w->n_strides);
        w->draw[2 * b] = start;
        w->draw[2 * b + 1] = row;
        write_candidates(start, w->offsets + row * C, w->n_items, C, w->candidates_obs + b * C, w->features,
                         w->features_obs != NULL ? w->features_obs + b * C * w->D : NULL, w->D);
    }
    STREAM_FENCE(); /* the stores are visible to the caller's thread when it returns */
    return 0;
}

/* The agents' slates of candidate indices, and the item ids they pick. */
typedef struct {
    int64_t K, C, n_items;
    const int64_t *positions; /* [B, K]: indices into each row's C candidates */
    const int64_t *draw, *offsets; /* [B, 2] and [S, C]: the candidates (WorldStep's) */
    int64_t *slates; /* [B, K]: the item ids, written */
} SlateChoice;

/* Item ids of the agents' slates of users [begin, end) (a chunk of recoworld_run_parallel):
 * positions index each row's C candidates, given by their draws (start, stride row of
 * offsets). Returns -1 if every row holds K distinct indices in [0, C), else the first bad
 * row (envs/actions.py then names the bad entry). */
int64_t recoworld_take_slates(int64_t begin, int64_t end, const void *choice) {
    const SlateChoice c = *(const SlateChoice *)choice;
    const int64_t K = c.K, C = c.C, n_items = c.n_items, *positions = c.positions, *draw = c.draw;
    const int64_t *offsets = c.offsets;
    int64_t *slates = c.slates;
    for (int64_t b = begin; b < end; b++) {
        const int64_t *row = positions + b * K, *user_offsets = offsets + draw[2 * b + 1] * C;
        uint64_t taken = 0; /* the indices seen so far in the row, where C <= 64 */
        for (int64_t k = 0; k < K; k++) {
            if (row[k] < 0 || row[k] >= C) return b;
            if (C <= 64) {
                const uint64_t bit = (uint64_t)1 << row[k];
                if (taken & bit) return b;
                taken |= bit;
            } else {
                for (int64_t j = 0; j < k; j++)
                    if (row[j] == row[k]) return b;
            }
            const int64_t item = draw[2 * b] + user_offsets[row[k]];
            slates[b * K + k] = item >= n_items ? item - n_items : item;
        }
    }
    return -1;
}

/* slots[begin, end) start an episode with the random keys `keys` (see start_user). */
void recoworld_world_start(int64_t begin, int64_t end, const int64_t *slots, const int64_t *keys,
                           const WorldStep *step) {
    const WorldStep local = *step;
    for (int64_t i = begin; i < end; i++) start_user(&local, slots[i], keys[i]);
}

/* The layout of WorldStep, for the loader's check against its ctypes mirror (layout.h). */
LAYOUT_BEGIN(WorldStep)
    LAYOUT_FIELD(WorldStep, K) LAYOUT_FIELD(WorldStep, H) LAYOUT_FIELD(WorldStep, G)
    LAYOUT_FIELD(WorldStep, C) LAYOUT_FIELD(WorldStep, n_items) LAYOUT_FIELD(WorldStep, n_strides)
    LAYOUT_FIELD(WorldStep, slates) LAYOUT_FIELD(WorldStep, clicked) LAYOUT_FIELD(WorldStep, liked)
    LAYOUT_FIELD(WorldStep, voiced) LAYOUT_FIELD(WorldStep, voiced_more) LAYOUT_FIELD(WorldStep, voiced_less)
    LAYOUT_FIELD(WorldStep, left_session) LAYOUT_FIELD(WorldStep, idle) LAYOUT_FIELD(WorldStep, watch)
    LAYOUT_FIELD(WorldStep, voiced_novelty) LAYOUT_FIELD(WorldStep, history)
    LAYOUT_FIELD(WorldStep, feedback) LAYOUT_FIELD(WorldStep, active) LAYOUT_FIELD(WorldStep, more)
    LAYOUT_FIELD(WorldStep, less) LAYOUT_FIELD(WorldStep, novelty) LAYOUT_FIELD(WorldStep, instruction_age)
    LAYOUT_FIELD(WorldStep, session_index) LAYOUT_FIELD(WorldStep, session_step)
    LAYOUT_FIELD(WorldStep, step_count) LAYOUT_FIELD(WorldStep, key)
    LAYOUT_FIELD(WorldStep, candidate_stream) LAYOUT_FIELD(WorldStep, offsets) LAYOUT_FIELD(WorldStep, draw)
    LAYOUT_FIELD(WorldStep, history_obs) LAYOUT_FIELD(WorldStep, candidates_obs)
    LAYOUT_FIELD(WorldStep, feedback_obs) LAYOUT_FIELD(WorldStep, instruction_obs)
    LAYOUT_FIELD(WorldStep, session_obs) LAYOUT_FIELD(WorldStep, totals) LAYOUT_FIELD(WorldStep, D)
    LAYOUT_FIELD(WorldStep, features) LAYOUT_FIELD(WorldStep, features_obs)
    LAYOUT_FIELD(WorldStep, starting) LAYOUT_FIELD(WorldStep, start_keys)
LAYOUT_END(WorldStep)

LAYOUT_BEGIN(SlateChoice)
    LAYOUT_FIELD(SlateChoice, K) LAYOUT_FIELD(SlateChoice, C) LAYOUT_FIELD(SlateChoice, n_items)
    LAYOUT_FIELD(SlateChoice, positions) LAYOUT_FIELD(SlateChoice, draw) LAYOUT_FIELD(SlateChoice, offsets)
    LAYOUT_FIELD(SlateChoice, slates)
LAYOUT_END(SlateChoice)
