// The bf16 GEMMs, kernels/bgemm_avx512.hpp (vdpbf16ps) and kernels/bgemm_amx.hpp (AMX tiles, on the CPU
// where it has them and on an emulation of the tiles everywhere): against a double product of the same bf16
// operands, exactly on small integers, bitwise the same with A packed ahead, and off when the
// instruction-set cap says so.

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
#include "resnet/kernels/bgemm_amx.hpp"
#include "resnet/kernels/bgemm_avx512.hpp"
#include "support/amx_emulator.hpp"
#include "support/isa_cap.hpp"

#ifdef RESNET_HAVE_BGEMM_AVX512

namespace {

namespace bf16 = resnet::kernels::avx512_bf16;
namespace amx = resnet::kernels::amx_bf16;
using resnet::bfloat16;

// One bf16 GEMM kernel: its entry points (kernels::gemm's contract, with packed_a) and whether it runs here.
struct Kernel {
  const char* name;
  bool (*runs_here)();
  void (*bgemm)(bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const bfloat16*, std::int64_t,
                const bfloat16*, std::int64_t, float, float*, std::int64_t, const bfloat16*);
  std::int64_t (*packed_a_size)(std::int64_t, std::int64_t);
  void (*pack_a)(const bfloat16*, std::int64_t, std::int64_t, std::int64_t, bfloat16*);
  std::int64_t depth_block;
};

// The AMX driver and packing need AVX-512BW (every AMX CPU has it), the emulated tiles nothing more.
bool has_avx512bw() {
  return __builtin_cpu_supports("avx512bw");
}

const Kernel kAvx512Bf16{"avx512_bf16",
                         bf16::cpu_supported,
                         [](bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
                            const bfloat16* A, std::int64_t lda, const bfloat16* B, std::int64_t ldb,
                            float beta, float* C, std::int64_t ldc, const bfloat16* packed_a) {
                           bf16::bgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, packed_a);
                         },
                         bf16::packed_a_size,
                         bf16::pack_a,
                         bf16::kDepthBlock};
const Kernel kAmx{"amx_bf16",
                  amx::cpu_supported,
                  [](bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
                     const bfloat16* A, std::int64_t lda, const bfloat16* B, std::int64_t ldb, float beta,
                     float* C, std::int64_t ldc, const bfloat16* packed_a) {
                    amx::bgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, packed_a);
                  },
                  amx::packed_a_size,
                  amx::pack_a,
                  amx::kDepthBlock};
const Kernel kAmxEmulated{"amx_bf16_emulated",
                          has_avx512bw,
                          [](bool ta, bool tb, std::int64_t M, std::int64_t N, std::int64_t K, float alpha,
                             const bfloat16* A, std::int64_t lda, const bfloat16* B, std::int64_t ldb,
                             float beta, float* C, std::int64_t ldc, const bfloat16* packed_a) {
                            amx::bgemm_on<resnet::testing::EmulatedTiles>(ta, tb, M, N, K, alpha, A, lda, B,
                                                                          ldb, beta, C, ldc, packed_a);
                          },
                          amx::packed_a_size,
                          amx::pack_a,
                          amx::kDepthBlock};

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
  const Kernel* kernel;
  Shape s;
  bool ta, tb;
  std::int64_t lda, ldb, ldc;
  std::vector<bfloat16> A, B;
  std::vector<float> C0;

  Product(const Kernel& k, Shape shape, bool transpose_a, bool transpose_b, std::int64_t pad,
          int integers = 0)
      : kernel(&k),
        s(shape),
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
    kernel->bgemm(ta, tb, s.M, s.N, s.K, alpha, packed_a ? nullptr : A.data(), lda, B.data(), ldb, beta,
                  C.data(), ldc, packed_a);
    return C;
  }
};

std::string describe(const Product& p, float beta) {
  return std::string(p.kernel->name) + " " + std::to_string(p.s.M) + "x" + std::to_string(p.s.N) + "x" +
         std::to_string(p.s.K) + " transpose_a " + std::to_string(p.ta) + " transpose_b " +
         std::to_string(p.tb) + " beta " + std::to_string(beta) +
         (p.kernel == &kAvx512Bf16 ? bf16::runs_narrow(p.s.M, p.s.N) ? " (narrow)" : " (wide)" : "");
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
// (alpha, then adding to C). A pair dropped or paired wrongly costs a whole term, far above that. The AMX
// kernel rounds as often: each tdpbf16ps adds its two products in turn.
void expect_matches_double(const Product& p, float alpha, float beta) {
  const std::vector<float> C = p.run(alpha, beta);
  const std::int64_t blocks = (p.s.K + p.kernel->depth_block - 1) / p.kernel->depth_block;
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
  // AMX: register tiles of 16 and 17 rows and columns, and 2 row blocks.
  for (std::int64_t edge : {16, 17})
    out.push_back({edge, 48 - edge, 40});
  out.push_back({amx::kRowBlock + 17, 50, 33});
  return out;
}

class Bgemm : public ::testing::TestWithParam<const Kernel*> {
 protected:
  void SetUp() override {
    if (!GetParam()->runs_here()) GTEST_SKIP() << "this CPU does not run " << GetParam()->name;
  }
  const Kernel& kernel() const { return *GetParam(); }
};

// alpha 1 with beta 0 and 1 is the AMX kernel's direct path (tiles loaded from and stored to C), any other
// its scratch path.
TEST_P(Bgemm, MatchesADoubleProductOfTheSameBf16Operands) {
  int narrow = 0, wide = 0;
  for (const Shape& s : shapes()) {
    (bf16::runs_narrow(s.M, s.N) ? narrow : wide) += 1;
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        const Product p(kernel(), s, ta, tb, 3);
        for (float beta : {0.0f, 1.0f, 0.5f})
          expect_matches_double(p, 0.75f, beta);
        expect_matches_double(p, 1.0f, 0.0f);
        expect_matches_double(p, 1.0f, 1.0f);
      }
    }
  }
  EXPECT_GT(narrow, 20);  // both forms of the AVX512-BF16 kernel are covered
  EXPECT_GT(wide, 20);
  const Product dense(kernel(), {33, 49, 31}, false, false,
                      0);  // leading dimensions equal to the row lengths
  expect_matches_double(dense, 1.0f, 0.0f);
  expect_matches_double(dense, -2.0f, 1.0f);
}

