// Every fast path of the kernels against the plain definition, and results bitwise independent of the
// thread count. Shapes are picked to force each way kernels/conv2d.hpp cuts a batch into work units.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "resnet/core/parallel.hpp"
#include "resnet/core/rng.hpp"
#include "resnet/kernels/batchnorm.hpp"
#include "resnet/kernels/conv2d.hpp"
#include "resnet/models/basic_block.hpp"
#include "resnet/models/resnet.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv_bn.hpp"
#include "resnet/nn/relu.hpp"

namespace {

using resnet::kernels::ConvPartition;
using Epilogue = resnet::kernels::ConvEpilogue<float>;
using resnet::kernels::ConvShape;

std::vector<float> random_vector(std::int64_t n, std::uint64_t seed) {
  resnet::Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v)
    x = static_cast<float>(rng.normal(0.0, 1.0));
  return v;
}

struct Conv {
  std::vector<float> y, dx, dweight, dbias;
};

// The definition, one product at a time in double: y = b + sum w * x, dx = sum w * dy, dw += sum x * dy,
// db += sum dy, over every (n, o, oh, ow, c, ki, kj) whose input position lies inside the image.
Conv plain_conv(const ConvShape& g, const std::vector<float>& x, const std::vector<float>& w,
                const std::vector<float>& b, const std::vector<float>& dy, const std::vector<float>& dw0) {
  const std::int64_t OH = g.OH(), OW = g.OW();
  std::vector<double> y(g.N * g.O * OH * OW), dx(x.size(), 0.0), dw(dw0.begin(), dw0.end()), db(g.O, 0.0);
  for (std::int64_t n = 0; n < g.N; ++n)
    for (std::int64_t o = 0; o < g.O; ++o)
      for (std::int64_t oh = 0; oh < OH; ++oh)
        for (std::int64_t ow = 0; ow < OW; ++ow) {
          const std::int64_t out = ((n * g.O + o) * OH + oh) * OW + ow;
          double sum = b.empty() ? 0.0 : b[o];
          db[o] += dy[out];
          for (std::int64_t c = 0; c < g.C; ++c)
            for (std::int64_t ki = 0; ki < g.k; ++ki)
              for (std::int64_t kj = 0; kj < g.k; ++kj) {
                const std::int64_t h = oh * g.s - g.p + ki, ww = ow * g.s - g.p + kj;
                if (h < 0 || h >= g.H || ww < 0 || ww >= g.W) continue;
                const std::int64_t in = ((n * g.C + c) * g.H + h) * g.W + ww;
                const std::int64_t wi = ((o * g.C + c) * g.k + ki) * g.k + kj;
                sum += double(w[wi]) * x[in];
                dx[in] += double(w[wi]) * dy[out];
                dw[wi] += double(x[in]) * dy[out];
              }
          y[out] = sum;
        }
  auto to_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  return {to_float(y), to_float(dx), to_float(dw), b.empty() ? std::vector<float>{} : to_float(db)};
}

Conv fast_conv(const ConvShape& g, const std::vector<float>& x, const std::vector<float>& w,
               const std::vector<float>& b, const std::vector<float>& dy, const std::vector<float>& dw0) {
  Conv r{std::vector<float>(dy.size()), std::vector<float>(x.size()), dw0,
         std::vector<float>(b.empty() ? 0 : g.O, 0.0f)};
  resnet::kernels::ConvWorkspace<float> ws;
  const resnet::kernels::ConvPlan plan = resnet::kernels::conv_plan<float>(g);
  resnet::kernels::conv2d_forward(plan, x.data(), w.data(),
                                  Epilogue::bias(b.empty() ? nullptr : b.data(), g.O), r.y.data(), ws);
  resnet::kernels::conv2d_backward(plan, x.data(), w.data(), dy.data(), r.dx.data(), r.dweight.data(),
                                   b.empty() ? nullptr : r.dbias.data(), ws);
  // Without dx (a first layer's backward with InputGrad::Skip) the parameter gradients are bitwise the same.
  std::vector<float> dweight = dw0, dbias(r.dbias.size(), 0.0f);
  resnet::kernels::conv2d_backward(plan, x.data(), w.data(), dy.data(), static_cast<float*>(nullptr),
                                   dweight.data(), b.empty() ? nullptr : dbias.data(), ws);
  EXPECT_EQ(dweight, r.dweight) << "dweight without dx";
  EXPECT_EQ(dbias, r.dbias) << "dbias without dx";
  return r;
}

void expect_close(const std::vector<float>& actual, const std::vector<float>& expected, const char* what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (std::size_t i = 0; i < actual.size(); ++i)
    ASSERT_NEAR(actual[i], expected[i], 1e-4 * (1 + std::abs(expected[i]))) << what << " at " << i;
}

struct Case {
  const char* path;
  ConvShape g;
  bool bias;
};

class ConvPaths : public ::testing::TestWithParam<Case> {};

#ifdef RESNET_HAVE_SGEMM_AVX512
struct GemmCase {
  std::int64_t M, N, K;
};

