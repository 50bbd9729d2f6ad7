#pragma once
// The module protocol, in the manner of the PyTorch C++ frontend: a module names its parameters, buffers and
// children once, in `visit`, and Module<Derived, T> derives the rest from that one list (dotted state-dict
// names such as "layer1.0.conv1.weight", train()/eval() over the whole tree, zero_grad()).
//
// The contract. A module Derived : Module<Derived, T> provides
//
//   template <typename Visitor> void visit(Visitor& v);
//       v.parameter(name, value, grad) and v.buffer(name, value) for its own state, v.child(name, module)
//       for each sub-module, in torchvision's state_dict() order.
//   Tensor<T> forward(const Tensor<T>& input);
//       In training mode caches what backward needs; in eval mode caches nothing.
//   Tensor<T> backward(const Tensor<T>& grad_output);
//       Returns d loss / d input and ADDS to the parameter gradients. It releases what forward cached, as
//       PyTorch frees a graph's saved tensors: one training-mode forward allows one backward.
//
// and inherits train(on), eval(), is_training(), set_precision(p), precision(), named_parameters(),
// named_buffers(), zero_grad() and parameter_count(). A model may also provide
//   std::map<std::string, std::string> architecture() const;
//       What a saved file records about it and a strict load checks (io/safetensors.hpp), all but the
//       "num_classes" key, which a new head may change.
//
// Options of forward and backward, as defaulted trailing arguments (never other entry points):
//   backward(grad_output, InputGrad::Skip)   Conv2d, Linear, ResNet: no input gradient (an empty tensor is
//                                            returned), for a first layer whose input needs none.
//   Conv2d::forward(input, epilogue)         eval mode: a BatchNorm's scale and shift and a ReLU applied as
//                                            each output is stored (kernels/conv_epilogue.hpp).
//   Conv2d::forward(input, {}, Cache::None)  training mode: keep nothing; the caller gives the input back to
//                                            backward(grad, InputGrad::Compute, input).
//   BatchNorm2d::forward(input, Activation::ReLU) and backward(grad, relu_output): a ReLU after the
//                                            BatchNorm, its mask applied inside BatchNorm's own passes.
//   ResNet::backward(grad, input_grad, ready) ready(i) each time named_parameters()[i..] have their final
//                                            gradients (GradientsReady, below), for a data-parallel run
//                                            that reduces them while backward goes on.
// ConvBn (nn/conv_bn.hpp) combines these into the conv -> BatchNorm -> ReLU unit ResNets are made of.
//
// A module never writes into its input or into a tensor it returned: copies share storage (core/tensor.hpp),
// so what one module caches for backward may be another module's output. A module is used from one thread
// at a time (it holds its cache and, in eval mode, packed weights); see core/buffer_pool.hpp for the
// per-thread and pooled scratch every module shares.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "resnet/core/precision.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet::nn {

// backward's input gradient: Skip spares its cost when nothing needs it (a first layer: PyTorch skips it for
// an input that does not require grad), and backward then returns an empty tensor.
enum class InputGrad { Compute, Skip };

// What a training-mode forward keeps for backward: its input (the default), or nothing, for a caller that
// can give the input back to backward more cheaply than the memory of holding it from forward to backward.
enum class Cache { Input, None };

// An activation fused into the module before it, applied in that module's own passes.
enum class Activation { None, ReLU };

// Called by a backward as it goes, with falling i and last with 0, when named_parameters()[i..] hold their
// final gradients of this backward (distributed/gradient_reducer.hpp starts reducing them then).
using GradientsReady = std::function<void(std::size_t first)>;

template <typename T>
struct Parameter {
  std::string name;
  Tensor<T>* value;
  Tensor<T>* grad;
};

template <typename T>
struct Buffer {
  std::string name;
  Tensor<T>* value;
};

// One parameter or buffer, in the interleaved order of a state dict.
template <typename T>
struct StateEntry {
  std::string name;
  Tensor<T>* value;
  bool is_buffer;
};

namespace detail {

// Walks a module tree and lists parameters, buffers, or both interleaved (each module's parameters, then its
// buffers: torchvision's state_dict() order), with their dotted names.
template <typename T>
struct StateCollector {
  std::string prefix;
  std::vector<Parameter<T>>* parameters = nullptr;
  std::vector<Buffer<T>>* buffers = nullptr;
  std::vector<StateEntry<T>>* state = nullptr;

  void parameter(const std::string& name, Tensor<T>& value, Tensor<T>& grad) {
    if (parameters) parameters->push_back({prefix + name, &value, &grad});
    if (state) state->push_back({prefix + name, &value, false});
  }
  void buffer(const std::string& name, Tensor<T>& value) {
    if (buffers) buffers->push_back({prefix + name, &value});
    if (state) state->push_back({prefix + name, &value, true});
  }
  template <typename Child>
  void child(const std::string& name, Child& module) {
    StateCollector nested{prefix + name + ".", parameters, buffers, state};
    module.visit(nested);
  }
};

// Sets the mode of every direct child; each child passes it on to its own children.
template <typename T>
struct ModeSetter {
  bool training;
  void parameter(const std::string&, Tensor<T>&, Tensor<T>&) {}
  void buffer(const std::string&, Tensor<T>&) {}
  template <typename Child>
  void child(const std::string&, Child& module) {
    module.train(training);
  }
};

// Sets the precision of every direct child; each child passes it on to its own children.
template <typename T>
struct PrecisionSetter {
  Precision precision;
  void parameter(const std::string&, Tensor<T>&, Tensor<T>&) {}
  void buffer(const std::string&, Tensor<T>&) {}
  template <typename Child>
  void child(const std::string&, Child& module) {
    module.set_precision(precision);
  }
};

}  // namespace detail

