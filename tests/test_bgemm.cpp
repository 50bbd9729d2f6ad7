// kernels/bgemm_avx512.hpp: the bf16 GEMM against a double product of the same bf16 operands, exactly on
// small integers, bitwise the same with A packed ahead, and off when the instruction-set cap says so.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "resnet/core/bfloat16.hpp"
#include "resnet/core/cpu_features.hpp"
#include "resnet/core/rng.hpp"
#include "resnet/kernels/bgemm_avx512.hpp"

#ifdef RESNET_HAVE_BGEMM_AVX512

namespace {

namespace bf16 = resnet::kernels::avx512_bf16;
using resnet::bfloat16;

struct Shape {
  std::int64_t M, N, K;
};

// A [rows, columns] matrix stored with row stride ld >= columns: normal values rounded to bf16, or with
// `integers` > 0 whole numbers in [-integers, integers]; the padding past each row is NaN, so a kernel that
// reads it (an odd depth's partner, a lane past the edge) turns its result into NaN.
std::vector<bfloat16> random_matrix(std::int64_t rows, std::int64_t columns, std::int64_t ld,
                                    std::uint64_t seed, int integers = 0) {
  resnet::Rng rng(seed);
  std::vector<bfloat16> m(static_cast<std::size_t>(rows * ld),
                          bfloat16(std::numeric_limits<float>::quiet_NaN()));
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < columns; ++j) {
      const double x = integers > 0 ? std::floor(rng.uniform(-integers, integers + 1.0)) : rng.normal();
      m[i * ld + j] = bfloat16(static_cast<float>(x));
    }
  }
  return m;
}

// The operands of one product, op(A) [M, K] and op(B) [K, N] stored transposed or not with leading
// dimensions `pad` wider than the rows, and a C [M, N] with row stride N + pad.
struct Product {
  Shape s;
  bool ta, tb;
  std::int64_t lda, ldb, ldc;
  std::vector<bfloat16> A, B;
  std::vector<float> C0;

  Product(Shape shape, bool transpose_a, bool transpose_b, std::int64_t pad, int integers = 0)
      : s(shape),
        ta(transpose_a),
        tb(transpose_b),
        lda((ta ? s.M : s.K) + pad),
        ldb((tb ? s.K : s.N) + pad),
        ldc(s.N + pad),
        A(random_matrix(ta ? s.K : s.M, ta ? s.M : s.K, lda, 1, integers)),
        B(random_matrix(tb ? s.N : s.K, tb ? s.K : s.N, ldb, 2, integers)),
        C0(static_cast<std::size_t>(s.M * ldc)) {
    resnet::Rng rng(3);
    for (float& c : C0)
      c = integers > 0 ? std::floor(static_cast<float>(rng.uniform(-integers, integers + 1.0)))
                       : static_cast<float>(rng.normal());
  }
  double a(std::int64_t i, std::int64_t l) const {
    return static_cast<float>(A[static_cast<std::size_t>(ta ? l * lda + i : i * lda + l)]);
  }
  double b(std::int64_t l, std::int64_t j) const {
    return static_cast<float>(B[static_cast<std::size_t>(tb ? j * ldb + l : l * ldb + j)]);
  }
  // C for alpha, beta, from C0 (or NaN if beta == 0, which must not be read).
  std::vector<float> run(float alpha, float beta, const bfloat16* packed_a = nullptr) const {
    std::vector<float> C = C0;
    if (beta == 0.0f) std::fill(C.begin(), C.end(), std::numeric_limits<float>::quiet_NaN());
    bf16::bgemm(ta, tb, s.M, s.N, s.K, alpha, packed_a ? nullptr : A.data(), lda, B.data(), ldb, beta,
                C.data(), ldc, packed_a);
    return C;
  }
};

