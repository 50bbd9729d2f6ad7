#pragma once
// Relative L2 error, the measure every parity test reports: ||a - b|| / ||b||; and a tensor's copy in double,
// the reference precision.

#include <cmath>

#include "resnet/core/tensor.hpp"

namespace resnet::testing {

template <typename T>
double relative_l2(const Tensor<T>& actual, const Tensor<T>& expected) {
  if (actual.shape() != expected.shape()) return INFINITY;
  double diff = 0, norm = 0;
  for (std::int64_t i = 0; i < expected.numel(); ++i) {
    const double e = expected.data()[i];
    const double d = static_cast<double>(actual.data()[i]) - e;
    diff += d * d;
    norm += e * e;
  }
  return norm == 0 ? std::sqrt(diff) : std::sqrt(diff / norm);
}

template <typename T>
Tensor<double> to_double(const Tensor<T>& t) {
  Tensor<double> result(t.shape());
  for (std::int64_t i = 0; i < t.numel(); ++i)
    result.data()[i] = static_cast<double>(t.cdata()[i]);
  return result;
}

}  // namespace resnet::testing
