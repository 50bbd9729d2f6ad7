#pragma once
// Conv2d: 2-d convolution (cross-correlation, as torch.nn.Conv2d) with a square kernel, stride, zero padding,
// groups and an optional bias. im2col + GEMM or Winograd over the whole batch (kernels/conv2d.hpp), in the
// shared per-thread workspace (core/buffer_pool.hpp lists it). How each input shape runs is its
// kernels::ConvPlan, from kernels::select_conv_plan: by the rules, or as searched or loaded
// (kernels/conv_search.hpp). In eval mode the weight is kept packed in the layout its GEMMs read
// (kernels::pack_conv_weight, for the plans that have a packed form) and packed again only when the weight's
// version (Tensor::version) or the plan (input size, precision, instruction set, choice) changes; the next
// training-mode forward releases it. In bf16 (set_precision) the weight is rounded to a bfloat16 copy once
// per weight version (nn/weight_and_bias.hpp), so once per training step.

#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#include "resnet/kernels/conv2d.hpp"
#include "resnet/kernels/conv_search.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/nn/weight_and_bias.hpp"

namespace resnet::nn {

// Conv2d's constructor arguments by name, as libtorch's Conv2dOptions:
//   nn::Conv2d<float> conv(nn::Conv2dOptions(64, 128, 3).stride(2).padding(1).bias(false));
struct Conv2dOptions {
  Conv2dOptions(int in_channels, int out_channels, int kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}

  Conv2dOptions& stride(int s) { return set(stride_, s); }
  Conv2dOptions& padding(int p) { return set(padding_, p); }
  // As torch.nn.Conv2d's groups: the channels split into `groups` convs side by side (weight [O, C/groups,
  // k, k]); both channel counts must be multiples of it.
  Conv2dOptions& groups(int g) { return set(groups_, g); }
  Conv2dOptions& bias(bool b) { return set(bias_, b); }
  Conv2dOptions& seed(std::uint64_t s) { return set(seed_, s); }  // of PyTorch's default init

  int in_channels() const { return in_channels_; }
  int out_channels() const { return out_channels_; }
  int kernel_size() const { return kernel_size_; }
  int stride() const { return stride_; }
  int padding() const { return padding_; }
  int groups() const { return groups_; }
  bool bias() const { return bias_; }
  std::uint64_t seed() const { return seed_; }

 private:
  template <typename V>
  Conv2dOptions& set(V& field, V value) {
    field = value;
    return *this;
  }
  int in_channels_, out_channels_, kernel_size_;
  int stride_ = 1, padding_ = 0, groups_ = 1;
  bool bias_ = true;
  std::uint64_t seed_ = 0;
};

template <typename T>
class Conv2d : public Module<Conv2d<T>, T> {
 public:
  explicit Conv2d(const Conv2dOptions& o)
      : in_channels_(o.in_channels()),
        out_channels_(o.out_channels()),
        kernel_size_(o.kernel_size()),
        stride_(o.stride()),
        padding_(o.padding()),
        groups_(o.groups()),
        params_(checked_weight_shape(o), o.bias(), o.seed()) {}
  Conv2d(int in_channels, int out_channels, int kernel_size, int stride = 1, int padding = 0,
         bool bias = true, std::uint64_t seed = 0)
      : Conv2d(Conv2dOptions(in_channels, out_channels, kernel_size)
                   .stride(stride)
                   .padding(padding)
                   .bias(bias)
                   .seed(seed)) {}

  // PyTorch's default (Conv2d.reset_parameters): uniform in +-1/sqrt(in_channels / groups * k * k).
  void reset_parameters(Rng& rng) { params_.reset(rng); }

  template <typename Visitor>
  void visit(Visitor& v) {
    params_.visit(v);
  }

