#pragma once
// Batch normalisation on raw arrays, per channel over x [N, C, HW] (HW = H*W), following PyTorch's CPU
// kernels (aten/src/ATen/native/batch_norm.cpp, native/cpu/batch_norm_kernel.cpp). Sums accumulate in
// BatchNormAcc<T>: double when T is float. Each channel is reduced by one thread in a fixed order, so results
// do not depend on the thread count.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <type_traits>
#include <vector>

#include "resnet/core/parallel.hpp"
#include "resnet/kernels/relu.hpp"

namespace resnet::kernels {

template <typename T>
using BatchNormAcc = std::common_type_t<T, double>;

namespace detail {
// Channels reduced together: as many as keep each image's planes of them within 256 contiguous values, at
// most kMaxChannels (maps of 128 values or fewer are blocked). Channel c of x [N, C, HW] is N planes C * HW
// apart, so a channel of 4x4 maps alone reads one cache line per plane, all in the same cache sets, and a
// second pass finds none of them left; a block of channels reads runs of 1 KB and stays in cache between
// passes.
inline constexpr std::int64_t kMaxChannels = 16;
inline std::int64_t channel_block(std::int64_t HW) {
  return std::clamp<std::int64_t>(256 / std::max<std::int64_t>(HW, 1), 1, kMaxChannels);
}

// For each channel j < channels (at most kMaxChannels), the K sums of values_of(n, j)(i), a
// std::array<Acc, K>, over images n in [0, N) and i in [0, HW), into sums[j]. Each sum runs over kLanes
// partial sums: a single running sum makes every add wait for the previous one (the compiler may not reorder
// floating-point adds); independent lanes let the adds overlap and run as vectors (16 doubles: two AVX-512
// registers, four AVX ones). The lanes run on across images, so a channel of many small planes (4x4 maps) is
// reduced once. Several sums in one pass read the data once. Each channel's order is fixed whatever else is
// summed with it, so the result is the same on every run, thread count and block size.
template <typename Acc, std::size_t K, typename ValuesOf>
void sums_of(std::int64_t N, std::int64_t channels, std::int64_t HW, ValuesOf&& values_of,
             std::array<Acc, K>* sums) {
  constexpr int kLanes = 16;
  Acc partial[kMaxChannels][K][kLanes] = {};
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t j = 0; j < channels; ++j) {
      const auto f = values_of(n, j);
      std::int64_t i = 0;
      for (; i + kLanes <= HW; i += kLanes) {
        for (int lane = 0; lane < kLanes; ++lane) {
          const std::array<Acc, K> v = f(i + lane);
          for (std::size_t k = 0; k < K; ++k)
            partial[j][k][lane] += v[k];
        }
      }
      for (; i < HW; ++i) {
        const std::array<Acc, K> v = f(i);
        for (std::size_t k = 0; k < K; ++k)
          partial[j][k][i % kLanes] += v[k];
      }
    }
  }
  for (std::int64_t j = 0; j < channels; ++j) {
    for (std::size_t k = 0; k < K; ++k) {
      for (int width = kLanes / 2; width > 0; width /= 2) {  // pairwise, in a fixed order
        for (int lane = 0; lane < width; ++lane)
          partial[j][k][lane] += partial[j][k][lane + width];
      }
      sums[j][k] = partial[j][k][0];
    }
  }
}
}  // namespace detail

// Below this many elements a call runs on one thread: the work would not pay for waking the others.
inline constexpr std::int64_t kBatchNormParallelMinElements = std::int64_t{1} << 15;

// Sums over the processes of a data-parallel run, in place: `values` [count] becomes, on every process, the
// sum of every process's values. Synchronized BatchNorm (distributed/sync_batchnorm.hpp) passes one, so that
// the statistics are those of the global batch; empty, a BatchNorm is local.
template <typename T>
using SumAcross = std::function<void(BatchNormAcc<T>* values, std::int64_t count)>;

