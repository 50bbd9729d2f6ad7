#pragma once
// What a convolution kernel does to each output value before it stores it: y = s[o] * v + t[o], then a ReLU
// if asked. A conv's bias is t alone; an eval-mode BatchNorm after the conv is s = gamma / sqrt(running_var +
// eps) and t = beta - running_mean * s (kernels/batchnorm.hpp computes both), so that conv, BatchNorm and
// ReLU take one pass over memory instead of three. Without s the result is v + t exactly (v * 1 is exact).

#include <cstdint>

#include "resnet/kernels/relu.hpp"

namespace resnet::kernels {

template <typename T>
struct ConvEpilogue {
  const T* scale = nullptr;  // [channels] or null: 1
  const T* shift = nullptr;  // [channels] or null: 0
  bool relu = false;
  std::int64_t channels = 0;  // the length of scale and shift, for callers to check against the conv's O

  static ConvEpilogue bias(const T* b, std::int64_t channels) { return {nullptr, b, false, channels}; }
  bool scales() const { return scale != nullptr || relu; }
  T scale_of(std::int64_t o) const { return scale ? scale[o] : T(1); }
  T shift_of(std::int64_t o) const { return shift ? shift[o] : T(0); }
  // y = s * v + t (+ ReLU) for n values of output channel o; y may be v.
  void apply(std::int64_t o, const T* v, T* y, std::int64_t n) const {
    const T s = scale_of(o), t = shift_of(o);
    if (relu) {
      for (std::int64_t i = 0; i < n; ++i)
        y[i] = relu_of(v[i] * s + t);
    } else {
      for (std::int64_t i = 0; i < n; ++i)
        y[i] = v[i] * s + t;
    }
  }
};

}  // namespace resnet::kernels
