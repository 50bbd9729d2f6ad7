#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "resnet/core/parallel.hpp"
#include "resnet/kernels/gemm.hpp"
#include "resnet/kernels/im2col.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/conv_bn.hpp"
#include "resnet/nn/linear.hpp"
#include "support/compare.hpp"
#include "support/expect_error.hpp"
#include "support/gradcheck.hpp"

using resnet::Tensor;
using resnet::nn::Conv2d;
using resnet::nn::Conv2dOptions;
using resnet::nn::InputGrad;
using resnet::nn::Linear;

using resnet::testing::expect_error;

namespace {

template <typename T>
Tensor<T> random_tensor(std::vector<std::int64_t> shape, std::uint64_t seed) {
  resnet::Rng rng(seed);
  Tensor<T> t(std::move(shape));
  t.fill_normal(rng);
  return t;
}

// The textbook definition, one output element at a time, accumulated in double:
// y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] * x[n, c0 + c, i*s - p + u, j*s - p + v] (zero outside),
// with c over the w.size(1) input channels of o's group, from c0 = o / (O / G) * w.size(1).
Tensor<float> naive_conv2d(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>* b, int s,
                           int p) {
  const std::int64_t N = x.size(0), H = x.size(2), W = x.size(3);
  const std::int64_t O = w.size(0), C = w.size(1), k = w.size(2), G = x.size(1) / C;
  const std::int64_t OH = (H + 2 * p - k) / s + 1, OW = (W + 2 * p - k) / s + 1;
  Tensor<float> y({N, O, OH, OW});
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t o = 0; o < O; ++o)
      for (std::int64_t i = 0; i < OH; ++i)
        for (std::int64_t j = 0; j < OW; ++j) {
          double sum = b ? b->at({o}) : 0.0;
          const std::int64_t c0 = o / (O / G) * C;
          for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t u = 0; u < k; ++u)
              for (std::int64_t v = 0; v < k; ++v) {
                const std::int64_t h = i * s - p + u, ww = j * s - p + v;
                if (h >= 0 && h < H && ww >= 0 && ww < W)
                  sum += double(w.at({o, c, u, v})) * x.at({n, c0 + c, h, ww});
              }
          y.at({n, o, i, j}) = static_cast<float>(sum);
        }
  return y;
}

struct ConvCase {
  int in_channels, out_channels, height, width, kernel, stride, padding;
  bool bias;
  int groups = 1;

  Conv2dOptions options(std::uint64_t seed) const {
    return Conv2dOptions(in_channels, out_channels, kernel)
        .stride(stride)
        .padding(padding)
        .bias(bias)
        .groups(groups)
        .seed(seed);
  }
};

std::string describe(const ConvCase& c) {
  return "Conv2d(" + std::to_string(c.in_channels) + ", " + std::to_string(c.out_channels) +
         ", k=" + std::to_string(c.kernel) + ", s=" + std::to_string(c.stride) +
         ", p=" + std::to_string(c.padding) + (c.bias ? "" : ", bias=false") +
         (c.groups == 1 ? "" : ", groups=" + std::to_string(c.groups)) + ") on " + std::to_string(c.height) +
         "x" + std::to_string(c.width);
}

}  // namespace

// ---- kernels ----

TEST(Gemm, MatchesNaiveProductForEveryTransposeCombination) {
  const std::int64_t M = 5, N = 7, K = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(std::string("transpose_a ") + (ta ? "1" : "0") + ", transpose_b " + (tb ? "1" : "0"));
      const Tensor<double> A =
          random_tensor<double>(ta ? std::vector<std::int64_t>{K, M} : std::vector<std::int64_t>{M, K}, 1);
      const Tensor<double> B =
          random_tensor<double>(tb ? std::vector<std::int64_t>{N, K} : std::vector<std::int64_t>{K, N}, 2);
      const Tensor<double> C0 = random_tensor<double>({M, N}, 3);
      for (double beta : {0.0, 1.0, -2.0}) {
        Tensor<double> C = C0.clone();
        if (beta == 0.0) C.fill(std::numeric_limits<double>::quiet_NaN());  // beta == 0: C is not read
        resnet::kernels::gemm(ta, tb, M, N, K, 0.5, A.data(), B.data(), beta, C.data());
        for (std::int64_t i = 0; i < M; ++i)
          for (std::int64_t j = 0; j < N; ++j) {
            double expected = beta == 0.0 ? 0.0 : beta * C0.at({i, j});
            for (std::int64_t l = 0; l < K; ++l)
              expected += 0.5 * (ta ? A.at({l, i}) : A.at({i, l})) * (tb ? B.at({j, l}) : B.at({l, j}));
            EXPECT_NEAR(C.at({i, j}), expected, 1e-12) << "beta " << beta << " at " << i << ", " << j;
          }
      }
    }
}

