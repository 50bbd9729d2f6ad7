#pragma once
// The weight and optional bias of Conv2d and Linear with their gradients, initialised as both of PyTorch's
// reset_parameters do: uniform in +-1/sqrt(fan_in) (kaiming_uniform_ with a = sqrt(5)) for weight and bias.
// In bf16 (Precision::BF16) the layers multiply by the weight rounded to bfloat16: weight_operands keeps
// that copy, made again only when the weight's version changes, so once per training step.

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "resnet/core/bfloat16.hpp"
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

  // f(w) with w the weight as the matrix products of `precision` take it: the weight itself (and the bf16
  // copy released), or, for BF16, its bfloat16 copy.
  template <typename F>
  void with_weight_operands(Precision precision, F&& f) {
    if constexpr (std::is_same_v<T, float>) {
      if (precision == Precision::BF16) {
        if (bf16_version_ != weight.version() || bf16_weight_.empty()) {
          bf16_version_ = 0;  // marked stale first, should the allocation throw
          bf16_weight_ = Tensor<bfloat16>::uninitialized({weight.numel()});
          convert(weight.cdata(), weight.numel(), bf16_weight_.data());
          bf16_version_ = weight.version();
        }
        return f(bf16_weight_.cdata());
      }
    }
    bf16_weight_ = Tensor<bfloat16>();
    bf16_version_ = 0;
    f(weight.cdata());
  }

 private:
  std::vector<std::int64_t> shape_;  // of the weight, as built
  Tensor<bfloat16> bf16_weight_;     // bf16: the weight rounded, made from weight version bf16_version_
  std::uint64_t bf16_version_ = 0;
};

}  // namespace resnet::nn