// Argument checks shared by every module; messages name the module, the argument and the shapes.
template <typename T>
void expect_rank(const Tensor<T>& t, std::int64_t rank, const char* where, const char* layout) {
  check(!t.empty(), where, ": got an empty tensor, expected ", layout);
  if (t.dim() != rank)
    fail(where, ": expected a ", rank, "-d tensor ", layout, ", got shape ", shape_string(t.shape()));
}
template <typename T>
void expect_shape(const Tensor<T>& t, const std::vector<std::int64_t>& shape, const char* where,
                  const char* what) {
  if (t.shape() != shape)
    fail(where, ": ", what, " has shape ", shape_string(t.shape()), ", expected ", shape_string(shape));
}

// expect_input's `features` for layers that take any number of channels.
inline constexpr std::int64_t kAnyFeatures = -1;

// A forward input: `rank` dimensions laid out as `layout`, none of them empty (an empty batch or map has
// nothing to compute, and a window over an empty map would read outside it), and `features` channels (rank
// 4) or features (rank 2) in dimension 1.
template <typename T>
void expect_input(const Tensor<T>& input, std::int64_t rank, std::int64_t features, const char* where,
                  const char* layout) {
  expect_rank(input, rank, where, layout);
  const std::vector<std::int64_t>& shape = input.shape();
  if (std::find(shape.begin(), shape.end(), 0) != shape.end())
    fail(where, ": input shape ", shape_string(shape), " has an empty dimension, expected ", layout,
         " with every size at least 1");
  if (features != kAnyFeatures && shape[1] != features)
    fail(where, ": input has ", shape[1], rank == 2 ? " features" : " channels", ", expected ", features,
         " (input shape ", shape_string(shape), ")");
}

// A sliding window (Conv2d, MaxPool2d) needs at least one position in the padded input [N, C, H, W].
template <typename T>
void expect_window_fits(const Tensor<T>& input, std::int64_t kernel_size, std::int64_t padding,
                        const char* where) {
  const std::int64_t least = std::max<std::int64_t>(kernel_size - 2 * padding, 1);
  if (input.size(2) < least || input.size(3) < least)
    fail(where, ": input shape ", shape_string(input.shape()), " gives an empty output with kernel_size ",
         kernel_size, " and padding ", padding, "; H and W must be at least ", least);
}

// backward needs what a training-mode forward cached, and releases it.
inline void expect_cached(bool cached, const char* where) {
  check(
      cached, where,
      ": backward called without a training-mode forward to go back through: backward already ran for the "
      "last one, or none ran in training mode (each training-mode forward allows one backward; call train() "
      "and forward first)");
}

template <typename Derived, typename T>
class Module {
 public:
  using Scalar = T;

  void train(bool on = true) {
    training_ = on;
    detail::ModeSetter<T> setter{on};
    self().visit(setter);
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // The arithmetic of the module's matrix products (core/precision.hpp), for the whole tree. BF16 rounds
  // the operands of Conv2d and Linear to bfloat16, as torch.autocast does; it needs a float module.
  void set_precision(Precision precision) {
    check(precision == Precision::FP32 || std::is_same_v<T, float>,
          "set_precision: ", precision_name(precision), " needs a float module; this one is ", scalar_name(),
          " (a double module runs only fp32)");
    precision_ = precision;
    detail::PrecisionSetter<T> setter{precision};
    self().visit(setter);
  }
  Precision precision() const { return precision_; }

  std::vector<Parameter<T>> named_parameters() {
    std::vector<Parameter<T>> parameters;
    detail::StateCollector<T> collector{"", &parameters, nullptr};
    self().visit(collector);
    return parameters;
  }

  std::vector<Buffer<T>> named_buffers() {
    std::vector<Buffer<T>> buffers;
    detail::StateCollector<T> collector{"", nullptr, &buffers};
    self().visit(collector);
    return buffers;
  }

  void zero_grad() {
    for (auto& p : named_parameters())
      p.grad->fill(T(0));
  }

  // Number of trainable scalars, as sum(p.numel() for p in model.parameters()) in PyTorch.
  std::int64_t parameter_count() {
    std::int64_t total = 0;
    for (auto& p : named_parameters())
      total += p.value->numel();
    return total;
  }

 protected:
  Module() = default;

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
  static const char* scalar_name() { return std::is_same_v<T, double> ? "double" : "float"; }
  bool training_ = true;
  Precision precision_ = Precision::FP32;
};

// Puts a module in eval mode for the life of the guard, and every module of its tree back in the mode it was
// in when the guard ends (by return or exception): for code that runs a model it was handed, such as
// train::evaluate and summary. Modes are put back parents first, since train(on) sets a module's children
// too.
template <typename Module>
class EvalModeGuard {
 public:
  explicit EvalModeGuard(Module& module) {
    Recorder recorder{&restore_};
    recorder.child("", module);
    module.eval();
  }
  ~EvalModeGuard() {
    for (const auto& restore : restore_)
      restore();
  }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  struct Recorder {
    std::vector<std::function<void()>>* restore;
    template <typename T>
    void parameter(const std::string&, Tensor<T>&, Tensor<T>&) {}
    template <typename T>
    void buffer(const std::string&, Tensor<T>&) {}
    template <typename Child>
    void child(const std::string&, Child& module) {
      restore->push_back([&module, on = module.is_training()] { module.train(on); });
      module.visit(*this);
    }
  };
  std::vector<std::function<void()>> restore_;
};

}  // namespace resnet::nn
