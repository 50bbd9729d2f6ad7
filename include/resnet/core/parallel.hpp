#pragma once
// Thread count for the whole library. OpenMP is optional: without it everything runs on one thread.
// set_num_threads takes effect for every later call of our parallel loops, from any thread: it is one
// process-wide setting (core/buffer_pool.hpp lists such state), so set it before threads run models. Our
// GEMMs run on their calling thread (kernels/gemm.hpp): the Eigen thread count it also sets only matters to
// Eigen products of the caller's own.

#include "resnet/core/eigen.hpp"
#include "resnet/core/error.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

// RESNET_OMP(parallel for ...) emits "#pragma omp parallel for ..." only when OpenMP is on, so a build
// without OpenMP stays free of unknown-pragma warnings.
#define RESNET_PRAGMA(...) _Pragma(#__VA_ARGS__)
#ifdef _OPENMP
#define RESNET_OMP(...) RESNET_PRAGMA(omp __VA_ARGS__)
#else
#define RESNET_OMP(...)
#endif

namespace resnet {

namespace detail {
inline int& thread_setting() {
  static int threads = 0;  // 0: not set, follow OMP_NUM_THREADS / the OpenMP default
  return threads;
}
}  // namespace detail

inline int num_threads() {
#ifdef _OPENMP
  return detail::thread_setting() > 0 ? detail::thread_setting() : omp_get_max_threads();
#else
  return 1;
#endif
}

// The calling thread's index inside a parallel region (0 outside one): which per-thread scratch it owns.
inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline void set_num_threads(int n) {
  check(n >= 1, "set_num_threads: need at least 1 thread, got ", n);
  detail::thread_setting() = n;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  Eigen::setNbThreads(n);
}

}  // namespace resnet
