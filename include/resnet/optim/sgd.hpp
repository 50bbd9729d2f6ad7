#pragma once
// Stochastic gradient descent with torch.optim.SGD's semantics (dampening 0):
//   g = grad + weight_decay * p
//   buf = g on the first step, then momentum * buf + g
//   update = nesterov ? g + momentum * buf : buf     (update = g when momentum is 0)
//   p -= lr * update
// The operations run in T in the same order as PyTorch's, so float results agree to rounding.

#include <cstdint>
#include <utility>
#include <vector>

#include "resnet/nn/module.hpp"

namespace resnet::optim {

template <typename T>
class SGD {
 public:
  SGD(std::vector<nn::Parameter<T>> params, double lr, double momentum = 0, double weight_decay = 0,
      bool nesterov = false)
      : params_(std::move(params)),
        lr_(lr),
        momentum_(momentum),
        weight_decay_(weight_decay),
        nesterov_(nesterov) {
    check(lr >= 0, "SGD: learning rate must be >= 0, got ", lr);
    check(momentum >= 0, "SGD: momentum must be >= 0, got ", momentum);
    check(weight_decay >= 0, "SGD: weight_decay must be >= 0, got ", weight_decay);
    check(!nesterov || momentum > 0, "SGD: Nesterov momentum requires momentum > 0");
    for (const auto& p : params_) {
      check(p.value != nullptr && p.grad != nullptr, "SGD: parameter '", p.name,
            "' has no value or gradient");
      check(p.value->shape() == p.grad->shape(), "SGD: parameter '", p.name, "' has shape ",
            shape_string(p.value->shape()), " but its gradient has ", shape_string(p.grad->shape()));
    }
    momentum_buffers_.resize(params_.size());
  }

  void step() {
    const T lr = static_cast<T>(lr_), momentum = static_cast<T>(momentum_),
            decay = static_cast<T>(weight_decay_);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      Tensor<T>& buffer = momentum_buffers_[i];
      const bool first_step = buffer.empty();
      if (momentum_ != 0 && first_step) buffer = Tensor<T>(params_[i].value->shape());
      T* value = params_[i].value->data();
      const T* grad = params_[i].grad->data();
      T* buf = buffer.data();
      for (std::int64_t j = 0, n = params_[i].value->numel(); j < n; ++j) {
        T g = grad[j] + decay * value[j];
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
  double momentum() const { return momentum_; }
  double weight_decay() const { return weight_decay_; }
  bool nesterov() const { return nesterov_; }

  const std::vector<nn::Parameter<T>>& params() const { return params_; }
  // One per parameter; empty until the first step with momentum (PyTorch's lazily created momentum_buffer).
  std::vector<Tensor<T>>& momentum_buffers() { return momentum_buffers_; }

 private:
  std::vector<nn::Parameter<T>> params_;
  double lr_, momentum_, weight_decay_;
  bool nesterov_;
  std::vector<Tensor<T>> momentum_buffers_;
};

}  // namespace resnet::optim
