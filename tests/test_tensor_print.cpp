// core/tensor_print.hpp: a tensor on a stream as tensor([values], shape=[...], dtype=...), long ones cut to
// their first and last three values, uint8 as numbers.

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <sstream>
#include <string>

#include "resnet/resnet.hpp"

namespace {

using resnet::Tensor;

template <typename T>
std::string printed(const Tensor<T>& t) {
  std::ostringstream out;
  out << t;
  return out.str();
}

TEST(TensorPrint, ValuesShapeAndDtype) {
  Tensor<float> small({2, 3});
  for (std::int64_t i = 0; i < 6; ++i)
    small[i] = 0.5f * static_cast<float>(i);
  EXPECT_EQ(printed(small), "tensor([0, 0.5, 1, 1.5, 2, 2.5], shape=[2, 3], dtype=float32)");

  Tensor<double> long_one({7});
  for (std::int64_t i = 0; i < 7; ++i)
    long_one[i] = static_cast<double>(i) - 3.25;
  EXPECT_EQ(printed(long_one),
            "tensor([-3.25, -2.25, -1.25, ..., 0.75, 1.75, 2.75], shape=[7], dtype=float64)");

  Tensor<std::uint8_t> pixels({1, 2, 2}, 7);
  pixels[3] = 255;
  EXPECT_EQ(printed(pixels), "tensor([7, 7, 7, 255], shape=[1, 2, 2], dtype=uint8)");
  EXPECT_EQ(printed(Tensor<std::int64_t>({1}, -4)), "tensor([-4], shape=[1], dtype=int64)");
}

TEST(TensorPrint, ScalarsEmptyAndSpecialValues) {
  EXPECT_EQ(printed(Tensor<float>(std::vector<std::int64_t>{}, 2.5f)),
            "tensor(2.5, shape=[], dtype=float32)");
  EXPECT_EQ(printed(Tensor<float>()), "tensor([], shape=[], dtype=float32)");
  EXPECT_EQ(printed(Tensor<float>({2, 0})), "tensor([], shape=[2, 0], dtype=float32)");
  Tensor<float> odd({2});
  odd[0] = std::numeric_limits<float>::infinity();
  odd[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(printed(odd), "tensor([inf, nan], shape=[2], dtype=float32)");
}

TEST(TensorPrint, FollowsTheStreamsPrecision) {
  std::ostringstream out;
  out.precision(3);
  out << Tensor<double>({1}, 3.14159265);
  EXPECT_EQ(out.str(), "tensor([3.14], shape=[1], dtype=float64)");
}

TEST(TensorPrint, DtypeNames) {
  EXPECT_STREQ(resnet::dtype_name<float>(), "float32");
  EXPECT_STREQ(resnet::dtype_name<double>(), "float64");
  EXPECT_STREQ(resnet::dtype_name<std::uint8_t>(), "uint8");
  EXPECT_STREQ(resnet::dtype_name<std::int8_t>(), "int8");
  EXPECT_STREQ(resnet::dtype_name<std::int16_t>(), "int16");
  EXPECT_STREQ(resnet::dtype_name<std::int32_t>(), "int32");
  EXPECT_STREQ(resnet::dtype_name<std::int64_t>(), "int64");
  EXPECT_STREQ(resnet::dtype_name<std::uint64_t>(), "uint64");
  EXPECT_STREQ(resnet::dtype_name<bool>(), "bool");
}

}  // namespace
