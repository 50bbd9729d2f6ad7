#pragma once
// ReLU: y = max(x, 0), elementwise, any shape.

#include <utility>

#include "resnet/kernels/relu.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::nn {

template <typename T>
class ReLU : public Module<ReLU<T>, T> {
 public:
  ReLU() = default;

  template <typename Visitor>
  void visit(Visitor&) {}

  Tensor<T> forward(const Tensor<T>& input) {
    check(!input.empty(), "ReLU.forward: got an empty tensor");
    auto output = Tensor<T>::uninitialized(input.shape());
    kernels::relu_forward(input.data(), output.data(), input.numel());
    output_ = this->is_training() ? output : Tensor<T>();
    return output;
  }

  Tensor<T> backward(const Tensor<T>& grad_output) {
    expect_cached(!output_.empty(), "ReLU.backward");
    expect_shape(grad_output, output_.shape(), "ReLU.backward", "grad_output");
    const Tensor<T> output = std::exchange(output_, Tensor<T>());  // released when backward returns
    auto grad_input = Tensor<T>::uninitialized(output.shape());
    kernels::relu_backward(output.data(), grad_output.data(), grad_input.data(), output.numel());
    return grad_input;
  }

 private:
  Tensor<T> output_;  // the forward output: its sign is the mask backward needs
};

}  // namespace resnet::nn
