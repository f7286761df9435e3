/* Fused CPU step of the statistical users (recoworld.simulators.statistical, kernel="c").
 *
 * One pass per user: over the slate's K items, utility, the step's counter-based uniforms,
 * cascade examination, clicks, watch, likes, ratings, compliance with the instruction in
 * force and the per-item parts of the dynamics (satiation, interest drift, familiarity,
 * the click history); then the user's mindset, leave hazard, and whether they voice an
 * instruction, leave, return (and after how long) or churn. The torch path materialises
 * every [B, K, ...] intermediate in memory; here the item tables stay in cache and each
 * user's numbers stay in registers. The uniforms are recoworld/rng.py's, bit for bit (rng.h).
 *
 * It is a port of simulators/equations.py, the user equations every kind of user follows,
 * term for term and in the same order, in float32: each block below names the functions
 * it follows. The torch reference is the step of simulators/backends.py (TorchUsers),
 * which calls them; a change to an equation is made there first, then here, and
 * tests/test_fused_kernel.py compares the two.
 *
 * recoworld_start puts new users into their slots (simulators/user_state.py's start_users)
 * in one pass, drawing their traits on the way for the synthetic population (synthetic.h).
 *
 * What stays in Python: the traits of new users of other populations (drawn by a pluggable
 * population) and the sentence of a voiced instruction, looked up by the code this kernel
 * gives its content and phrasing.
 *
 * C99 with the vector extensions of GCC and clang (lanes4 below) and libm, compiled by
 * recoworld.kernels.build; its structs are mirrored in recoworld/kernels/users.py and
 * checked against the LAYOUT tables at the end at load time.
 */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "clones.h"
#include "layout.h"
#include "rng.h"
#include "torch_math.h"

/* Order of the float parameters in `param` (recoworld/kernels/users.py: parameters builds it). */
enum {
    P_INTEREST_WEIGHT, P_SATIATION_WEIGHT, P_REPEAT_PENALTY, P_CONTINUE_AFTER_CLICK,
    P_RATING_CENTER, P_RATING_SLOPE, P_RATING_QUALITY, P_RATING_NOISE,
    P_SATIATION_KEEP, P_SATIATION_RATE, P_INTEREST_DRIFT, P_FAMILIAR_KEEP, P_FAMILIARITY_RATE,
    P_MORE_SHARE, P_COMPLIANCE_WEIGHT, P_MINDSET_KEEP, P_MINDSET_RATE,
    P_LEAVE_BASE, P_LEAVE_MINDSET, P_LEAVE_BOREDOM, P_LEAVE_LENGTH, P_LEAVE_PATIENCE,
    P_INSTRUCTION_THRESHOLD, P_VOICE_PROBABILITY,
    P_RETURN_BASE, P_RETURN_MINDSET, P_GAP_DAYS, P_RECOVERY_DAYS, P_MINDSET_REGRESSION,
    P_INSTRUCTION_SATIATION, P_INSTRUCTION_STEPS, P_NOVELTY_SESSION_SPREAD, P_INITIAL_MINDSET,
    P_QUALITY_SCALE, P_ITEM_KEEP, P_ITEM_RECOVERY_DAYS, P_PEAK_END_WEIGHT, P_MEAN_WEIGHT,
    P_GAP_SHAPE, P_INVERSE_GAP_SHAPE, P_WEIBULL_MEAN_FACTOR, P_GAP_LENGTH_ELASTICITY, P_LEAVE_FIRST_SESSION,
    P_FIRST_SESSION_PATIENCE, P_RETURN_FIRST_SESSION, P_GAP_FIRST_SESSION, P_GAP_FIRST_SHARE, P_QUICK_VISIT_SHARE,
    P_THEME_WEIGHT, P_FIRST_SESSION_SPREAD,
    N_PARAMS
};

#define MAX_K 256
#define MAX_D 1024
#define MAX_G 1024
#define MAX_H 1024

#include "synthetic.h" /* reads MAX_D */

/* Everything a step reads and writes, [B, ...] row-major (recoworld/kernels/users.py mirrors it). */
typedef struct {
    int64_t K, D, G, H, W; /* W: words of the watched bits per user, 0 when items may be clicked again */
    /* the items */
    const float *features, *genre_weights, *static_appeal, *popularity_score, *quality;
    const uint8_t *genres;
    const float *genre_centroids; /* [G, D]: where each genre sits in the interest space */
    /* the step: slates, slots to skip (NULL: none), random streams, parameters */
    const int64_t *slates;
    const uint8_t *idle;
    uint32_t step_stream, gap_stream, session_stream, phrase_stream;
    const float *param;
    /* the users' traits (written only by recoworld_start) */
    int64_t *key;
    float *novelty_trait, *popularity_bias, *patience, *rating_bias, *activity;
    int64_t *source_user; /* the real user a trait set was fitted on, -1 for none */
    /* the users' state, updated in place */
    int32_t *counter;
    float *novelty_seeking;
    float *interest, *familiar, *satiation, *satisfaction, *session_memory, *session_mean, *session_peak;
    int64_t *recent_clicks;
    float *recent_satiation; /* [B, H]: the item satiation of each of the last clicks */
    int64_t *session_index, *session_step;
    float *theme; /* [B, G]: the genres of the session's first click, 0 before it */
    int64_t *watched; /* [B, W]: bit i % 64 of word i / 64 set once item i was clicked */
    int64_t *steps_left;
    uint8_t *active, *more, *less, *churned;
    int8_t *novelty;
    /* the response */
    uint8_t *examined, *clicked, *liked;
    float *watch;
    int8_t *rating;
    uint8_t *in_force, *leaves, *returned;
    float *compliance, *hazard, *gap;
    float *mindset; /* after the step, before a returner's break moves it (equations.mindset_after_break) */
    /* the voiced instruction ([B, G] more and less, novelty), and the code of its sentence:
     * -1 when none, else ((more + 1) (G + 1) + less + 1) 9 + (novelty + 1) 3 + phrasing,
     * genres -1 when the part is empty */
    uint8_t *voiced_more, *voiced_less;
    int8_t *voiced_novelty;
    int32_t *phrase;
} UserStep;