// x [N, C, HW] -> mean [C], var [C]: the mean and the BIASED variance of each channel's N*HW values; returns
// that count. Two passes (the mean, then the squared deviations from it) instead of E[x^2] - E[x]^2, which
// cancels catastrophically when |mean| >> std; PyTorch's batch_norm_cpu_collect_stats does the same, with
// the mean rounded to T before the second pass. With `across`, each pass's sums (and the count) are summed
// over the processes before they are used: the statistics of every process's x together, and their count.
template <typename T>
BatchNormAcc<T> batchnorm_statistics(const T* x, std::int64_t N, std::int64_t C, std::int64_t HW, T* mean,
                                     T* var, const SumAcross<T>& across = {}) {
  using Acc = BatchNormAcc<T>;
  const Acc local_count = static_cast<Acc>(N * HW);
  const std::int64_t block = detail::channel_block(HW), blocks = (C + block - 1) / block;
  [[maybe_unused]] const bool parallel = N * C * HW >= kBatchNormParallelMinElements;
  // The sums of channels [c0, c0 + channels): of x, or, given the channels' means m, of (x - m)^2.
  const auto sums_of_block = [&](std::int64_t c0, std::int64_t channels, const T* m,
                                 std::array<Acc, 1>* sums) {
    const auto plane = [&](std::int64_t n, std::int64_t j) { return x + (n * C + c0 + j) * HW; };
    if (!m) {
      detail::sums_of(
          N, channels, HW,
          [&](std::int64_t n, std::int64_t j) {
            return [xc = plane(n, j)](std::int64_t i) { return std::array<Acc, 1>{static_cast<Acc>(xc[i])}; };
          },
          sums);
      return;
    }
    detail::sums_of(
        N, channels, HW,
        [&](std::int64_t n, std::int64_t j) {
          return [xc = plane(n, j), mj = static_cast<Acc>(m[j])](std::int64_t i) {
            const Acc d = static_cast<Acc>(xc[i]) - mj;
            return std::array<Acc, 1>{d * d};
          };
        },
        sums);
  };
  if (!across) {  // each block of channels from start to end while it is in cache
    RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (parallel))
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t c0 = b * block, channels = std::min(block, C - c0);
      std::array<Acc, 1> sums[detail::kMaxChannels];
      sums_of_block(c0, channels, nullptr, sums);
      for (std::int64_t j = 0; j < channels; ++j)
        mean[c0 + j] = static_cast<T>(sums[j][0] / local_count);
      sums_of_block(c0, channels, mean + c0, sums);
      for (std::int64_t j = 0; j < channels; ++j)
        var[c0 + j] = static_cast<T>(sums[j][0] / local_count);
    }
    return local_count;
  }
  std::vector<Acc> totals(static_cast<std::size_t>(C + 1));  // each pass's sums, then the count
  const auto pass = [&](const T* m) {
    RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (parallel))
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t c0 = b * block, channels = std::min(block, C - c0);
      std::array<Acc, 1> sums[detail::kMaxChannels];
      sums_of_block(c0, channels, m ? m + c0 : nullptr, sums);
      for (std::int64_t j = 0; j < channels; ++j)
        totals[static_cast<std::size_t>(c0 + j)] = sums[j][0];
    }
  };
  pass(nullptr);
  totals[static_cast<std::size_t>(C)] = local_count;
  across(totals.data(), C + 1);
  const Acc count = totals[static_cast<std::size_t>(C)];
  for (std::int64_t c = 0; c < C; ++c)
    mean[c] = static_cast<T>(totals[static_cast<std::size_t>(c)] / count);
  pass(mean);
  across(totals.data(), C);
  for (std::int64_t c = 0; c < C; ++c)
    var[c] = static_cast<T>(totals[static_cast<std::size_t>(c)] / count);
  return count;
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
                             T* dgamma, T* dbeta, const SumAcross<T>& across) {
  using Acc = BatchNormAcc<T>;
  const Acc local_count = static_cast<Acc>(N * HW);
  const std::int64_t block = channel_block(HW), blocks = (C + block - 1) / block;
  [[maybe_unused]] const bool parallel = N * C * HW >= kBatchNormParallelMinElements;
  // Channels [c0, c0 + channels): their sum(dy), sum(dy * (x - mean)) into sums, added to dbeta and dgamma.
  const auto reduce_block = [&](std::int64_t c0, std::int64_t channels, std::array<Acc, 2>* sums) {
    sums_of(
        N, channels, HW,
        [&](std::int64_t n, std::int64_t j) {
          const std::int64_t plane = n * C + c0 + j;
          return [xc = x + plane * HW, dyc = dy_of_plane(plane),
                  m = static_cast<Acc>(mean[c0 + j])](std::int64_t i) {
            const Acc d = static_cast<Acc>(dyc(i));
            return std::array<Acc, 2>{d, (static_cast<Acc>(xc[i]) - m) * d};
          };
        },
        sums);
    for (std::int64_t j = 0; j < channels; ++j) {
      const std::int64_t c = c0 + j;
      dbeta[c] = static_cast<T>(static_cast<Acc>(dbeta[c]) + sums[j][0]);
      dgamma[c] = static_cast<T>(static_cast<Acc>(dgamma[c]) + sums[j][1] * static_cast<Acc>(invstd[c]));
    }
  };
  // dx = (dy - mean(dy) - (x - mean) * k) * gamma * invstd, with k = sum(dy * (x - mean)) * invstd^2 / M,
  // for channels [c0, c0 + channels) from their sums over `count` values.
  const auto dx_of_block = [&](std::int64_t c0, std::int64_t channels, const std::array<Acc, 2>* sums,
                               Acc count) {
    T mean_dy[kMaxChannels], k[kMaxChannels], scale[kMaxChannels];
    for (std::int64_t j = 0; j < channels; ++j) {
      const Acc istd = invstd[c0 + j];
      mean_dy[j] = static_cast<T>(sums[j][0] / count);
      k[j] = static_cast<T>(sums[j][1] * istd * istd / count);
      scale[j] = static_cast<T>(static_cast<Acc>(gamma[c0 + j]) * istd);
    }
    for (std::int64_t n = 0; n < N; ++n) {
      for (std::int64_t j = 0; j < channels; ++j) {
        const std::int64_t plane = n * C + c0 + j;
        const T* xc = x + plane * HW;
        const auto dyc = dy_of_plane(plane);
        T* dxc = dx + plane * HW;
        const T mu = mean[c0 + j], mdy = mean_dy[j], kj = k[j], sj = scale[j];
        for (std::int64_t i = 0; i < HW; ++i)
          dxc[i] = (dyc(i) - mdy - (xc[i] - mu) * kj) * sj;
      }
    }
  };
  if (!across) {  // each block of channels from start to end while it is in cache
    RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (parallel))
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t c0 = b * block, channels = std::min(block, C - c0);
      std::array<Acc, 2> sums[kMaxChannels];
      reduce_block(c0, channels, sums);
      dx_of_block(c0, channels, sums, local_count);
    }
    return;
  }
  // The parameter gradients take this process's sums (a data-parallel run averages them as it does every
  // gradient); dx takes the sums over every process, as the statistics were.
  std::vector<Acc> totals(static_cast<std::size_t>(2 * C + 1));  // sum(dy), sum(dy * (x - mean)) per channel
  RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (parallel))
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t c0 = b * block, channels = std::min(block, C - c0);
    std::array<Acc, 2> sums[kMaxChannels];
    reduce_block(c0, channels, sums);
    for (std::int64_t j = 0; j < channels; ++j)
      for (std::size_t k = 0; k < 2; ++k)
        totals[static_cast<std::size_t>(2 * (c0 + j)) + k] = sums[j][k];
  }
  totals[static_cast<std::size_t>(2 * C)] = local_count;
  across(totals.data(), 2 * C + 1);
  const Acc count = totals[static_cast<std::size_t>(2 * C)];
  RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (parallel))
  for (std::int64_t b = 0; b < blocks; ++b) {
    const std::int64_t c0 = b * block, channels = std::min(block, C - c0);
    std::array<Acc, 2> sums[kMaxChannels];
    for (std::int64_t j = 0; j < channels; ++j)
      for (std::size_t k = 0; k < 2; ++k)
        sums[j][k] = totals[static_cast<std::size_t>(2 * (c0 + j)) + k];
    dx_of_block(c0, channels, sums, count);
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
// With `across` (as the forward's statistics had), the sums and M in dx are over every process; dgamma and
// dbeta stay this process's.
template <typename T>
void batchnorm_backward(const T* x, const T* dy, const T* mean, const T* invstd, const T* gamma,
                        std::int64_t N, std::int64_t C, std::int64_t HW, T* dx, T* dgamma, T* dbeta,
                        const T* relu_output = nullptr, const SumAcross<T>& across = {}) {
  if (relu_output) {
    detail::batchnorm_backward_with(
        x,
        [dy, relu_output, HW](std::int64_t plane) {
          const T* dyp = dy + plane * HW;
          const T* rp = relu_output + plane * HW;
          return [dyp, rp](std::int64_t i) { return keep_if(rp[i] > T(0), dyp[i]); };
        },
        mean, invstd, gamma, N, C, HW, dx, dgamma, dbeta, across);
  } else {
    detail::batchnorm_backward_with(
        x,
        [dy, HW](std::int64_t plane) {
          const T* dyp = dy + plane * HW;
          return [dyp](std::int64_t i) { return dyp[i]; };
        },
        mean, invstd, gamma, N, C, HW, dx, dgamma, dbeta, across);
  }
}

}  // namespace resnet::kernels
