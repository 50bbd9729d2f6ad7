// Header-only hygiene, part 2 of 2 (see test_header_only_a.cpp).
#include <gtest/gtest.h>

#include "resnet/resnet.hpp"

std::int64_t header_only_parameter_count_a();

TEST(HeaderOnly, TwoTranslationUnitsLinkTogether) {
  resnet::nn::Linear<float> fc(8, 2);
  EXPECT_EQ(fc.parameter_count(), 18);
  EXPECT_EQ(header_only_parameter_count_a(), 3 * 4 * 9 + 4 + 6);
}
