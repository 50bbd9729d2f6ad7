// Precision::BF16 from the bottom up: the bfloat16 rounding (PyTorch's round to nearest even), the cap on
// the instruction sets, set_precision over a module tree, and Conv2d and Linear in bf16 on every path this
// CPU has against the double-precision layer given the same bf16-rounded operands (tests/test_parity_bf16.cpp
// holds them to PyTorch autocast).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "support/compare.hpp"
#include "support/expect_error.hpp"
#include "support/isa_cap.hpp"

namespace {

using resnet::bfloat16;
using resnet::Isa;
using resnet::Precision;
using resnet::Tensor;
using resnet::testing::to_double;

std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float float_of(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

TEST(Bfloat16, RoundsToNearestEvenAsPyTorch) {
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: the tie goes to the even one, 1.
  EXPECT_EQ(bfloat16(float_of(0x3F808000u)).bits, 0x3F80u);
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up, to the even one.
  EXPECT_EQ(bfloat16(float_of(0x3F818000u)).bits, 0x3F82u);
  EXPECT_EQ(bfloat16(float_of(0x3F808001u)).bits, 0x3F81u);  // just past the tie: up
  EXPECT_EQ(bfloat16(float_of(0x3F807FFFu)).bits, 0x3F80u);  // just short of it: down
  EXPECT_EQ(bfloat16(-1.0f).bits, 0xBF80u);
  EXPECT_EQ(bfloat16(std::numeric_limits<float>::max()).bits, 0x7F80u);  // rounds up to infinity, as torch
  EXPECT_EQ(bfloat16(std::numeric_limits<float>::infinity()).bits, 0x7F80u);
  EXPECT_EQ(bfloat16(float_of(0x00012345u)).bits, 0x0001u);  // a subnormal is rounded, not flushed
  const bfloat16 nan(float_of(0x7F800001u));                 // a signalling NaN whose payload is all low bits
  EXPECT_TRUE(std::isnan(static_cast<float>(nan)));
  EXPECT_EQ(bfloat16(float_of(0xFFC00000u)).bits, 0xFFC0u);
  EXPECT_EQ(static_cast<float>(bfloat16::from_bits(0x4049u)), 3.140625f);
  EXPECT_EQ(resnet::round_to_bfloat16(3.14159265f), 3.140625f);
}

TEST(Bfloat16, VectorConversionMatchesScalarBitForBitOnEveryPath) {
  resnet::Rng rng(5);
  std::vector<float> in(1000);
  for (auto& f : in)
    f = float_of(
        static_cast<std::uint32_t>(rng.next_u64()));  // every kind of bit pattern: NaN, inf, subnormal
  for (std::size_t i = 0; i < 64; ++i)
    in[i] = float_of(0x3F800000u + static_cast<std::uint32_t>(i) * 0x4000u);  // ties and near-ties
  for (const Isa isa : resnet::testing::isas_of_this_cpu()) {
    const resnet::testing::IsaCap cap(isa);
    for (const std::int64_t n : {0, 1, 15, 16, 17, 33, 1000}) {
      std::vector<bfloat16> out(static_cast<std::size_t>(n) + 1, bfloat16::from_bits(0xABCD));
      resnet::convert(in.data(), n, out.data());
      for (std::int64_t i = 0; i < n; ++i)
        ASSERT_EQ(out[i].bits, bfloat16::round_bits(in[i]))
            << "element " << i << " of " << n << " (bits " << std::hex << bits_of(in[i]) << ") on "
            << resnet::isa_name(isa);
      EXPECT_EQ(out[n].bits, 0xABCDu) << "wrote past the end, n = " << n;
    }
  }
}

TEST(IsaCap, NamesParseAndCapTheKernels) {
  for (const Isa isa : {Isa::Generic, Isa::Avx512, Isa::Avx512Bf16, Isa::AmxBf16})
    EXPECT_EQ(resnet::parse_isa(resnet::isa_name(isa)), isa);
  resnet::testing::expect_error([] { resnet::parse_isa("avx1024"); }, {"avx1024", "generic", "amx_bf16"});
  {
    const resnet::testing::IsaCap cap(Isa::Generic);
    EXPECT_EQ(resnet::active_isa(), Isa::Generic);
    EXPECT_FALSE(resnet::kernels::avx512::cpu_supported());
    EXPECT_FALSE(resnet::kernels::gemm_packs_a<float>(32, 32, 32));
    EXPECT_EQ(resnet::native_precision(), Precision::FP32);
    EXPECT_EQ(resnet::kernels::gemm_path<bfloat16>().rfind("bf16 operands widened to float", 0), 0u);
  }
  EXPECT_LE(resnet::active_isa(), resnet::cpu_isa());
  EXPECT_EQ(resnet::native_precision() == Precision::BF16, resnet::cpu_isa() >= Isa::Avx512Bf16);
}

TEST(Precision, ParsesTheExamplesSpellings) {
  EXPECT_EQ(resnet::parse_precision("fp32"), Precision::FP32);
  EXPECT_EQ(resnet::parse_precision("bf16"), Precision::BF16);
  EXPECT_EQ(resnet::parse_precision("auto"), resnet::native_precision());
  resnet::testing::expect_error([] { resnet::parse_precision("fp16"); }, {"fp16", "fp32, bf16 or auto"});
}

// Records the precision of every module of a tree.
struct PrecisionRecorder {
  std::vector<std::string>* names;
  std::vector<Precision>* precisions;
  std::string prefix;
  template <typename T>
  void parameter(const std::string&, Tensor<T>&, Tensor<T>&) {}
  template <typename T>
  void buffer(const std::string&, Tensor<T>&) {}
  template <typename Child>
  void child(const std::string& name, Child& module) {
    names->push_back(prefix + name);
    precisions->push_back(module.precision());
    PrecisionRecorder nested{names, precisions, prefix + name + "."};
    module.visit(nested);
  }
};

TEST(Precision, SetPrecisionReachesEveryModuleOfTheTree) {
  resnet::models::ResNet18<float> net(10, resnet::models::Stem::Cifar);
  EXPECT_EQ(net.precision(), Precision::FP32);
  for (const Precision p : {Precision::BF16, Precision::FP32}) {
    net.set_precision(p);
    std::vector<std::string> names;
    std::vector<Precision> precisions;
    PrecisionRecorder recorder{&names, &precisions, ""};
    net.visit(recorder);
    ASSERT_GT(names.size(), 40u);
    EXPECT_EQ(net.precision(), p);
    for (std::size_t i = 0; i < names.size(); ++i)
      EXPECT_EQ(precisions[i], p) << names[i];
  }
}

TEST(Precision, Bf16OnADoubleModuleIsAClearError) {
  resnet::models::ResNet18<double> net(10, resnet::models::Stem::Cifar);
  resnet::testing::expect_error([&] { net.set_precision(Precision::BF16); },
                                {"set_precision", "bf16", "double"});
  EXPECT_EQ(net.precision(), Precision::FP32);
  resnet::nn::Linear<double> linear(3, 2);
  resnet::testing::expect_error([&] { linear.set_precision(Precision::BF16); }, {"double"});
  net.set_precision(Precision::FP32);  // fp32 is what a double module runs: allowed
}

Tensor<float> random_tensor(std::vector<std::int64_t> shape, std::uint64_t seed) {
  resnet::Rng rng(seed);
  Tensor<float> t(std::move(shape));
  t.fill_normal(rng);
  return t;
}
Tensor<float> rounded(const Tensor<float>& t) {
  Tensor<float> r = t.clone();
  for (std::int64_t i = 0; i < r.numel(); ++i)
    r.data()[i] = resnet::round_to_bfloat16(r.data()[i]);
  return r;
}

// The float accumulation of bf16 products against the double sum of the same products: relative L2 error
// and largest error over the largest magnitude. A wrong operand (an unrounded one, a pair out of place)
// shows at about 1e-3 (half a bf16 ulp) or far above it.
void expect_close(const Tensor<float>& actual, const Tensor<double>& expected, const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  double error = 0, norm = 0, worst = 0, largest = 0;
  for (std::int64_t i = 0; i < actual.numel(); ++i) {
    const double d = actual.cdata()[i] - expected.cdata()[i];
    error += d * d;
    norm += expected.cdata()[i] * expected.cdata()[i];
    worst = std::max(worst, std::abs(d));
    largest = std::max(largest, std::abs(expected.cdata()[i]));
  }
  EXPECT_LE(std::sqrt(error / norm), 2e-6) << what;
  EXPECT_LE(worst, 1e-5 * largest) << what;
}

// The weight gradient, a product of bf16 operands, against the reference's; the bias gradient, a sum of the
// float output gradient dy [N, O, ...] (no product, so no rounding), against dy's sum in double.
template <typename Layer, typename Reference>
void expect_parameter_grads(Layer& layer, Reference& reference, const Tensor<float>& dy,
                            const std::string& what) {
  expect_close(*layer.named_parameters()[0].grad, *reference.named_parameters()[0].grad,
               "dweight of " + what);
  if (!layer.has_bias()) return;
  const std::int64_t N = dy.size(0), O = dy.size(1), pixels = dy.numel() / (N * O);
  Tensor<double> sum({O});
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t o = 0; o < O; ++o) {
      for (std::int64_t q = 0; q < pixels; ++q)
        sum.data()[o] += dy.cdata()[(n * O + o) * pixels + q];
    }
  }
  expect_close(*layer.named_parameters()[1].grad, sum, "dbias of " + what);
}