/* Four floats as one value (GCC and clang vector extensions): the compiler keeps them in one
 * SIMD register on any target, where a float[4] loop is left to its vectoriser's judgement. */
typedef float lanes4 __attribute__((vector_size(16)));

/* Four int32 lanes: a comparison of lanes4 or mask4 values gives one (-1 where true, else 0). */
typedef int32_t mask4 __attribute__((vector_size(16)));

static inline lanes4 load4(const float *x) {
    lanes4 v;
    memcpy(&v, x, sizeof v);
    return v;
}

static inline mask4 load_mask4(const int32_t *x) {
    mask4 v;
    memcpy(&v, x, sizeof v);
    return v;
}

static inline void store4(float *x, lanes4 v) { memcpy(x, &v, sizeof v); }

/* Lane by lane, where the mask is -1 a, elsewhere b. */
static inline lanes4 select4(mask4 mask, lanes4 a, lanes4 b) {
    return (lanes4)((mask & (mask4)a) | (~mask & (mask4)b));
}

/* A dot product in 8 interleaved partial sums, lanes 0-3 and 4-7 of each block of 8 (a single
 * running sum would be one long chain of dependent additions); what is left after the last
 * full block goes into partial sum 0. The summation order differs from torch's, which is why
 * the kernels agree to rounding, not bits. */
static inline float dot(const float *a, const float *b, int64_t n) {
    lanes4 low = {0.0f, 0.0f, 0.0f, 0.0f}, high = low;
    int64_t d = 0;
    for (; d + 8 <= n; d += 8) {
        low += load4(a + d) * load4(b + d);
        high += load4(a + d + 4) * load4(b + d + 4);
    }
    float first = low[0];
    for (; d + 4 <= n; d += 4) { /* the products four at a time, added one by one */
        const lanes4 product = load4(a + d) * load4(b + d);
        first = (((first + product[0]) + product[1]) + product[2]) + product[3];
    }
    for (; d < n; d++) first += a[d] * b[d];
    low[0] = first;
    const lanes4 pairs = low + high; /* partial sums i + (i + 4) */
    return (pairs[0] + pairs[1]) + (pairs[2] + pairs[3]);
}

/* Compliance of user b's slate with their instruction in force (equations.instruction_compliance). */
static float compliance_of(const UserStep *s, int64_t b, const float *distance) {
    const int64_t K = s->K, G = s->G;
    const uint8_t *more = s->more + b * G, *less = s->less + b * G;
    /* An instruction names a genre or two: the items' genre rows are read at those alone. */
    int64_t less_genres[MAX_G], more_genres[MAX_G], n_less = 0, n_more = 0;
    for (int64_t g = 0; g < G; g++) {
        less_genres[n_less] = g;
        n_less += less[g] != 0;
        more_genres[n_more] = g;
        n_more += more[g] != 0;
    }
    const int has_less = n_less > 0, has_more = n_more > 0;
    float in_less = 0.0f, in_more = 0.0f, novel = 0.0f;
    for (int64_t k = 0; k < K; k++) {
        const uint8_t *genres = s->genres + s->slates[b * K + k] * G;
        int hits_less = 0, hits_more = 0;
        for (int64_t i = 0; i < n_less; i++) hits_less |= genres[less_genres[i]];
        for (int64_t i = 0; i < n_more; i++) hits_more |= genres[more_genres[i]];
        in_less += (float)hits_less;
        in_more += (float)hits_more;
        novel += distance[k] > 1.0f ? 1.0f : 0.0f;
    }
    in_less /= (float)K;
    in_more /= (float)K;
    novel /= (float)K;
    const int8_t wants = s->novelty[b];
    float more_part = in_more / s->param[P_MORE_SHARE];
    const float parts = (has_less ? 1.0f - in_less : 0.0f) + (has_more ? (more_part > 1.0f ? 1.0f : more_part) : 0.0f)
                        + (wants > 0 ? novel : (wants < 0 ? 1.0f - novel : 0.0f));
    const float count = (float)(has_less + has_more + (wants != 0));
    return parts / (count < 1.0f ? 1.0f : count);
}