  // input: [N, C, H, W] -> output: [N, O, OH, OW].
  // epilogue (eval mode only): y = s[o] * conv + t[o], then a ReLU if asked, applied as each output is
  // stored, so that an eval-mode BatchNorm and ReLU after the conv cost no pass of their own (ConvBn). Its
  // scale and shift, where given, have out_channels entries.
  // cache (training mode): Cache::None keeps no reference to the input; backward is then given it.
  Tensor<T> forward(const Tensor<T>& input, const kernels::ConvEpilogue<T>& epilogue = {},
                    Cache cache = Cache::Input) {
    expect_state_shapes("Conv2d.forward");
    const bool fused = epilogue.scale || epilogue.shift || epilogue.relu;
    check(!fused || !this->is_training(),
          "Conv2d.forward: an epilogue is for eval mode only (backward would miss it)");
    check(!fused || (!epilogue.scale && !epilogue.shift) || epilogue.channels == out_channels_,
          "Conv2d.forward: the epilogue has ", epilogue.channels, " channels, the conv ", out_channels_,
          " output channels");
    const T* bias = has_bias() ? params_.bias.cdata() : nullptr;
    Tensor<T> output;
    if (!fused) {
      output = run(input, kernels::ConvEpilogue<T>::bias(bias, out_channels_));
    } else if (!bias) {
      output = run(input, epilogue);
    } else {
      shift_.resize(static_cast<std::size_t>(out_channels_));  // s * (conv + b) + t = s * conv + (s * b + t)
      for (int o = 0; o < out_channels_; ++o)
        shift_[o] = epilogue.scale_of(o) * bias[o] + epilogue.shift_of(o);
      output =
          run(input, kernels::ConvEpilogue<T>{epilogue.scale, shift_.data(), epilogue.relu, out_channels_});
    }
    input_ = this->is_training() && cache == Cache::Input ? input : Tensor<T>();
    return output;
  }