std::string describe(const Product& p, float beta) {
  return std::to_string(p.s.M) + "x" + std::to_string(p.s.N) + "x" + std::to_string(p.s.K) + " transpose_a " +
         std::to_string(p.ta) + " transpose_b " + std::to_string(p.tb) + " beta " + std::to_string(beta) +
         (bf16::runs_narrow(p.s.M, p.s.N) ? " (narrow)" : " (wide)");
}

// The columns of C past N are never written: C0's values, or NaN where beta == 0 preset them.
void expect_padding_untouched(const Product& p, const std::vector<float>& C, float beta) {
  for (std::int64_t i = 0; i < p.s.M; ++i) {
    for (std::int64_t j = p.s.N; j < p.ldc; ++j) {
      const float c = C[static_cast<std::size_t>(i * p.ldc + j)];
      if (beta == 0.0f) {
        ASSERT_TRUE(std::isnan(c)) << describe(p, beta) << " wrote C[" << i << "][" << j << "]";
      } else {
        ASSERT_EQ(c, p.C0[static_cast<std::size_t>(i * p.ldc + j)]) << describe(p, beta);
      }
    }
  }
}

// C against the double product of the same bf16 values. Products of bf16 are exact in float, so the error is
// that of the float additions: at most gamma_n * (|alpha| sum_k |a b| + |beta c|) with n the roundings in
// each element's chain, K (vdpbf16ps may round after each of its two products) plus 2 per depth block
// (alpha, then adding to C). A pair dropped or paired wrongly costs a whole term, far above that.
void expect_matches_double(const Product& p, float alpha, float beta) {
  const std::vector<float> C = p.run(alpha, beta);
  const std::int64_t blocks = (p.s.K + bf16::kDepthBlock - 1) / bf16::kDepthBlock;
  const double n = static_cast<double>(p.s.K + 2 * blocks + 2), u = std::ldexp(1.0, -24);
  const double gamma = n * u / (1 - n * u);
  for (std::int64_t i = 0; i < p.s.M; ++i) {
    for (std::int64_t j = 0; j < p.s.N; ++j) {
      const double c0 = beta == 0.0f ? 0.0 : p.C0[static_cast<std::size_t>(i * p.ldc + j)];
      double sum = 0, magnitude = 0;
      for (std::int64_t l = 0; l < p.s.K; ++l) {
        sum += p.a(i, l) * p.b(l, j);
        magnitude += std::abs(p.a(i, l) * p.b(l, j));
      }
      const double expected = alpha * sum + beta * c0;
      const double bound = gamma * (std::abs(alpha) * magnitude + std::abs(beta * c0)) + 1e-300;
      const double actual = C[static_cast<std::size_t>(i * p.ldc + j)];
      ASSERT_TRUE(std::abs(actual - expected) <= bound)  // false for NaN too
          << describe(p, beta) << " at C[" << i << "][" << j << "]: " << actual << ", expected " << expected
          << " +- " << bound;
    }
  }
  expect_padding_untouched(p, C, beta);
}

// Every size of {1, 7, 13, 31, 33, 49, 100, 257} as M and N (each pair once, K cycling through them), K of
// 1, 2 and 3, every tile height (M 1 .. 12, wide) and width (N 1 .. 12, narrow), and shapes of several row,
// column and depth blocks in both forms.
std::vector<Shape> shapes() {
  const std::int64_t sizes[] = {1, 7, 13, 31, 33, 49, 100, 257};
  std::vector<Shape> out;
  for (int m = 0; m < 8; ++m) {
    for (int n = 0; n < 8; ++n)
      out.push_back({sizes[m], sizes[n], sizes[(m + n) % 8]});
  }
  for (std::int64_t K : {1, 2, 3})
    out.push_back({37, 45, K});
  for (std::int64_t rows = 1; rows <= bf16::kTileRows; ++rows)
    out.push_back({rows, 40, 9});
  for (std::int64_t columns = 1; columns <= bf16::kNarrowTileColumns; ++columns)
    out.push_back({64, columns, 9});
  out.push_back({bf16::kRowBlock + 33, 40, 2 * bf16::kDepthBlock + 3});  // narrow, 7 panels
  out.push_back({40, 260, 2 * bf16::kDepthBlock + 3});                   // wide, 3 depth blocks
  out.push_back({bf16::kRowBlock + 33, 260, 70});                        // wide, 2 row blocks
  out.push_back({12, bf16::kColumnBlock + 33, 5});
  out.push_back({64, 196, 2 * bf16::kNarrowDepthBlock + 7});
  out.push_back({64, 49, bf16::kNarrowDepthBlock + 1});
  return out;
}