// Runs gemm(transpose_a, transpose_b, M, N, K, 0.5, A, lda, B, ldb, beta, C, ldc) on random operands with
// leading dimensions wider than the operands (or, unless `padded`, exactly as wide), for beta 0 (C full of
// NaN, which must not be read), 1 and -2, and checks C against a double product relative to the sum of the
// terms' magnitudes, and that C's padding columns are left alone.
template <typename Gemm>
void expect_gemm_matches_double(const GemmCase& c, bool ta, bool tb, Gemm gemm, bool padded = true) {
  const std::int64_t lda = (ta ? c.M : c.K) + (padded ? 3 : 0), ldb = (tb ? c.K : c.N) + (padded ? 5 : 0),
                     ldc = c.N + (padded ? 7 : 0);
  const auto A = random_vector((ta ? c.K : c.M) * lda, 1), B = random_vector((tb ? c.N : c.K) * ldb, 2);
  const auto C0 = random_vector(c.M * ldc, 3);
  for (float beta : {0.0f, 1.0f, -2.0f}) {
    std::vector<float> C = C0;
    if (beta == 0.0f) std::fill(C.begin(), C.end(), std::nanf(""));  // beta == 0: C is not read
    gemm(ta, tb, c.M, c.N, c.K, 0.5f, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
    double worst = 0;
    for (std::int64_t i = 0; i < c.M; ++i) {
      for (std::int64_t j = 0; j < c.N; ++j) {
        double expected = beta == 0.0f ? 0.0 : double(beta) * C0[i * ldc + j], scale = std::abs(expected);
        for (std::int64_t l = 0; l < c.K; ++l) {
          const double term = 0.5 * A[ta ? l * lda + i : i * lda + l] * B[tb ? j * ldb + l : l * ldb + j];
          expected += term;
          scale += std::abs(term);
        }
        worst = std::max(worst, std::abs(C[i * ldc + j] - expected) / (scale + 1e-30));
      }
    }
    EXPECT_LT(worst, 1e-6) << c.M << "x" << c.N << "x" << c.K << " transpose_a " << ta << " transpose_b "
                           << tb << " beta " << beta;
    if (beta == 0.0f) continue;
    for (std::int64_t i = 0; i < c.M; ++i) {  // the padding columns of C are never written
      for (std::int64_t j = c.N; j < ldc; ++j)
        ASSERT_EQ(C[i * ldc + j], C0[i * ldc + j]);
    }
  }
}

TEST(SgemmAvx512, MatchesADoubleProductOnEveryTransposeEdgeAndBlock) {
  if (!resnet::kernels::avx512::cpu_supported()) GTEST_SKIP() << "this CPU has no AVX-512F";
  namespace avx512 = resnet::kernels::avx512;
  // Partial tiles, several row / depth / column blocks.
  const GemmCase cases[] = {{1, 1, 1},
                            {13, 33, 2 * avx512::kDepthBlock + 3},
                            {avx512::kRowBlock + 1, 40, 300},
                            {12, avx512::kColumnBlock + 33, 5},
                            {30, 70, 520},
                            {7, 57, 21}};  // a last column panel of 25: two 16-column halves, one partial
  for (const GemmCase& c : cases) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true})
        expect_gemm_matches_double(c, ta, tb, avx512::sgemm);
    }
  }
}

// Partial panels of A (rows not a multiple of 32, fewer than 16 in the last), every tile width from 1 to 12
// and the most columns, one and several depth blocks, depths not a multiple of 16.
std::vector<GemmCase> narrow_gemm_cases() {
  namespace avx512 = resnet::kernels::avx512;
  std::vector<GemmCase> cases = {
      {avx512::kNarrowPanelRows + 5, 13, 17},  {avx512::kNarrowPanelRows - 1, 11, avx512::kNarrowDepthBlock},
      {64, 49, 2 * avx512::kNarrowDepthBlock}, {70, 196, 2 * avx512::kNarrowDepthBlock + 7},
      {16, avx512::kNarrowMaxColumns, 40},     {3, 7, 3 * avx512::kNarrowDepthBlock + 16}};
  for (std::int64_t width = 1; width <= avx512::kNarrowTileColumns; ++width)
    cases.push_back({5, width, 20});
  return cases;
}

TEST(SgemmAvx512, NarrowMatchesADoubleProductOnEveryEdgeAndBlock) {
  if (!resnet::kernels::avx512::cpu_supported()) GTEST_SKIP() << "this CPU has no AVX-512F";
  namespace avx512 = resnet::kernels::avx512;
  const auto narrow = [](bool, bool, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
                         const float* A, std::int64_t lda, const float* B, std::int64_t ldb, float beta,
                         float* C, std::int64_t ldc) {
    avx512::sgemm_narrow(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  };
  for (const GemmCase& c : narrow_gemm_cases()) {
    for (bool padded : {true, false})
      expect_gemm_matches_double(c, false, false, narrow, padded);
  }
  EXPECT_THROW(narrow(false, false, 1, avx512::kNarrowMaxColumns + 1, 1, 1.0f, nullptr, 1, nullptr,
                      avx512::kNarrowMaxColumns + 1, 0.0f, nullptr, avx512::kNarrowMaxColumns + 1),
               resnet::Error);
}

// A packed ahead (pack_gemm_a, as an eval-mode conv packs its weight) gives bitwise what packing it as the
// kernel goes gives, on every shape of the narrow test; packed A must be aligned and fit the kernel.
TEST(SgemmAvx512, PackedAGivesBitwiseTheResultsOfPackingAsItGoes) {
  if (!resnet::kernels::avx512::cpu_supported()) GTEST_SKIP() << "this CPU has no AVX-512F";
  namespace kernels = resnet::kernels;
  for (const GemmCase& c : narrow_gemm_cases()) {
    const std::int64_t lda = c.K + 3, ldc = c.N + 2;
    const auto A = random_vector(c.M * lda, 1), B = random_vector(c.K * c.N, 2),
               C0 = random_vector(c.M * ldc, 3);
    auto packed = resnet::Tensor<float>::uninitialized({kernels::packed_gemm_a_size<float>(c.M, c.K)});
    kernels::pack_gemm_a(A.data(), lda, c.M, c.K, packed.data());
    for (float beta : {0.0f, -2.0f}) {
      std::vector<float> expected = C0, actual = C0;
      kernels::gemm(false, false, c.M, c.N, c.K, 0.5f, A.data(), lda, B.data(), c.N, beta, expected.data(),
                    ldc);
      kernels::gemm_packed_a(c.M, c.N, c.K, 0.5f, packed.cdata(), B.data(), c.N, beta, actual.data(), ldc);
      EXPECT_EQ(actual, expected) << c.M << "x" << c.N << "x" << c.K << " beta " << beta;
    }
  }
  const auto packed = resnet::Tensor<float>::uninitialized({kernels::packed_gemm_a_size<float>(8, 8) + 1});
  std::vector<float> B(8 * 300), C(8 * 300);
  EXPECT_THROW(kernels::gemm_packed_a(8, 8, 8, 1.0f, packed.data() + 1, B.data(), 8, 0.0f, C.data(), 8),
               resnet::Error);  // not 64-byte aligned
  EXPECT_THROW(kernels::gemm_packed_a(8, 256, 8, 1.0f, packed.data(), B.data(), 256, 0.0f, C.data(), 256),
               resnet::Error);  // too many columns for the narrow kernel
  EXPECT_THROW(kernels::packed_gemm_a_size<double>(8, 8), resnet::Error);
}

// kernels::gemm sends the narrow kernel fewer than 256 columns and Eigen the rest: both sides of the edge.
TEST(SgemmAvx512, GemmIsRightOnBothSidesOfTheNarrowKernelsEdge) {
  namespace avx512 = resnet::kernels::avx512;
  for (std::int64_t N : {avx512::kNarrowMaxColumns, avx512::kNarrowMaxColumns + 1}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true})
        expect_gemm_matches_double({33, N, 70}, ta, tb,
                                   [](auto... arguments) { resnet::kernels::gemm<float>(arguments...); });
    }
  }
}
#endif