/* The index of the largest of n values, the first one on ties (torch's argmax). */
static inline int64_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* User b voices an instruction (simulators/phrasing.py's voice): less of the most satiated genre
 * if satiated enough, more of the genre of best interest net of satiation, and the sign of
 * a strong novelty propensity. It comes into force at once. */
static void voice(const UserStep *s, int64_t b) {
    const int64_t D = s->D, G = s->G;
    const float *satiation = s->satiation + b * G, *interest = s->interest + b * D;
    float appeal[MAX_G];
    const int64_t top = argmax(satiation, G);
    const int64_t less = satiation[top] > s->param[P_INSTRUCTION_SATIATION] ? top : -1;
    for (int64_t g = 0; g < G; g++)
        appeal[g] = g == less ? -INFINITY : dot(interest, s->genre_centroids + g * D, D) - 1.5f * satiation[g];
    const int64_t more = argmax(appeal, G);
    const float seeking = s->novelty_seeking[b];
    const int8_t novelty = seeking > 0.4f ? 1 : (seeking < -0.4f ? -1 : 0);
    for (int64_t g = 0; g < G; g++) {
        s->more[b * G + g] = s->voiced_more[b * G + g] = (uint8_t)(g == more);
        s->less[b * G + g] = s->voiced_less[b * G + g] = (uint8_t)(g == less);
    }
    s->novelty[b] = s->voiced_novelty[b] = novelty;
    s->active[b] = 1;
    s->steps_left[b] = (int64_t)s->param[P_INSTRUCTION_STEPS];
    /* The phrasing is drawn after the step's count (rng.bits(key, counter, S_PHRASE, 1) % 3). */
    const uint32_t phrasing = bits_at(user_base(s->key[b], s->counter[b]), s->phrase_stream, 0) % 3u;
    s->phrase[b] = (int32_t)((((more + 1) * (G + 1) + less + 1) * 9 + (novelty + 1) * 3) + (int64_t)phrasing);
}

/* One step of users [begin, end). Returns 0, or 1 if K, D, G or H exceed the MAX_ bounds.
 * Compiled for AVX2 too, where the CPU has it (clones.h). */
AVX2_CLONES
int recoworld_respond(int64_t begin, int64_t end, const UserStep *step) {
    /* A local copy: stores through the output pointers cannot change it, so the compiler
     * keeps its fields in registers instead of reloading them after every store. */
    const UserStep local = *step, *s = &local;
    const int64_t K = s->K, D = s->D, G = s->G, H = s->H, W = s->W;
    if (K > MAX_K || D > MAX_D || G > MAX_G || H > MAX_H) return 1;
    const float *param = s->param;
    const float interest_weight = param[P_INTEREST_WEIGHT], satiation_weight = param[P_SATIATION_WEIGHT];
    const float repeat_penalty = param[P_REPEAT_PENALTY], continue_after_click = param[P_CONTINUE_AFTER_CLICK];
    const float theme_weight = param[P_THEME_WEIGHT];
    const float rating_center = param[P_RATING_CENTER], rating_slope = param[P_RATING_SLOPE];
    const float rating_quality = param[P_RATING_QUALITY], rating_noise = param[P_RATING_NOISE];
    float exposure[MAX_G], consumed[MAX_D], blend[MAX_D], distance[MAX_K];
    const lanes4 zero4 = {0.0f, 0.0f, 0.0f, 0.0f};
    int64_t clicked_items[MAX_K];
    float clicked_levels[MAX_K];
    /* The draws' salts are the same for every user: hash them once. Layout of
     * rng.uniform(key, t, S_STEP, 4K + 3): click, continue, watch, like per position, then
     * the user's voice, leave and return. */
    uint64_t salt[4 * MAX_K + 3];
    for (int64_t j = 0; j < 4 * K + 3; j++) salt[j] = draw_salt(s->step_stream, (uint32_t)j);
    const uint64_t gap_salt = draw_salt(s->gap_stream, 0), session_salt = draw_salt(s->session_stream, 0);
    const uint64_t sign_up_salt = draw_salt(s->session_stream, 1); /* user_state.sign_up_draw */
    /* Past where a user stopped every per-item response is 0, and all but a few voice no
     * instruction: the chunk's rows are zeroed at once, and only the rest is written below. */
    const size_t items = (size_t)((end - begin) * K), genres = (size_t)((end - begin) * G);
    memset(s->examined + begin * K, 0, items);
    memset(s->clicked + begin * K, 0, items);
    memset(s->liked + begin * K, 0, items);
    memset(s->rating + begin * K, 0, items);
    memset(s->watch + begin * K, 0, items * sizeof(float));
    memset(s->voiced_more + begin * G, 0, genres);
    memset(s->voiced_less + begin * G, 0, genres);
    /* The last clicks of a user, split into 32-bit halves and padded to whole blocks of 4
     * (with an id no item has, -1, at level 0), for the scan of equations.item_satiation. */
    const int64_t H4 = (H + 3) / 4 * 4;
    int32_t recent_low[MAX_H + 3], recent_high[MAX_H + 3];
    float recent_levels[MAX_H + 3];
    for (int64_t h = H; h < H4; h++) {
        recent_low[h] = recent_high[h] = -1;
        recent_levels[h] = 0.0f;
    }

    for (int64_t b = begin; b < end; b++) {
        const int64_t *slate = s->slates + b * K;
        if (s->idle != NULL && s->idle[b]) {
            /* A slot the caller discards this step: its state stays as it is. */
            s->in_force[b] = s->leaves[b] = s->returned[b] = 0;
            s->compliance[b] = s->hazard[b] = s->gap[b] = 0.0f;
            s->mindset[b] = s->satisfaction[b];
            s->voiced_novelty[b] = 0;
            s->phrase[b] = -1;
            continue;
        }
        float *user_interest = s->interest + b * D, *user_familiar = s->familiar + b * D;
        float *user_satiation = s->satiation + b * G, *user_theme = s->theme + b * G;
        uint64_t *user_watched = (uint64_t *)s->watched + b * W;
        int64_t *recent = s->recent_clicks + b * H;
        float *recent_level = s->recent_satiation + b * H;
        const uint64_t base = user_base(s->key[b], s->counter[b]);
        const float novelty = s->novelty_seeking[b], pop_bias = s->popularity_bias[b];
        const float user_patience = s->patience[b], user_rating_bias = s->rating_bias[b];
        for (int64_t h = 0; h < H; h++) {
            recent_low[h] = (int32_t)(uint32_t)recent[h];
            recent_high[h] = (int32_t)(uint32_t)((uint64_t)recent[h] >> 32);
            recent_levels[h] = recent_level[h];
        }
        /* The sums of exposure and consumption start at 0 with the first item examined and
         * the first click (below), rather than by zeroing them here, which the compiler makes
         * two calls of memset per user. */
        if (K == 0)
            for (int64_t g = 0; g < G; g++) exposure[g] = 0.0f;
        float enjoyment = 0.0f, seen_satiation = 0.0f, n_examined = 0.0f;
        int64_t n_clicks = 0;
        int examining = 1;

        const int in_force = s->active[b];
        int64_t k = 0;
        for (; k < K && examining; k++) { /* the cascade, item by item until the user stops */
            const int64_t item = slate[k];
            const float *f = s->features + item * D, *w = s->genre_weights + item * G;
            const float affinity = dot(f, user_interest, D), closeness = dot(f, user_familiar, D);
            const float item_satiation = dot(w, user_satiation, G);
            /* equations.item_satiation: the item's level among the last clicks, 0 if absent;
             * four at a time, without a branch (whether an item is among them is a coin toss
             * to the branch predictor). Each lane starts at 0 and takes only a strictly larger
             * level, as the one-by-one scan did, so the largest is the same whichever lane
             * holds it. */
            const int32_t item_low = (int32_t)(uint32_t)item, item_high = (int32_t)(uint32_t)((uint64_t)item >> 32);
            const mask4 low4 = {item_low, item_low, item_low, item_low};
            const mask4 high4 = {item_high, item_high, item_high, item_high};
            lanes4 best = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int64_t h = 0; h < H4; h += 4) {
                const mask4 same = (load_mask4(recent_low + h) == low4) & (load_mask4(recent_high + h) == high4);
                const lanes4 level = (lanes4)(same & (mask4)load4(recent_levels + h));
                best = select4(level > best, level, best);
            }
            float item_level = best[0];
            for (int lane = 1; lane < 4; lane++) item_level = best[lane] > item_level ? best[lane] : item_level;
            distance[k] = 1.0f - closeness; /* equations.distance_from_familiar */
            float v = interest_weight * affinity + s->static_appeal[item];
            v += pop_bias * s->popularity_score[item];
            v += novelty * (distance[k] - 1.0f);
            v -= satiation_weight * item_satiation;
            v -= repeat_penalty * item_level;
            if (theme_weight != 0.0f) v += theme_weight * dot(w, user_theme, G); /* equations.theme_appeal */
            if (W > 0 && (user_watched[item >> 6] >> (item & 63)) & 1u) v = -INFINITY; /* user_state.was_watched */

            const float u_click = uniform_salted(base, salt[k]);
            const float u_continue = uniform_salted(base, salt[K + k]);
            const int clicked = u_click < sigmoidf(v);
            float watch = 0.0f;
            if (clicked) {
                const float u_watch = uniform_salted(base, salt[2 * K + k]);
                const float u_like = uniform_salted(base, salt[3 * K + k]);
                const float noise = logf(u_watch / (1.0f - u_watch));
                watch = sigmoidf(v + 1.0f + 0.45f * noise);
                const int liked = u_like < sigmoidf(2.0f * v - 1.0f);
                float level = rating_center + rating_slope * v + user_rating_bias;
                if (rating_quality != 0.0f) level = level + rating_quality * s->quality[item];
                float r = nearbyintf(level + rating_noise * noise);
                const int8_t rating = (int8_t)(r < 1.0f ? 1.0f : (r > 5.0f ? 5.0f : r));
                enjoyment += (float)(rating - 1) * 0.25f; /* equations.step_enjoyment */
                if (n_clicks == 0) /* equations.consumption */
                    for (int64_t d = 0; d < D; d++) consumed[d] = 0.0f + watch * f[d];
                else
                    for (int64_t d = 0; d < D; d++) consumed[d] += watch * f[d];
                clicked_levels[n_clicks] = item_level + (1.0f - item_level) * watch; /* item_satiation_build_up */
                clicked_items[n_clicks++] = item;
                s->clicked[b * K + k] = 1;
                s->watch[b * K + k] = watch;
                s->liked[b * K + k] = (uint8_t)liked;
                s->rating[b * K + k] = rating;
            }
            const float weight = 0.2f + 0.8f * (clicked ? watch : 0.0f); /* equations.genre_exposure */
            const lanes4 weight4 = {weight, weight, weight, weight};
            int64_t g = 0;
            if (k == 0) {
                for (; g + 4 <= G; g += 4) store4(exposure + g, zero4 + weight4 * load4(w + g));
                for (; g < G; g++) exposure[g] = 0.0f + weight * w[g];
            } else {
                for (; g + 4 <= G; g += 4) store4(exposure + g, load4(exposure + g) + weight4 * load4(w + g));
                for (; g < G; g++) exposure[g] += weight * w[g];
            }
            seen_satiation += item_satiation;
            n_examined += 1.0f;
            examining = u_continue < user_patience * (clicked ? continue_after_click : 1.0f);
            s->examined[b * K + k] = 1;
        }
        /* Past where the user stopped nothing happens (the responses are 0 already); only
         * compliance, which reads every item's distance, looks further. */
        if (in_force)
            for (; k < K; k++) distance[k] = 1.0f - dot(s->features + slate[k] * D, user_familiar, D);
        const float boredom = seen_satiation / n_examined; /* equations.boredom */

        /* The step's quality: concave in the summed enjoyment of what was clicked (0 without
         * a click); compliance with the instruction in force moves it (equations.step_enjoyment,
         * equations.step_quality). */
        float step_quality = 1.0f - expf(-enjoyment / param[P_QUALITY_SCALE]);
        float compliance = 0.0f;
        if (in_force) {
            compliance = compliance_of(s, b, distance);
            step_quality += param[P_COMPLIANCE_WEIGHT] * (compliance - 0.5f);
        }

        /* Dynamics: equations.satiation_build_up, equations.interest_drift and
         * equations.familiarity_update. */
        for (int64_t g = 0; g < G; g++) {
            const float rated = param[P_SATIATION_RATE] * exposure[g];
            user_satiation[g] = param[P_SATIATION_KEEP] * user_satiation[g]
                                + (1.0f - user_satiation[g]) * (rated / (1.0f + rated));
        }
        /* equations.item_satiation_decay: the older clicks' levels fade every step */
        for (int64_t h = 0; h < H; h++) recent_level[h] = param[P_ITEM_KEEP] * recent_level[h];
        if (n_clicks > 0) {  /* nothing consumed: interest, familiarity and history stay */
            for (int64_t d = 0; d < D; d++) user_interest[d] += param[P_INTEREST_DRIFT] * consumed[d];
            normalize(user_interest, D);
            for (int64_t d = 0; d < D; d++) blend[d] = consumed[d];
            normalize(blend, D);
            for (int64_t d = 0; d < D; d++)
                user_familiar[d] = param[P_FAMILIAR_KEEP] * user_familiar[d] + param[P_FAMILIARITY_RATE] * blend[d];
            normalize(user_familiar, D);
            /* Newest first: this step's clicks in slate order, then the older history. */
            for (int64_t h = H - 1; h >= n_clicks; h--) {
                recent[h] = recent[h - n_clicks];
                recent_level[h] = recent_level[h - n_clicks];
            }
            for (int64_t h = 0; h < n_clicks && h < H; h++) {
                recent[h] = clicked_items[h];
                recent_level[h] = clicked_levels[h];
            }
            for (int64_t h = 0; W > 0 && h < n_clicks; h++) /* user_state.remember_watched */
                user_watched[clicked_items[h] >> 6] |= (uint64_t)1 << (clicked_items[h] & 63);
            if (theme_weight != 0.0f) { /* equations.session_theme: the session's first click sets it */
                float set = 0.0f;
                for (int64_t g = 0; g < G; g++) set += user_theme[g];
                if (set == 0.0f)
                    for (int64_t g = 0; g < G; g++) user_theme[g] = (float)s->genres[clicked_items[0] * G + g];
            }
        }

        /* equations.mindset_update, equations.session_memory_update, equations.leave_hazard,
         * equations.instruction_countdown and equations.voice_or_leave. */
        const float quality = step_quality < 0.0f ? 0.0f : (step_quality > 1.0f ? 1.0f : step_quality);
        float mindset = param[P_MINDSET_KEEP] * s->satisfaction[b] + param[P_MINDSET_RATE] * quality;
        const int64_t session_step = ++s->session_step[b];
        /* How the session went (equations.session_memory_update): its mean, its peak and
         * its end, blended by the peak-end rule. */
        float mean = s->session_mean[b];
        mean = mean + (quality - mean) / (float)session_step;
        const float peak = session_step == 1 ? quality : (quality > s->session_peak[b] ? quality : s->session_peak[b]);
        const float memory = param[P_PEAK_END_WEIGHT] * ((peak + quality) * 0.5f) + param[P_MEAN_WEIGHT] * mean;
        s->session_mean[b] = mean;
        s->session_peak[b] = peak;
        s->session_memory[b] = memory;
        /* equations.leave_hazard: a user's first session has its own shift, lowered by the
         * positive part of the user's sign-up draw, and share of patience */
        const int first = s->session_index[b] == 0;
        float first_shift = first ? param[P_LEAVE_FIRST_SESSION] : 0.0f;
        if (first && param[P_FIRST_SESSION_SPREAD] != 0.0f)
            first_shift -= param[P_FIRST_SESSION_SPREAD]
                           * fmaxf(standard_normal(uniform_salted(user_base(s->key[b], 0), sign_up_salt)), 0.0f);
        const float patience_share = first ? param[P_FIRST_SESSION_PATIENCE] : 1.0f;
        const float hazard = sigmoidf(param[P_LEAVE_BASE] + param[P_LEAVE_MINDSET] * (0.5f - mindset)
                                      + param[P_LEAVE_BOREDOM] * boredom + param[P_LEAVE_LENGTH] * (float)session_step
                                      - param[P_LEAVE_PATIENCE] * patience_share * (user_patience - 0.75f)
                                      + first_shift);
        s->steps_left[b] -= in_force;
        const int active = s->active[b] && s->steps_left[b] > 0;
        /* The voice, leave and return draws, each made only where it decides something. A
         * later session's first step may end a visit for one thing (equations.quick_visit),
         * decided by the leave draw, which the other visits take rescaled. */
        const float q = param[P_QUICK_VISIT_SHARE];
        const int quick_step = q != 0.0f && !first && session_step == 1;
        const float u_quick = quick_step ? uniform_salted(base, salt[4 * K + 1]) : 1.0f;
        const int quick = quick_step && u_quick < q;
        const int speaks = !quick && hazard > param[P_INSTRUCTION_THRESHOLD] && !active
                           && uniform_salted(base, salt[4 * K]) < param[P_VOICE_PROBABILITY];
        const int leaves = quick || (!speaks && (quick_step ? (u_quick - q) / (1.0f - q)
                                                            : uniform_salted(base, salt[4 * K + 1])) < hazard);
        s->mindset[b] = mindset; /* the mindset at leaving, for the response, before any break */
        int returned = 0;
        float gap = leaves ? INFINITY : 0.0f;
        if (leaves) { /* equations.return_decision: return_probability, first_gap_law, mean_return_gap, return_gap */
            const float p_return = sigmoidf(param[P_RETURN_BASE] + param[P_RETURN_MINDSET] * (memory - 0.5f)
                                            + logf(s->activity[b])
                                            + (first ? param[P_RETURN_FIRST_SESSION] : 0.0f));
            returned = uniform_salted(base, salt[4 * K + 2]) < p_return;
        }
        if (returned) {
            float u_gap = uniform_salted(base, gap_salt);
            int first_law = first;
            const float share = param[P_GAP_FIRST_SHARE];
            if (first && share != 1.0f) { /* equations.first_gap_law: the gap's draw picks the law */
                first_law = u_gap < share;
                u_gap = first_law ? u_gap / share : (1.0f - u_gap) / (1.0f - share);
            }
            /* equations.mean_return_gap and return_gap hold the mean, and the Weibull scale, at
             * LONGEST_GAP where they overflow (a factor that rounds to 0 then gives 0, not
             * inf * 0 = NaN); on a finite number each clamp is the identity, as torch's is. */
            float mean_gap = param[P_GAP_DAYS] / (s->activity[b] * (0.5f + memory));
            if (mean_gap > FLT_MAX) mean_gap = FLT_MAX;
            if (first_law && param[P_GAP_FIRST_SESSION] != 0.0f) { /* equations.mean_return_gap: first-session law */
                mean_gap = mean_gap * expf(param[P_GAP_FIRST_SESSION]);
                if (mean_gap > FLT_MAX) mean_gap = FLT_MAX;
            }
            if (param[P_GAP_LENGTH_ELASTICITY] != 0.0f) /* equations.mean_return_gap: longer sessions, sooner returns */
                mean_gap = mean_gap * powf((float)session_step, -param[P_GAP_LENGTH_ELASTICITY]);
            const float log_u = logf(u_gap); /* equations.return_gap */
            if (param[P_GAP_SHAPE] == 1.0f) {
                gap = -mean_gap * log_u;
            } else {
                float scale = mean_gap * param[P_WEIBULL_MEAN_FACTOR];
                if (scale > FLT_MAX) scale = FLT_MAX;
                gap = scale * powf(-log_u, param[P_INVERSE_GAP_SHAPE]);
            }
            if (gap > FLT_MAX) gap = FLT_MAX; /* equations.LONGEST_GAP: an infinite gap stands for churn */
            const float recovery = expf(-gap / param[P_RECOVERY_DAYS]); /* equations.satiation_recovery */
            for (int64_t g = 0; g < G; g++) user_satiation[g] *= recovery;
            const float item_recovery = expf(-gap / param[P_ITEM_RECOVERY_DAYS]); /* item_satiation_recovery */
            for (int64_t h = 0; h < H; h++) recent_level[h] *= item_recovery;
            /* The mindset regresses towards the baseline over the break (equations.mindset_after_break). */
            mindset = 0.5f * mindset + param[P_MINDSET_REGRESSION];
            s->session_index[b] += 1;
            s->session_step[b] = 0;
        }
        if (returned) {  /* a new session, with no instruction, no theme and a fresh novelty propensity */
            for (int64_t g = 0; g < G; g++) s->more[b * G + g] = s->less[b * G + g] = 0;
            for (int64_t g = 0; g < G; g++) user_theme[g] = 0.0f;
            s->novelty[b] = 0;
            s->steps_left[b] = 0;
            const float u = uniform_salted(user_base(s->key[b], (int32_t)s->session_index[b]), session_salt);
            const float normal = standard_normal(u);
            s->novelty_seeking[b] = s->novelty_trait[b] + param[P_NOVELTY_SESSION_SPREAD] * normal;
        }
        s->active[b] = (uint8_t)(active && !returned);
        s->churned[b] |= (uint8_t)(leaves && !returned);
        s->satisfaction[b] = mindset;
        s->counter[b] += 1;
        s->voiced_novelty[b] = 0;
        s->phrase[b] = -1;
        if (speaks) voice(s, b);
        s->in_force[b] = (uint8_t)in_force;
        s->leaves[b] = (uint8_t)leaves;
        s->returned[b] = (uint8_t)returned;
        s->compliance[b] = compliance;
        s->hazard[b] = hazard;
        s->gap[b] = gap;
    }
    return 0;
}

