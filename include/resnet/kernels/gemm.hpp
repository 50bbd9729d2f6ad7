#pragma once
// The one matrix multiply of the library: C = alpha * op(A) * op(B) + beta * C on row-major arrays with
// leading dimensions, like BLAS sgemm. On a CPU with AVX-512, float runs our kernels (sgemm_avx512.hpp) on
// any build: they beat Eigen's AVX-512 kernel (benchmarks/README.md); elsewhere float runs Eigen's blocked
// GEMM on the caller's memory. bf16 operands (a float C) run on AMX
// tiles (bgemm_amx.hpp) where the CPU has them, else our AVX512-BF16 kernel (bgemm_avx512.hpp) where it has
// that. It always runs on the calling thread:
// parallelism is the caller's, over fixed work units (see kernels/conv2d.hpp), which is what keeps results
// independent of the thread count. Eigen's own threading would not: its K blocking depends on the number of
// threads, and so does the rounding.

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "resnet/core/bfloat16.hpp"
#include "resnet/core/eigen.hpp"
#include "resnet/core/error.hpp"
#include "resnet/kernels/bgemm_amx.hpp"
#include "resnet/kernels/bgemm_avx512.hpp"
#include "resnet/kernels/sgemm_avx512.hpp"

namespace resnet::kernels {

// Row-major matrix views over raw memory. Unaligned, because kernels are handed slices such as one image
// of a batch, which need not start on the tensor's 64-byte boundary.
template <typename T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MatrixView = Eigen::Map<RowMajorMatrix<T>>;
template <typename T>
using ConstMatrixView = Eigen::Map<const RowMajorMatrix<T>>;
template <typename T>
using StridedMatrixView = Eigen::Map<RowMajorMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

// op(A): [M, K], stored as A [M, K] (row stride lda) or, with transpose_a, as A [K, M]
// op(B): [K, N], stored as B [K, N] (row stride ldb) or, with transpose_b, as B [N, K]
// C:     [M, N] (row stride ldc)
// As in BLAS, beta == 0 means C is not read, so it may hold garbage (even NaN) on entry.
// eigen_gemm is the portable path; gemm (below) picks the fastest one for T and the CPU. The bf16 gemm takes
// bfloat16 A and B and a float C.
template <typename T>
void eigen_gemm(bool transpose_a, bool transpose_b, std::int64_t M, std::int64_t N, std::int64_t K, T alpha,
                const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc) {
  if (M == 0 || N == 0) return;
  StridedMatrixView<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (beta == T(0)) {
    c.setZero();
  } else if (beta != T(1)) {
    c *= beta;
  }
  if (K == 0 || alpha == T(0)) return;
  // Eigen's serial GEMM kernel (what `c.noalias() += a * b` runs on one thread) with the blocking it would
  // choose for one thread; calling it directly keeps Eigen from threading the product behind our back. A
  // row-major [M, K] array is a column-major [K, M] one, hence the storage orders below.
  using Index = Eigen::Index;
  using Blocking = Eigen::internal::gemm_blocking_space<Eigen::RowMajor, T, T, Eigen::Dynamic, Eigen::Dynamic,
                                                        Eigen::Dynamic>;
  Blocking blocking(M, N, K, 1, true);
  auto run = [&](auto a_order, auto b_order) {
    Eigen::internal::general_matrix_matrix_product<Index, T, decltype(a_order)::value, false, T,
                                                   decltype(b_order)::value, false, Eigen::RowMajor,
                                                   1>::run(M, N, K, A, lda, B, ldb, C, 1, ldc, alpha,
                                                           blocking);
  };
  using RowMajor = std::integral_constant<int, Eigen::RowMajor>;
  using ColMajor = std::integral_constant<int, Eigen::ColMajor>;
  if (transpose_a && transpose_b) {
    run(ColMajor{}, ColMajor{});
  } else if (transpose_a) {
    run(ColMajor{}, RowMajor{});
  } else if (transpose_b) {
    run(RowMajor{}, ColMajor{});
  } else {
    run(RowMajor{}, RowMajor{});
  }
}

// Whether gemm(false, false, M, N, K, ...) with operands of type Op can read A packed ahead (pack_gemm_a),
// for a product repeated with the same A, such as an eval-mode conv's weight: float where sgemm_narrow runs
// it (fewer than 256 columns), bfloat16 wherever a bf16 kernel runs. The packed layout is that of the kernel
// the instruction-set cap selects: a plan that packs records the instruction set it packed for.
template <typename Op>
bool gemm_packs_a([[maybe_unused]] std::int64_t M, [[maybe_unused]] std::int64_t N,
                  [[maybe_unused]] std::int64_t K) {
  if (M <= 0 || N <= 0 || K <= 0) return false;
#if defined(RESNET_HAVE_SGEMM_AVX512)
  if constexpr (std::is_same_v<Op, float>) return N <= avx512::kNarrowMaxColumns && avx512::cpu_supported();
#endif
#if defined(RESNET_HAVE_BGEMM_AVX512)
  if constexpr (std::is_same_v<Op, bfloat16>) return avx512_bf16::cpu_supported();
#endif
  return false;
}

// A [M, K] (row stride lda) packed for gemm_packed_a, into packed_gemm_a_size(M, K) elements (64-byte
// aligned); for shapes where gemm_packs_a.
template <typename Op>
std::int64_t packed_gemm_a_size(std::int64_t M, std::int64_t K) {
  check(gemm_packs_a<Op>(M, 1, K), "packed_gemm_a_size: no packed form for this type, shape or CPU");
#if defined(RESNET_HAVE_SGEMM_AVX512)
  if constexpr (std::is_same_v<Op, float>) return avx512::narrow_packed_size(M, K);
#endif
#if defined(RESNET_HAVE_BGEMM_AMX)
  if constexpr (std::is_same_v<Op, bfloat16>) {
    if (amx_bf16::cpu_supported()) return amx_bf16::packed_a_size(M, K);
  }
#endif
#if defined(RESNET_HAVE_BGEMM_AVX512)
  if constexpr (std::is_same_v<Op, bfloat16>) return avx512_bf16::packed_a_size(M, K);
#endif
  return 0;  // not reached: nothing packs without a kernel
}
template <typename Op>
void pack_gemm_a([[maybe_unused]] const Op* A, [[maybe_unused]] std::int64_t lda, std::int64_t M,
                 std::int64_t K, [[maybe_unused]] Op* packed) {
  check(gemm_packs_a<Op>(M, 1, K), "pack_gemm_a: no packed form for this type, shape or CPU");
#if defined(RESNET_HAVE_SGEMM_AVX512)
  if constexpr (std::is_same_v<Op, float>) avx512::pack_narrow_a(A, lda, M, K, packed);
#endif
#if defined(RESNET_HAVE_BGEMM_AMX)
  if constexpr (std::is_same_v<Op, bfloat16>) {
    if (amx_bf16::cpu_supported()) return amx_bf16::pack_a(A, lda, M, K, packed);
  }
#endif
#if defined(RESNET_HAVE_BGEMM_AVX512)
  if constexpr (std::is_same_v<Op, bfloat16>) avx512_bf16::pack_a(A, lda, M, K, packed);
#endif
}

// gemm(false, false, ...) with A as pack_gemm_a packed it: the same arithmetic, so the same results.
template <typename Op, typename T>
void gemm_packed_a(std::int64_t M, std::int64_t N, std::int64_t K, T alpha,
                   [[maybe_unused]] const Op* packed_a, [[maybe_unused]] const Op* B,
                   [[maybe_unused]] std::int64_t ldb, [[maybe_unused]] T beta, [[maybe_unused]] T* C,
                   [[maybe_unused]] std::int64_t ldc) {
  check(gemm_packs_a<Op>(M, N, K) && alpha != T(0), "gemm_packed_a: ", M, "x", N, "x", K,
        " does not run the kernel A was packed for");
  check(packed_a != nullptr, "gemm_packed_a: no packed A");
#if defined(RESNET_HAVE_SGEMM_AVX512)
  if constexpr (std::is_same_v<Op, float> && std::is_same_v<T, float>)
    avx512::sgemm_narrow(M, N, K, alpha, nullptr, 0, B, ldb, beta, C, ldc, packed_a);
#endif
#if defined(RESNET_HAVE_BGEMM_AMX)
  if constexpr (std::is_same_v<Op, bfloat16> && std::is_same_v<T, float>) {
    if (amx_bf16::cpu_supported())
      return amx_bf16::bgemm(false, false, M, N, K, alpha, nullptr, 0, B, ldb, beta, C, ldc, packed_a);
  }
#endif
#if defined(RESNET_HAVE_BGEMM_AVX512)
  if constexpr (std::is_same_v<Op, bfloat16> && std::is_same_v<T, float>)
    avx512_bf16::bgemm(false, false, M, N, K, alpha, nullptr, 0, B, ldb, beta, C, ldc, packed_a);
#endif
}

template <typename T>
void gemm(bool transpose_a, bool transpose_b, std::int64_t M, std::int64_t N, std::int64_t K, T alpha,
          const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc) {
#if defined(RESNET_HAVE_SGEMM_AVX512)
  // Fewer than 256 columns (one 14x14 or 7x7 image): our kernel that tiles rows rather than columns, on any
  // build, since Eigen's spreads a row of C over whole vectors of columns (at N = 49 it computes 64).
  if constexpr (std::is_same_v<T, float>) {
    if (!transpose_a && !transpose_b && alpha != 0.0f && gemm_packs_a<T>(M, N, K)) {
      avx512::sgemm_narrow(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
    }
  }
#endif
#if defined(RESNET_HAVE_SGEMM_AVX512)
  // Every other product with AVX-512: built for generic x86-64, Eigen would run SSE kernels, and with
  // -march=native its AVX-512 kernel is slower than ours (benchmarks/README.md).
  if constexpr (std::is_same_v<T, float>) {
    if (M > 0 && N > 0 && K > 0 && alpha != 0.0f && avx512::cpu_supported()) {
      avx512::sgemm(transpose_a, transpose_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
    }
  }
#endif
  eigen_gemm(transpose_a, transpose_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// The bf16 product: A and B bfloat16, C float, accumulated in float (Precision::BF16). It runs on AMX tiles
// or the AVX512-BF16 kernel where the CPU has them (and the cap, core/cpu_features.hpp, allows it);
// elsewhere op(A) and op(B) are widened to float, exactly, and multiplied by the float gemm: the same
// products, summed in another order.
inline void gemm(bool transpose_a, bool transpose_b, std::int64_t M, std::int64_t N, std::int64_t K,
                 float alpha, const bfloat16* A, std::int64_t lda, const bfloat16* B, std::int64_t ldb,
                 float beta, float* C, std::int64_t ldc) {
#if defined(RESNET_HAVE_BGEMM_AMX)
  if (M > 0 && N > 0 && K > 0 && alpha != 0.0f && amx_bf16::cpu_supported())
    return amx_bf16::bgemm(transpose_a, transpose_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
#if defined(RESNET_HAVE_BGEMM_AVX512)
  if (M > 0 && N > 0 && K > 0 && alpha != 0.0f && avx512_bf16::cpu_supported())
    return avx512_bf16::bgemm(transpose_a, transpose_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
  // The calling thread's widened operands, kept for the next call (core/buffer_pool.hpp lists them).
  thread_local std::vector<float> a, b;
  a.resize(static_cast<std::size_t>(M * K));
  b.resize(static_cast<std::size_t>(K * N));
  for (std::int64_t i = 0; i < M; ++i) {
    for (std::int64_t k = 0; k < K; ++k)
      a[i * K + k] = static_cast<float>(transpose_a ? A[k * lda + i] : A[i * lda + k]);
  }
  for (std::int64_t k = 0; k < K; ++k) {
    for (std::int64_t j = 0; j < N; ++j)
      b[k * N + j] = static_cast<float>(transpose_b ? B[j * ldb + k] : B[k * ldb + j]);
  }
  gemm(false, false, M, N, K, alpha, a.data(), K, b.data(), N, beta, C, ldc);
}

// Dense operands (T A and B, or bfloat16 A and B with a float C): lda, ldb and ldc are the row lengths of A,
// B and C as stored.
template <typename Op, typename T>
void gemm(bool transpose_a, bool transpose_b, std::int64_t M, std::int64_t N, std::int64_t K, T alpha,
          const Op* A, const Op* B, T beta, T* C) {
  gemm(transpose_a, transpose_b, M, N, K, alpha, A, transpose_a ? M : K, B, transpose_b ? K : N, beta, C, N);
}

// What gemm runs for T on this build and CPU, in words (runtime_info prints it): the choice gemm makes above.
template <typename T>
std::string gemm_path() {
  if constexpr (std::is_same_v<T, bfloat16>) {
#if defined(RESNET_HAVE_BGEMM_AMX)
    if (amx_bf16::cpu_supported()) return "our AMX-BF16 GEMM";
#endif
#if defined(RESNET_HAVE_BGEMM_AVX512)
    if (avx512_bf16::cpu_supported()) return "our AVX512-BF16 GEMM";
#endif
    return "bf16 operands widened to float, then " + gemm_path<float>();
  }
  const std::string eigen = std::string("Eigen (") + Eigen::SimdInstructionSetsInUse() + ")";
#if defined(RESNET_HAVE_SGEMM_AVX512)
  if (std::is_same_v<T, float> && avx512::cpu_supported()) return "our AVX-512 SGEMM";
#endif
  return eigen;
}

}  // namespace resnet::kernels
