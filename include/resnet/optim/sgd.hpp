#pragma once
// Stochastic gradient descent with torch.optim.SGD's semantics (dampening 0):
//   g = grad + weight_decay * p
//   buf = g on the first step, then momentum * buf + g
//   update = nesterov ? g + momentum * buf : buf     (update = g when momentum is 0)
//   p -= lr * update
// The operations run in T in the same order as PyTorch's, so float results agree to rounding.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "resnet/nn/module.hpp"

namespace resnet::optim {

// Parameters that share a weight decay, as a param_group of torch.optim.SGD.
template <typename T>
struct ParamGroup {
  std::vector<nn::Parameter<T>> params;
  double weight_decay = 0;
};

// The common recipe "no weight decay on BatchNorm parameters and biases": rank-1 tensors (BN weight and bias,
// conv and Linear biases) go to a group without decay, everything else to a group with `weight_decay`.
template <typename T>
std::vector<ParamGroup<T>> decay_and_no_decay_groups(const std::vector<nn::Parameter<T>>& params,
                                                     double weight_decay) {
  std::vector<ParamGroup<T>> groups{{{}, weight_decay}, {{}, 0.0}};
  for (const auto& p : params)
    groups[p.value->dim() <= 1 ? 1 : 0].params.push_back(p);
  return groups;
}

template <typename T>
class SGD {
 public:
  SGD(std::vector<nn::Parameter<T>> params, double lr, double momentum = 0, double weight_decay = 0,
      bool nesterov = false)
      : SGD(std::vector<ParamGroup<T>>{{std::move(params), weight_decay}}, lr, momentum, nesterov) {}

  // One weight decay per group, as torch.optim.SGD([{"params": ..., "weight_decay": ...}, ...], ...).
  SGD(std::vector<ParamGroup<T>> groups, double lr, double momentum = 0, bool nesterov = false)
      : lr_(lr), momentum_(momentum), nesterov_(nesterov) {
    check(lr >= 0, "SGD: learning rate must be >= 0, got ", lr);
    check(momentum >= 0, "SGD: momentum must be >= 0, got ", momentum);
    check(!nesterov || momentum > 0, "SGD: Nesterov momentum requires momentum > 0");
    std::map<const Tensor<T>*, std::string> seen;  // each value, with the name it was first given
    for (auto& group : groups) {
      check(group.weight_decay >= 0, "SGD: weight_decay must be >= 0, got ", group.weight_decay);
      for (auto& p : group.params) {
        check(p.value != nullptr && p.grad != nullptr, "SGD: parameter '", p.name,
              "' has no value or gradient");
        // As torch.optim, which refuses it too: a parameter listed twice would be updated twice per step.
        const auto [first, added] = seen.emplace(p.value, p.name);
        check(added, "SGD: parameter '", p.name, "' is the same tensor as parameter '", first->second,
              "'; list each parameter once");
        params_.push_back(p);
        weight_decays_.push_back(group.weight_decay);
      }
    }
    check(!params_.empty(), "SGD: got an empty parameter list");
    momentum_buffers_.resize(params_.size());
    for (std::size_t i = 0; i < params_.size(); ++i)
      expect_matching_shapes(i);
  }

  void step() {
    const T lr = static_cast<T>(lr_), momentum = static_cast<T>(momentum_);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      expect_matching_shapes(i);
      const T decay = static_cast<T>(weight_decays_[i]);
      Tensor<T>& buffer = momentum_buffers_[i];
      const bool first_step = buffer.empty();
      if (momentum_ != 0 && first_step) buffer = Tensor<T>(params_[i].value->shape());
      T* value = params_[i].value->data();
      const T* grad = params_[i].grad->data();
      T* buf = buffer.data();
      for (std::int64_t j = 0, n = params_[i].value->numel(); j < n; ++j) {
        T g = decay != T(0) ? grad[j] + decay * value[j] : grad[j];  // PyTorch skips the add without decay
        if (momentum_ != 0) {
          buf[j] = first_step ? g : momentum * buf[j] + g;
          g = nesterov_ ? g + momentum * buf[j] : buf[j];
        }
        value[j] -= lr * g;
      }
    }
  }

  void zero_grad() {
    for (auto& p : params_)
      p.grad->fill(T(0));
  }

  void set_lr(double lr) {
    check(lr >= 0, "SGD: learning rate must be >= 0, got ", lr);
    lr_ = lr;
  }
  double lr() const { return lr_; }
  // One-cycle schedules drive the momentum too (PyTorch's cycle_momentum).
  void set_momentum(double momentum) {
    check(momentum > 0 || (momentum == 0 && !nesterov_),
          "SGD: momentum must be > 0 (>= 0 without Nesterov), got ", momentum);
    momentum_ = momentum;
  }
  double momentum() const { return momentum_; }
  bool nesterov() const { return nesterov_; }
  // Per parameter, in params() order.
  const std::vector<double>& weight_decays() const { return weight_decays_; }

  const std::vector<nn::Parameter<T>>& params() const { return params_; }
  // One per parameter; empty until the first step with momentum (PyTorch's lazily created momentum_buffer).
  std::vector<Tensor<T>>& momentum_buffers() { return momentum_buffers_; }

 private:
  // The value, its gradient and its momentum buffer are assignable from outside (modules' accessors,
  // momentum_buffers() for checkpoints), so each step checks they still agree before indexing all three.
  void expect_matching_shapes(std::size_t i) const {
    const nn::Parameter<T>& p = params_[i];
    check(p.grad->shape() == p.value->shape(), "SGD: parameter '", p.name, "' has shape ",
          shape_string(p.value->shape()), " but its gradient has ", shape_string(p.grad->shape()));
    const Tensor<T>& buffer = momentum_buffers_[i];
    check(buffer.empty() || buffer.shape() == p.value->shape(), "SGD: parameter '", p.name, "' has shape ",
          shape_string(p.value->shape()), " but its momentum buffer has ", shape_string(buffer.shape()));
  }

  std::vector<nn::Parameter<T>> params_;
  std::vector<double> weight_decays_;
  double lr_, momentum_;
  bool nesterov_;
  std::vector<Tensor<T>> momentum_buffers_;
};

}  // namespace resnet::optim
