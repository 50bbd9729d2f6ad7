#pragma once
// Batch normalisation on raw arrays, per channel over x [N, C, HW] (HW = H*W), following PyTorch's CPU
// kernels (aten/src/ATen/native/batch_norm.cpp, native/cpu/batch_norm_kernel.cpp). Sums accumulate in
// BatchNormAcc<T>: double when T is float. Each channel is reduced by one thread in a fixed order, so results
// do not depend on the thread count.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "resnet/core/parallel.hpp"
#include "resnet/kernels/relu.hpp"

namespace resnet::kernels {

template <typename T>
using BatchNormAcc = std::common_type_t<T, double>;

namespace detail {
// sum of values_of(plane)(i) over planes [0, planes) and i in [0, n), in Acc, over kLanes partial sums: a
// single running sum makes every add wait for the previous one (the compiler may not reorder floating-point
// adds); independent lanes let the adds overlap and fill whole vector registers (16 doubles: two AVX-512
// registers, four AVX ones). The lanes run on across planes, so a channel of many small planes (4x4 maps) is
// reduced once. The order is fixed, so the result is the same on every run and thread count.
template <typename Acc, typename ValuesOf>
Acc sum_of(std::int64_t planes, std::int64_t n, ValuesOf&& values_of) {
  constexpr int kLanes = 16;
  Acc partial[kLanes] = {};
  for (std::int64_t plane = 0; plane < planes; ++plane) {
    const auto f = values_of(plane);
    std::int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (int lane = 0; lane < kLanes; ++lane)
        partial[lane] += f(i + lane);
    }
    for (; i < n; ++i)
      partial[i % kLanes] += f(i);
  }
  for (int width = kLanes / 2; width > 0; width /= 2) {  // pairwise, in a fixed order
    for (int lane = 0; lane < width; ++lane)
      partial[lane] += partial[lane + width];
  }
  return partial[0];
}
}  // namespace detail

// Below this many elements a call runs on one thread: the work would not pay for waking the others.
inline constexpr std::int64_t kBatchNormParallelMinElements = std::int64_t{1} << 15;

// x [N, C, HW] -> mean [C], var [C]: the mean and the BIASED variance of each channel's N*HW values.
// Two passes (the mean, then the squared deviations from it) instead of E[x^2] - E[x]^2, which cancels
// catastrophically when |mean| >> std; PyTorch's batch_norm_cpu_collect_stats does the same, with the mean
// rounded to T before the second pass.
template <typename T>
void batchnorm_statistics(const T* x, std::int64_t N, std::int64_t C, std::int64_t HW, T* mean, T* var) {
  using Acc = BatchNormAcc<T>;
  const Acc count = static_cast<Acc>(N * HW);
  RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (N * C * HW >= kBatchNormParallelMinElements))
  for (std::int64_t c = 0; c < C; ++c) {
    const auto plane_of = [x, C, HW, c](std::int64_t n) { return x + (n * C + c) * HW; };
    const Acc sum = detail::sum_of<Acc>(N, HW, [&](std::int64_t n) {
      return [xc = plane_of(n)](std::int64_t i) { return static_cast<Acc>(xc[i]); };
    });
    const T m = static_cast<T>(sum / count);
    const Acc squares = detail::sum_of<Acc>(N, HW, [&](std::int64_t n) {
      return [xc = plane_of(n), m](std::int64_t i) {
        const Acc d = static_cast<Acc>(xc[i]) - static_cast<Acc>(m);
        return d * d;
      };
    });
    mean[c] = m;
    var[c] = static_cast<T>(squares / count);
  }
}

// var [C] -> invstd [C] = 1 / sqrt(var + eps).
template <typename T>
void batchnorm_invstd(const T* var, double eps, std::int64_t C, T* invstd) {
  using Acc = BatchNormAcc<T>;
  for (std::int64_t c = 0; c < C; ++c)
    invstd[c] = static_cast<T>(Acc(1) / std::sqrt(static_cast<Acc>(var[c]) + static_cast<Acc>(eps)));
}

// x [N, C, HW]; mean, invstd, gamma, beta [C] -> y [N, C, HW]:
//   y = (x - mean) * invstd * gamma + beta,
// evaluated as y = x * scale + shift with scale = gamma * invstd, shift = beta - mean * scale per channel, as
// PyTorch's batch_norm_cpu_transform_input. Training passes the batch statistics, eval the running ones.
// With relu, y = max(that, 0): the ReLU that follows a BatchNorm in ResNet, in the same pass.
template <typename T>
void batchnorm_scale_shift(const T* mean, const T* invstd, const T* gamma, const T* beta, std::int64_t c,
                           T& scale, T& shift) {
  using Acc = BatchNormAcc<T>;
  const Acc scale_acc = static_cast<Acc>(gamma[c]) * static_cast<Acc>(invstd[c]);
  scale = static_cast<T>(scale_acc);
  shift = static_cast<T>(static_cast<Acc>(beta[c]) - static_cast<Acc>(mean[c]) * scale_acc);
}

