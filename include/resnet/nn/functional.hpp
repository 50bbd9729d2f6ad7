#pragma once
// What a user does with logits [N, classes]: probabilities, predictions and their accuracy, as PyTorch's
//   softmax(logits)          torch.softmax(logits, dim=1): per row exp(z - max(z)), times 1 / their sum, in T
//   argmax(logits)           torch.argmax(logits, dim=1): the first largest logit of each row (a NaN counts
//   as
//                            the largest, as torch's max does)
//   accuracy(logits, labels) the fraction of rows whose argmax is the label
// train::evaluate (train/evaluate.hpp) runs them over a whole dataset.

#include <cmath>
#include <cstdint>
#include <vector>

#include "resnet/core/tensor.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::nn {

// logits [N, C] -> probabilities [N, C], each row summing to 1. The largest logit is subtracted first, so
// exp never overflows.
template <typename T>
Tensor<T> softmax(const Tensor<T>& logits) {
  expect_input(logits, 2, kAnyFeatures, "softmax", "[N, classes] of logits");
  const std::int64_t N = logits.size(0), C = logits.size(1);
  auto probabilities = Tensor<T>::uninitialized(logits.shape());
  for (std::int64_t n = 0; n < N; ++n) {
    const T* z = logits.cdata() + n * C;
    T* p = probabilities.data() + n * C;
    T max = z[0];
    for (std::int64_t c = 1; c < C; ++c)
      max = z[c] > max || std::isnan(z[c]) ? z[c] : max;
    T sum = 0;
    for (std::int64_t c = 0; c < C; ++c)
      sum += p[c] = std::exp(z[c] - max);
    const T inverse = T(1) / sum;
    for (std::int64_t c = 0; c < C; ++c)
      p[c] *= inverse;
  }
  return probabilities;
}

// logits [N, C] -> N class indices in [0, C).
template <typename T>
std::vector<int> argmax(const Tensor<T>& logits) {
  expect_input(logits, 2, kAnyFeatures, "argmax", "[N, classes] of logits");
  const std::int64_t N = logits.size(0), C = logits.size(1);
  std::vector<int> classes(static_cast<std::size_t>(N));
  for (std::int64_t n = 0; n < N; ++n) {
    const T* z = logits.cdata() + n * C;
    std::int64_t best = 0;
    for (std::int64_t c = 1; c < C && !std::isnan(z[best]); ++c)
      if (z[c] > z[best] || std::isnan(z[c])) best = c;
    classes[static_cast<std::size_t>(n)] = static_cast<int>(best);
  }
  return classes;
}

// logits [N, C] and N labels in [0, C) -> the fraction of the N rows classified correctly.
template <typename T>
double accuracy(const Tensor<T>& logits, const std::vector<int>& labels) {
  const std::vector<int> predicted = argmax(logits);
  const std::int64_t C = logits.size(1);
  check(labels.size() == predicted.size(), "accuracy: ", labels.size(), " labels for logits of shape ",
        shape_string(logits.shape()));
  std::int64_t correct = 0;
  for (std::size_t n = 0; n < labels.size(); ++n) {
    check(labels[n] >= 0 && labels[n] < C, "accuracy: labels[", n, "] = ", labels[n], " is out of range [0, ",
          C, ") for logits of shape ", shape_string(logits.shape()));
    correct += predicted[n] == labels[n];
  }
  return static_cast<double>(correct) / static_cast<double>(labels.size());
}

}  // namespace resnet::nn
