#pragma once
// The one matrix multiply of the library: C = alpha * op(A) * op(B) + beta * C on row-major arrays, like
// BLAS gemm, computed by Eigen on Eigen::Map views of the caller's memory (nothing is copied).

#include <Eigen/Core>
#include <cstdint>

namespace resnet::kernels {

// Row-major matrix views over raw memory. Unaligned, because kernels are handed slices such as one image
// of a batch, which need not start on the tensor's 64-byte boundary.
template <typename T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MatrixView = Eigen::Map<RowMajorMatrix<T>>;
template <typename T>
using ConstMatrixView = Eigen::Map<const RowMajorMatrix<T>>;

// op(A): [M, K], stored as A [M, K] or, with transpose_a, as A [K, M]
// op(B): [K, N], stored as B [K, N] or, with transpose_b, as B [N, K]
// C:     [M, N]
// As in BLAS, beta == 0 means C is not read, so it may hold garbage (even NaN) on entry.
// Eigen threads the product itself when called outside a parallel region. Its K blocking depends on the
// thread count, so results can differ in the last bits between thread counts (bitwise determinism across
// thread counts is open work for the reliability issue).
template <typename T>
void gemm(bool transpose_a, bool transpose_b, std::int64_t M, std::int64_t N, std::int64_t K, T alpha,
          const T* A, const T* B, T beta, T* C) {
  const ConstMatrixView<T> a(A, transpose_a ? K : M, transpose_a ? M : K);
  const ConstMatrixView<T> b(B, transpose_b ? N : K, transpose_b ? K : N);
  MatrixView<T> c(C, M, N);
  auto multiply = [&](const auto& op_a, const auto& op_b) {
    if (beta == T(0)) {
      c.noalias() = alpha * op_a * op_b;
    } else {
      if (beta != T(1)) c *= beta;
      c.noalias() += alpha * op_a * op_b;
    }
  };
  if (transpose_a && transpose_b) {
    multiply(a.transpose(), b.transpose());
  } else if (transpose_a) {
    multiply(a.transpose(), b);
  } else if (transpose_b) {
    multiply(a, b.transpose());
  } else {
    multiply(a, b);
  }
}

}  // namespace resnet::kernels