// Whole numbers in [-8, 8]: every partial sum is an integer below 2^24, so float adds nothing and C must be
// exactly alpha * op(A) op(B) + beta * C (alpha a power of two): any wrong pairing, dropped depth or padding
// read shows, however small.
TEST_P(Bgemm, IsExactOnSmallIntegers) {
  for (const Shape& s :
       {Shape{1, 1, 1}, Shape{13, 33, 7}, Shape{31, 49, 257}, Shape{100, 7, 33},
        Shape{64, 196, 2 * bf16::kNarrowDepthBlock + 1}, Shape{45, 70, 2 * bf16::kDepthBlock + 5}}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        const Product p(kernel(), s, ta, tb, 5, 8);
        for (const auto& [alpha, beta] :
             {std::pair{0.5f, 0.0f}, std::pair{0.5f, 1.0f}, std::pair{1.0f, 1.0f}}) {
          const std::vector<float> C = p.run(alpha, beta);
          for (std::int64_t i = 0; i < s.M; ++i) {
            for (std::int64_t j = 0; j < s.N; ++j) {
              double expected = beta == 0.0f ? 0.0 : p.C0[static_cast<std::size_t>(i * p.ldc + j)];
              for (std::int64_t l = 0; l < s.K; ++l)
                expected += alpha * p.a(i, l) * p.b(l, j);
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
TEST_P(Bgemm, WithoutProductsScalesC) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (std::int64_t K : {0, 5}) {
    std::vector<float> C = {1, 2, nan, 3, 4, nan};  // [2, 2], row stride 3
    kernel().bgemm(false, false, 2, 2, K, K == 0 ? 1.0f : 0.0f, nullptr, K, nullptr, 2, 0.5f, C.data(), 3,
                   nullptr);
    EXPECT_EQ(C[0], 0.5f);
    EXPECT_EQ(C[4], 2.0f);
    EXPECT_TRUE(std::isnan(C[5]));
    std::fill(C.begin(), C.end(), nan);
    kernel().bgemm(false, false, 2, 2, K, K == 0 ? 1.0f : 0.0f, nullptr, K, nullptr, 2, 0.0f, C.data(), 3,
                   nullptr);
    EXPECT_EQ(C[0], 0.0f);
    EXPECT_EQ(C[4], 0.0f);
    EXPECT_TRUE(std::isnan(C[2]));
  }
}

// A packed ahead (as an eval-mode conv packs its weight) gives bitwise what packing it as the product goes
// gives, in both forms, over several depth blocks, with odd K and either B; pack_a writes packed_a_size
// elements and no more; packed A must be aligned and not transposed.
TEST_P(Bgemm, PackedAGivesBitwiseTheResultsOfPackingAsItGoes) {
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
      const Product p(kernel(), s, false, tb, 3);
      const std::int64_t size = kernel().packed_a_size(s.M, s.K);
      std::vector<bfloat16> storage(static_cast<std::size_t>(size + 96), bfloat16::from_bits(0x1234));
      bfloat16* packed = storage.data();
      while (reinterpret_cast<std::uintptr_t>(packed) % 64 != 0)
        ++packed;
      kernel().pack_a(p.A.data(), p.lda, s.M, s.K, packed);
      for (const bfloat16* after = packed + size; after != packed + size + 64; ++after)
        ASSERT_EQ(after->bits, 0x1234) << "pack_a wrote past packed_a_size(" << s.M << ", " << s.K << ")";
      for (const auto& [alpha, beta] :
           {std::pair{1.5f, 0.0f}, std::pair{1.5f, 0.5f}, std::pair{1.0f, 1.0f}}) {
        const std::vector<float> expected = p.run(alpha, beta), actual = p.run(alpha, beta, packed);
        EXPECT_EQ(std::memcmp(actual.data(), expected.data(), actual.size() * sizeof(float)), 0)
            << describe(p, beta);
      }
    }
  }
  std::vector<bfloat16> storage(static_cast<std::size_t>(kernel().packed_a_size(8, 8) + 64));
  bfloat16* packed = storage.data();
  while (reinterpret_cast<std::uintptr_t>(packed) % 64 != 0)
    ++packed;
  std::vector<bfloat16> B(64);
  std::vector<float> C(64);
  EXPECT_THROW(
      kernel().bgemm(false, false, 8, 8, 8, 1.0f, nullptr, 8, B.data(), 8, 0.0f, C.data(), 8, packed + 1),
      resnet::Error);  // not 64-byte aligned
  EXPECT_THROW(kernel().bgemm(true, false, 8, 8, 8, 1.0f, nullptr, 8, B.data(), 8, 0.0f, C.data(), 8, packed),
               resnet::Error);  // packed A is never transposed
}

INSTANTIATE_TEST_SUITE_P(Kernels, Bgemm, ::testing::Values(&kAvx512Bf16, &kAmx, &kAmxEmulated),
                         [](const auto& info) { return std::string(info.param->name); });

TEST(BgemmKernels, CpuSupportedFollowsTheIsaCap) {
  {
    const resnet::testing::IsaCap cap(resnet::Isa::Avx512);
    EXPECT_FALSE(bf16::cpu_supported());
    EXPECT_FALSE(amx::cpu_supported());
  }
  {
    const resnet::testing::IsaCap cap(resnet::Isa::Avx512Bf16);
    EXPECT_FALSE(amx::cpu_supported());
  }
  EXPECT_EQ(bf16::cpu_supported(), resnet::cpu_isa() >= resnet::Isa::Avx512Bf16);
  EXPECT_EQ(bf16::cpu_supported(), resnet::cpu_features().avx512_bf16);
  const resnet::CpuFeatures& f = resnet::cpu_features();
  EXPECT_EQ(amx::cpu_supported(), f.avx512_bf16 && f.amx_bf16 && f.amx_tiles_granted);
}

// The emulated tiles fault where the CPU would: a configuration ldtilecfg rejects, an instruction on tiles
// not configured or after tilerelease, tiles whose shapes do not chain in tdpbf16ps.
TEST(AmxEmulator, FaultsWhereTheCpuWould) {
  using Tiles = resnet::testing::EmulatedTiles;
  const amx::TileConfig good = amx::tile_config();
  EXPECT_NO_THROW(Tiles::configure(good));
  EXPECT_NO_THROW((Tiles::dot<0, 4, 6>()));
  Tiles::release();
  EXPECT_THROW(Tiles::zero<0>(), resnet::Error);
  const auto rejected = [&](auto change) {
    amx::TileConfig c = good;
    change(c);
    EXPECT_THROW(Tiles::configure(c), resnet::Error);
  };
  rejected([](amx::TileConfig& c) { c.palette = 0; });
  rejected([](amx::TileConfig& c) { c.reserved[3] = 1; });
  rejected([](amx::TileConfig& c) { c.rows[2] = 17; });
  rejected([](amx::TileConfig& c) { c.bytes_per_row[5] = 65; });
  rejected([](amx::TileConfig& c) { c.rows[9] = 1, c.bytes_per_row[9] = 4; });
  rejected([](amx::TileConfig& c) { c.bytes_per_row[1] = 0; });
  amx::TileConfig narrow = good;
  narrow.bytes_per_row[6] = 32;  // B of 8 columns against a C of 16
  Tiles::configure(narrow);
  EXPECT_THROW((Tiles::dot<0, 4, 6>()), resnet::Error);
  EXPECT_NO_THROW((Tiles::dot<0, 4, 7>()));
  amx::TileConfig unused = good;
  unused.rows[7] = 0, unused.bytes_per_row[7] = 0;
  Tiles::configure(unused);
  EXPECT_THROW(Tiles::zero<7>(), resnet::Error);
  Tiles::release();
}

// The emulated tdpbf16ps on values where float rounds: C += a0 * b0, then += a1 * b1, in that order.
TEST(AmxEmulator, AddsThePairsProductsInTurn) {
  using Tiles = resnet::testing::EmulatedTiles;
  Tiles::configure(amx::tile_config());
  alignas(64) bfloat16 a[16 * 32] = {}, b[16 * 32] = {};
  alignas(64) float c[16 * 16] = {};
  a[0] = bfloat16(1.0f), a[1] = bfloat16(1.0f);                  // row 0, depths 0 and 1
  b[0] = bfloat16(std::ldexp(1.0f, 24)), b[1] = bfloat16(1.0f);  // pair 0 of column 0
  Tiles::zero<0>();
  Tiles::load<4>(a, 64);
  Tiles::load<6>(b, 64);
  Tiles::dot<0, 4, 6>();
  Tiles::store<0>(c, 64);
  Tiles::release();
  EXPECT_EQ(c[0], std::ldexp(1.0f, 24));  // 2^24 + 1 rounds back to 2^24
  EXPECT_EQ(c[1], 0.0f);
}

}  // namespace

#endif  // RESNET_HAVE_BGEMM_AVX512