/* The traits of n new users, rows in the order of `slots`: a population's draw, or, when
 * `synthetic` is given, drawn here from the keys by the synthetic population's law. */
typedef struct {
    const int64_t *slots;
    const int64_t *key;
    const float *interest, *patience, *novelty_trait, *activity, *popularity_bias;
    const float *rating_bias; /* NULL: the population does not know it (0) */
    const int64_t *source_user; /* NULL: fitted on no one (-1) */
    const SyntheticLaw *synthetic; /* NULL: the rows above hold the traits */
} Newcomers;

/* Put newcomer i, with `interest` ([D]) and `traits`, into its slot (simulators/user_state.py's
 * start_users): the state of a first visit (no satiation, the initial mindset, no history,
 * no instruction) and the first session's novelty propensity. */
static void start_user(const UserStep *s, const Newcomers *n, int64_t i, const float *interest,
                       const DrawnTraits *traits, uint64_t session_salt) {
    const int64_t D = s->D, G = s->G, H = s->H, b = n->slots[i], key = n->key[i];
    s->key[b] = key;
    s->counter[b] = 0;
    for (int64_t d = 0; d < D; d++) s->interest[b * D + d] = s->familiar[b * D + d] = interest[d];
    s->patience[b] = traits->patience;
    s->novelty_trait[b] = traits->novelty_trait;
    s->activity[b] = traits->activity;
    s->popularity_bias[b] = traits->popularity_bias;
    s->rating_bias[b] = n->rating_bias != NULL ? n->rating_bias[i] : 0.0f;
    s->source_user[b] = n->source_user != NULL ? n->source_user[i] : -1;
    for (int64_t g = 0; g < G; g++) {
        s->satiation[b * G + g] = s->theme[b * G + g] = 0.0f;
        s->more[b * G + g] = s->less[b * G + g] = 0;
    }
    s->satisfaction[b] = s->session_memory[b] = s->param[P_INITIAL_MINDSET];
    s->session_mean[b] = s->session_peak[b] = s->param[P_INITIAL_MINDSET];
    s->session_index[b] = s->session_step[b] = 0;
    s->churned[b] = 0;
    for (int64_t h = 0; h < H; h++) {
        s->recent_clicks[b * H + h] = -1;
        s->recent_satiation[b * H + h] = 0.0f;
    }
    for (int64_t j = 0; j < s->W; j++) s->watched[b * s->W + j] = 0;
    s->active[b] = 0;
    s->novelty[b] = 0;
    s->steps_left[b] = 0;
    /* The first session's propensity: rng.normal(key, 0, S_SESSION, 1), as a return draws it. */
    const float normal = standard_normal(uniform_salted(user_base(key, 0), session_salt));
    s->novelty_seeking[b] = traits->novelty_trait + s->param[P_NOVELTY_SESSION_SPREAD] * normal;
}