TEST(BgemmAvx512, MatchesADoubleProductOfTheSameBf16Operands) {
  if (!bf16::cpu_supported()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  int narrow = 0, wide = 0;
  for (const Shape& s : shapes()) {
    (bf16::runs_narrow(s.M, s.N) ? narrow : wide) += 1;
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        const Product p(s, ta, tb, 3);
        for (float beta : {0.0f, 1.0f, 0.5f})
          expect_matches_double(p, 0.75f, beta);
      }
    }
  }
  EXPECT_GT(narrow, 20);  // both forms are covered
  EXPECT_GT(wide, 20);
  const Product dense({33, 49, 31}, false, false, 0);  // leading dimensions equal to the row lengths
  expect_matches_double(dense, 1.0f, 0.0f);
  expect_matches_double(dense, -2.0f, 1.0f);
}

// Whole numbers in [-8, 8]: every partial sum is an integer below 2^24, so float adds nothing and C must be
// exactly alpha * op(A) op(B) + beta * C (alpha a power of two): any wrong pairing, dropped depth or padding
// read shows, however small.
TEST(BgemmAvx512, IsExactOnSmallIntegers) {
  if (!bf16::cpu_supported()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  for (const Shape& s :
       {Shape{1, 1, 1}, Shape{13, 33, 7}, Shape{31, 49, 257}, Shape{100, 7, 33},
        Shape{64, 196, 2 * bf16::kNarrowDepthBlock + 1}, Shape{45, 70, 2 * bf16::kDepthBlock + 5}}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        const Product p(s, ta, tb, 5, 8);
        for (float beta : {0.0f, 1.0f}) {
          const std::vector<float> C = p.run(0.5f, beta);
          for (std::int64_t i = 0; i < s.M; ++i) {
            for (std::int64_t j = 0; j < s.N; ++j) {
              double expected = beta == 0.0f ? 0.0 : p.C0[static_cast<std::size_t>(i * p.ldc + j)];
              for (std::int64_t l = 0; l < s.K; ++l)
                expected += 0.5 * p.a(i, l) * p.b(l, j);
              ASSERT_EQ(C[static_cast<std::size_t>(i * p.ldc + j)], expected)
                  << describe(p, beta) << " at C[" << i << "][" << j << "]";
            }
          }
          expect_padding_untouched(p, C, beta);
        }
      }
    }
  }
}

// K = 0 or alpha = 0: C = beta * C, A and B not read (null here), C not read if beta == 0.
TEST(BgemmAvx512, WithoutProductsScalesC) {
  if (!bf16::cpu_supported()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::int64_t K : {0, 5}) {
    std::vector<float> C = {1, 2, nan, 3, 4, nan};  // [2, 2], row stride 3
    bf16::bgemm(false, false, 2, 2, K, K == 0 ? 1.0f : 0.0f, nullptr, K, nullptr, 2, 0.5f, C.data(), 3);
    EXPECT_EQ(C[0], 0.5f);
    EXPECT_EQ(C[4], 2.0f);
    EXPECT_TRUE(std::isnan(C[5]));
    std::fill(C.begin(), C.end(), nan);
    bf16::bgemm(false, false, 2, 2, K, K == 0 ? 1.0f : 0.0f, nullptr, K, nullptr, 2, 0.0f, C.data(), 3);
    EXPECT_EQ(C[0], 0.0f);
    EXPECT_EQ(C[4], 0.0f);
    EXPECT_TRUE(std::isnan(C[2]));
  }
}