TEST(Im2col, OutputSizeFollowsPyTorch) {
  EXPECT_EQ(resnet::kernels::window_output_size(224, 7, 2, 3), 112);
  EXPECT_EQ(resnet::kernels::window_output_size(7, 3, 2, 1), 4);
  EXPECT_EQ(resnet::kernels::window_output_size(8, 1, 2, 0), 4);
  EXPECT_EQ(resnet::kernels::window_output_size(9, 2, 3, 0), 3);
  EXPECT_EQ(resnet::kernels::window_output_size(3, 3, 1, 0), 1);
  EXPECT_EQ(resnet::kernels::window_output_size(2, 3, 1, 0), 0);
  EXPECT_EQ(resnet::kernels::window_output_size(1, 5, 4, 1), 0);  // -1 / 4 must not round up to a valid size
}

TEST(Im2col, ReadsPatchesWithZeroPadding) {
  // One channel 2x3, k=2, s=1, p=1: OH = 3, OW = 4. Row (ki, kj) = (1, 1) is the image shifted by the
  // padding.
  Tensor<float> image({1, 2, 3});
  for (int i = 0; i < 6; ++i)
    image[i] = float(i + 1);
  Tensor<float> cols({4, 12}, -1.0f);
  resnet::kernels::im2col(image.data(), 1, 2, 3, 2, 1, 1, cols.data());
  const std::vector<float> row3 = {1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0, 0};
  const std::vector<float> row0 = {0, 0, 0, 0, 0, 1, 2, 3, 0, 4, 5, 6};
  for (int j = 0; j < 12; ++j) {
    EXPECT_EQ(cols.at({3, j}), row3[j]) << j;
    EXPECT_EQ(cols.at({0, j}), row0[j]) << j;
  }
}

TEST(Im2col, Col2imIsTheAdjointAndAccumulates) {
  // <im2col(x), c> == <x, col2im(c)> for every geometry, which pins col2im down given im2col.
  for (auto [k, s, p] :
       std::vector<std::array<int, 3>>{{3, 2, 1}, {1, 2, 0}, {7, 2, 3}, {2, 3, 0}, {3, 1, 2}}) {
    const std::int64_t C = 2, H = 7, W = 9;
    const std::int64_t rows = C * k * k, cols_count = resnet::kernels::window_output_size(H, k, s, p) *
                                                      resnet::kernels::window_output_size(W, k, s, p);
    const Tensor<double> x = random_tensor<double>({C, H, W}, 4);
    const Tensor<double> c = random_tensor<double>({rows, cols_count}, 5);
    Tensor<double> cols({rows, cols_count});
    resnet::kernels::im2col(x.data(), C, H, W, k, s, p, cols.data());
    const Tensor<double> base = random_tensor<double>({C, H, W}, 6);
    Tensor<double> image = base.clone();
    resnet::kernels::col2im(c.data(), cols_count, C, H, W, k, s, p, image.data());
    const double lhs = cols.vector().dot(c.vector());
    const double rhs = x.vector().dot(image.vector() - base.vector());
    EXPECT_NEAR(lhs, rhs, 1e-10 * (1 + std::abs(lhs))) << "k " << k << " s " << s << " p " << p;
  }
}

// ---- Conv2d ----

TEST(Conv2d, GradientsMatchCentralDifferences) {
  const std::vector<ConvCase> cases = {
      {2, 3, 7, 9, 3, 2, 1, true},      // the common 3x3 stride-2 downsampling conv, non-square input
      {3, 4, 5, 6, 1, 1, 0, true},      // pointwise: no im2col
      {3, 2, 4, 4, 1, 1, 0, false},     // pointwise without bias
      {3, 2, 7, 9, 1, 2, 0, true},      // 1x1 stride 2: the projection shortcut
      {2, 2, 9, 11, 7, 2, 3, true},     // the ImageNet stem
      {2, 3, 7, 9, 3, 1, 1, false},     // no bias, as torchvision's convs
      {2, 2, 8, 9, 2, 3, 0, true},      // stride larger than the kernel: some pixels get no gradient
      {1, 2, 4, 5, 3, 1, 2, true},      // padding wider than half the kernel
      {4, 6, 7, 9, 3, 2, 1, true, 2},   // grouped (ResNeXt's 3x3), strided
      {6, 4, 4, 5, 1, 1, 0, false, 2},  // grouped pointwise: no im2col
      {3, 3, 6, 5, 3, 1, 1, false, 3},  // depthwise
      {4, 8, 9, 7, 7, 2, 3, true, 4},   // grouped with a gathering im2col
  };
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(describe(c));
    Conv2d<double> conv(c.options(11));
    resnet::testing::expect_module_gradients(
        conv, random_tensor<double>({3, c.in_channels, c.height, c.width}, 12));
  }
}