/* Put newcomers [begin, end) into their slots, their traits drawn here when the synthetic
 * law is given. Returns 0, or 1 if D, G or H exceed the MAX_ bounds. */
int recoworld_start(int64_t begin, int64_t end, const UserStep *step, const Newcomers *newcomers) {
    const UserStep local = *step, *s = &local;
    const Newcomers *n = newcomers;
    const int64_t D = s->D;
    if (D > MAX_D || s->G > MAX_G || s->H > MAX_H) return 1;
    const uint64_t session_salt = draw_salt(s->session_stream, 0);
    float drawn[MAX_D];
    uint64_t salts[2 + MAX_D + 4];
    if (n->synthetic != NULL) synthetic_salts(n->synthetic, salts);
    for (int64_t i = begin; i < end; i++) {
        DrawnTraits traits;
        const float *interest = drawn;
        if (n->synthetic != NULL) {
            draw_synthetic(n->synthetic, salts, n->key[i], drawn, &traits);
        } else {
            interest = n->interest + i * D;
            traits = (DrawnTraits){n->patience[i], n->novelty_trait[i], n->activity[i], n->popularity_bias[i]};
        }
        start_user(s, n, i, interest, &traits, session_salt);
    }
    return 0;
}

/* The synthetic traits of users [begin, end) with random `keys`, into rows of `interest`
 * ([n, D]), `patience`, `novelty_trait`, `activity` and `popularity_bias` ([n]): the draw
 * recoworld_start makes, for a check against the torch one. Returns 0, or 1 if D > MAX_D. */