TEST_P(ConvPaths, MatchThePlainDefinitionAndIgnoreTheThreadCount) {
  const auto [path, g, bias] = GetParam();
  const auto x = random_vector(g.N * g.C * g.H * g.W, 1);
  const auto w = random_vector(g.O * g.CKK(), 2);
  const auto b = bias ? random_vector(g.O, 3) : std::vector<float>{};
  const auto dy = random_vector(g.N * g.O * g.OHW(), 4);
  const auto dw0 = random_vector(g.O * g.CKK(), 5);  // backward adds to what is there
  const Conv expected = plain_conv(g, x, w, b, dy, dw0);

  const int threads_before = resnet::num_threads();
  std::vector<Conv> runs;
  for (int threads : {1, 2, 3}) {
    resnet::set_num_threads(threads);
    runs.push_back(fast_conv(g, x, w, b, dy, dw0));
  }
  resnet::set_num_threads(threads_before);

  SCOPED_TRACE(path);
  expect_close(runs[0].y, expected.y, "y");
  expect_close(runs[0].dx, expected.dx, "dx");
  expect_close(runs[0].dweight, expected.dweight, "dweight");
  expect_close(runs[0].dbias, expected.dbias, "dbias");
  for (std::size_t r = 1; r < runs.size(); ++r) {
    EXPECT_EQ(runs[r].y, runs[0].y) << "threads changed y";
    EXPECT_EQ(runs[r].dx, runs[0].dx) << "threads changed dx";
    EXPECT_EQ(runs[r].dweight, runs[0].dweight) << "threads changed dweight";
    EXPECT_EQ(runs[r].dbias, runs[0].dbias) << "threads changed dbias";
  }
}

// {N, C, H, W, O, k, s, p}
INSTANTIATE_TEST_SUITE_P(
    Partitions, ConvPaths,
    ::testing::Values(
        Case{"one large image sliced into pixel pieces", {1, 3, 40, 40, 8, 3, 1, 1}, true},
        Case{"one small image split into channel blocks", {1, 8, 6, 6, 128, 3, 1, 1}, false},
        Case{"channel blocks sharing cols, fewer channels than chunks", {1, 3, 12, 12, 64, 3, 1, 1}, true},
        Case{"channel blocks sharing cols of two pixel pieces", {1, 6, 21, 29, 64, 3, 1, 1}, false},
        Case{"channel blocks sharing cols, pointwise, several images", {3, 20, 10, 10, 64, 1, 1, 0}, true},
        Case{"channel blocks sharing gathered cols of several images", {2, 12, 8, 8, 128, 3, 2, 1}, false},
        Case{"channel blocks sharing cols by rows", {1, 10, 40, 40, 64, 3, 2, 1}, true},
        Case{"several images per unit, ragged last group", {40, 4, 8, 8, 8, 3, 2, 1}, true},
        Case{"pointwise, one image per unit", {3, 8, 20, 20, 16, 1, 1, 0}, true},
        Case{"pointwise, several images per unit", {5, 8, 6, 6, 16, 1, 1, 0}, false},
        Case{"strided 1x1 downsampling", {6, 8, 9, 9, 16, 1, 2, 0}, false},
        Case{"7x7 stride 2 stem", {2, 3, 23, 23, 8, 7, 2, 3}, false},
        Case{"7x7 stride 2, im2col by rows", {2, 3, 40, 38, 8, 7, 2, 3}, true},
        Case{"stride 2, im2col by rows in pixel pieces", {1, 3, 70, 70, 8, 3, 2, 1}, false},
        Case{"padding wider than the kernel", {3, 2, 7, 9, 4, 2, 3, 2}, true},
        Case{"stride 1 without padding, dX through col2im", {2, 3, 7, 8, 5, 3, 1, 0}, true},
        Case{"dX as a conv, same padding", {2, 16, 9, 8, 5, 3, 1, 1}, false},
        Case{"dX as a conv, no padding", {2, 16, 10, 11, 5, 3, 1, 0}, true},
        Case{"dX as a conv, even kernel", {2, 16, 9, 9, 4, 2, 1, 1}, false},
        Case{"Winograd, several images per unit, ragged", {25, 16, 8, 9, 24, 3, 1, 1}, true},
        Case{"Winograd, one image in tile-row slices", {1, 16, 60, 58, 16, 3, 1, 1}, false},
        Case{"Winograd, no padding (dX with padding 2)", {12, 16, 10, 11, 20, 3, 1, 0}, true},
        Case{"Winograd, padding 2", {13, 16, 6, 6, 16, 3, 1, 2}, false},
        Case{"Winograd on 4x4 maps, dX as a conv too", {40, 16, 4, 4, 24, 3, 1, 1}, true}));

