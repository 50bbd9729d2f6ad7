// io/image.hpp against torchvision: ToTensor -> Resize(size, bilinear, antialias) -> CenterCrop(crop) ->
// Normalize(ImageNet mean, std) on 8-bit RGB images (fixture image_preprocess from tools/make_fixtures.py):
// shrinking and enlarging, with and without antialiasing, a centre offset of 6.5 (rounded to 6) and 7.5 (to
// 8), and an image already at the size. examples/classify runs this transform at 256 / 224.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "resnet/io/image.hpp"
#include "support/compare.hpp"
#include "support/fixture.hpp"

namespace {

using resnet::Tensor;

TEST(ImagePreprocessing, MatchesTorchvision) {
  const resnet::testing::Fixture fx("interop/image_preprocess");
  for (const auto& c : fx.meta_json("cases")) {
    const std::string name = c.at(0).get<std::string>();
    const Tensor<std::int64_t> image = fx.tensor<std::int64_t>("image/" + c.at(1).get<std::string>());
    std::vector<std::uint8_t> pixels(image.data(), image.data() + image.numel());
    resnet::io::ImagePreprocessing options;
    options.resize = c.at(2).get<int>();
    options.crop = c.at(3).get<int>();
    options.antialias = c.at(4).get<int>() != 0;
    const Tensor<float> ours = resnet::io::preprocess_image<float>(
        pixels.data(), static_cast<int>(image.size(0)), static_cast<int>(image.size(1)), 3, options);
    const Tensor<float> expected = fx.tensor<float>("expected/" + name);
    ASSERT_EQ(ours.shape(), expected.shape()) << name;
    float worst = 0;
    for (std::int64_t i = 0; i < ours.numel(); ++i)
      worst = std::max(worst, std::abs(ours[i] - expected[i]));
    EXPECT_LE(worst, 1e-5f) << name;  // values up to ~2.6: float rounding
  }
}

TEST(ImagePreprocessing, ShapesAndErrors) {
  EXPECT_EQ(resnet::io::resized_shape(480, 640, 256), (std::pair<int, int>{256, 341}));
  EXPECT_EQ(resnet::io::resized_shape(640, 480, 256), (std::pair<int, int>{341, 256}));
  EXPECT_EQ(resnet::io::resized_shape(100, 100, 256), (std::pair<int, int>{256, 256}));
  const std::vector<std::uint8_t> gray(12 * 10, 128);
  const Tensor<float> x = resnet::io::preprocess_image<float>(gray.data(), 12, 10, 1, [] {
    resnet::io::ImagePreprocessing o;
    o.resize = 8;
    o.crop = 6;
    o.mean = {0.5f};
    o.std = {0.25f};
    return o;
  }());
  EXPECT_EQ(x.shape(), (std::vector<std::int64_t>{1, 1, 6, 6}));
  EXPECT_NEAR(x[0], (128.0f / 255 - 0.5f) / 0.25f, 1e-6);  // a flat image stays flat
  // Three means for one channel; a crop larger than the resized image.
  EXPECT_THROW(resnet::io::preprocess_image<float>(gray.data(), 12, 10, 1), resnet::Error);
  resnet::io::ImagePreprocessing too_big;
  too_big.crop = 300;
  EXPECT_THROW(resnet::io::preprocess_image<float>(gray.data(), 12, 10, 1, too_big), resnet::Error);
}

TEST(ImagePreprocessing, ConvertChannelsAsPil) {
  // PIL's convert("L"): (19595 R + 38470 G + 7471 B + 2^15) >> 16, the rounded R*299/1000 + G*587/1000 +
  // B*114/1000: 76.245 -> 76, 149.685 -> 150, 29.07 -> 29, 140.75 -> 141, 255.
  const std::vector<std::uint8_t> rgb = {255, 0,   0,   0,   255, 0,   0, 0, 255,
                                         100, 150, 200, 255, 255, 255, 0, 0, 0};
  EXPECT_EQ(resnet::io::convert_channels(rgb.data(), 2, 3, 3, 1),
            (std::vector<std::uint8_t>{76, 150, 29, 141, 255, 0}));
  // One channel repeated to three; the same channels copied.
  const std::vector<std::uint8_t> gray = {9, 200};
  EXPECT_EQ(resnet::io::convert_channels(gray.data(), 1, 2, 1, 3),
            (std::vector<std::uint8_t>{9, 9, 9, 200, 200, 200}));
  EXPECT_EQ(resnet::io::convert_channels(rgb.data(), 3, 2, 3, 3), rgb);
  EXPECT_THROW(resnet::io::convert_channels(rgb.data(), 2, 3, 3, 2), resnet::Error);
  EXPECT_THROW(resnet::io::convert_channels(rgb.data(), 0, 3, 3, 1), resnet::Error);
}

}  // namespace
