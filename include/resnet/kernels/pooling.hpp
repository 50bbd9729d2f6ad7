#pragma once
// 2-d pooling on raw arrays of P = N*C independent planes [P, H, W]: max pooling (square kernel k, stride s,
// padding p) and adaptive average pooling, following PyTorch's CPU kernels (native/cpu/MaxPoolKernel.cpp,
// native/cpu/AdaptiveAvgPoolKernel.cpp). Planes are split across threads; each output is computed by one
// thread in a fixed order, so results do not depend on the thread count.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "resnet/core/parallel.hpp"
#include "resnet/kernels/window.hpp"

namespace resnet::kernels {

// Below this many output elements a call runs on one thread.
inline constexpr std::int64_t kPoolParallelMinElements = std::int64_t{1} << 14;

// x [P, H, W] -> y [P, OH, OW], argmax [P, OH, OW] (may be null when no backward follows), with OH, OW from
// window_output_size. Padding acts as -inf, so only real elements can win (p <= k/2 keeps every window
// non-empty). argmax holds the flat index ih*W + iw of the chosen element within its plane. As PyTorch, a
// value replaces the running maximum when it is greater or NaN: among equal maxima the FIRST in row-major
// scan order wins, and a NaN (the last one, if several) beats any number.
// Both modes read each window row from a copy of the input row between -inf pads, so that every output
// takes all k columns of its window without bounds, in branch-free selects the compiler vectorises across
// the outputs of a row (a compare-and-branch per element mispredicts on activations). Without argmax (eval)
// the maximum is taken separably, over the window's rows for every input column and then over its columns;
// the value is the same (NaN if the window holds one), and among equal maxima only the sign of a zero or
// the payload of a NaN could come from another element.
template <typename T>
void maxpool2d_forward(const T* x, std::int64_t P, std::int64_t H, std::int64_t W, std::int64_t k,
                       std::int64_t s, std::int64_t p, T* y, std::int64_t* argmax) {
  const std::int64_t OH = window_output_size(H, k, s, p), OW = window_output_size(W, k, s, p);
  const auto takes = [](T best, T value) { return value > best || value != value; };
  // Input column w is padded[w + p]; what the last window reaches past the row stays -inf.
  const std::int64_t padded_width = std::max((OW - 1) * s + k, W + p);
  RESNET_OMP(parallel num_threads(resnet::num_threads()) if (P * OH * OW >= kPoolParallelMinElements))
  {
    std::vector<T> padded(static_cast<std::size_t>(padded_width), -std::numeric_limits<T>::infinity());
    T* row = padded.data() + p;
    RESNET_OMP(for)
    for (std::int64_t plane = 0; plane < P; ++plane) {
      const T* xp = x + plane * H * W;
      for (std::int64_t oh = 0; oh < OH; ++oh) {
        const std::int64_t h0 = std::max<std::int64_t>(oh * s - p, 0), h1 = std::min(oh * s - p + k, H);
        T* out = y + (plane * OH + oh) * OW;
        if (!argmax) {
          std::copy_n(xp + h0 * W, W, row);  // the window rows' maximum of each input column
          for (std::int64_t h = h0 + 1; h < h1; ++h) {
            for (std::int64_t w = 0; w < W; ++w)
              row[w] = takes(row[w], xp[h * W + w]) ? xp[h * W + w] : row[w];
          }
          for (std::int64_t ow = 0; ow < OW; ++ow)
            out[ow] = padded[ow * s];
          for (std::int64_t j = 1; j < k; ++j) {
            for (std::int64_t ow = 0; ow < OW; ++ow)
              out[ow] = takes(out[ow], padded[ow * s + j]) ? padded[ow * s + j] : out[ow];
          }
          continue;
        }
        std::int64_t* index = argmax + (plane * OH + oh) * OW;
        // Before the scan: -inf, at the window's first real element (where a -inf maximum stays).
        for (std::int64_t ow = 0; ow < OW; ++ow) {
          out[ow] = -std::numeric_limits<T>::infinity();
          index[ow] = h0 * W + std::max<std::int64_t>(ow * s - p, 0);
        }
        for (std::int64_t h = h0; h < h1; ++h) {
          std::copy_n(xp + h * W, W, row);
          for (std::int64_t j = 0; j < k; ++j) {
            for (std::int64_t ow = 0; ow < OW; ++ow) {
              const T value = padded[ow * s + j];
              const bool take = takes(out[ow], value);
              out[ow] = take ? value : out[ow];
              index[ow] = take ? h * W + ow * s - p + j : index[ow];
            }
          }
        }
      }
    }
  }
}

// dy [P, OHW], argmax [P, OHW] -> dx [P, HW] (assigned): each output's gradient goes to the element it took;
// overlapping windows that took the same element add up.
template <typename T>
void maxpool2d_backward(const T* dy, const std::int64_t* argmax, std::int64_t P, std::int64_t HW,
                        std::int64_t OHW, T* dx) {
  RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (P * OHW >= kPoolParallelMinElements))
  for (std::int64_t plane = 0; plane < P; ++plane) {
    T* dxp = dx + plane * HW;
    std::fill(dxp, dxp + HW, T(0));
    for (std::int64_t o = plane * OHW; o < (plane + 1) * OHW; ++o)
      dxp[argmax[o]] += dy[o];
  }
}