TEST(ConvPartition, CoversEveryPathTheCasesClaim) {
  EXPECT_GT(ConvPartition::of({1, 3, 40, 40, 8, 3, 1, 1}, true).pieces, 1);
  const ConvShape strided{1, 3, 70, 70, 8, 3, 2, 1};
  EXPECT_GT(ConvPartition::of(strided, true).pieces, 1);
  EXPECT_TRUE(resnet::kernels::im2col_by_rows(strided.OW()));
  EXPECT_FALSE(resnet::kernels::im2col_by_rows(ConvShape{2, 3, 23, 23, 8, 7, 2, 3}.OW()));
  EXPECT_GT(ConvPartition::of({1, 8, 6, 6, 128, 3, 1, 1}, true).row_blocks, 1);
  for (const ConvShape& g : {ConvShape{1, 3, 12, 12, 64, 3, 1, 1}, ConvShape{1, 6, 21, 29, 64, 3, 1, 1},
                             ConvShape{3, 20, 10, 10, 64, 1, 1, 0}, ConvShape{2, 12, 8, 8, 128, 3, 2, 1},
                             ConvShape{1, 10, 40, 40, 64, 3, 2, 1}})
    EXPECT_GT(ConvPartition::of(g, true).row_blocks, 1) << "shared cols for " << g.C << "x" << g.H;
  EXPECT_EQ(ConvPartition::of({1, 6, 21, 29, 64, 3, 1, 1}, true).pieces, 2);
  EXPECT_EQ(ConvPartition::of({3, 20, 10, 10, 64, 1, 1, 0}, true).images, 3);
  EXPECT_FALSE(resnet::kernels::im2col_by_rows(ConvShape{2, 12, 8, 8, 128, 3, 2, 1}.OW()));
  EXPECT_TRUE(resnet::kernels::im2col_by_rows(ConvShape{1, 10, 40, 40, 64, 3, 2, 1}.OW()));
  EXPECT_FALSE(resnet::kernels::use_winograd({1, 8, 6, 6, 128, 3, 1, 1}));
  for (const ConvShape& g : {ConvShape{25, 16, 8, 9, 24, 3, 1, 1}, ConvShape{1, 16, 60, 58, 16, 3, 1, 1},
                             ConvShape{12, 16, 10, 11, 20, 3, 1, 0}, ConvShape{12, 20, 8, 9, 16, 3, 1, 2},
                             ConvShape{13, 16, 6, 6, 16, 3, 1, 2}, ConvShape{40, 16, 4, 4, 24, 3, 1, 1}})
    EXPECT_TRUE(resnet::kernels::use_winograd(g)) << g.N << "x" << g.C << "x" << g.H << "x" << g.W;
  const auto ragged = resnet::kernels::winograd::Partition::of(25, 8, 9);
  EXPECT_EQ(ragged.groups, 4);  // 500 tiles: 3 groups of about 192, made even for two threads
  EXPECT_EQ(ragged.images, 7);
  EXPECT_GT(resnet::kernels::winograd::Partition::of(1, 60, 58).slices, 1);
  // Every tile-row slice holds at least one row and together they hold all, also where rounding the slice
  // size up leaves fewer slices than first planned (5 tile rows: 3 slices of 2, not 4).
  for (std::int64_t OH : {1, 2, 9, 10, 33, 60, 111}) {
    for (std::int64_t OW : {1, 8, 58, 640, 2000}) {
      const auto part = resnet::kernels::winograd::Partition::of(1, OH, OW);
      EXPECT_GE(part.slices * part.slice_rows, part.tile_rows) << OH << "x" << OW;
      EXPECT_LT((part.slices - 1) * part.slice_rows, part.tile_rows) << OH << "x" << OW;
    }
  }
  const ConvPartition grouped = ConvPartition::of({40, 4, 8, 8, 8, 3, 2, 1}, false);
  EXPECT_GT(grouped.images, 1);
  EXPECT_EQ(grouped.groups, 3);
  EXPECT_GT(ConvPartition::of({5, 8, 6, 6, 16, 1, 1, 0}, false).images, 1);
}

// Winograd F(2x2, 3x3) against im2col + GEMM, forward and weight gradient, on shapes the dispatcher would
// not give it too: odd and tiny maps (partial edge tiles), every padding it takes, one image and several,
// and tile-row slices of an odd-sized map at paddings 0 and 2.
TEST(Winograd, EqualsIm2colOnEveryPaddingAndEdgeTile) {
  for (const ConvShape& g : {ConvShape{1, 3, 1, 1, 2, 3, 1, 1}, ConvShape{2, 5, 3, 4, 7, 3, 1, 0},
                             ConvShape{3, 4, 7, 5, 6, 3, 1, 1}, ConvShape{1, 8, 9, 9, 3, 3, 1, 2},
                             ConvShape{40, 6, 4, 4, 5, 3, 1, 1}, ConvShape{1, 2, 10, 640, 2, 3, 1, 1},
                             ConvShape{1, 3, 41, 40, 2, 3, 1, 0}, ConvShape{1, 2, 37, 36, 3, 3, 1, 2}}) {
    const auto x = random_vector(g.N * g.C * g.H * g.W, 1), w = random_vector(g.O * g.CKK(), 2);
    const auto b = random_vector(g.O, 3);
    std::vector<float> expected(static_cast<std::size_t>(g.N * g.O * g.OHW())), actual(expected.size());
    resnet::kernels::ConvWorkspace<float> ws;
    resnet::kernels::conv2d_forward_im2col(x.data(), w.data(), Epilogue::bias(b.data(), g.O), g,
                                           expected.data(), ws);
    resnet::kernels::conv2d_forward_winograd(x.data(), w.data(), Epilogue::bias(b.data(), g.O), g.N, g.C, g.H,
                                             g.W, g.O, g.p, actual.data(), ws.scratch);
    expect_close(actual, expected, "winograd y");

    const auto dy = random_vector(g.N * g.O * g.OHW(), 4);
    auto expected_dw = random_vector(g.O * g.CKK(), 5), actual_dw = expected_dw;  // both add to it
    resnet::kernels::conv2d_backward_im2col(x.data(), w.data(), dy.data(), g, static_cast<float*>(nullptr),
                                            expected_dw.data(), ws);
    resnet::kernels::conv2d_weight_grad_winograd(x.data(), dy.data(), g.N, g.C, g.H, g.W, g.O, g.p,
                                                 actual_dw.data(), ws.scratch);
    expect_close(actual_dw, expected_dw, "winograd dweight");
  }
}

// The block-copy im2col of "same" convolutions equals the gather one on every pixel range, including ranges
// that start or end inside a row, and never reads outside the image (the ASan build checks that).
TEST(Im2colSame, EqualsTheGatherOnEveryPixelRange) {
  for (auto [H, W, k] :
       std::vector<std::array<std::int64_t, 3>>{{5, 7, 3}, {4, 4, 1}, {9, 6, 5}, {3, 8, 3}}) {
    const std::int64_t C = 2, p = (k - 1) / 2, HW = H * W, KK = k * k;
    ASSERT_TRUE(resnet::kernels::is_same_convolution(k, 1, p));
    const auto image = random_vector(C * HW, 8);
    std::vector<std::int32_t> offsets(static_cast<std::size_t>(KK * HW));
    resnet::kernels::im2col_offsets(H, W, k, 1, p, 0, HW, offsets.data());
    for (auto [q0, q1] : std::vector<std::array<std::int64_t, 2>>{{0, HW}, {3, HW - 2}, {W + 1, 2 * W - 1}}) {
      const std::int64_t width = q1 - q0, ld = width + 3;
      std::vector<float> fast(static_cast<std::size_t>(C * KK * ld), -7.0f), gather = fast;
      resnet::kernels::im2col_same(image.data(), C, H, W, k, p, q0, q1, fast.data(), ld);
      resnet::kernels::im2col(image.data(), C, HW, KK, offsets.data() + q0, HW, width, gather.data(), ld);
      EXPECT_EQ(fast, gather) << H << "x" << W << " k " << k << " pixels [" << q0 << ", " << q1 << ")";
    }
  }
}

