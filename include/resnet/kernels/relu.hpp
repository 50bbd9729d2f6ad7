#pragma once
// ReLU on raw arrays: y = max(x, 0) and its backward.

#include <algorithm>
#include <cstdint>

namespace resnet::kernels {

template <typename T>
void relu_forward(const T* x, T* y, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i)
    y[i] = std::max(x[i], T(0));
}
// dx = dy where y > 0. PyTorch's threshold_backward uses the same rule, so the gradient at exactly 0 is 0.
template <typename T>
void relu_backward(const T* y, const T* dy, T* dx, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i)
    dx[i] = y[i] > T(0) ? dy[i] : T(0);
}

}  // namespace resnet::kernels
