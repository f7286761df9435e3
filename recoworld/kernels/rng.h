/* The counter-based random numbers of recoworld/rng.py for the C kernels, bit for bit.
 *
 * mix64 is splitmix64's finaliser (Steele, Lea & Flood, "Fast splittable pseudorandom
 * number generators", OOPSLA 2014; constants of Stafford's Mix13), a bijection of 64-bit
 * words. A user's 64-bit key and step counter hash into a 64-bit base; draw j of a stream
 * is the top 32 bits of mix64(base ^ salt_j), where salt_j = mix64(stream_base + j) is the
 * same for every user. A uniform is the top 24 of those bits, + 0.5, / 2^24; the top value,
 * whose + 0.5 float32 rounds up to 2^24, is put at the float below 1.
 */
#ifndef RECOWORLD_RNG_H
#define RECOWORLD_RNG_H

#include <stdint.h>

#define RECOWORLD_GOLDEN64 0x9E3779B97F4A7C15ull

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* rng._bits32's per-user base for (key, counter); the counter counts modulo 2^32. */
static inline uint64_t user_base(int64_t key, int32_t counter) {
    return mix64((uint64_t)key ^ mix64((uint64_t)(uint32_t)counter * RECOWORLD_GOLDEN64));
}

/* The salt of draw j of a stream, the same for every user; `stream_base` is rng.mix_int(stream). */
static inline uint64_t draw_salt(uint32_t stream_base, uint32_t j) { return mix64((uint64_t)stream_base + j); }

/* Draw j of a stream, from its salt. */
static inline uint32_t bits_salted(uint64_t base, uint64_t salt) { return (uint32_t)(mix64(base ^ salt) >> 32); }

static inline uint32_t bits_at(uint64_t base, uint32_t stream_base, uint32_t j) {
    return bits_salted(base, draw_salt(stream_base, j));
}

/* rng.uniform's draw with salt `salt`. */
static inline float uniform_salted(uint64_t base, uint64_t salt) {
    /* the top value's + 0.5 rounds up to 2^24 in float32: put at the float below 1, as rng.uniform does */
    const float u = ((float)(bits_salted(base, salt) >> 8) + 0.5f) * (1.0f / 16777216.0f);
    return u < 1.0f ? u : 0x1.fffffep-1f;
}

static inline float uniform_at(uint64_t base, uint32_t stream_base, uint32_t j) {
    return uniform_salted(base, draw_salt(stream_base, j));
}

#endif