// H, W, k, s, p for the row-by-row im2col and for col2im: strides 1 to 3, paddings wider than the kernel's
// half, kernels wider than the stride, a 1x1 stride-2 conv, a 7x7 stride-2 stem, and maps narrower than the
// kernel's reach (a window column lies right of the whole map).
std::vector<std::array<std::int64_t, 5>> row_geometries() {
  return {{23, 23, 7, 2, 3}, {9, 12, 3, 2, 1}, {8, 8, 1, 2, 0}, {7, 10, 3, 3, 2}, {6, 5, 2, 1, 1},
          {5, 9, 3, 1, 0},   {1, 1, 3, 2, 1},  {1, 5, 3, 2, 1}, {3, 3, 7, 2, 3},  {6, 2, 4, 2, 1}};
}

// col2im by rows equals the adjoint written out, bitwise: each pixel adds its columns in kernel-offset order
// to what the image holds, on strided, over-padded and wide-kernel geometries and a row stride past OH*OW.
TEST(Col2im, AddsEveryColumnToItsPixelInKernelOffsetOrder) {
  for (auto [H, W, k, s, p] : row_geometries()) {
    const std::int64_t C = 2, OH = resnet::kernels::window_output_size(H, k, s, p);
    const std::int64_t OW = resnet::kernels::window_output_size(W, k, s, p), ld = OH * OW + 3;
    const auto cols = random_vector(C * k * k * ld, 10);
    auto actual = random_vector(C * H * W, 11), expected = actual;
    resnet::kernels::col2im(cols.data(), ld, C, H, W, k, s, p, actual.data());
    for (std::int64_t c = 0; c < C; ++c) {
      for (std::int64_t ki = 0; ki < k; ++ki) {
        for (std::int64_t kj = 0; kj < k; ++kj) {
          for (std::int64_t q = 0; q < OH * OW; ++q) {
            const std::int64_t h = q / OW * s - p + ki, w = q % OW * s - p + kj;
            if (h >= 0 && h < H && w >= 0 && w < W)
              expected[(c * H + h) * W + w] += cols[((c * k + ki) * k + kj) * ld + q];
          }
        }
      }
    }
    EXPECT_EQ(actual, expected) << H << "x" << W << " k " << k << " s " << s << " p " << p;
  }
}

// The row-by-row im2col equals the gather, also on pixel ranges that start and end inside an output row.
TEST(Im2colRows, EqualsTheGatherOnEveryGeometryAndPixelRange) {
  for (auto [H, W, k, s, p] : row_geometries()) {
    const std::int64_t C = 2, KK = k * k;
    const std::int64_t OW = resnet::kernels::window_output_size(W, k, s, p);
    const std::int64_t OHW = resnet::kernels::window_output_size(H, k, s, p) * OW;
    const auto image = random_vector(C * H * W, 9);
    std::vector<std::int32_t> offsets(static_cast<std::size_t>(KK * OHW));
    resnet::kernels::im2col_offsets(H, W, k, s, p, 0, OHW, offsets.data());
    for (auto [q0, q1] :
         std::vector<std::array<std::int64_t, 2>>{{0, OHW}, {1, OHW - 1}, {OW + 1, 2 * OW + 1}}) {
      if (q1 <= q0 || q1 > OHW) continue;
      const std::int64_t width = q1 - q0, ld = width + 3;
      std::vector<float> rows(static_cast<std::size_t>(C * KK * ld), -7.0f), gather = rows;
      resnet::kernels::im2col_rows(image.data(), C, H, W, k, s, p, q0, q1, rows.data(), ld);
      resnet::kernels::im2col(image.data(), C, H * W, KK, offsets.data() + q0, OHW, width, gather.data(), ld);
      EXPECT_EQ(rows, gather) << H << "x" << W << " k " << k << " s " << s << " p " << p << " pixels [" << q0
                              << ", " << q1 << ")";
    }
  }
}

resnet::Tensor<float> random_tensor(std::vector<std::int64_t> shape, std::uint64_t seed) {
  resnet::Rng rng(seed);
  resnet::Tensor<float> t(std::move(shape));
  t.fill_normal(rng);
  return t;
}

std::vector<float> values(const resnet::Tensor<float>& t) {
  return {t.data(), t.data() + t.numel()};
}

// Every parameter gradient of a module, concatenated in named_parameters order.
template <typename Module>
std::vector<float> gradients(Module& m) {
  std::vector<float> all;
  for (const auto& p : m.named_parameters())
    all.insert(all.end(), p.grad->data(), p.grad->data() + p.grad->numel());
  return all;
}

// The BatchNorm kernels reduce small maps several channels at a time (kernels/batchnorm.hpp), in each
// channel's own fixed order: every channel must come out bitwise as if it were the only one, on blocks of
// 16 channels with a ragged end, on fewer channels than a block, and on one channel per block.
TEST(BatchNormKernels, EachChannelComesOutAsIfAlone) {
  for (auto [N, C, HW] : std::vector<std::array<std::int64_t, 3>>{{3, 21, 16}, {2, 7, 5}, {2, 3, 300}}) {
    const auto x = random_vector(N * C * HW, 11), dy = random_vector(N * C * HW, 12);
    const auto relu_output = random_vector(N * C * HW, 13), gamma = random_vector(C, 14);
    std::vector<float> mean(C), var(C), invstd(C), dgamma(C), dbeta(C), dx(x.size());
    resnet::kernels::batchnorm_statistics(x.data(), N, C, HW, mean.data(), var.data());
    resnet::kernels::batchnorm_invstd(var.data(), 1e-5, C, invstd.data());
    resnet::kernels::batchnorm_backward(x.data(), dy.data(), mean.data(), invstd.data(), gamma.data(), N, C,
                                        HW, dx.data(), dgamma.data(), dbeta.data(), relu_output.data());
    for (std::int64_t c = 0; c < C; ++c) {
      std::vector<float> xc(N * HW), dyc(N * HW), rc(N * HW), dxc(N * HW);
      for (std::int64_t n = 0; n < N; ++n) {
        const std::int64_t at = (n * C + c) * HW;
        std::copy_n(x.begin() + at, HW, xc.begin() + n * HW);
        std::copy_n(dy.begin() + at, HW, dyc.begin() + n * HW);
        std::copy_n(relu_output.begin() + at, HW, rc.begin() + n * HW);
      }
      float m = 0, v = 0, istd = 0, dg = 0, db = 0;
      resnet::kernels::batchnorm_statistics(xc.data(), N, 1, HW, &m, &v);
      resnet::kernels::batchnorm_invstd(&v, 1e-5, 1, &istd);
      resnet::kernels::batchnorm_backward(xc.data(), dyc.data(), &m, &istd, &gamma[c], N, 1, HW, dxc.data(),
                                          &dg, &db, rc.data());
      const std::string where = "N=" + std::to_string(N) + " C=" + std::to_string(C) +
                                " HW=" + std::to_string(HW) + " channel " + std::to_string(c);
      EXPECT_EQ(mean[c], m) << where;
      EXPECT_EQ(var[c], v) << where;
      EXPECT_EQ(dgamma[c], dg) << where;
      EXPECT_EQ(dbeta[c], db) << where;
      for (std::int64_t n = 0; n < N; ++n) {
        for (std::int64_t i = 0; i < HW; ++i)
          ASSERT_EQ(dx[(n * C + c) * HW + i], dxc[n * HW + i]) << where << " image " << n << " value " << i;
      }
    }
  }
}

