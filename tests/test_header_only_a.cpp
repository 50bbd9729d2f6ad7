// Header-only hygiene, part 1 of 2: this file and test_header_only_b.cpp both include the umbrella header and
// use the library; if any function in a header were not inline, linking the test binary would fail with
// duplicates.
#include "resnet/resnet.hpp"

std::int64_t header_only_parameter_count_a() {
  resnet::nn::Conv2d<float> conv(3, 4, 3);
  resnet::set_num_threads(resnet::num_threads());
  return conv.parameter_count() + static_cast<std::int64_t>(resnet::shape_string({1, 2}).size());
}
