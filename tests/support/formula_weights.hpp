#pragma once
// Closed-form weights, buffers and inputs for the whole-network parity tests, computed bit for bit as
// tools/make_fixtures.py computes them (change both together), so the fixtures need not store any weights:
//   unit(tag, j) = splitmix64(tag * 2^32 + j) -> top 53 bits -> [-1, 1), exact in double
//   parameter t of named_parameters has tag t; buffer t of named_buffers has tag 1000 + t; the input of step
//   s has tag 2000 + s
//   conv weight [O, I, k, k]: unit * sqrt(6 / (O k k))   (uniform with Kaiming's fan_out std sqrt(2 / (O k
//   k))) linear weight [out, in]:  unit * sqrt(3 / in)        (std 1 / sqrt(in)) batch-norm weight:        1
//   + 0.1 unit;   any bias: 0.05 unit running_mean: 0.1 unit;   running_var: 1 + 0.2 unit;
//   num_batches_tracked: 0;   input: unit
// Each value is computed in double (integer hashing, then IEEE +, *, sqrt, all exactly rounded) and rounded
// once to float, also for T = double, so that float and double runs start from the same numbers.

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet::testing {

inline constexpr std::uint64_t kFormulaParameterTag = 0;
inline constexpr std::uint64_t kFormulaBufferTag = 1000;
inline constexpr std::uint64_t kFormulaInputTag = 2000;

// Element j of the tensor with this tag, uniform in [-1, 1).
inline double formula_unit(std::uint64_t tag, std::uint64_t j) {
  std::uint64_t z = (tag << 32) + j + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z = z ^ (z >> 31);
  return static_cast<double>(z >> 11) * 0x1p-52 - 1.0;
}

// Maps a unit value to the tensor's scale, chosen by the last part of its name and its rank.
inline double formula_value(const std::string& name, const std::vector<std::int64_t>& shape, bool is_buffer,
                            double u) {
  const std::string leaf = name.substr(name.rfind('.') + 1);
  if (is_buffer) {
    if (leaf == "running_mean") return 0.1 * u;
    if (leaf == "running_var") return 1.0 + 0.2 * u;
    if (leaf == "num_batches_tracked") return 0.0;
  } else if (leaf == "weight" && shape.size() == 4) {
    return u * std::sqrt(6.0 / static_cast<double>(shape[0] * shape[2] * shape[3]));
  } else if (leaf == "weight" && shape.size() == 2) {
    return u * std::sqrt(3.0 / static_cast<double>(shape[1]));
  } else if (leaf == "weight" && shape.size() == 1) {
    return 1.0 + 0.1 * u;
  } else if (leaf == "bias") {
    return 0.05 * u;
  }
  fail("formula_value: no formula for ", is_buffer ? "buffer " : "parameter ", name, " of shape ",
       shape_string(shape));
}

// Rounded to float first, whatever T is (see above).
template <typename T>
T float_rounded(double v) {
  return static_cast<T>(static_cast<float>(v));
}

template <typename T>
void fill_formula(Tensor<T>& t, std::uint64_t tag, const std::string& name, bool is_buffer) {
  for (std::int64_t j = 0; j < t.numel(); ++j)
    t.data()[j] = float_rounded<T>(
        formula_value(name, t.shape(), is_buffer, formula_unit(tag, static_cast<std::uint64_t>(j))));
}

// Sets every parameter and buffer of `model` by the formula, in named_parameters / named_buffers order.
template <typename Model>
void apply_formula_weights(Model& model) {
  std::uint64_t t = 0;
  for (auto& p : model.named_parameters())
    fill_formula(*p.value, kFormulaParameterTag + t++, p.name, false);
  t = 0;
  for (auto& b : model.named_buffers())
    fill_formula(*b.value, kFormulaBufferTag + t++, b.name, true);
}

// The input batch of training step `step` (step 0 is also the eval batch).
template <typename T>
Tensor<T> formula_input(int step, std::vector<std::int64_t> shape) {
  Tensor<T> x(std::move(shape));
  for (std::int64_t j = 0; j < x.numel(); ++j)
    x.data()[j] = float_rounded<T>(
        formula_unit(kFormulaInputTag + static_cast<std::uint64_t>(step), static_cast<std::uint64_t>(j)));
  return x;
}

}  // namespace resnet::testing