// The fused BatchNorm + ReLU is the same arithmetic as the two modules one after the other, so it must agree
// bitwise, in both passes and in the parameter gradients.
TEST(BatchNormRelu, FusedPassesEqualBatchNormThenReLU) {
  const auto x = random_tensor({3, 5, 4, 6}, 1), dy = random_tensor({3, 5, 4, 6}, 2);
  resnet::nn::BatchNorm2d<float> fused(5), plain(5);
  resnet::nn::ReLU<float> relu;
  const auto y_fused = fused.forward(x, resnet::nn::Activation::ReLU);
  const auto y_plain = relu.forward(plain.forward(x));
  EXPECT_EQ(values(y_fused), values(y_plain));
  EXPECT_EQ(values(fused.backward(dy, y_fused)), values(plain.backward(relu.backward(dy))));
  EXPECT_EQ(gradients(fused), gradients(plain));
  EXPECT_EQ(values(fused.running_mean()), values(plain.running_mean()));
  EXPECT_THROW(resnet::nn::BatchNorm2d<float>(5).backward(dy, y_fused), resnet::Error);
  fused.forward(x, resnet::nn::Activation::ReLU);
  EXPECT_THROW(fused.backward(dy, random_tensor({3, 5, 4, 5}, 3)), resnet::Error);
}

// BasicBlock (fused ReLUs) against the same block composed from the plain modules.
TEST(BasicBlockFusion, EqualsThePlainComposition) {
  for (int stride : {1, 2}) {
    const int in = 4, out = stride == 1 ? 4 : 6;
    resnet::nn::BasicBlock<float> block(in, out, stride, 7);
    resnet::nn::Conv2d<float> conv1(in, out, 3, stride, 1, false, 7), conv2(out, out, 3, 1, 1, false, 8),
        down(in, out, 1, stride, 0, false, 9);
    resnet::nn::BatchNorm2d<float> bn1(out), bn2(out), down_bn(out);
    resnet::nn::ReLU<float> relu1, relu2;
    const auto x = random_tensor({2, in, 7, 7}, 4);
    const auto y = block.forward(x);
    const auto shortcut = block.has_downsample() ? down_bn.forward(down.forward(x)) : x;
    const auto residual = bn2.forward(conv2.forward(relu1.forward(bn1.forward(conv1.forward(x)))));
    resnet::Tensor<float> sum(residual.shape());
    for (std::int64_t i = 0; i < sum.numel(); ++i)
      sum[i] = residual[i] + shortcut[i];
    EXPECT_EQ(values(y), values(relu2.forward(sum))) << "stride " << stride;

    const auto dy = random_tensor(y.shape(), 5);
    const auto dx = block.backward(dy);
    const auto dsum = relu2.backward(dy);
    auto dx_plain = conv1.backward(bn1.backward(relu1.backward(conv2.backward(bn2.backward(dsum)))));
    const auto dshortcut = block.has_downsample() ? down.backward(down_bn.backward(dsum)) : dsum;
    for (std::int64_t i = 0; i < dx_plain.numel(); ++i)
      dx_plain[i] += dshortcut[i];
    EXPECT_EQ(values(dx), values(dx_plain)) << "stride " << stride;
    EXPECT_EQ(gradients(block.conv1()), gradients(conv1)) << "stride " << stride;
    EXPECT_EQ(gradients(block.bn1()), gradients(bn1)) << "stride " << stride;
    EXPECT_EQ(gradients(block.conv2()), gradients(conv2)) << "stride " << stride;
    EXPECT_EQ(gradients(block.bn2()), gradients(bn2)) << "stride " << stride;
  }
}

void expect_near_values(const resnet::Tensor<float>& actual, const resnet::Tensor<float>& expected,
                        const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  for (std::int64_t i = 0; i < actual.numel(); ++i)
    ASSERT_NEAR(actual[i], expected[i], 1e-5 * (1 + std::abs(expected[i]))) << what << " at " << i;
}

// Running statistics and affine parameters far from the identity, so that a missed scale or shift shows.
void randomize_eval_state(resnet::nn::BatchNorm2d<float>& bn, std::uint64_t seed) {
  const std::int64_t C = bn.num_features();
  bn.weight() = random_tensor({C}, seed);
  bn.bias() = random_tensor({C}, seed + 1);
  bn.running_mean() = random_tensor({C}, seed + 2);
  bn.running_var() = random_tensor({C}, seed + 3);
  for (std::int64_t c = 0; c < C; ++c)
    bn.running_var()[c] = 0.5f + std::abs(bn.running_var()[c]);
}

