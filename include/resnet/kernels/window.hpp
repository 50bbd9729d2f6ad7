#pragma once
// The size of a sliding-window output, shared by convolution and max pooling.

#include <cstdint>

#include "resnet/core/error.hpp"

namespace resnet::kernels {

// Output size along one dimension for kernel k, stride s, padding p, as torch.nn.Conv2d and
// torch.nn.MaxPool2d (ceil_mode=False): floor((in + 2p - k) / s) + 1, or 0 when the padded input is smaller
// than the kernel.
// Every sliding-window kernel sizes its output here, so this one check keeps a zero stride (a division by
// zero) out of all of them.
inline std::int64_t window_output_size(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p) {
  check(in >= 0 && k >= 1 && s >= 1 && p >= 0,
        "window_output_size: need size >= 0, kernel_size >= 1, stride ", ">= 1 and padding >= 0, got size ",
        in, ", kernel_size ", k, ", stride ", s, ", padding ", p);
  const std::int64_t span = in + 2 * p - k;
  return span < 0 ? 0 : span / s + 1;
}

}  // namespace resnet::kernels