int recoworld_draw_synthetic(int64_t begin, int64_t end, const SyntheticLaw *law, const int64_t *keys,
                             float *interest, float *patience, float *novelty_trait, float *activity,
                             float *popularity_bias) {
    if (law->D > MAX_D) return 1;
    uint64_t salts[2 + MAX_D + 4];
    synthetic_salts(law, salts);
    for (int64_t i = begin; i < end; i++) {
        DrawnTraits traits;
        draw_synthetic(law, salts, keys[i], interest + i * law->D, &traits);
        patience[i] = traits.patience;
        novelty_trait[i] = traits.novelty_trait;
        activity[i] = traits.activity;
        popularity_bias[i] = traits.popularity_bias;
    }
    return 0;
}

/* The chunks pool.c runs (recoworld_run_parallel, called from recoworld/kernels/build.py):
 * a step of users [begin, end) of the UserStep `frame`, and the start of newcomers
 * [begin, end) of a StartCall. */
typedef struct {
    const UserStep *step;
    const Newcomers *newcomers;
} StartCall;

int64_t recoworld_respond_chunk(int64_t begin, int64_t end, const void *frame) {
    return recoworld_respond(begin, end, (const UserStep *)frame);
}

int64_t recoworld_start_chunk(int64_t begin, int64_t end, const void *call) {
    const StartCall *c = (const StartCall *)call;
    return recoworld_start(begin, end, c->step, c->newcomers);
}