template <typename T>
void batchnorm_forward(const T* x, const T* mean, const T* invstd, const T* gamma, const T* beta,
                       std::int64_t N, std::int64_t C, std::int64_t HW, T* y, bool relu = false) {
  RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (N * C * HW >= kBatchNormParallelMinElements))
  for (std::int64_t plane = 0; plane < N * C; ++plane) {
    T scale, shift;
    batchnorm_scale_shift(mean, invstd, gamma, beta, plane % C, scale, shift);
    const T* xp = x + plane * HW;
    T* yp = y + plane * HW;
    const T floor = relu ? T(0) : -std::numeric_limits<T>::infinity();
    for (std::int64_t i = 0; i < HW; ++i)
      yp[i] = std::max(xp[i] * scale + shift, floor);
  }
}

namespace detail {
// batchnorm_backward with dy of plane p read through dy_of_plane(p)(i), so that the masked and the plain
// variant each compile to their own vectorised loops.
template <typename T, typename DyOfPlane>
void batchnorm_backward_with(const T* x, DyOfPlane dy_of_plane, const T* mean, const T* invstd,
                             const T* gamma, std::int64_t N, std::int64_t C, std::int64_t HW, T* dx,
                             T* dgamma, T* dbeta) {
  using Acc = BatchNormAcc<T>;
  const Acc count = static_cast<Acc>(N * HW);
  RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (N * C * HW >= kBatchNormParallelMinElements))
  for (std::int64_t c = 0; c < C; ++c) {
    const Acc m = mean[c], istd = invstd[c];
    const Acc sum_dy = sum_of<Acc>(N, HW, [&](std::int64_t n) {
      return [dyc = dy_of_plane(n * C + c)](std::int64_t i) { return static_cast<Acc>(dyc(i)); };
    });
    const Acc sum_dy_xmu = sum_of<Acc>(N, HW, [&](std::int64_t n) {
      return [xc = x + (n * C + c) * HW, dyc = dy_of_plane(n * C + c), m](std::int64_t i) {
        return (static_cast<Acc>(xc[i]) - m) * static_cast<Acc>(dyc(i));
      };
    });
    dbeta[c] = static_cast<T>(static_cast<Acc>(dbeta[c]) + sum_dy);
    dgamma[c] = static_cast<T>(static_cast<Acc>(dgamma[c]) + sum_dy_xmu * istd);
    // dx = (dy - mean(dy) - (x - mean) * k) * gamma * invstd, with k = sum(dy * (x - mean)) * invstd^2 / M.
    const T mean_dy = static_cast<T>(sum_dy / count);
    const T k = static_cast<T>(sum_dy_xmu * istd * istd / count);
    const T mu = mean[c];
    const T scale = static_cast<T>(static_cast<Acc>(gamma[c]) * istd);
    for (std::int64_t n = 0; n < N; ++n) {
      const T* xc = x + (n * C + c) * HW;
      const auto dyc = dy_of_plane(n * C + c);
      T* dxc = dx + (n * C + c) * HW;
      for (std::int64_t i = 0; i < HW; ++i)
        dxc[i] = (dyc(i) - mean_dy - (xc[i] - mu) * k) * scale;
    }
  }
}
}  // namespace detail

// Training-mode backward, where mean and invstd are themselves functions of x.
// x, dy [N, C, HW]; mean, invstd, gamma [C] -> dx [N, C, HW] (assigned); dgamma, dbeta [C] (ADDED to).
// With xhat = (x - mean) * invstd and M = N*HW (PyTorch's batch_norm_backward_cpu_template):
//   dbeta  += sum(dy)
//   dgamma += sum(dy * xhat)
//   dx = gamma * invstd * (dy - sum(dy) / M - xhat * sum(dy * xhat) / M)
// With relu_output (a tensor like x, or null), dy is first masked to dy * (relu_output > 0): the backward of
// a ReLU applied after this BatchNorm (possibly after a residual add), fused so no masked copy is made.
template <typename T>
void batchnorm_backward(const T* x, const T* dy, const T* mean, const T* invstd, const T* gamma,
                        std::int64_t N, std::int64_t C, std::int64_t HW, T* dx, T* dgamma, T* dbeta,
                        const T* relu_output = nullptr) {
  if (relu_output) {
    detail::batchnorm_backward_with(
        x,
        [dy, relu_output, HW](std::int64_t plane) {
          const T* dyp = dy + plane * HW;
          const T* rp = relu_output + plane * HW;
          return [dyp, rp](std::int64_t i) { return keep_if(rp[i] > T(0), dyp[i]); };
        },
        mean, invstd, gamma, N, C, HW, dx, dgamma, dbeta);
  } else {
    detail::batchnorm_backward_with(
        x,
        [dy, HW](std::int64_t plane) {
          const T* dyp = dy + plane * HW;
          return [dyp](std::int64_t i) { return dyp[i]; };
        },
        mean, invstd, gamma, N, C, HW, dx, dgamma, dbeta);
  }
}

}  // namespace resnet::kernels
