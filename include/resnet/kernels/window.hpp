#pragma once
// The size of a sliding-window output, shared by convolution and max pooling.

#include <cstdint>

namespace resnet::kernels {

// Output size along one dimension for kernel k, stride s, padding p, as torch.nn.Conv2d and
// torch.nn.MaxPool2d (ceil_mode=False): floor((in + 2p - k) / s) + 1, or 0 when the padded input is smaller
// than the kernel.
inline std::int64_t window_output_size(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t p) {
  const std::int64_t span = in + 2 * p - k;
  return span < 0 ? 0 : span / s + 1;
}

}  // namespace resnet::kernels
