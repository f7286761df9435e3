/* AVX2_CLONES before a kernel's function has GCC compile it twice, for the x86-64 baseline
 * and for AVX2, and the loader pick the AVX2 copy where the CPU has it (an ifunc, GCC on
 * glibc for x86-64; elsewhere one baseline copy). The wider registers do the same
 * arithmetic a little faster, bit for bit: AVX2 alone brings no fused multiply-add (a
 * separate extension), so no product and sum are contracted into one rounding. */
#ifndef RECOWORLD_CLONES_H
#define RECOWORLD_CLONES_H

#if defined(__GNUC__) && __GNUC__ >= 6 && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define AVX2_CLONES
#endif

#endif