// A packed ahead (as an eval-mode conv packs its weight) gives bitwise what packing it as the product goes
// gives, in both forms, over several depth blocks, with odd K and either B; pack_a writes packed_a_size
// elements and no more; packed A must be aligned and not transposed.
TEST(BgemmAvx512, PackedAGivesBitwiseTheResultsOfPackingAsItGoes) {
  if (!bf16::cpu_supported()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
  struct Case {
    Shape s;
    bool narrow;
  };
  const Case cases[] = {
      {{64, 49, 576}, true}, {{64, 100, 2 * bf16::kNarrowDepthBlock + 7}, true},
      {{33, 7, 31}, true},   {{bf16::kRowBlock + 33, 300, 2 * bf16::kDepthBlock + 3}, false},
      {{13, 1, 1}, true},    {{5, 100, 31}, false},
      {{33, 40, 2}, false}};
  for (const auto& [s, narrow] : cases) {
    EXPECT_EQ(bf16::runs_narrow(s.M, s.N), narrow) << s.M << "x" << s.N;
    for (bool tb : {false, true}) {
      const Product p(s, false, tb, 3);
      const std::int64_t size = bf16::packed_a_size(s.M, s.K);
      std::vector<bfloat16> storage(static_cast<std::size_t>(size + 96), bfloat16::from_bits(0x1234));
      bfloat16* packed = storage.data();
      while (reinterpret_cast<std::uintptr_t>(packed) % 64 != 0)
        ++packed;
      bf16::pack_a(p.A.data(), p.lda, s.M, s.K, packed);
      for (const bfloat16* after = packed + size; after != packed + size + 64; ++after)
        ASSERT_EQ(after->bits, 0x1234) << "pack_a wrote past packed_a_size(" << s.M << ", " << s.K << ")";
      for (float beta : {0.0f, 0.5f}) {
        const std::vector<float> expected = p.run(1.5f, beta), actual = p.run(1.5f, beta, packed);
        EXPECT_EQ(std::memcmp(actual.data(), expected.data(), actual.size() * sizeof(float)), 0)
            << describe(p, beta);
      }
    }
  }
  std::vector<bfloat16> storage(static_cast<std::size_t>(bf16::packed_a_size(8, 8) + 64));
  bfloat16* packed = storage.data();
  while (reinterpret_cast<std::uintptr_t>(packed) % 64 != 0)
    ++packed;
  std::vector<bfloat16> B(64);
  std::vector<float> C(64);
  EXPECT_THROW(
      bf16::bgemm(false, false, 8, 8, 8, 1.0f, nullptr, 8, B.data(), 8, 0.0f, C.data(), 8, packed + 1),
      resnet::Error);  // not 64-byte aligned
  EXPECT_THROW(bf16::bgemm(true, false, 8, 8, 8, 1.0f, nullptr, 8, B.data(), 8, 0.0f, C.data(), 8, packed),
               resnet::Error);  // packed A is never transposed
}

// Restores the instruction-set cap to the default (every set the CPU has) when it goes out of scope.
struct IsaCapGuard {
  explicit IsaCapGuard(resnet::Isa cap) { resnet::set_max_isa(cap); }
  ~IsaCapGuard() { resnet::set_max_isa(resnet::Isa::AmxBf16); }
  IsaCapGuard(const IsaCapGuard&) = delete;
  IsaCapGuard& operator=(const IsaCapGuard&) = delete;
};

TEST(BgemmAvx512, CpuSupportedFollowsTheIsaCap) {
  {
    const IsaCapGuard cap(resnet::Isa::Avx512);
    EXPECT_FALSE(bf16::cpu_supported());
  }
  EXPECT_EQ(bf16::cpu_supported(), resnet::cpu_isa() >= resnet::Isa::Avx512Bf16);
  EXPECT_EQ(bf16::cpu_supported(), resnet::cpu_features().avx512_bf16);
}

}  // namespace

#endif  // RESNET_HAVE_BGEMM_AVX512
