#pragma once
// MaxPool2d, as torch.nn.MaxPool2d(kernel_size, stride, padding) with a square kernel, dilation 1 and
// ceil_mode=False: padding acts as -inf, output size floor((H + 2p - k) / s) + 1. Training mode keeps only
// the argmax of each window for backward, not the input.

#include <cstdint>
#include <utility>
#include <vector>

#include "resnet/kernels/pooling.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::nn {

template <typename T>
class MaxPool2d : public Module<MaxPool2d<T>, T> {
 public:
  MaxPool2d(int kernel_size, int stride, int padding = 0)
      : kernel_size_(kernel_size), stride_(stride), padding_(padding) {
    check(kernel_size > 0, "MaxPool2d: kernel_size must be positive, got ", kernel_size);
    check(stride > 0, "MaxPool2d: stride must be positive, got ", stride);
    check(padding >= 0, "MaxPool2d: padding must be non-negative, got ", padding);
    // PyTorch's rule; it also guarantees every window holds at least one real element.
    check(padding <= kernel_size / 2,
          "MaxPool2d: padding should be at most half of kernel_size, got padding ", padding,
          " and kernel_size ", kernel_size);
  }

  template <typename Visitor>
  void visit(Visitor&) {}

  // input [N, C, H, W] -> output [N, C, OH, OW]
  Tensor<T> forward(const Tensor<T>& input) {
    expect_input(input, 4, kAnyFeatures, "MaxPool2d.forward", "[N, C, H, W]");
    expect_window_fits(input, kernel_size_, padding_, "MaxPool2d.forward");
    const std::int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
    const std::int64_t OH = kernels::window_output_size(H, kernel_size_, stride_, padding_);
    const std::int64_t OW = kernels::window_output_size(W, kernel_size_, stride_, padding_);
    Tensor<T> output({N, C, OH, OW});
    if (this->is_training()) {
      argmax_.resize(static_cast<std::size_t>(output.numel()));  // reuses its capacity from step to step
      input_shape_ = input.shape();
    } else {
      argmax_ = std::vector<std::int64_t>();
      input_shape_.clear();
    }
    kernels::maxpool2d_forward(input.data(), N * C, H, W, kernel_size_, stride_, padding_, output.data(),
                               this->is_training() ? argmax_.data() : nullptr);
    return output;
  }

  // grad_output [N, C, OH, OW] -> grad_input [N, C, H, W]
  Tensor<T> backward(const Tensor<T>& grad_output) {
    expect_cached(!input_shape_.empty(), "MaxPool2d.backward");
    const std::int64_t N = input_shape_[0], C = input_shape_[1], H = input_shape_[2], W = input_shape_[3];
    const std::int64_t OH = kernels::window_output_size(H, kernel_size_, stride_, padding_);
    const std::int64_t OW = kernels::window_output_size(W, kernel_size_, stride_, padding_);
    expect_shape(grad_output, {N, C, OH, OW}, "MaxPool2d.backward", "grad_output");
    Tensor<T> grad_input(std::exchange(input_shape_, {}));  // released; argmax_ keeps its capacity for reuse
    kernels::maxpool2d_backward(grad_output.data(), argmax_.data(), N * C, H * W, OH * OW, grad_input.data());
    return grad_input;
  }

  int kernel_size() const { return kernel_size_; }
  int stride() const { return stride_; }
  int padding() const { return padding_; }

 private:
  int kernel_size_, stride_, padding_;
  std::vector<std::int64_t> input_shape_;  // of the last training-mode forward; empty in eval
  std::vector<std::int64_t> argmax_;  // [N, C, OH, OW]: flat index within its [H, W] plane of each maximum
};

}  // namespace resnet::nn
