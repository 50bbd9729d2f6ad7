#pragma once
// Elementwise arithmetic on raw arrays: the residual add of BasicBlock, fused with the ReLU after it, and
// the gradient sums around it. Large arrays are split across threads (elementwise: no result changes).

#include <algorithm>
#include <cstdint>

#include "resnet/core/parallel.hpp"
#include "resnet/kernels/relu.hpp"

namespace resnet::kernels {

// y = a + b (y may alias a or b).
template <typename T>
void add(const T* a, const T* b, T* y, std::int64_t n) {
  RESNET_OMP(parallel for simd num_threads(resnet::num_threads()) if (n >= kElementwiseParallelMinElements))
  for (std::int64_t i = 0; i < n; ++i)
    y[i] = a[i] + b[i];
}

// y = max(a + b, 0): BasicBlock's residual add and final ReLU in one pass (y may alias a or b).
template <typename T>
void add_relu(const T* a, const T* b, T* y, std::int64_t n) {
  RESNET_OMP(parallel for simd num_threads(resnet::num_threads()) if (n >= kElementwiseParallelMinElements))
  for (std::int64_t i = 0; i < n; ++i)
    y[i] = relu_of(a[i] + b[i]);
}

// y += dy where relu_output > 0: adds the gradient that passed a ReLU, without materialising it.
template <typename T>
void add_relu_backward(const T* relu_output, const T* dy, T* y, std::int64_t n) {
  RESNET_OMP(parallel for simd num_threads(resnet::num_threads()) if (n >= kElementwiseParallelMinElements))
  for (std::int64_t i = 0; i < n; ++i)
    y[i] += keep_if(relu_output[i] > T(0), dy[i]);
}

}  // namespace resnet::kernels