// In eval mode BasicBlock lets each conv apply the BatchNorm after it as it stores its output (ConvBn), on
// every path of the conv kernels: im2col with one image per unit and
// with several, Winograd, the strided conv and the downsampling 1x1.
TEST(BasicBlockFusion, EvalEqualsThePlainComposition) {
  struct Config {
    int in, out, stride;
    std::int64_t N, H;
  };
  for (const Config& c :
       {Config{4, 4, 1, 2, 7}, Config{4, 4, 1, 2, 16}, Config{16, 16, 1, 4, 12}, Config{16, 24, 2, 8, 16}}) {
    resnet::nn::BasicBlock<float> block(c.in, c.out, c.stride, 7);
    resnet::nn::Conv2d<float> conv1(c.in, c.out, 3, c.stride, 1, false, 7),
        conv2(c.out, c.out, 3, 1, 1, false, 8), down(c.in, c.out, 1, c.stride, 0, false, 9);
    resnet::nn::BatchNorm2d<float> bn1(c.out), bn2(c.out), down_bn(c.out);
    std::uint64_t seed = 20;
    for (auto [fused, plain] : {std::pair{&block.bn1(), &bn1}, {&block.bn2(), &bn2}}) {
      randomize_eval_state(*fused, seed);
      randomize_eval_state(*plain, seed);
      seed += 4;
    }
    if (block.has_downsample()) {
      randomize_eval_state(block.downsample_bn(), seed);
      randomize_eval_state(down_bn, seed);
    }
    block.eval();
    conv1.eval(), conv2.eval(), down.eval(), bn1.eval(), bn2.eval(), down_bn.eval();
    resnet::nn::ReLU<float> relu;
    const auto x = random_tensor({c.N, c.in, c.H, c.H}, 4);
    const auto shortcut = block.has_downsample() ? down_bn.forward(down.forward(x)) : x;
    const auto residual = bn2.forward(conv2.forward(relu.forward(bn1.forward(conv1.forward(x)))));
    resnet::Tensor<float> sum(residual.shape());
    for (std::int64_t i = 0; i < sum.numel(); ++i)
      sum[i] = residual[i] + shortcut[i];
    expect_near_values(
        block.forward(x), relu.forward(sum),
        "block " + std::to_string(c.in) + "->" + std::to_string(c.out) + " at " + std::to_string(c.H));
  }
}

// A conv with a bias: the epilogue's scale applies to the bias too, s * (conv + b) + t, then the ReLU.
// Training refuses an epilogue (backward would not know it); one of the wrong length is refused.
TEST(ConvEpilogue, ScalesTheBiasAndIsForEvalOnly) {
  resnet::nn::Conv2d<float> conv(3, 5, 3, 1, 1, true, 3);
  const auto x = random_tensor({2, 3, 6, 6}, 5);
  const auto scale = random_tensor({5}, 41), shift = random_tensor({5}, 42);
  const Epilogue epilogue{scale.cdata(), shift.cdata(), /*relu=*/true, 5};
  EXPECT_THROW(conv.forward(x, epilogue), resnet::Error);
  conv.eval();
  resnet::Tensor<float> expected = conv.forward(x);  // with the bias
  const std::int64_t plane = 6 * 6;
  for (std::int64_t i = 0; i < expected.numel(); ++i) {
    const std::int64_t o = i / plane % 5;
    expected[i] = std::max(0.0f, scale[o] * expected[i] + shift[o]);
  }
  expect_near_values(conv.forward(x, epilogue), expected, "bias");
  EXPECT_THROW(conv.forward(x, Epilogue{scale.cdata(), shift.cdata(), false, 4}), resnet::Error);
}

// ConvBn in training mode is conv -> BatchNorm -> ReLU module by module, bitwise, in forward, backward and
// every gradient: with the conv's input cached or given back (Cache::None), with its output recomputed
// (output_again) or passed, with or without the input gradient.
TEST(ConvBn, TrainingEqualsTheModulesOneAfterTheOther) {
  using resnet::nn::Activation;
  using resnet::nn::InputGrad;
  for (Activation activation : {Activation::ReLU, Activation::None}) {
    for (bool given_input : {false, true}) {
      for (InputGrad input_grad : {InputGrad::Compute, InputGrad::Skip}) {
        const auto options = resnet::nn::Conv2dOptions(3, 5, 3).stride(2).padding(1).bias(false).seed(8);
        resnet::nn::ConvBn<float> unit(options, activation);
        resnet::nn::Conv2d<float> conv(options);
        resnet::nn::BatchNorm2d<float> bn(5);
        resnet::nn::ReLU<float> relu;
        const auto x = random_tensor({2, 3, 9, 9}, 6);
        const auto y = unit.forward(x, given_input ? resnet::nn::Cache::None : resnet::nn::Cache::Input);
        auto y_plain = bn.forward(conv.forward(x));
        if (activation == Activation::ReLU) {
          y_plain = relu.forward(y_plain);
          EXPECT_EQ(values(unit.output_again()), values(y)) << "output_again";
        } else {
          EXPECT_THROW(unit.output_again(), resnet::Error);
        }
        EXPECT_EQ(values(y), values(y_plain));
        const auto dy = random_tensor(y.shape(), 7);
        const resnet::Tensor<float> dx =
            unit.backward(dy, resnet::Tensor<float>(), input_grad, given_input ? x : resnet::Tensor<float>());
        const auto dx_plain =
            conv.backward(bn.backward(activation == Activation::ReLU ? relu.backward(dy) : dy));
        if (input_grad == InputGrad::Compute) {
          EXPECT_EQ(values(dx), values(dx_plain));
        } else {
          EXPECT_TRUE(dx.empty());
        }
        EXPECT_EQ(gradients(unit.conv()), gradients(conv));
        EXPECT_EQ(gradients(unit.bn()), gradients(bn));
      }
    }
  }
  // After a forward that cached its input, a given one is refused; after Cache::None, one is required.
  resnet::nn::ConvBn<float> unit(resnet::nn::Conv2dOptions(3, 5, 3), Activation::None);
  const auto x = random_tensor({2, 3, 6, 6}, 9), dy = random_tensor({2, 5, 4, 4}, 10);
  unit.forward(x);
  EXPECT_THROW(unit.backward(dy, resnet::Tensor<float>(), InputGrad::Compute, x), resnet::Error);
  unit.forward(x, resnet::nn::Cache::None);
  EXPECT_THROW(unit.backward(dy), resnet::Error);
}

