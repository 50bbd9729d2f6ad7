#pragma once
// CrossEntropyLoss, as torch.nn.CrossEntropyLoss(label_smoothing=e) with class-index targets and reduction
// "mean": for logits z [N, C] and targets t [N],
//   log p = log_softmax(z) = z - max(z) - log(sum(exp(z - max(z))))   (max-subtracted: exp never overflows)
//   loss  = mean_n [ (1 - e) * (-log p[n, t_n]) + e * mean_c(-log p[n, c]) ]
//   d loss / d z = (softmax(z) - q) / N, with q = (1 - e) * one_hot(t) + e / C.
// Not a module: it has no parameters, and it always keeps the softmax and targets for backward.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "resnet/nn/module.hpp"

namespace resnet::nn {

template <typename T>
class CrossEntropyLoss {
 public:
  explicit CrossEntropyLoss(double label_smoothing = 0.0) : label_smoothing_(label_smoothing) {
    check(label_smoothing >= 0 && label_smoothing <= 1,
          "CrossEntropyLoss: label_smoothing must be in [0, 1], got ", label_smoothing);
  }

  // logits [N, C], targets [N] with values in [0, C) -> the mean loss over the batch.
  T forward(const Tensor<T>& logits, const std::vector<int>& targets) {
    using Acc = std::common_type_t<T, double>;
    expect_input(logits, 2, kAnyFeatures, "CrossEntropyLoss.forward", "[N, C] of logits");
    const std::int64_t N = logits.size(0), C = logits.size(1);
    check(static_cast<std::int64_t>(targets.size()) == N, "CrossEntropyLoss.forward: got ", targets.size(),
          " targets for logits of shape ", shape_string(logits.shape()));
    for (std::int64_t n = 0; n < N; ++n) {
      const int t = targets[static_cast<std::size_t>(n)];
      check(t >= 0 && t < C, "CrossEntropyLoss.forward: targets[", n, "] = ", t, " is out of range [0, ", C,
            ") for logits of shape ", shape_string(logits.shape()));
    }

    if (probs_.shape() != logits.shape()) probs_ = Tensor<T>(logits.shape());
    targets_ = targets;
    const Acc e = label_smoothing_;
    Acc total = 0;
    for (std::int64_t n = 0; n < N; ++n) {
      const T* z = logits.data() + n * C;
      const Acc max = *std::max_element(z, z + C);
      Acc sum_exp = 0, sum_shifted = 0;  // of exp(z - max) and of z - max
      for (std::int64_t c = 0; c < C; ++c) {
        const Acc shifted = static_cast<Acc>(z[c]) - max;
        sum_exp += std::exp(shifted);
        sum_shifted += shifted;
      }
      const Acc log_sum = std::log(sum_exp);  // log p[c] = (z[c] - max) - log_sum
      T* p = probs_.data() + n * C;
      for (std::int64_t c = 0; c < C; ++c)
        p[c] = static_cast<T>(std::exp(static_cast<Acc>(z[c]) - max - log_sum));
      const Acc nll = log_sum - (static_cast<Acc>(z[targets[static_cast<std::size_t>(n)]]) - max);
      const Acc smooth = log_sum - sum_shifted / static_cast<Acc>(C);
      total += (1 - e) * nll + e * smooth;
    }
    return static_cast<T>(total / static_cast<Acc>(N));
  }

  // d loss / d logits [N, C] for the last forward.
  Tensor<T> backward() const {
    expect_cached(!probs_.empty(), "CrossEntropyLoss.backward");
    const std::int64_t N = probs_.size(0), C = probs_.size(1);
    const T e = static_cast<T>(label_smoothing_);
    const T off_target = e / static_cast<T>(C), on_target = T(1) - e + off_target;
    const T inv_n = T(1) / static_cast<T>(N);
    Tensor<T> grad(probs_.shape());
    for (std::int64_t n = 0; n < N; ++n) {
      const T* p = probs_.data() + n * C;
      T* g = grad.data() + n * C;
      const int t = targets_[static_cast<std::size_t>(n)];
      for (std::int64_t c = 0; c < C; ++c)
        g[c] = (p[c] - (c == t ? on_target : off_target)) * inv_n;
    }
    return grad;
  }

  double label_smoothing() const { return label_smoothing_; }

 private:
  double label_smoothing_;
  Tensor<T> probs_;           // [N, C]: softmax of the last forward's logits
  std::vector<int> targets_;  // [N]: its targets
};

}  // namespace resnet::nn