TEST(Conv2d, ForwardMatchesNaiveConvolution) {
  const std::vector<ConvCase> cases = {
      {16, 8, 13, 11, 3, 1, 1, true},
      {3, 16, 23, 17, 7, 2, 3, false},
      {8, 16, 6, 10, 1, 1, 0, true},
      {8, 4, 9, 7, 1, 2, 0, false},
      {5, 6, 12, 9, 5, 3, 2, true},
      {4, 4, 3, 3, 3, 1, 0, true},
      // Grouped: 16-channel groups in output-channel blocks of 40 (units of two images side by side), so
      // blocks cut through groups; 32 groups of 4 as ResNeXt's first stage; a pointwise conv that reads
      // each image in place, in two channel blocks.
      {10, 80, 12, 12, 3, 1, 1, true, 5},
      {128, 128, 8, 8, 3, 2, 1, false, 32},
      {32, 64, 16, 16, 1, 1, 0, true, 2},
  };
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(describe(c));
    Conv2d<float> conv(c.options(21));
    const Tensor<float> x = random_tensor<float>({2, c.in_channels, c.height, c.width}, 22);
    const Tensor<float> expected =
        naive_conv2d(x, conv.weight(), c.bias ? &conv.bias() : nullptr, c.stride, c.padding);
    for (const bool training : {true, false}) {  // eval mode packs a dense conv's weight ahead
      conv.train(training);
      const Tensor<float> y = conv.forward(x);
      ASSERT_EQ(y.shape(), expected.shape());
      EXPECT_LT(resnet::testing::relative_l2(y, expected), 1e-6) << (training ? "training" : "eval");
    }
  }
}

TEST(Conv2d, ReusesOneModuleAcrossInputSizes) {
  // The workspace follows the input geometry; results must not depend on what ran before.
  Conv2d<float> conv(3, 5, 3, 2, 1, true, 31);
  for (auto [h, w] : std::vector<std::array<int, 2>>{{8, 8}, {5, 11}, {16, 4}, {8, 8}}) {
    const Tensor<float> x = random_tensor<float>({2, 3, h, w}, 32);
    EXPECT_LT(
        resnet::testing::relative_l2(conv.forward(x), naive_conv2d(x, conv.weight(), &conv.bias(), 2, 1)),
        1e-6)
        << h << "x" << w;
  }
}

TEST(Conv2d, BackwardLeavesInputAndGradOutputUntouched) {
  Conv2d<float> conv(2, 3, 1);  // pointwise: the input itself serves as the cols matrix
  const Tensor<float> x = random_tensor<float>({2, 2, 4, 4}, 41);
  const Tensor<float> x_copy = x.clone();
  const Tensor<float> dy = random_tensor<float>({2, 3, 4, 4}, 42);
  const Tensor<float> dy_copy = dy.clone();
  conv.forward(x);
  conv.backward(dy);
  EXPECT_EQ(resnet::testing::relative_l2(x, x_copy), 0.0);
  EXPECT_EQ(resnet::testing::relative_l2(dy, dy_copy), 0.0);
}