// In eval mode ConvBn lets the conv apply the BatchNorm (and the ReLU) as it stores its output, with the
// conv's own bias folded in: the values of conv -> BatchNorm -> ReLU module by module.
TEST(ConvBn, EvalEqualsTheModulesOneAfterTheOther) {
  for (bool bias : {false, true}) {
    const auto options = resnet::nn::Conv2dOptions(3, 5, 3).padding(1).bias(bias).seed(3);
    resnet::nn::ConvBn<float> unit(options, resnet::nn::Activation::ReLU);
    resnet::nn::Conv2d<float> conv(options);
    resnet::nn::BatchNorm2d<float> bn(5);
    randomize_eval_state(unit.bn(), 40);
    randomize_eval_state(bn, 40);
    unit.conv().eval(), unit.bn().eval(), conv.eval(), bn.eval();
    resnet::nn::ReLU<float> relu;
    const auto x = random_tensor({2, 3, 6, 6}, 5);
    expect_near_values(unit.forward(x), relu.forward(bn.forward(conv.forward(x))), bias ? "bias" : "no bias");
  }
}

// An eval-mode Conv2d packs its weight once for the shapes that have a packed form (up to 255 columns a
// GEMM: Winograd from 196 outputs in the batch, im2col below and for other kernels) and must give bitwise
// what the same algorithm gives without it, on any thread count, after every way the weight or the input
// size can change between calls: a write through data(), a new tensor assigned, training in between.
TEST(Conv2dPackedWeight, EvalForwardEqualsTheUnpackedKernelAfterEveryChange) {
  namespace kernels = resnet::kernels;
  struct Layer {
    int in, out, k, stride, padding, size;  // size: of the output, for one image
    bool winograd;                          // at one image of that size
  };
  // 100 and 48 outputs: blocks of 50, panels of 32 not full; K = 576, 64, 1152: one to five depth blocks.
  const Layer layers[] = {{64, 100, 3, 1, 1, 7, false},
                          {64, 64, 1, 2, 0, 7, false},
                          {128, 64, 3, 2, 1, 7, false},
                          {32, 48, 3, 1, 1, 14, true}};
  for (const Layer& l : layers) {
    resnet::nn::Conv2d<float> conv(l.in, l.out, l.k, l.stride, l.padding, /*bias=*/true, /*seed=*/5);
    conv.eval();
    std::uint64_t seed = 10;
    const auto input_of = [&](std::int64_t images, std::int64_t size) {
      const std::int64_t in_size = (size - 1) * l.stride + l.k - 2 * l.padding;
      resnet::Tensor<float> x({images, l.in, in_size, in_size});
      resnet::Rng rng(seed++);
      x.fill_normal(rng);
      return x;
    };
    const auto expect_unpacked_result = [&](std::int64_t images, std::int64_t size, const char* after) {
      const resnet::Tensor<float> x = input_of(images, size);
      const ConvShape g{images, l.in, x.size(2), x.size(3), l.out, l.k, l.stride, l.padding};
      const Epilogue epilogue = Epilogue::bias(conv.bias().cdata(), g.O);
      const float* w = conv.weight().cdata();
      std::vector<float> expected(static_cast<std::size_t>(g.N * g.O * g.OHW()));
      kernels::ConvWorkspace<float> ws;
      if (kernels::conv_plan<float>(g, resnet::Precision::FP32, true).forward ==
          kernels::ConvAlgorithm::Winograd) {
        kernels::conv2d_forward_winograd(x.data(), w, epilogue, g.N, g.C, g.H, g.W, g.O, g.p, expected.data(),
                                         ws.scratch);
      } else {
        kernels::conv2d_forward_im2col(x.data(), w, epilogue, g, expected.data(), ws);
      }
      const int threads_before = resnet::num_threads();
      for (int threads : {threads_before, 1, 3}) {
        resnet::set_num_threads(threads);
        const resnet::Tensor<float> y = conv.forward(x);
        ASSERT_EQ(y.numel(), static_cast<std::int64_t>(expected.size()));
        EXPECT_TRUE(std::equal(expected.begin(), expected.end(), y.data()))
            << l.in << "->" << l.out << " k" << l.k << " s" << l.stride << ", " << images << " images of "
            << size << "x" << size << " out, " << threads << " threads, after " << after;
      }
      resnet::set_num_threads(threads_before);
    };
    if (kernels::gemm_packs_a<float>(1, 1, 1)) {  // a CPU with the packed forms
      const resnet::Tensor<float> x = input_of(1, l.size);
      const ConvShape g{1, l.in, x.size(2), x.size(3), l.out, l.k, l.stride, l.padding};
      const kernels::ConvPlan plan = kernels::conv_plan<float>(g, resnet::Precision::FP32, true);
      ASSERT_GT(plan.packed_size, 0) << "the shape must take the packed path";
      ASSERT_EQ(plan.forward == kernels::ConvAlgorithm::Winograd, l.winograd);
    }
    expect_unpacked_result(1, l.size, "the first call");
    expect_unpacked_result(1, l.size, "a second call with nothing changed");
    conv.weight().data()[7] += 1.0f;
    expect_unpacked_result(1, l.size, "a write through data()");
    resnet::Rng rng(3);
    conv.weight().fill_normal(rng);
    expect_unpacked_result(1, l.size, "fill_normal");
    conv.weight() = conv.weight().clone();
    conv.weight()[0] = -2.0f;
    expect_unpacked_result(1, l.size, "a new weight tensor");
    expect_unpacked_result(1, 2 * l.size, "a larger image");
    expect_unpacked_result(2, l.size, "a batch of two");
    expect_unpacked_result(1, l.size, "back to one image");
    conv.train();
    conv.forward(input_of(1, l.size));
    conv.backward(resnet::Tensor<float>({1, l.out, l.size, l.size}, 1.0f));
    conv.eval();
    expect_unpacked_result(1, l.size, "training in between");
  }
}

// A whole training step's gradients do not depend on the thread count.
TEST(ThreadCount, ResNet18GradientsAreBitwiseEqualOnOneTwoAndThreeThreads) {
  const auto x = random_tensor({3, 3, 16, 16}, 6), dy = random_tensor({3, 10}, 7);
  const int threads_before = resnet::num_threads();
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2, 3}) {
    resnet::set_num_threads(threads);
    resnet::models::ResNet18<float> net(10, resnet::models::Stem::Cifar);
    std::vector<float> all = values(net.forward(x));
    const auto dx = values(net.backward(dy));
    all.insert(all.end(), dx.begin(), dx.end());
    const auto grads = gradients(net);
    all.insert(all.end(), grads.begin(), grads.end());
    runs.push_back(std::move(all));
  }
  resnet::set_num_threads(threads_before);
  EXPECT_EQ(runs[1], runs[0]);
  EXPECT_EQ(runs[2], runs[0]);
}

}  // namespace
