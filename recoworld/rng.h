/* The counter-based uniforms of recoworld/rng.py for the C kernels, bit for bit.
 *
 * lowbias32 (Chris Wellons, https://nullprogram.com/blog/2018/07/31/) on 32-bit patterns;
 * a uniform is the top 24 bits of a hash, + 0.5, / 2^24. A user's draws at a step hash
 * (key, counter) once into a base, then each draw j of a stream hashes (base, j).
 */
#ifndef RECOWORLD_RNG_H
#define RECOWORLD_RNG_H

#include <stdint.h>

#define RECOWORLD_GOLDEN 0x9E3779B1u

static inline uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    return x ^ (x >> 16);
}

/* rng._bits32's per-user base for (key, counter). */
static inline uint32_t user_base(int32_t key, int32_t counter) {
    return mix32((uint32_t)key ^ mix32((uint32_t)counter * RECOWORLD_GOLDEN));
}

/* The salt of draw j of a stream, the same for every user; `stream_base` is rng.mix_int(stream). */
static inline uint32_t draw_salt(uint32_t stream_base, uint32_t j) { return mix32(j + stream_base); }

/* Draw j of a stream, from its salt. */
static inline uint32_t bits_salted(uint32_t base, uint32_t salt) { return mix32(base ^ salt); }

static inline uint32_t bits_at(uint32_t base, uint32_t stream_base, uint32_t j) {
    return bits_salted(base, draw_salt(stream_base, j));
}

/* rng.uniform's draw with salt `salt`. */
static inline float uniform_salted(uint32_t base, uint32_t salt) {
    return ((float)(bits_salted(base, salt) >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

static inline float uniform_at(uint32_t base, uint32_t stream_base, uint32_t j) {
    return uniform_salted(base, draw_salt(stream_base, j));
}

#endif