TEST(Conv2d, ParameterNamesAndShapes) {
  Conv2d<float> with_bias(3, 8, 5, 2, 2);
  auto params = with_bias.named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].name, "weight");
  EXPECT_EQ(params[0].value->shape(), (std::vector<std::int64_t>{8, 3, 5, 5}));
  EXPECT_EQ(params[0].grad->shape(), (std::vector<std::int64_t>{8, 3, 5, 5}));
  EXPECT_EQ(params[1].name, "bias");
  EXPECT_EQ(params[1].value->shape(), (std::vector<std::int64_t>{8}));
  EXPECT_EQ(params[1].grad->shape(), (std::vector<std::int64_t>{8}));
  EXPECT_TRUE(with_bias.has_bias());
  EXPECT_EQ(with_bias.in_channels(), 3);
  EXPECT_EQ(with_bias.out_channels(), 8);
  EXPECT_EQ(with_bias.kernel_size(), 5);
  EXPECT_EQ(with_bias.stride(), 2);
  EXPECT_EQ(with_bias.padding(), 2);

  Conv2d<float> no_bias(3, 8, 3, 1, 1, false);
  params = no_bias.named_parameters();
  ASSERT_EQ(params.size(), 1u);
  EXPECT_EQ(params[0].name, "weight");
  EXPECT_FALSE(no_bias.has_bias());
  EXPECT_TRUE(no_bias.bias().empty());
  EXPECT_TRUE(no_bias.named_buffers().empty());
}

// Conv2dOptions names the positional constructor's arguments: the same layer, weights included.
TEST(Conv2d, OptionsBuildTheLayerThePositionalArgumentsDo) {
  Conv2d<float> positional(3, 8, 5, 2, 2, false, 9);
  Conv2d<float> named(resnet::nn::Conv2dOptions(3, 8, 5).stride(2).padding(2).bias(false).seed(9));
  EXPECT_EQ(named.stride(), 2);
  EXPECT_EQ(named.padding(), 2);
  EXPECT_FALSE(named.has_bias());
  EXPECT_EQ(resnet::testing::relative_l2(named.weight(), positional.weight()), 0.0);
  const resnet::nn::Conv2dOptions defaults(3, 8, 5);
  EXPECT_EQ(defaults.stride(), 1);
  EXPECT_EQ(defaults.padding(), 0);
  EXPECT_TRUE(defaults.bias());
  EXPECT_EQ(defaults.seed(), 0u);
}

// groups as torch.nn.Conv2d's: weight [O, C/groups, k, k], PyTorch's init bound 1/sqrt(C/groups * k*k), and
// kept by options() and by folding a BatchNorm into the conv.
TEST(Conv2d, GroupsShapeTheWeightAsPyTorch) {
  Conv2d<float> conv(Conv2dOptions(8, 12, 3).padding(1).groups(4).seed(3));
  EXPECT_EQ(conv.groups(), 4);
  EXPECT_EQ(conv.weight().shape(), (std::vector<std::int64_t>{12, 2, 3, 3}));
  const float bound = 1.0f / std::sqrt(2.0f * 3 * 3);
  EXPECT_LE(conv.weight().vector().cwiseAbs().maxCoeff(), bound);
  EXPECT_GT(conv.weight().vector().cwiseAbs().maxCoeff(), 0.8f * bound);
  EXPECT_EQ(conv.options().groups(), 4);
  EXPECT_EQ(Conv2dOptions(8, 12, 3).groups(), 1);

  resnet::nn::BatchNorm2d<float> bn(12);
  bn.running_var().fill(4.0f);
  bn.eval();
  conv.eval();
  const Tensor<float> x = random_tensor<float>({2, 8, 5, 6}, 4);
  const Tensor<float> expected = bn.forward(conv.forward(x));
  Conv2d<float> folded = resnet::nn::fold_conv_batchnorm(conv, bn);
  EXPECT_EQ(folded.groups(), 4);
  folded.eval();
  EXPECT_LT(resnet::testing::relative_l2(folded.forward(x), expected), 1e-6);

  for (const auto& [in, out, groups] : std::vector<std::array<int, 3>>{{8, 12, 0}, {8, 12, 3}, {6, 9, 2}}) {
    expect_error([&] { Conv2d<float>(Conv2dOptions(in, out, 3).groups(groups)); },
                 {"Conv2d", "groups", std::to_string(groups)});
  }
}

