/* The float32 functions of the torch reference that the kernels follow, so that they agree
 * with it to rounding: the logistic sigmoid, torch.nn.functional.normalize and
 * recoworld.rng.to_normal (a standard normal by the inverse CDF of a uniform).
 */
#ifndef RECOWORLD_TORCH_MATH_H
#define RECOWORLD_TORCH_MATH_H

#include <math.h>
#include <stdint.h>

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* x / max(|x|, 1e-12), as torch.nn.functional.normalize. */
static inline void normalize(float *x, int64_t n) {
    float sq = 0.0f;
    for (int64_t d = 0; d < n; d++) sq += x[d] * x[d];
    float norm = sqrtf(sq);
    if (norm < 1e-12f) norm = 1e-12f;
    for (int64_t d = 0; d < n; d++) x[d] = x[d] / norm;
}

/* AS241's rational function near the centre, |q| = |p - 0.5| <= 0.425 (standard_normal). */
static inline float normal_centre(float q) {
    const float r = 0.180625f - q * q;
    return q * (((59.109374720f * r + 159.29113202f) * r + 50.434271938f) * r + 3.3871327179f)
           / (((67.187563600f * r + 78.757757664f) * r + 17.895169469f) * r + 1.0f);
}

/* A standard normal from a uniform p in (0, 1) by the inverse CDF: rng.to_normal, which
 * torch computes as sqrt(2) erfinv(2p - 1). Wichura's algorithm AS241 (PPND7: M. J. Wichura,
 * "The percentage points of the normal distribution", Applied Statistics 37(3), 1988), a
 * rational function of p near the centre and of sqrt(-log) in the tails, good to about 1e-7
 * relative in float32: it agrees with torch's to rounding over every uniform of rng.h, and
 * needs no erf (torch's erfinv algorithm refines its guess by two Newton steps, each with an
 * erf and an exp). */
static inline float standard_normal(float p) {
    if (!(p > 0.0f && p < 1.0f)) return p == 0.0f ? -INFINITY : (p == 1.0f ? INFINITY : NAN);
    const float q = p - 0.5f;
    if (fabsf(q) <= 0.425f) return normal_centre(q);
    float r = sqrtf(-logf(q < 0.0f ? p : 1.0f - p)), x;
    if (r <= 5.0f) {
        r -= 1.6f;
        x = (((0.17023821103f * r + 1.3067284816f) * r + 2.7568153900f) * r + 1.4234372777f)
            / ((0.12021132975f * r + 0.73700164250f) * r + 1.0f);
    } else { /* p within about 1e-11 of 0 or 1 */
        r -= 5.0f;
        x = (((0.017337203997f * r + 0.42868294337f) * r + 3.0812263860f) * r + 6.6579051150f)
            / ((0.012258202635f * r + 0.24197894225f) * r + 1.0f);
    }
    return q < 0.0f ? -x : x;
}

/* standard_normal of n uniforms p into z, the same bits: the centre in a loop the compiler
 * vectorises (most draws), then the tails one by one. */
static inline void standard_normals(const float *p, float *z, int64_t n) {
    int tails = 0;
    for (int64_t i = 0; i < n; i++) {
        const float q = p[i] - 0.5f;
        z[i] = normal_centre(q);
        tails |= !(fabsf(q) <= 0.425f);
    }
    if (tails)
        for (int64_t i = 0; i < n; i++)
            if (!(fabsf(p[i] - 0.5f) <= 0.425f)) z[i] = standard_normal(p[i]);
}

#endif
