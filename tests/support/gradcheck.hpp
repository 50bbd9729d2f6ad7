#pragma once
// Gradient checks by central differences, in double. A module's backward is compared with the numerical
// derivative of L = sum(forward(x) * w), where w is a fixed random tensor (so every output element matters).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "resnet/core/tensor.hpp"

namespace resnet::testing {

struct GradcheckOptions {
  double step = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
  std::int64_t max_elements = 400;  // per tensor; larger tensors are sampled at random positions
  std::uint64_t seed = 1;
};

// Compares analytic[i] with (f(wrt[i] + h) - f(wrt[i] - h)) / 2h for every (or a sample of) element i.
// f recomputes the scalar from the current contents of `wrt`.
inline void expect_central_differences(const std::function<double()>& f, Tensor<double>& wrt,
                                       const Tensor<double>& analytic, const std::string& what,
                                       const GradcheckOptions& options = {}) {
  ASSERT_EQ(wrt.shape(), analytic.shape()) << what;
  std::vector<std::int64_t> positions;
  if (wrt.numel() <= options.max_elements) {
    for (std::int64_t i = 0; i < wrt.numel(); ++i)
      positions.push_back(i);
  } else {
    Rng rng(options.seed);
    for (std::int64_t k = 0; k < options.max_elements; ++k)
      positions.push_back(static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(wrt.numel()))));
  }
  int failures = 0;
  for (std::int64_t i : positions) {
    const double original = wrt[i];
    wrt[i] = original + options.step;
    const double plus = f();
    wrt[i] = original - options.step;
    const double minus = f();
    wrt[i] = original;
    const double numeric = (plus - minus) / (2 * options.step);
    const double error = std::abs(analytic[i] - numeric);
    if (error > options.atol + options.rtol * std::abs(numeric) && ++failures <= 5) {
      ADD_FAILURE() << what << "[" << i << "]: analytic " << analytic[i] << ", numeric " << numeric;
    }
  }
  EXPECT_EQ(failures, 0) << what << ": " << failures << " of " << positions.size() << " elements differ";
}

inline double dot(const Tensor<double>& a, const Tensor<double>& b) {
  return a.vector().dot(b.vector());
}

// Checks d/d input and d/d every parameter of a module in its current mode.
template <typename Module>
void expect_module_gradients(Module& module, Tensor<double> input, const GradcheckOptions& options = {}) {
  Rng rng(options.seed + 100);
  const Tensor<double> output = module.forward(input);
  Tensor<double> weights(output.shape());
  weights.fill_normal(rng);

  module.zero_grad();
  module.forward(input);
  const Tensor<double> grad_input = module.backward(weights);
  std::vector<Tensor<double>> grads;
  for (auto& p : module.named_parameters())
    grads.push_back(p.grad->clone());

  // backward ACCUMULATES into parameter gradients (like PyTorch): a second pass must double them.
  module.forward(input);
  module.backward(weights);
  std::size_t j = 0;
  for (auto& p : module.named_parameters()) {
    Tensor<double> twice = grads[j++].clone();
    twice.vector() *= 2.0;
    EXPECT_LT((p.grad->vector() - twice.vector()).norm(), 1e-9 * (1 + twice.vector().norm())) << p.name;
  }

  auto loss = [&] { return dot(module.forward(input), weights); };
  expect_central_differences(loss, input, grad_input, "input", options);
  std::size_t k = 0;
  for (auto& p : module.named_parameters())
    expect_central_differences(loss, *p.value, grads[k++], p.name, options);
}

}  // namespace resnet::testing
