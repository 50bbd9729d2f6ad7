#pragma once
// Weight initialisers with PyTorch's formulas (torch.nn.init), drawing from our seeded Rng.

#include <cmath>
#include <cstdint>

#include "resnet/core/rng.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet::nn::init {

namespace detail {
// Fans divide by a dimension, so none may be 0.
template <typename T>
void expect_fan_shape(const Tensor<T>& weight, const char* fan) {
  check(weight.dim() >= 2 && weight.numel() > 0, "init: ", fan,
        " needs a non-empty weight of rank >= 2, got ", shape_string(weight.shape()));
}
}  // namespace detail

// fan_in and fan_out as torch.nn.init._calculate_fan_in_and_fan_out: dim 1 and dim 0 times the receptive
// field.
template <typename T>
std::int64_t fan_in(const Tensor<T>& weight) {
  detail::expect_fan_shape(weight, "fan_in");
  return weight.numel() / weight.size(0);
}
template <typename T>
std::int64_t fan_out(const Tensor<T>& weight) {
  detail::expect_fan_shape(weight, "fan_out");
  return weight.numel() / weight.size(1);
}

// U(-bound, bound). PyTorch's default Conv2d/Linear init (kaiming_uniform_ with a = sqrt(5)) reduces to
// bound = 1 / sqrt(fan_in) for the weight, and the bias uses the same bound.
template <typename T>
void uniform(Tensor<T>& t, Rng& rng, double bound) {
  t.fill_uniform(rng, -bound, bound);
}

// kaiming_normal_(w, mode="fan_out", nonlinearity="relu"): N(0, gain^2 / fan_out) with gain sqrt(2),
// what torchvision's ResNet applies to every conv.
template <typename T>
void kaiming_normal_fan_out(Tensor<T>& weight, Rng& rng) {
  weight.fill_normal(rng, 0.0, std::sqrt(2.0 / static_cast<double>(fan_out(weight))));
}

}  // namespace resnet::nn::init
