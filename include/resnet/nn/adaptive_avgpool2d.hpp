#pragma once
// AdaptiveAvgPool2d, as torch.nn.AdaptiveAvgPool2d((output_h, output_w)): output (i, j) is the mean of the
// input window rows [floor(i*H/OH), ceil((i+1)*H/OH)) x columns [floor(j*W/OW), ceil((j+1)*W/OW)), for any
// output size, including one larger than the input. (1, 1) is the global average pool before ResNet's fc.

#include <cstdint>
#include <utility>
#include <vector>

#include "resnet/kernels/pooling.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::nn {

template <typename T>
class AdaptiveAvgPool2d : public Module<AdaptiveAvgPool2d<T>, T> {
 public:
  AdaptiveAvgPool2d(int output_h, int output_w) : output_h_(output_h), output_w_(output_w) {
    check(output_h > 0 && output_w > 0, "AdaptiveAvgPool2d: output size must be positive, got ", output_h,
          "x", output_w);
  }

  template <typename Visitor>
  void visit(Visitor&) {}

  // input [N, C, H, W] -> output [N, C, output_h, output_w]
  Tensor<T> forward(const Tensor<T>& input) {
    expect_input(input, 4, kAnyFeatures, "AdaptiveAvgPool2d.forward", "[N, C, H, W]");
    const std::int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
    Tensor<T> output({N, C, output_h_, output_w_});
    kernels::adaptive_avgpool2d_forward(input.data(), N * C, H, W, output_h_, output_w_, output.data());
    input_shape_ = this->is_training() ? input.shape() : std::vector<std::int64_t>{};
    return output;
  }

  // grad_output [N, C, output_h, output_w] -> grad_input [N, C, H, W]
  Tensor<T> backward(const Tensor<T>& grad_output) {
    expect_cached(!input_shape_.empty(), "AdaptiveAvgPool2d.backward");
    const std::int64_t N = input_shape_[0], C = input_shape_[1], H = input_shape_[2], W = input_shape_[3];
    expect_shape(grad_output, {N, C, output_h_, output_w_}, "AdaptiveAvgPool2d.backward", "grad_output");
    Tensor<T> grad_input(std::exchange(input_shape_, {}));  // released: one backward per forward
    kernels::adaptive_avgpool2d_backward(grad_output.data(), N * C, H, W, output_h_, output_w_,
                                         grad_input.data());
    return grad_input;
  }

  int output_h() const { return output_h_; }
  int output_w() const { return output_w_; }

 private:
  int output_h_, output_w_;
  std::vector<std::int64_t> input_shape_;  // of the last training-mode forward; empty in eval
};

}  // namespace resnet::nn
