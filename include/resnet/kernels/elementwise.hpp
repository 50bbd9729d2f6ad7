#pragma once
// Elementwise arithmetic on raw arrays: the residual add of BasicBlock and the gradient sums around it.

#include <cstdint>

namespace resnet::kernels {

// y = a + b (y may alias a or b).
template <typename T>
void add(const T* a, const T* b, T* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i)
    y[i] = a[i] + b[i];
}

}  // namespace resnet::kernels
