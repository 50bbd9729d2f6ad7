#pragma once
// ReLU on raw arrays: y = max(x, 0) and its backward. Elementwise, so splitting across threads cannot change
// a result; large arrays are split, small ones stay on the calling thread.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "resnet/core/parallel.hpp"

namespace resnet::kernels {

// Below this many elements an elementwise kernel runs on one thread.
inline constexpr std::int64_t kElementwiseParallelMinElements = std::int64_t{1} << 16;

// keep ? v : +0, as a bitwise AND with an all-ones or all-zeros mask: compilers vectorise it, where the
// ternary on a loaded value stays a branch. Exactly the ternary's result for every v, inf and NaN included.
template <typename T>
inline T keep_if(bool keep, T v) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "keep_if: float or double");
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  Bits bits;
  std::memcpy(&bits, &v, sizeof bits);
  bits &= Bits(0) - Bits(keep);
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// max(v, 0) with std::max's result for every v (NaN and -0 pass through, as in torch.relu), written as a
// select on a value: GCC 12 turns std::max(x[i], T(0)) inside an `omp simd` loop into a compare and a branch
// per element, which mispredicts on every other sign change (~8x slower on a CNN's activations).
template <typename T>
inline T relu_of(T v) {
  return v < T(0) ? T(0) : v;
}

template <typename T>
void relu_forward(const T* x, T* y, std::int64_t n) {
  RESNET_OMP(parallel for simd num_threads(resnet::num_threads()) if (n >= kElementwiseParallelMinElements))
  for (std::int64_t i = 0; i < n; ++i)
    y[i] = relu_of(x[i]);
}
// dx = dy where y > 0. PyTorch's threshold_backward uses the same rule, so the gradient at exactly 0 is 0.
template <typename T>
void relu_backward(const T* y, const T* dy, T* dx, std::int64_t n) {
  RESNET_OMP(parallel for simd num_threads(resnet::num_threads()) if (n >= kElementwiseParallelMinElements))
  for (std::int64_t i = 0; i < n; ++i)
    dx[i] = keep_if(y[i] > T(0), dy[i]);
}

}  // namespace resnet::kernels
