#pragma once
// im2col / col2im for one image, square kernel k, stride s, zero padding p: turns a convolution into one
// GEMM, Y [O, OH*OW] = W [O, C*k*k] x cols [C*k*k, OH*OW] (the scheme of Caffe and PyTorch's CPU
// slow_conv2d).

#include <cstdint>

#include "resnet/kernels/window.hpp"

namespace resnet::kernels {

namespace detail {
// Calls visit(col_index, image_index) for every element of cols [C*k*k, OH*OW] in order, where row
// (c, ki, kj) and column (oh, ow) read image [c, oh*s - p + ki, ow*s - p + kj]; image_index is -1 where
// that position lies in the zero padding.
template <typename Visit>
void for_each_patch_element(std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t k, std::int64_t s,
                            std::int64_t p, Visit&& visit) {
  const std::int64_t OH = window_output_size(H, k, s, p), OW = window_output_size(W, k, s, p);
  std::int64_t col = 0;
  for (std::int64_t c = 0; c < C; ++c) {
    for (std::int64_t ki = 0; ki < k; ++ki) {
      for (std::int64_t kj = 0; kj < k; ++kj) {
        for (std::int64_t oh = 0; oh < OH; ++oh) {
          const std::int64_t h = oh * s - p + ki;
          const bool row_inside = h >= 0 && h < H;
          for (std::int64_t ow = 0; ow < OW; ++ow, ++col) {
            const std::int64_t w = ow * s - p + kj;
            visit(col, row_inside && w >= 0 && w < W ? (c * H + h) * W + w : std::int64_t{-1});
          }
        }
      }
    }
  }
}
}  // namespace detail

// image: [C, H, W] -> cols: [C*k*k, OH*OW] (overwritten; padding gives zeros)
template <typename T>
void im2col(const T* image, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t k, std::int64_t s,
            std::int64_t p, T* cols) {
  detail::for_each_patch_element(C, H, W, k, s, p, [&](std::int64_t col, std::int64_t pixel) {
    cols[col] = pixel >= 0 ? image[pixel] : T(0);
  });
}

// cols: [C*k*k, OH*OW] -> image: [C, H, W], ACCUMULATED (+=); the adjoint of im2col, so an input pixel
// covered by several windows receives the sum of their gradients.
template <typename T>
void col2im(const T* cols, std::int64_t C, std::int64_t H, std::int64_t W, std::int64_t k, std::int64_t s,
            std::int64_t p, T* image) {
  detail::for_each_patch_element(C, H, W, k, s, p, [&](std::int64_t col, std::int64_t pixel) {
    if (pixel >= 0) image[pixel] += cols[col];
  });
}

}  // namespace resnet::kernels