// Adaptive pooling window [start, end) of output i when `in` elements are pooled to `out`, as PyTorch:
// start = floor(i * in / out), end = ceil((i + 1) * in / out). Windows may overlap, and when out > in several
// outputs share one input element.
inline std::int64_t adaptive_window_start(std::int64_t i, std::int64_t out, std::int64_t in) {
  return i * in / out;
}
inline std::int64_t adaptive_window_end(std::int64_t i, std::int64_t out, std::int64_t in) {
  return ((i + 1) * in + out - 1) / out;
}

// Calls visit(out_index, window_begin_h, window_end_h, window_begin_w, window_end_w) for every output of
// [OH, OW] pooled adaptively from [H, W].
template <typename Visit>
void for_each_adaptive_window(std::int64_t H, std::int64_t W, std::int64_t OH, std::int64_t OW,
                              Visit&& visit) {
  for (std::int64_t oh = 0; oh < OH; ++oh) {
    const std::int64_t h0 = adaptive_window_start(oh, OH, H), h1 = adaptive_window_end(oh, OH, H);
    for (std::int64_t ow = 0; ow < OW; ++ow)
      visit(oh * OW + ow, h0, h1, adaptive_window_start(ow, OW, W), adaptive_window_end(ow, OW, W));
  }
}

// x [P, H, W] -> y [P, OH, OW]: the mean of each window, summed in double when T is float and divided by the
// window height, then its width (PyTorch's cpu_adaptive_avg_pool2d order).
template <typename T>
void adaptive_avgpool2d_forward(const T* x, std::int64_t P, std::int64_t H, std::int64_t W, std::int64_t OH,
                                std::int64_t OW, T* y) {
  using Acc = std::common_type_t<T, double>;
  RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (P * H * W >= kPoolParallelMinElements))
  for (std::int64_t plane = 0; plane < P; ++plane) {
    const T* xp = x + plane * H * W;
    T* yp = y + plane * OH * OW;
    for_each_adaptive_window(
        H, W, OH, OW,
        [&](std::int64_t o, std::int64_t h0, std::int64_t h1, std::int64_t w0, std::int64_t w1) {
          Acc sum = 0;
          for (std::int64_t h = h0; h < h1; ++h) {
            for (std::int64_t w = w0; w < w1; ++w)
              sum += xp[h * W + w];
          }
          yp[o] = static_cast<T>(sum / static_cast<Acc>(h1 - h0) / static_cast<Acc>(w1 - w0));
        });
  }
}

// dy [P, OH, OW] -> dx [P, H, W] (assigned): each output's gradient, divided by its window size, is spread
// over the window; overlapping windows add up.
template <typename T>
void adaptive_avgpool2d_backward(const T* dy, std::int64_t P, std::int64_t H, std::int64_t W, std::int64_t OH,
                                 std::int64_t OW, T* dx) {
  RESNET_OMP(parallel for num_threads(resnet::num_threads()) if (P * H * W >= kPoolParallelMinElements))
  for (std::int64_t plane = 0; plane < P; ++plane) {
    const T* dyp = dy + plane * OH * OW;
    T* dxp = dx + plane * H * W;
    std::fill(dxp, dxp + H * W, T(0));
    for_each_adaptive_window(
        H, W, OH, OW,
        [&](std::int64_t o, std::int64_t h0, std::int64_t h1, std::int64_t w0, std::int64_t w1) {
          const T share = dyp[o] / static_cast<T>(h1 - h0) / static_cast<T>(w1 - w0);
          for (std::int64_t h = h0; h < h1; ++h) {
            for (std::int64_t w = w0; w < w1; ++w)
              dxp[h * W + w] += share;
          }
        });
  }
}

}  // namespace resnet::kernels