TEST(Conv2d, InitIsSeededAndBoundedByOneOverSqrtFanIn) {
  Conv2d<float> a(4, 16, 3, 1, 1, true, 5), b(4, 16, 3, 1, 1, true, 5), c(4, 16, 3, 1, 1, true, 6);
  EXPECT_EQ(resnet::testing::relative_l2(a.weight(), b.weight()), 0.0);
  EXPECT_EQ(resnet::testing::relative_l2(a.bias(), b.bias()), 0.0);
  EXPECT_GT(resnet::testing::relative_l2(a.weight(), c.weight()), 0.1);
  const float bound = 1.0f / std::sqrt(4.0f * 3 * 3);
  EXPECT_LE(a.weight().vector().cwiseAbs().maxCoeff(), bound);
  EXPECT_GT(a.weight().vector().cwiseAbs().maxCoeff(), 0.9f * bound);  // 576 draws reach near the bound
  EXPECT_LE(a.bias().vector().cwiseAbs().maxCoeff(), bound);
  EXPECT_NE(a.bias().vector().cwiseAbs().maxCoeff(), 0.0f);

  resnet::Rng rng(5);
  c.reset_parameters(rng);  // reset_parameters with the same generator state reproduces the constructor
  EXPECT_EQ(resnet::testing::relative_l2(c.weight(), a.weight()), 0.0);
  EXPECT_EQ(resnet::testing::relative_l2(c.bias(), a.bias()), 0.0);
}

TEST(Conv2d, EvalForwardMatchesTrainingAndBackwardThrows) {
  Conv2d<float> conv(3, 4, 3, 2, 1);
  const Tensor<float> x = random_tensor<float>({2, 3, 7, 9}, 51);
  const Tensor<float> trained = conv.forward(x);
  conv.eval();
  EXPECT_FALSE(conv.is_training());
  const Tensor<float> evaluated = conv.forward(x);
  EXPECT_EQ(resnet::testing::relative_l2(evaluated, trained), 0.0);
  // The eval forward dropped the training cache, so backward has nothing to work with.
  expect_error([&] { conv.backward(evaluated); }, {"Conv2d.backward", "training-mode forward"});
}

TEST(Conv2d, BackwardWithoutForwardThrows) {
  Conv2d<float> conv(3, 4, 3);
  expect_error([&] { conv.backward(Tensor<float>({1, 4, 2, 2})); }, {"Conv2d.backward"});
}

TEST(Conv2d, BadArgumentsThrowNamingTheShapes) {
  Conv2d<float> conv(3, 4, 3);
  expect_error([&] { conv.forward(Tensor<float>({3, 8, 8})); }, {"Conv2d.forward", "[3, 8, 8]"});
  expect_error([&] { conv.forward(Tensor<float>()); }, {"Conv2d.forward", "empty"});
  expect_error(
      [&] {
        conv.forward(Tensor<float>({2, 4, 8, 8}));
      },
      {"Conv2d.forward", "4 channels", "expected 3", "[2, 4, 8, 8]"});
  expect_error(
      [&] {
        conv.forward(Tensor<float>({1, 3, 2, 5}));
      },
      {"Conv2d.forward", "[1, 3, 2, 5]", "empty output", "kernel_size 3"});
  expect_error([&] { conv.forward(Tensor<float>({0, 3, 8, 8})); }, {"Conv2d.forward", "[0, 3, 8, 8]"});

  conv.forward(Tensor<float>({2, 3, 8, 8}));
  expect_error(
      [&] {
        conv.backward(Tensor<float>({2, 4, 8, 8}));
      },
      {"Conv2d.backward", "grad_output", "[2, 4, 8, 8]", "[2, 4, 6, 6]"});
  // A refused call leaves the cache alone: the right gradient is still accepted once.
  EXPECT_EQ(conv.backward(Tensor<float>({2, 4, 6, 6})).shape(), (std::vector<std::int64_t>{2, 3, 8, 8}));
  expect_error(
      [&] {
        conv.backward(Tensor<float>({2, 4, 6, 6}), InputGrad::Skip);
      },
      {"Conv2d.backward", "training-mode"});

  expect_error([] { Conv2d<float>(0, 4, 3); }, {"Conv2d", "in_channels 0"});
  expect_error([] { Conv2d<float>(resnet::nn::Conv2dOptions(3, 4, 3).stride(-2)); },
               {"Conv2d", "stride", "-2"});
  expect_error([] { Conv2d<float>(3, -1, 3); }, {"Conv2d", "out_channels -1"});
  expect_error([] { Conv2d<float>(3, 4, 0); }, {"Conv2d", "kernel_size", "0"});
  expect_error([] { Conv2d<float>(3, 4, 3, 0); }, {"Conv2d", "stride", "0"});
  expect_error([] { Conv2d<float>(3, 4, 3, 1, -1); }, {"Conv2d", "padding", "-1"});
}