struct ConvCase {
  int N, C, H, O, k, s, p;
  bool bias;
  int groups = 1;
  resnet::nn::Conv2dOptions options() const {
    return resnet::nn::Conv2dOptions(C, O, k).stride(s).padding(p).bias(bias).groups(groups).seed(7);
  }
};

// Conv2d in bf16, forward and backward in training mode and forward in eval mode (the weight packed where
// the plan packs it), on each instruction set of this CPU, against Conv2d<double> given the bf16-rounded
// input, weight and output gradient.
TEST(Bf16Layers, Conv2dMatchesDoubleOfRoundedOperandsOnEveryPath) {
  const ConvCase cases[] = {
      {3, 5, 9, 6, 3, 1, 1, true},         // 3x3 same conv, odd sizes
      {3, 4, 11, 7, 3, 2, 1, true},        // stride 2
      {3, 6, 9, 8, 1, 2, 0, false},        // 1x1 stride 2 (a downsample)
      {2, 3, 23, 5, 7, 2, 3, true},        // the ImageNet stem's 7x7
      {2, 16, 7, 24, 1, 1, 0, true},       // pointwise, several images a unit
      {2, 32, 12, 32, 3, 1, 1, false},     // the shapes fp32 runs by Winograd, dX as a conv
      {1, 64, 14, 128, 3, 1, 1, true},     // one image: pixel pieces and channel blocks
      {40, 6, 4, 5, 3, 1, 1, true},        // 4x4 maps: image groups, weight-gradient slots
      {2, 64, 9, 64, 3, 2, 1, false, 32},  // grouped as ResNeXt's 3x3, 2 channels a group
      {3, 12, 6, 8, 1, 1, 0, true, 4},     // grouped pointwise
  };
  for (const Isa isa : resnet::testing::isas_of_this_cpu()) {
    const resnet::testing::IsaCap cap(isa);
    for (const ConvCase& c : cases) {
      const std::string what = std::to_string(c.C) + "->" + std::to_string(c.O) + " k" + std::to_string(c.k) +
                               " s" + std::to_string(c.s) + " g" + std::to_string(c.groups) + " on " +
                               resnet::isa_name(isa);
      resnet::nn::Conv2d<float> conv(c.options());
      resnet::nn::Conv2d<double> reference(c.options());
      reference.weight() = to_double(rounded(conv.weight()));
      if (c.bias) reference.bias() = to_double(conv.bias());
      conv.set_precision(Precision::BF16);
      const Tensor<float> x = random_tensor({c.N, c.C, c.H, c.H}, 1);
      const Tensor<float> y = conv.forward(x);
      const Tensor<double> y_ref = reference.forward(to_double(rounded(x)));
      expect_close(y, y_ref, "y of " + what);
      const Tensor<float> dy = random_tensor(y.shape(), 2);
      const Tensor<float> dx = conv.backward(dy);
      const Tensor<double> dx_ref = reference.backward(to_double(rounded(dy)));
      expect_close(dx, dx_ref, "dx of " + what);
      expect_parameter_grads(conv, reference, dy, what);
      conv.eval();
      reference.eval();
      expect_close(conv.forward(x), reference.forward(to_double(rounded(x))), "eval y of " + what);
      // A changed weight is rounded again (the bf16 copy and the packed weight follow its version).
      conv.weight().data()[0] += 0.5f;
      reference.weight().data()[0] = resnet::round_to_bfloat16(conv.weight().cdata()[0]);
      expect_close(conv.forward(x), reference.forward(to_double(rounded(x))),
                   "eval y after a write, " + what);
    }
  }
}

