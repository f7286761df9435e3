/* Fused CPU step of the statistical users (recoworld.simulators.statistical).
 *
 * One pass per user over the slate's K items: utility, the step's counter-based uniforms,
 * cascade examination, clicks, watch, likes, ratings, and the per-item parts of the
 * dynamics (satiation, interest drift, familiarity, the click history). The torch path
 * materialises every [B, K, ...] intermediate in memory; here the item tables stay in
 * cache and each user's numbers stay in registers. The equations are those of the module
 * docstring of statistical.py, term for term and in the same order, in float32.
 *
 * The uniforms are recoworld/rng.py's, bit for bit: lowbias32 (Chris Wellons,
 * https://nullprogram.com/blog/2018/07/31/) on 32-bit patterns, top 24 bits, + 0.5, / 2^24.
 *
 * Plain C99 and libm, compiled by recoworld.simulators.fused with `cc -O3 -shared -fPIC`.
 */
#include <math.h>
#include <stdint.h>

#define GOLDEN 0x9E3779B1u

static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}

/* rng.uniform(keys, counters, stream, n) for one user; `stream_base` is rng.mix_int(stream). */
static inline float uniform_at(uint32_t base, uint32_t stream_base, uint32_t j) {
    uint32_t bits = mix32(base ^ mix32(j + stream_base));
    return ((float)(bits >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

static inline uint32_t user_base(int32_t key, int32_t counter) {
    return mix32((uint32_t)key ^ mix32((uint32_t)counter * GOLDEN));
}

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Bit-exact rng.uniform for users [begin, end): out is [n_users, n]. */
void recoworld_uniform(int64_t begin, int64_t end, const int32_t *key, const int32_t *counter,
                       uint32_t stream_base, int64_t n, float *out) {
    for (int64_t b = begin; b < end; b++) {
        uint32_t base = user_base(key[b], counter[b]);
        for (int64_t j = 0; j < n; j++) out[b * n + j] = uniform_at(base, stream_base, (uint32_t)j);
    }
}

/* Order of the float parameters in `param`. */
enum {
    P_INTEREST_WEIGHT, P_SATIATION_WEIGHT, P_REPEAT_PENALTY, P_CONTINUE_AFTER_CLICK,
    P_RATING_CENTER, P_RATING_SLOPE, P_RATING_QUALITY, P_RATING_NOISE,
    P_SATIATION_KEEP, P_SATIATION_RATE, P_INTEREST_DRIFT, P_FAMILIAR_KEEP, P_FAMILIARITY_RATE,
    N_PARAMS
};

#define MAX_K 256
#define MAX_D 1024
#define MAX_G 1024
#define MAX_H 1024

static inline void normalize(float *x, int64_t n) {
    float sq = 0.0f;
    for (int64_t d = 0; d < n; d++) sq += x[d] * x[d];
    float norm = sqrtf(sq);
    if (norm < 1e-12f) norm = 1e-12f;
    for (int64_t d = 0; d < n; d++) x[d] = x[d] / norm;
}

/* One step of users [begin, end). Returns 0, or 1 if K, D, G or H exceed the MAX_ bounds.
 *
 * Reads the item tables (features [N, D], genre_weights [N, G], static_appeal, pop_score,
 * quality [N]) and the users' traits; updates satiation [B, G], interest [B, D],
 * familiar [B, D] and recent_clicks [B, H] in place; writes the per-item response [B, K],
 * distance [B, K] (for compliance), and per user the step quality (sum of clicks weighted
 * by watch), boredom and the three per-user uniforms of the step (voice, leave, return). */
int recoworld_respond(
    int64_t begin, int64_t end, int64_t K, int64_t D, int64_t G, int64_t H,
    const int64_t *slates, const float *features, const float *genre_weights,
    const float *static_appeal, const float *pop_score, const float *quality,
    const int32_t *key, const int32_t *counter, uint32_t stream_base, const float *param,
    const float *novelty_seeking, const float *popularity_bias, const float *patience,
    const float *rating_bias,
    float *interest, float *familiar, float *satiation, int64_t *recent_clicks,
    uint8_t *examined_out, uint8_t *clicked_out, float *watch_out, uint8_t *liked_out,
    int8_t *rating_out, float *distance_out, float *quality_out, float *boredom_out,
    float *user_uniforms) {
    if (K > MAX_K || D > MAX_D || G > MAX_G || H > MAX_H) return 1;
    const float interest_weight = param[P_INTEREST_WEIGHT], satiation_weight = param[P_SATIATION_WEIGHT];
    const float repeat_penalty = param[P_REPEAT_PENALTY], continue_after_click = param[P_CONTINUE_AFTER_CLICK];
    const float rating_center = param[P_RATING_CENTER], rating_slope = param[P_RATING_SLOPE];
    const float rating_quality = param[P_RATING_QUALITY], rating_noise = param[P_RATING_NOISE];
    float exposure[MAX_G], consumed[MAX_D], blend[MAX_D];
    int64_t clicked_items[MAX_K];

    for (int64_t b = begin; b < end; b++) {
        const int64_t *slate = slates + b * K;
        float *user_interest = interest + b * D, *user_familiar = familiar + b * D;
        float *user_satiation = satiation + b * G;
        int64_t *recent = recent_clicks + b * H;
        const uint32_t base = user_base(key[b], counter[b]);
        const float novelty = novelty_seeking[b], pop_bias = popularity_bias[b];
        const float user_patience = patience[b], user_rating_bias = rating_bias[b];
        for (int64_t g = 0; g < G; g++) exposure[g] = 0.0f;
        for (int64_t d = 0; d < D; d++) consumed[d] = 0.0f;
        float step_quality = 0.0f, seen_satiation = 0.0f, n_examined = 0.0f;
        int64_t n_clicks = 0;
        int examining = 1;

        for (int64_t k = 0; k < K; k++) {
            const int64_t item = slate[k];
            const float *f = features + item * D, *w = genre_weights + item * G;
            float affinity = 0.0f, closeness = 0.0f, item_satiation = 0.0f;
            for (int64_t d = 0; d < D; d++) {
                affinity += f[d] * user_interest[d];
                closeness += f[d] * user_familiar[d];
            }
            for (int64_t g = 0; g < G; g++) item_satiation += w[g] * user_satiation[g];
            int repeat = 0;
            for (int64_t h = 0; h < H; h++) repeat |= recent[h] == item;
            const float distance = 1.0f - closeness;
            float v = interest_weight * affinity + static_appeal[item];
            v += pop_bias * pop_score[item];
            v += novelty * (distance - 1.0f);
            v -= satiation_weight * item_satiation;
            v -= repeat_penalty * (float)repeat;
            distance_out[b * K + k] = distance;

            /* Draw layout of rng.uniform(key, t, S_STEP, 4K + 3): click, continue, watch, like. */
            const float u_click = uniform_at(base, stream_base, (uint32_t)k);
            const float u_continue = uniform_at(base, stream_base, (uint32_t)(K + k));
            const int click_draw = u_click < sigmoidf(v);
            const int was_examined = examining;
            const int clicked = click_draw && was_examined;
            float watch = 0.0f;
            int liked = 0;
            int8_t rating = 0;
            if (clicked) {
                const float u_watch = uniform_at(base, stream_base, (uint32_t)(2 * K + k));
                const float u_like = uniform_at(base, stream_base, (uint32_t)(3 * K + k));
                const float noise = logf(u_watch / (1.0f - u_watch));
                watch = sigmoidf(v + 1.0f + 0.45f * noise);
                liked = u_like < sigmoidf(2.0f * v - 1.0f);
                float level = rating_center + rating_slope * v + user_rating_bias;
                if (rating_quality != 0.0f) level = level + rating_quality * quality[item];
                float r = nearbyintf(level + rating_noise * noise);
                rating = (int8_t)(r < 1.0f ? 1.0f : (r > 5.0f ? 5.0f : r));
                step_quality += 0.3f + 0.7f * watch;
                for (int64_t d = 0; d < D; d++) consumed[d] += watch * f[d];
                clicked_items[n_clicks++] = item;
            }
            if (was_examined) {
                const float weight = 0.2f + 0.8f * (clicked ? watch : 0.0f);
                for (int64_t g = 0; g < G; g++) exposure[g] += weight * w[g];
                seen_satiation += item_satiation;
                n_examined += 1.0f;
                examining = u_continue < user_patience * (click_draw ? continue_after_click : 1.0f);
            }
            examined_out[b * K + k] = (uint8_t)was_examined;
            clicked_out[b * K + k] = (uint8_t)clicked;
            watch_out[b * K + k] = watch;
            liked_out[b * K + k] = (uint8_t)liked;
            rating_out[b * K + k] = rating;
        }
        quality_out[b] = step_quality;
        boredom_out[b] = seen_satiation / n_examined;
        for (int64_t j = 0; j < 3; j++) user_uniforms[b * 3 + j] = uniform_at(base, stream_base, (uint32_t)(4 * K + j));

        /* Dynamics: satiation, interest drift and familiarity (module docstring). */
        for (int64_t g = 0; g < G; g++) {
            const float x = exposure[g] < 1.0f ? exposure[g] : 1.0f;
            user_satiation[g] = param[P_SATIATION_KEEP] * user_satiation[g]
                                + param[P_SATIATION_RATE] * (1.0f - user_satiation[g]) * x;
        }
        if (n_clicks == 0) continue;  /* nothing consumed: interest, familiarity and history stay */
        for (int64_t d = 0; d < D; d++) user_interest[d] += param[P_INTEREST_DRIFT] * consumed[d];
        normalize(user_interest, D);
        for (int64_t d = 0; d < D; d++) blend[d] = consumed[d];
        normalize(blend, D);
        for (int64_t d = 0; d < D; d++)
            user_familiar[d] = param[P_FAMILIAR_KEEP] * user_familiar[d] + param[P_FAMILIARITY_RATE] * blend[d];
        normalize(user_familiar, D);
        /* Newest first: this step's clicks in slate order, then the older history. */
        for (int64_t h = H - 1; h >= n_clicks; h--) recent[h] = recent[h - n_clicks];
        for (int64_t h = 0; h < n_clicks && h < H; h++) recent[h] = clicked_items[h];
    }
    return 0;
}
