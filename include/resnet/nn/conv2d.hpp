#pragma once
// Conv2d: 2-d convolution (cross-correlation, as torch.nn.Conv2d) with a square kernel, stride, zero padding
// and an optional bias. im2col + GEMM over the whole batch (kernels/conv2d.hpp) in a reused workspace.
// In eval mode the weight is packed for the GEMMs once (kernels::pack_conv_weight, for the shapes that have
// a packed form) and packed again only when the weight's version (Tensor::version) or the input's size has
// changed; the next training-mode forward releases it. Like the cached input, this makes a module unsafe to
// run from two threads at once: give each thread its own copy.

#include <cstdint>
#include <utility>
#include <vector>

#include "resnet/kernels/conv2d.hpp"
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
    Tensor<T> output = forward_uncached(input);
    input_ = this->is_training() ? input : Tensor<T>();
    return output;
  }

  // Eval mode only: s[o] * forward(input) + t[o], then a ReLU if asked, applied as the convolution stores
  // each output, so that an eval-mode BatchNorm (BatchNorm2d::eval_epilogue) and ReLU after this conv cost
  // no pass of their own. The epilogue's scale and shift, where given, must have out_channels entries.
  Tensor<T> forward(const Tensor<T>& input, const kernels::ConvEpilogue<T>& epilogue) {
    check(!this->is_training(), "Conv2d.forward: an epilogue is for eval mode only (backward would miss it)");
    check((!epilogue.scale && !epilogue.shift) || epilogue.channels == out_channels_, "Conv2d.forward: the ",
          "epilogue has ", epilogue.channels, " channels, the conv ", out_channels_, " output channels");
    expect_state_shapes("Conv2d.forward");
    if (!has_bias()) return run(input, epilogue);
    shift_.resize(static_cast<std::size_t>(out_channels_));  // s * (conv + b) + t = s * conv + (s * b + t)
    for (int o = 0; o < out_channels_; ++o)
      shift_[o] = epilogue.scale_of(o) * std::as_const(params_.bias)[o] + epilogue.shift_of(o);
    return run(input, kernels::ConvEpilogue<T>{epilogue.scale, shift_.data(), epilogue.relu, out_channels_});
  }

  // grad_output: [N, O, OH, OW] -> grad_input: [N, C, H, W]; adds to the weight and bias gradients. The cols
  // matrices are recomputed, not cached, to save memory.
  Tensor<T> backward(const Tensor<T>& grad_output) {
    expect_cached(!input_.empty(), "Conv2d.backward");
    expect_backward_arguments(grad_output, input_);  // before the cache is released, so a bad call keeps it
    return backward_checked(grad_output, std::exchange(input_, Tensor<T>()), true);
  }

  // For a caller that can give the input back when backward comes (BasicBlock recomputes it rather than
  // keep it): forward without caching the input, in either mode, and the backward of such a forward.
  Tensor<T> forward_uncached(const Tensor<T>& input) {
    expect_state_shapes("Conv2d.forward");
    return run(input, kernels::ConvEpilogue<T>::bias(
                          has_bias() ? std::as_const(params_.bias).data() : nullptr, out_channels_));
  }
  Tensor<T> backward(const Tensor<T>& grad_output, const Tensor<T>& input) {
    expect_backward_arguments(grad_output, input);
    return backward_checked(grad_output, input, true);
  }

  // backward without the input gradient, for a first layer whose input needs none (PyTorch skips it for an
  // input that does not require grad): only the weight and bias gradients are added to.
  void backward_parameters(const Tensor<T>& grad_output) {
    expect_cached(!input_.empty(), "Conv2d.backward_parameters");
    expect_backward_arguments(grad_output, input_);
    backward_checked(grad_output, std::exchange(input_, Tensor<T>()), false);
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

  // Throws unless the weight and bias, assignable through the accessors above, and their gradients still
  // have the shapes this layer was built with; forward and backward check it before indexing into them.
  void expect_state_shapes(const char* where) const { params_.expect_shapes(where); }

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

  // The forward passes, after they have checked the weight and bias shapes.
  Tensor<T> run(const Tensor<T>& input, const kernels::ConvEpilogue<T>& epilogue) {
    expect_input(input, 4, in_channels_, "Conv2d.forward", "[N, C, H, W]");
    expect_window_fits(input, kernel_size_, padding_, "Conv2d.forward");
    const kernels::ConvShape g = shape_of(input);
    auto output = Tensor<T>::uninitialized({g.N, g.O, g.OH(), g.OW()});
    kernels::conv2d_forward(input.data(), std::as_const(params_.weight).data(), epilogue, g, output.data(),
                            workspace(), packed_weight(g));
    return output;
  }

  // Eval mode: the weight packed for the GEMMs of shape g, if they have a packed form (else null). Training
  // mode: null, and what was packed is released.
  const T* packed_weight(const kernels::ConvShape& g) {
    const std::int64_t size = this->is_training() ? 0 : kernels::packed_conv_weight_size<T>(g);
    if (size == 0) {
      packed_weight_ = Tensor<T>();
      packed_from_ = PackedFrom{};
      return nullptr;
    }
    const PackedFrom source{params_.weight.version(), g.N, g.H, g.W};
    if (!(source == packed_from_)) {
      packed_weight_ = Tensor<T>();  // released first (and marked unpacked, should packing throw)
      packed_from_ = PackedFrom{};
      packed_weight_ = Tensor<T>::uninitialized({size});
      kernels::pack_conv_weight(std::as_const(params_.weight).data(), g, packed_weight_.data());
      packed_from_ = source;
    }
    return std::as_const(packed_weight_).data();
  }

  void expect_backward_arguments(const Tensor<T>& grad_output, const Tensor<T>& input) const {
    expect_input(input, 4, in_channels_, "Conv2d.backward", "[N, C, H, W]");
    expect_window_fits(input, kernel_size_, padding_, "Conv2d.backward");
    const kernels::ConvShape g = shape_of(input);
    expect_shape(grad_output, {g.N, g.O, g.OH(), g.OW()}, "Conv2d.backward", "grad_output");
    expect_state_shapes("Conv2d.backward");
  }

  // The backward passes, after expect_backward_arguments: the parameter gradients, and the input gradient
  // if asked for (else an empty tensor is returned).
  Tensor<T> backward_checked(const Tensor<T>& grad_output, const Tensor<T>& input, bool input_gradient) {
    auto grad_input = input_gradient ? Tensor<T>::uninitialized(input.shape()) : Tensor<T>();
    kernels::conv2d_backward(input.data(), std::as_const(params_.weight).data(), grad_output.data(),
                             shape_of(input), input_gradient ? grad_input.data() : nullptr,
                             params_.weight_grad.data(), has_bias() ? params_.bias_grad.data() : nullptr,
                             workspace());
    return grad_input;
  }

  kernels::ConvShape shape_of(const Tensor<T>& input) const {
    return {input.size(0), input.size(1), input.size(2), input.size(3),
            out_channels_, kernel_size_,  stride_,       padding_};
  }

  // The kernels' scratch, one per calling thread shared by every Conv2d: layers run one after another, so
  // the peak is the largest layer's need rather than the sum over layers (tens of MB in ResNet18).
  static kernels::ConvWorkspace<T>& workspace() {
    thread_local kernels::ConvWorkspace<T> shared;
    return shared;
  }

  int in_channels_, out_channels_, kernel_size_, stride_, padding_;
  WeightAndBias<T> params_;  // weight [O, C, k, k], bias [O] or none
  Tensor<T> input_;          // training mode: the forward input, for backward
  // Eval mode: the weight packed for the GEMMs, and the weight version and input size it was packed for
  // (version 0, which no storage has: nothing packed).
  struct PackedFrom {
    std::uint64_t version = 0;
    std::int64_t N = 0, H = 0, W = 0;
    bool operator==(const PackedFrom& other) const {
      return version == other.version && N == other.N && H == other.H && W == other.W;
    }
  };
  Tensor<T> packed_weight_;
  PackedFrom packed_from_;
  std::vector<T> shift_;  // forward with an epilogue: the bias folded into its shift
};

}  // namespace resnet::nn
