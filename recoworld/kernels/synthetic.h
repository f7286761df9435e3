/* The synthetic population's draw in C (simulators/population.py: SyntheticPopulation.sample),
 * for the users' kernel to start new users in one pass each.
 *
 * The same uniforms as rng.uniform(key, 0, S_USER, 2 + D + 4), bit for bit (rng.h): two
 * anchor items by popularity, D interest noises, then patience, novelty seeking, activity
 * and popularity bias. An anchor is the first item whose cumulative popularity (float64)
 * reaches the uniform, as torch.searchsorted finds it, so the ids are equal; the normals are
 * the inverse CDF of the same uniforms (torch_math.h), so the traits agree with torch's to
 * rounding.
 */
#ifndef RECOWORLD_SYNTHETIC_H
#define RECOWORLD_SYNTHETIC_H
#ifndef MAX_D
#error "define MAX_D, the largest feature dimension, before including synthetic.h"
#endif

#include <math.h>
#include <stdint.h>

#include "rng.h"
#include "torch_math.h"

/* The law of the synthetic traits (recoworld/kernels/users.py: SyntheticLaw mirrors it). */
typedef struct {
    int64_t n_items, D;
    const double *cumulative; /* [n_items]: the cumulative popularity, float64 */
    const float *features;    /* [n_items, D] */
    uint32_t stream;          /* rng.mix_int(S_USER) */
    float interest_noise, logit_patience, patience_spread, novelty_spread, activity_spread;
    float popularity_bias_mean, popularity_bias_spread;
} SyntheticLaw;

/* The scalar traits of one new user (its interest is written into a buffer of D). */
typedef struct {
    float patience, novelty_trait, activity, popularity_bias;
} DrawnTraits;

/* torch.searchsorted(sorted, value) (left side): the first index whose entry is >= value,
 * n if none. */
static inline int64_t search_sorted(const double *sorted, int64_t n, double value) {
    int64_t low = 0, high = n;
    while (low < high) {
        const int64_t mid = low + (high - low) / 2;
        if (sorted[mid] < value) low = mid + 1;
        else high = mid;
    }
    return low;
}

/* The item drawn by popularity with uniform u (clamped to the last item, as the torch draw). */
static inline const float *anchor_features(const SyntheticLaw *law, float u) {
    const int64_t item = search_sorted(law->cumulative, law->n_items, (double)u);
    return law->features + (item < law->n_items - 1 ? item : law->n_items - 1) * law->D;
}

/* The salts of a user's 2 + D + 4 draws, the same for every user: salts[j] for draw j. */
static inline void synthetic_salts(const SyntheticLaw *law, uint64_t *salts) {
    for (int64_t j = 0; j < 2 + law->D + 4; j++) salts[j] = draw_salt(law->stream, (uint32_t)j);
}

/* The traits of the user with random `key`: interest ([D], a unit vector) and the rest;
 * `salts` from synthetic_salts, D at most MAX_D. */
static void draw_synthetic(const SyntheticLaw *law, const uint64_t *salts, int64_t key, float *interest,
                           DrawnTraits *traits) {
    const int64_t D = law->D;
    const uint64_t base = user_base(key, 0);
    float u[2 + MAX_D + 4], z[MAX_D + 4];
    for (int64_t j = 0; j < 2 + D + 4; j++) u[j] = uniform_salted(base, salts[j]);
    standard_normals(u + 2, z, D + 4);
    const float *first = anchor_features(law, u[0]), *second = anchor_features(law, u[1]);
    for (int64_t d = 0; d < D; d++) interest[d] = (first[d] + second[d]) + law->interest_noise * z[d];
    normalize(interest, D);
    traits->patience = sigmoidf(law->logit_patience + law->patience_spread * z[D]);
    traits->novelty_trait = law->novelty_spread * z[D + 1];
    traits->activity = expf(law->activity_spread * z[D + 2]);
    traits->popularity_bias = law->popularity_bias_mean + law->popularity_bias_spread * z[D + 3];
}

#endif
