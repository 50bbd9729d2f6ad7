#pragma once
// Eigen/Core, which the library includes only through this header, with the warnings it brings into a user's
// -Wall -Wextra build silenced for its own code (GCC and clang apply a diagnostic pragma by the location of
// the code warned about, so the user's code keeps every warning):
// - GCC before 13 flags an operand its own AVX-512 intrinsics leave undefined on purpose (avx512fintrin.h,
//   GCC bug 105593): -Wmaybe-uninitialized and -Wuninitialized by the hundred wherever Eigen's AVX-512 GEMM
//   is inlined. The intrinsics are included here first so that the pragma covers them.
// - Eigen 3.4 itself, where it is included with -I (pkg-config's eigen3.pc) rather than as a system header:
//   unused variables in its bfloat16 packets, and (clang -Wpedantic) a C99 compound literal in Half.h.

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-variable"
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wc99-extensions"
#elif __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#include <Eigen/Core>
#pragma GCC diagnostic pop
#else
#include <Eigen/Core>
#endif