/* The layouts of the structs, for the loader's check against its ctypes mirrors (layout.h). */
LAYOUT_BEGIN(UserStep)
    LAYOUT_FIELD(UserStep, K) LAYOUT_FIELD(UserStep, D) LAYOUT_FIELD(UserStep, G) LAYOUT_FIELD(UserStep, H)
    LAYOUT_FIELD(UserStep, W)
    LAYOUT_FIELD(UserStep, features) LAYOUT_FIELD(UserStep, genre_weights)
    LAYOUT_FIELD(UserStep, static_appeal) LAYOUT_FIELD(UserStep, popularity_score) LAYOUT_FIELD(UserStep, quality)
    LAYOUT_FIELD(UserStep, genres) LAYOUT_FIELD(UserStep, genre_centroids) LAYOUT_FIELD(UserStep, slates)
    LAYOUT_FIELD(UserStep, idle) LAYOUT_FIELD(UserStep, step_stream) LAYOUT_FIELD(UserStep, gap_stream)
    LAYOUT_FIELD(UserStep, session_stream) LAYOUT_FIELD(UserStep, phrase_stream)
    LAYOUT_FIELD(UserStep, param) LAYOUT_FIELD(UserStep, key) LAYOUT_FIELD(UserStep, novelty_trait)
    LAYOUT_FIELD(UserStep, popularity_bias) LAYOUT_FIELD(UserStep, patience)
    LAYOUT_FIELD(UserStep, rating_bias) LAYOUT_FIELD(UserStep, activity) LAYOUT_FIELD(UserStep, source_user)
    LAYOUT_FIELD(UserStep, counter)
    LAYOUT_FIELD(UserStep, novelty_seeking) LAYOUT_FIELD(UserStep, interest) LAYOUT_FIELD(UserStep, familiar)
    LAYOUT_FIELD(UserStep, satiation) LAYOUT_FIELD(UserStep, satisfaction)
    LAYOUT_FIELD(UserStep, session_memory) LAYOUT_FIELD(UserStep, session_mean)
    LAYOUT_FIELD(UserStep, session_peak) LAYOUT_FIELD(UserStep, recent_clicks) LAYOUT_FIELD(UserStep, recent_satiation)
    LAYOUT_FIELD(UserStep, session_index) LAYOUT_FIELD(UserStep, session_step) LAYOUT_FIELD(UserStep, theme)
    LAYOUT_FIELD(UserStep, watched)
    LAYOUT_FIELD(UserStep, steps_left) LAYOUT_FIELD(UserStep, active) LAYOUT_FIELD(UserStep, more)
    LAYOUT_FIELD(UserStep, less) LAYOUT_FIELD(UserStep, churned) LAYOUT_FIELD(UserStep, novelty)
    LAYOUT_FIELD(UserStep, examined) LAYOUT_FIELD(UserStep, clicked) LAYOUT_FIELD(UserStep, liked)
    LAYOUT_FIELD(UserStep, watch) LAYOUT_FIELD(UserStep, rating) LAYOUT_FIELD(UserStep, in_force)
    LAYOUT_FIELD(UserStep, leaves) LAYOUT_FIELD(UserStep, returned) LAYOUT_FIELD(UserStep, compliance)
    LAYOUT_FIELD(UserStep, hazard) LAYOUT_FIELD(UserStep, gap) LAYOUT_FIELD(UserStep, mindset)
    LAYOUT_FIELD(UserStep, voiced_more)
    LAYOUT_FIELD(UserStep, voiced_less) LAYOUT_FIELD(UserStep, voiced_novelty) LAYOUT_FIELD(UserStep, phrase)
