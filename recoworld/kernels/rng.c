/* recoworld/rng.py's integer hashes over whole arrays, for CPU tensors: one pass instead
 * of a dozen tensor ops, each a dispatch, which is what a restart of a few hundred users
 * mostly costs. Bit for bit the same (tests/test_fused_kernel.py).
 *
 * Plain C99, compiled by recoworld.kernels.build.
 */
#include <stdint.h>

#include "rng.h"

#define KEY_SALT 0x2545F4914F6CDD1Dull
#define DERIVE_SALT 0x5BD1E9955BD1E995ull
#define MASK62 0x3FFFFFFFFFFFFFFFull

/* The index of the first negative of n seeds, -1 if none (the caller refuses it): checked
 * in the same call, rather than by separate tensor ops. */
static int64_t first_negative(int64_t n, const int64_t *seeds) {
    for (int64_t i = 0; i < n; i++)
        if (seeds[i] < 0) return i;
    return -1;
}

/* rng.user_keys: a bijection of the seed, so distinct seeds give distinct keys. Returns
 * first_negative(seeds). */
int64_t recoworld_user_keys(int64_t n, const int64_t *seeds, int64_t *out) {
    for (int64_t i = 0; i < n; i++) out[i] = (int64_t)mix64((uint64_t)seeds[i] ^ KEY_SALT);
    return first_negative(n, seeds);
}

/* rng.derive: `salts` holds n values, or one when salt_stride is 0. Returns
 * first_negative(seeds). */
int64_t recoworld_derive(int64_t n, const int64_t *seeds, const int64_t *salts, int64_t salt_stride, int64_t *out) {
    for (int64_t i = 0; i < n; i++) {
        const uint64_t salt = mix64((uint64_t)salts[i * salt_stride] ^ DERIVE_SALT);
        out[i] = (int64_t)(mix64((uint64_t)seeds[i] ^ salt) & MASK62);
    }
    return first_negative(n, seeds);
}

/* rng._bits32: out is [n_users, n], draw j of each user's (key, counter) on a stream. */
void recoworld_bits32(int64_t n_users, const int64_t *key, const int32_t *counter, uint32_t stream_base,
                      int64_t n, int32_t *out) {
    for (int64_t b = 0; b < n_users; b++) {
        const uint64_t base = user_base(key[b], counter[b]);
        for (int64_t j = 0; j < n; j++) out[b * n + j] = (int32_t)bits_at(base, stream_base, (uint32_t)j);
    }
}