  // grad_output: [N, O, OH, OW] -> grad_input: [N, C, H, W], or an empty tensor with InputGrad::Skip; adds
  // to the weight and bias gradients. input: the forward's input, after a forward with Cache::None (else
  // empty: the cached one is used). The cols matrices are recomputed, not cached, to save memory.
  Tensor<T> backward(const Tensor<T>& grad_output, InputGrad input_grad = InputGrad::Compute,
                     const Tensor<T>& input = Tensor<T>()) {
    const bool given = !input.empty();
    check(!given || input_.empty(),
          "Conv2d.backward: given an input, but forward cached its own (pass the input only after a forward "
          "with Cache::None)");
    if (!given) expect_cached(!input_.empty(), "Conv2d.backward");
    const Tensor<T>& x = given ? input : input_;
    expect_backward_arguments(grad_output, x);  // before the cache is released, so a bad call keeps it
    const Tensor<T> kept = given ? input : std::exchange(input_, Tensor<T>());
    return backward_checked(grad_output, kept, input_grad == InputGrad::Compute);
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
  int groups() const { return groups_; }
  // The options this layer was built with (seed aside): a layer of the same shape.
  Conv2dOptions options() const {
    return Conv2dOptions(in_channels_, out_channels_, kernel_size_)
        .stride(stride_)
        .padding(padding_)
        .groups(groups_)
        .bias(has_bias());
  }

  // Throws unless the weight and bias, assignable through the accessors above, and their gradients still
  // have the shapes this layer was built with; forward and backward check it before indexing into them.
  void expect_state_shapes(const char* where) const { params_.expect_shapes(where); }

  // The algorithm forward runs, in the current mode, on an input [N, in_channels, H, W]: "winograd"
  // (kernels/winograd.hpp) or "im2col" (+ GEMM; a 1x1 stride-1 conv skips the im2col).
  const char* algorithm(const std::vector<std::int64_t>& input_shape) const {
    check(input_shape.size() == 4 && input_shape[1] == in_channels_, "Conv2d.algorithm: input shape ",
          shape_string(input_shape), ", expected [N, ", in_channels_, ", H, W]");
    const kernels::ConvShape g = shape_of(input_shape);
    check(g.N >= 1 && g.OH() >= 1 && g.OW() >= 1, "Conv2d.algorithm: input shape ", shape_string(input_shape),
          " gives no output with kernel_size ", kernel_size_, " and padding ", padding_);
    return kernels::algorithm_name(plan_of(g).forward);
  }

 private:
  static std::vector<std::int64_t> checked_weight_shape(const Conv2dOptions& o) {
    check(o.in_channels() > 0 && o.out_channels() > 0, "Conv2d: channels must be positive, got in_channels ",
          o.in_channels(), ", out_channels ", o.out_channels());
    check(o.kernel_size() > 0, "Conv2d: kernel_size must be positive, got ", o.kernel_size());
    check(o.stride() > 0, "Conv2d: stride must be positive, got ", o.stride());
    check(o.padding() >= 0, "Conv2d: padding must be non-negative, got ", o.padding());
    check(o.groups() > 0 && o.in_channels() % o.groups() == 0 && o.out_channels() % o.groups() == 0,
          "Conv2d: groups must be positive and divide in_channels ", o.in_channels(), " and out_channels ",
          o.out_channels(), ", got ", o.groups());
    return {o.out_channels(), o.in_channels() / o.groups(), o.kernel_size(), o.kernel_size()};
  }

  // forward, after it has checked the weight and bias shapes.
  Tensor<T> run(const Tensor<T>& input, const kernels::ConvEpilogue<T>& epilogue) {
    expect_input(input, 4, in_channels_, "Conv2d.forward", "[N, C, H, W]");
    expect_window_fits(input, kernel_size_, padding_, "Conv2d.forward");
    const kernels::ConvPlan plan = plan_of(shape_of(input.shape()));
    const kernels::ConvShape& g = plan.shape;
    auto output = Tensor<T>::uninitialized({g.N, g.O, g.OH(), g.OW()});
    params_.with_weight_operands(plan.precision, [&](const auto* weight) {
      kernels::conv2d_forward(plan, input.data(), weight, epilogue, output.data(), workspace(),
                              packed_weight(plan, weight));
    });
    return output;
  }

  // The plan for an input of shape g in the current mode and precision: in eval mode with the weight packed.
  kernels::ConvPlan plan_of(const kernels::ConvShape& g) const {
    return kernels::select_conv_plan<T>(g, this->precision(), !this->is_training());
  }

  // The weight packed as the plan says (from `weight`, of the plan's operand type), if the plan packs it
  // (eval mode, a shape with a packed form); else null, and what was packed is released.
  template <typename Op>
  const Op* packed_weight(const kernels::ConvPlan& plan, const Op* weight) {
    Tensor<Op>& packed = std::get<Tensor<Op>>(packed_weights_);
    const PackedFrom source{params_.weight.version(), plan};
    if (plan.packed_size == 0 || !(source == packed_from_)) {
      packed_weights_ = {};  // released first (and marked unpacked, should packing throw)
      packed_from_ = PackedFrom{};
    }
    if (plan.packed_size == 0) return nullptr;
    if (packed.empty()) {
      packed = Tensor<Op>::uninitialized({plan.packed_size});
      kernels::pack_conv_weight(weight, plan, packed.data());
      packed_from_ = source;
    }
    return packed.cdata();
  }

  void expect_backward_arguments(const Tensor<T>& grad_output, const Tensor<T>& input) const {
    expect_input(input, 4, in_channels_, "Conv2d.backward", "[N, C, H, W]");
    expect_window_fits(input, kernel_size_, padding_, "Conv2d.backward");
    const kernels::ConvShape g = shape_of(input.shape());
    expect_shape(grad_output, {g.N, g.O, g.OH(), g.OW()}, "Conv2d.backward", "grad_output");
    expect_state_shapes("Conv2d.backward");
  }

  // The backward passes, after expect_backward_arguments: the parameter gradients, and the input gradient
  // if asked for (else an empty tensor is returned).
  Tensor<T> backward_checked(const Tensor<T>& grad_output, const Tensor<T>& input, bool input_gradient) {
    auto grad_input = input_gradient ? Tensor<T>::uninitialized(input.shape()) : Tensor<T>();
    const kernels::ConvPlan plan = plan_of(shape_of(input.shape()));
    params_.with_weight_operands(plan.precision, [&](const auto* weight) {
      kernels::conv2d_backward(plan, input.data(), weight, grad_output.data(),
                               input_gradient ? grad_input.data() : nullptr, params_.weight_grad.data(),
                               has_bias() ? params_.bias_grad.data() : nullptr, workspace());
    });
    return grad_input;
  }

  // An input [N, C, H, W] of this conv.
  kernels::ConvShape shape_of(const std::vector<std::int64_t>& input) const {
    return {input[0], input[1], input[2], input[3], out_channels_, kernel_size_, stride_, padding_, groups_};
  }

  // The kernels' scratch, one per calling thread, shared by every Conv2d (core/buffer_pool.hpp says why).
  static kernels::ConvWorkspace<T>& workspace() {
    thread_local kernels::ConvWorkspace<T> shared;
    return shared;
  }

  int in_channels_, out_channels_, kernel_size_, stride_, padding_, groups_;
  WeightAndBias<T> params_;  // weight [O, C/groups, k, k], bias [O] or none
  Tensor<T> input_;          // training mode: the forward input, for backward
  // Eval mode: the weight packed for the GEMMs (of the plan's operand type), and the weight version and plan
  // it was packed for (version 0, which no storage has: nothing packed).
  struct PackedFrom {
    std::uint64_t version = 0;
    kernels::ConvPlan plan{};
    bool operator==(const PackedFrom& other) const { return version == other.version && plan == other.plan; }
  };
  std::tuple<Tensor<T>, Tensor<bfloat16>> packed_weights_;
  PackedFrom packed_from_;
  std::vector<T> shift_;  // forward with an epilogue and a bias: the bias folded into its shift
};

}  // namespace resnet::nn
