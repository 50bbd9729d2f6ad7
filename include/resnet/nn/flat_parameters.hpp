#pragma once
// A module tree's parameters and gradients in one allocation each, as llm.c keeps them: every parameter
// becomes a view (Tensor::view) into `values` and its gradient a view into `grads` at the same offset, in
// named_parameters() order (state-dict order), each on a 64-byte boundary with zeros between. A slice of
// `grads` is then a bucket for a data-parallel allreduce (distributed/gradient_reducer.hpp), and one pass
// over `values` touches every weight. Names, shapes and the module API are unchanged: the tensors are the
// same, only where their elements live moves. models::ResNet keeps its parameters flat this way.
//
// The layout is a function of the parameter shapes alone, so every process of a data-parallel run that
// builds the same model gets the same one.

#include <cstdint>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::nn {

template <typename T>
struct FlatParameters {
  Tensor<T> values;                   // [size]: every parameter
  Tensor<T> grads;                    // [size]: every gradient, at the same offsets
  std::vector<std::int64_t> offsets;  // of each parameter, in named_parameters() order
  std::vector<std::int64_t> sizes;    // its element count

  std::int64_t size() const { return values.numel(); }

  // Whether `parameters` (a named_parameters() of the module flattened) are still these views: an
  // accessor may have assigned another tensor in place of one (conv.weight() = ...).
  bool holds(const std::vector<Parameter<T>>& parameters) const {
    if (parameters.size() != offsets.size()) return false;
    for (std::size_t i = 0; i < parameters.size(); ++i) {
      if (parameters[i].value->numel() != sizes[i] || parameters[i].grad->numel() != sizes[i] ||
          parameters[i].value->cdata() != values.cdata() + offsets[i] ||
          parameters[i].grad->cdata() != grads.cdata() + offsets[i])
        return false;
    }
    return true;
  }
};

// Moves the parameters and gradients of `module` into one allocation each (their values kept), and returns
// it. Calling it again (after fold_batchnorm changed the parameters, say) makes a new allocation.
template <typename Module>
FlatParameters<typename Module::Scalar> flatten_parameters(Module& module) {
  using T = typename Module::Scalar;
  constexpr std::int64_t kAlign = static_cast<std::int64_t>(kTensorAlignment / sizeof(T));
  std::vector<Parameter<T>> parameters = module.named_parameters();
  FlatParameters<T> flat;
  std::int64_t size = 0;
  for (const Parameter<T>& p : parameters) {
    check(p.grad->shape() == p.value->shape(), "flatten_parameters: parameter '", p.name, "' has shape ",
          shape_string(p.value->shape()), " but its gradient has ", shape_string(p.grad->shape()));
    flat.offsets.push_back(size);
    flat.sizes.push_back(p.value->numel());
    size += (p.value->numel() + kAlign - 1) / kAlign * kAlign;
  }
  flat.values = Tensor<T>({size});
  flat.grads = Tensor<T>({size});
  for (std::size_t i = 0; i < parameters.size(); ++i) {
    Tensor<T> value = Tensor<T>::view(flat.values, flat.offsets[i], parameters[i].value->shape());
    Tensor<T> grad = Tensor<T>::view(flat.grads, flat.offsets[i], parameters[i].grad->shape());
    std::copy_n(parameters[i].value->cdata(), flat.sizes[i], value.data());
    std::copy_n(parameters[i].grad->cdata(), flat.sizes[i], grad.data());
    *parameters[i].value = std::move(value);
    *parameters[i].grad = std::move(grad);
  }
  return flat;
}

}  // namespace resnet::nn
