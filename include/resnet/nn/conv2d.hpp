#pragma once
// Conv2d: 2-d convolution (cross-correlation, as torch.nn.Conv2d) with a square kernel, stride, zero padding
// and an optional bias. Per image: im2col into a workspace the module owns, then one GEMM.

#include <cstdint>

#include "resnet/kernels/gemm.hpp"
#include "resnet/kernels/im2col.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/nn/weight_and_bias.hpp"

namespace resnet::nn {

template <typename T>
class Conv2d : public Module<Conv2d<T>, T> {
 public:
  Conv2d(int in_channels, int out_channels, int kernel_size, int stride = 1, int padding = 0,
         bool bias = true, std::uint64_t seed = 0)
      : in_channels_(in_channels),
        out_channels_(out_channels),
        kernel_size_(kernel_size),
        stride_(stride),
        padding_(padding),
        params_(checked_weight_shape(in_channels, out_channels, kernel_size, stride, padding), bias, seed) {}

  // PyTorch's default (Conv2d.reset_parameters): uniform in +-1/sqrt(in_channels * k * k).
  void reset_parameters(Rng& rng) { params_.reset(rng); }

  template <typename Visitor>
  void visit(Visitor& v) {
    params_.visit(v);
  }

  // input: [N, C, H, W] -> output: [N, O, OH, OW]
  Tensor<T> forward(const Tensor<T>& input) {
    expect_rank(input, 4, "Conv2d.forward", "[N, C, H, W]");
    check(input.size(1) == in_channels_, "Conv2d.forward: input has ", input.size(1), " channels, expected ",
          in_channels_, " (input shape ", shape_string(input.shape()), ")");
    const Geometry g = geometry(input);
    check(g.N > 0 && g.OH > 0 && g.OW > 0, "Conv2d.forward: input shape ", shape_string(input.shape()),
          " gives an empty output ", shape_string({g.N, g.O, g.OH, g.OW}), " with kernel_size ", kernel_size_,
          ", stride ", stride_, ", padding ", padding_);

    Tensor<T> output({g.N, g.O, g.OH, g.OW});
    for (std::int64_t n = 0; n < g.N; ++n) {
      T* y = output.data() + n * g.O * g.OHW;
      // Like PyTorch's addmm: the bias fills the output and the GEMM adds to it.
      if (has_bias()) kernels::MatrixView<T>(y, g.O, g.OHW).colwise() = params_.bias.vector();
      kernels::gemm(false, false, g.O, g.OHW, g.CKK, T(1), params_.weight.data(), cols(input, n, g),
                    has_bias() ? T(1) : T(0), y);
    }
    input_ = this->is_training() ? input : Tensor<T>();
    return output;
  }

  // grad_output: [N, O, OH, OW] -> grad_input: [N, C, H, W]; adds to the weight and bias gradients.
  Tensor<T> backward(const Tensor<T>& grad_output) {
    expect_cached(!input_.empty(), "Conv2d.backward");
    const Geometry g = geometry(input_);
    expect_shape(grad_output, {g.N, g.O, g.OH, g.OW}, "Conv2d.backward", "grad_output");

    Tensor<T> grad_input(input_.shape());
    for (std::int64_t n = 0; n < g.N; ++n) {
      const T* dy = grad_output.data() + n * g.O * g.OHW;
      T* dx = grad_input.data() + n * g.C * g.H * g.W;
      // dW [O, C*k*k] += dY_n [O, OH*OW] x cols_n^T; cols are recomputed, not cached, to save memory.
      kernels::gemm(false, true, g.O, g.CKK, g.OHW, T(1), dy, cols(input_, n, g), T(1),
                    params_.weight_grad.data());
      if (has_bias())
        params_.bias_grad.vector() += kernels::ConstMatrixView<T>(dy, g.O, g.OHW).rowwise().sum();
      // dX_n = col2im(W^T [C*k*k, O] x dY_n); a pointwise conv's cols are the image itself.
      if (is_pointwise()) {
        kernels::gemm(true, false, g.CKK, g.OHW, g.O, T(1), params_.weight.data(), dy, T(0), dx);
      } else {
        kernels::gemm(true, false, g.CKK, g.OHW, g.O, T(1), params_.weight.data(), dy, T(0),
                      workspace_.data());
        kernels::col2im(workspace_.data(), g.C, g.H, g.W, g.K, g.S, g.P, dx);
      }
    }
    return grad_input;
  }

  Tensor<T>& weight() { return params_.weight; }
  const Tensor<T>& weight() const { return params_.weight; }
  // An empty tensor when the module was built with bias = false.
  Tensor<T>& bias() { return params_.bias; }
  const Tensor<T>& bias() const { return params_.bias; }
  bool has_bias() const { return params_.has_bias(); }
  int in_channels() const { return in_channels_; }
  int out_channels() const { return out_channels_; }
  int kernel_size() const { return kernel_size_; }
  int stride() const { return stride_; }
  int padding() const { return padding_; }

 private:
  static std::vector<std::int64_t> checked_weight_shape(int in_channels, int out_channels, int kernel_size,
                                                        int stride, int padding) {
    check(in_channels > 0 && out_channels > 0, "Conv2d: channels must be positive, got in_channels ",
          in_channels, ", out_channels ", out_channels);
    check(kernel_size > 0, "Conv2d: kernel_size must be positive, got ", kernel_size);
    check(stride > 0, "Conv2d: stride must be positive, got ", stride);
    check(padding >= 0, "Conv2d: padding must be non-negative, got ", padding);
    return {out_channels, in_channels, kernel_size, kernel_size};
  }

  struct Geometry {
    std::int64_t N, C, H, W, O, K, S, P, OH, OW, OHW, CKK;
  };
  Geometry geometry(const Tensor<T>& input) const {
    Geometry g{};
    g.N = input.size(0);
    g.C = input.size(1);
    g.H = input.size(2);
    g.W = input.size(3);
    g.O = out_channels_;
    g.K = kernel_size_;
    g.S = stride_;
    g.P = padding_;
    g.OH = kernels::window_output_size(g.H, g.K, g.S, g.P);
    g.OW = kernels::window_output_size(g.W, g.K, g.S, g.P);
    g.OHW = g.OH * g.OW;
    g.CKK = g.C * g.K * g.K;
    return g;
  }

  // A 1x1, stride-1, unpadded conv is a plain matrix product: the image [C, H*W] is its own cols matrix.
  bool is_pointwise() const { return kernel_size_ == 1 && stride_ == 1 && padding_ == 0; }

  // The cols matrix [C*k*k, OH*OW] of image n: the image itself for a pointwise conv, else im2col into the
  // workspace (reallocated only when the geometry changes).
  const T* cols(const Tensor<T>& input, std::int64_t n, const Geometry& g) {
    const T* image = input.data() + n * g.C * g.H * g.W;
    if (is_pointwise()) return image;
    if (workspace_.shape() != std::vector<std::int64_t>{g.CKK, g.OHW}) workspace_ = Tensor<T>({g.CKK, g.OHW});
    kernels::im2col(image, g.C, g.H, g.W, g.K, g.S, g.P, workspace_.data());
    return workspace_.data();
  }

  int in_channels_, out_channels_, kernel_size_, stride_, padding_;
  WeightAndBias<T> params_;  // weight [O, C, k, k], bias [O] or none
  Tensor<T> input_;          // training mode: the forward input, for backward
  Tensor<T> workspace_;      // [C*k*k, OH*OW]: im2col in forward and backward, then W^T x dY
};

}  // namespace resnet::nn