TEST(Conv2d, ResultsDoNotDependOnTheThreadCount) {
  const int saved = resnet::num_threads();
  const Tensor<float> x = random_tensor<float>({2, 32, 16, 16}, 61);
  const Tensor<float> dy = random_tensor<float>({2, 64, 16, 16}, 62);
  std::vector<Tensor<float>> results;
  for (int threads : {1, 2}) {
    resnet::set_num_threads(threads);
    for (int groups : {1, 8}) {
      Conv2d<float> conv(Conv2dOptions(32, 64, 3).padding(1).groups(groups).seed(63));
      results.push_back(conv.forward(x));
      results.push_back(conv.backward(dy));
      results.push_back(conv.weight().clone());
      for (auto& p : conv.named_parameters())
        results.push_back(p.grad->clone());
    }
  }
  resnet::set_num_threads(saved);
  const std::size_t half = results.size() / 2;
  for (std::size_t i = 0; i < half; ++i)
    EXPECT_EQ(resnet::testing::relative_l2(results[i], results[half + i]), 0.0) << i;
}

// ---- Linear ----

TEST(Linear, GradientsMatchCentralDifferences) {
  for (bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "with bias" : "without bias");
    Linear<double> linear(7, 5, bias, 3);
    resnet::testing::expect_module_gradients(linear, random_tensor<double>({4, 7}, 71));
  }
}

TEST(Linear, ForwardMatchesDefinition) {
  Linear<float> linear(6, 3, true, 8);
  const Tensor<float> x = random_tensor<float>({4, 6}, 81);
  const Tensor<float> y = linear.forward(x);
  ASSERT_EQ(y.shape(), (std::vector<std::int64_t>{4, 3}));
  for (std::int64_t n = 0; n < 4; ++n)
    for (std::int64_t o = 0; o < 3; ++o) {
      double expected = linear.bias().at({o});
      for (std::int64_t i = 0; i < 6; ++i)
        expected += double(x.at({n, i})) * linear.weight().at({o, i});
      EXPECT_NEAR(y.at({n, o}), expected, 1e-5);
    }
}

TEST(Linear, ParametersInitAndEval) {
  Linear<float> linear(512, 10, true, 9), same(512, 10, true, 9);
  auto params = linear.named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].name, "weight");
  EXPECT_EQ(params[0].value->shape(), (std::vector<std::int64_t>{10, 512}));
  EXPECT_EQ(params[1].name, "bias");
  EXPECT_EQ(params[1].value->shape(), (std::vector<std::int64_t>{10}));
  EXPECT_EQ(Linear<float>(4, 2, false).named_parameters().size(), 1u);

  EXPECT_EQ(resnet::testing::relative_l2(linear.weight(), same.weight()), 0.0);
  const float bound = 1.0f / std::sqrt(512.0f);
  EXPECT_LE(linear.weight().vector().cwiseAbs().maxCoeff(), bound);
  EXPECT_GT(linear.weight().vector().cwiseAbs().maxCoeff(), 0.9f * bound);
  EXPECT_LE(linear.bias().vector().cwiseAbs().maxCoeff(), bound);

  const Tensor<float> x = random_tensor<float>({3, 512}, 91);
  const Tensor<float> trained = linear.forward(x);
  linear.eval();
  const Tensor<float> evaluated = linear.forward(x);
  EXPECT_EQ(resnet::testing::relative_l2(evaluated, trained), 0.0);
  expect_error([&] { linear.backward(evaluated); }, {"Linear.backward", "training-mode forward"});
}

TEST(Linear, BadArgumentsThrowNamingTheShapes) {
  Linear<float> linear(6, 3);
  expect_error([&] { linear.forward(Tensor<float>({2, 6, 1})); }, {"Linear.forward", "[2, 6, 1]"});
  expect_error(
      [&] {
        linear.forward(Tensor<float>({2, 5}));
      },
      {"Linear.forward", "5 features", "expected 6", "[2, 5]"});
  expect_error([&] { linear.forward(Tensor<float>({0, 6})); }, {"Linear.forward", "[0, 6]"});
  expect_error([&] { linear.backward(Tensor<float>({2, 3})); }, {"Linear.backward"});
  linear.forward(Tensor<float>({2, 6}));
  expect_error(
      [&] {
        linear.backward(Tensor<float>({2, 4}));
      },
      {"Linear.backward", "grad_output", "[2, 4]", "[2, 3]"});
  expect_error([] { Linear<float>(0, 3); }, {"Linear", "in_features 0"});
  expect_error([] { Linear<float>(3, -2); }, {"Linear", "out_features -2"});
}
