/* recoworld/rng.py's integer hashes over whole arrays, for CPU tensors once the C kernels
 * are in use: one pass instead of a dozen tensor ops, each a dispatch, which is what a
 * restart of a few hundred users mostly costs. Bit for bit the same (tests/test_rng.py).
 *
 * Plain C99, compiled by recoworld.native.
 */
#include <stdint.h>

#include "rng.h"

#define SEED_STATE 0x2545F491u
#define DERIVE_SALT 0x5BD1E995u

static inline uint32_t user_key(int64_t seed) {
    uint32_t state = SEED_STATE;
    state = mix32(state ^ (uint32_t)((uint64_t)seed & 0xFFFFFFFFu) ^ RECOWORLD_GOLDEN);
    return mix32(state ^ (uint32_t)((uint64_t)seed >> 32) ^ RECOWORLD_GOLDEN);
}

/* rng.user_keys: out[i] = mix_int(seeds[i]). */
void recoworld_user_keys(int64_t n, const int64_t *seeds, int32_t *out) {
    for (int64_t i = 0; i < n; i++) out[i] = (int32_t)user_key(seeds[i]);
}

/* rng.derive from mixed = seed ^ (salt * golden); `salts` holds n values, or one when
 * salt_stride is 0. */
void recoworld_derive(int64_t n, const int64_t *mixed, const int64_t *salts, int64_t salt_stride, int64_t *out) {
    for (int64_t i = 0; i < n; i++) {
        const uint64_t salt = (uint64_t)salts[i * salt_stride];
        const uint32_t hi = user_key(mixed[i]);
        const uint32_t lo = mix32(hi ^ (uint32_t)(salt & 0xFFFFFFFFu) ^ DERIVE_SALT);
        out[i] = (int64_t)(((uint64_t)(hi & 0x3FFFFFFFu) << 32) | lo);
    }
}

/* rng._bits32: out is [n_users, n], draw j of each user's (key, counter) on a stream. */
void recoworld_bits32(int64_t n_users, const int32_t *key, const int32_t *counter, uint32_t stream_base,
                      int64_t n, int32_t *out) {
    for (int64_t b = 0; b < n_users; b++) {
        const uint32_t base = user_base(key[b], counter[b]);
        for (int64_t j = 0; j < n; j++) out[b * n + j] = (int32_t)bits_at(base, stream_base, (uint32_t)j);
    }
}
