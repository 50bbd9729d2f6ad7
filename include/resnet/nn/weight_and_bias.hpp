#pragma once
// The weight and optional bias of Conv2d and Linear with their gradients, initialised as both of PyTorch's
// reset_parameters do: uniform in +-1/sqrt(fan_in) (kaiming_uniform_ with a = sqrt(5)) for weight and bias.

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "resnet/core/rng.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/nn/init.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::nn {

template <typename T>
struct WeightAndBias {
  Tensor<T> weight, weight_grad;
  Tensor<T> bias, bias_grad;  // empty when the layer has no bias

  WeightAndBias(std::vector<std::int64_t> weight_shape, bool with_bias, std::uint64_t seed)
      : weight(weight_shape), weight_grad(weight_shape), shape_(weight_shape) {
    if (with_bias) {
      bias = Tensor<T>({weight_shape[0]});
      bias_grad = Tensor<T>({weight_shape[0]});
    }
    Rng rng(seed);
    reset(rng);
  }

  bool has_bias() const { return !bias.empty(); }

  // Throws unless the tensors, assignable through the layer's accessors, still have the shapes it was built
  // with.
  void expect_shapes(const char* where) const {
    expect_shape(weight, shape_, where, "weight");
    expect_shape(weight_grad, shape_, where, "weight gradient");
    if (!has_bias()) return;
    const std::vector<std::int64_t> bias_shape{shape_[0]};
    expect_shape(bias, bias_shape, where, "bias");
    expect_shape(bias_grad, bias_shape, where, "bias gradient");
  }

  void reset(Rng& rng) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(init::fan_in(weight)));
    init::uniform(weight, rng, bound);
    if (has_bias()) init::uniform(bias, rng, bound);
  }

  template <typename Visitor>
  void visit(Visitor& v) {
    v.parameter("weight", weight, weight_grad);
    if (has_bias()) v.parameter("bias", bias, bias_grad);
  }

 private:
  std::vector<std::int64_t> shape_;  // of the weight, as built
};

}  // namespace resnet::nn