LAYOUT_END(UserStep)

LAYOUT_BEGIN(Newcomers)
    LAYOUT_FIELD(Newcomers, slots) LAYOUT_FIELD(Newcomers, key) LAYOUT_FIELD(Newcomers, interest)
    LAYOUT_FIELD(Newcomers, patience) LAYOUT_FIELD(Newcomers, novelty_trait)
    LAYOUT_FIELD(Newcomers, activity) LAYOUT_FIELD(Newcomers, popularity_bias)
    LAYOUT_FIELD(Newcomers, rating_bias) LAYOUT_FIELD(Newcomers, source_user) LAYOUT_FIELD(Newcomers, synthetic)
LAYOUT_END(Newcomers)

LAYOUT_BEGIN(SyntheticLaw)
    LAYOUT_FIELD(SyntheticLaw, n_items) LAYOUT_FIELD(SyntheticLaw, D) LAYOUT_FIELD(SyntheticLaw, cumulative)
    LAYOUT_FIELD(SyntheticLaw, features) LAYOUT_FIELD(SyntheticLaw, stream)
    LAYOUT_FIELD(SyntheticLaw, interest_noise) LAYOUT_FIELD(SyntheticLaw, logit_patience)
    LAYOUT_FIELD(SyntheticLaw, patience_spread) LAYOUT_FIELD(SyntheticLaw, novelty_spread)
    LAYOUT_FIELD(SyntheticLaw, activity_spread) LAYOUT_FIELD(SyntheticLaw, popularity_bias_mean)
    LAYOUT_FIELD(SyntheticLaw, popularity_bias_spread)
LAYOUT_END(SyntheticLaw)

LAYOUT_BEGIN(StartCall)
    LAYOUT_FIELD(StartCall, step) LAYOUT_FIELD(StartCall, newcomers)
LAYOUT_END(StartCall)