TEST(Bf16Layers, LinearMatchesDoubleOfRoundedOperandsOnEveryPath) {
  for (const Isa isa : resnet::testing::isas_of_this_cpu()) {
    const resnet::testing::IsaCap cap(isa);
    for (const bool bias : {true, false}) {
      resnet::nn::Linear<float> linear(37, 11, bias, 3);
      resnet::nn::Linear<double> reference(37, 11, bias, 3);
      reference.weight() = to_double(rounded(linear.weight()));
      if (bias) reference.bias() = to_double(linear.bias());
      linear.set_precision(Precision::BF16);
      const Tensor<float> x = random_tensor({5, 37}, 4);
      const std::string what = std::string(bias ? "with" : "without") + " bias on " + resnet::isa_name(isa);
      const Tensor<float> y = linear.forward(x);
      expect_close(y, reference.forward(to_double(rounded(x))), "y " + what);
      const Tensor<float> dy = random_tensor(y.shape(), 5);
      expect_close(linear.backward(dy), reference.backward(to_double(rounded(dy))), "dx " + what);
      expect_parameter_grads(linear, reference, dy, what);
    }
  }
}

// The mode does something: on inputs that are not bf16 numbers, bf16 and fp32 differ by about the bf16
// rounding, far more than float noise.
TEST(Bf16Layers, Bf16DiffersFromFp32ByTheRounding) {
  resnet::nn::Conv2d<float> conv(8, 8, 3, 1, 1, false, 2);
  const Tensor<float> x = random_tensor({2, 8, 6, 6}, 3);
  const Tensor<float> fp32 = conv.forward(x);
  conv.set_precision(Precision::BF16);
  const Tensor<float> bf16 = conv.forward(x);
  double error = 0, norm = 0;
  for (std::int64_t i = 0; i < fp32.numel(); ++i) {
    error += std::pow(double(bf16.cdata()[i]) - fp32.cdata()[i], 2);
    norm += std::pow(double(fp32.cdata()[i]), 2);
  }
  EXPECT_GT(std::sqrt(error / norm), 5e-4);
  EXPECT_LT(std::sqrt(error / norm), 1e-2);
}

}  // namespace
