#pragma once
// Image transforms on raw [C, H, W] arrays, as torchvision's standard CIFAR recipe applies them:
//   RandomCrop(32, padding=4) -> RandomHorizontalFlip() on the uint8 image (zero padding, i.e. black),
//   then ToTensor() -> Normalize(mean, std) to floating point.
// Augmentation stays in uint8 so padded pixels are 0 before normalisation, exactly as with a PIL image.

#include <cstdint>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/rng.hpp"

namespace resnet::data {

// Per-channel statistics of pixels scaled to [0, 1], as torchvision's Normalize takes them.
struct Normalization {
  std::vector<float> mean;
  std::vector<float> std;

  void validate(std::int64_t channels, const std::string& who) const {
    check(static_cast<std::int64_t>(mean.size()) == channels &&
              static_cast<std::int64_t>(std.size()) == channels,
          who, ": normalisation has ", mean.size(), " means and ", std.size(), " stds for ", channels,
          " channels");
    for (float s : std)
      check(s > 0.0f, who, ": normalisation std ", s, " is not positive");
  }
};

// [C, H*W] uint8 -> [C, H*W] T: (x / 255 - mean[c]) / std[c]. The same operations in the same precision as
// ToTensor (x.float().div(255)) and Normalize (sub_(mean).div_(std)), so T = float matches torchvision
// bitwise.
template <typename T>
void normalize_image(const std::uint8_t* src, std::int64_t channels, std::int64_t pixels,
                     const Normalization& normalization, T* dst) {
  for (std::int64_t c = 0; c < channels; ++c) {
    const T mean = static_cast<T>(normalization.mean[static_cast<std::size_t>(c)]);
    const T std = static_cast<T>(normalization.std[static_cast<std::size_t>(c)]);
    for (std::int64_t i = 0; i < pixels; ++i)
      dst[c * pixels + i] = (static_cast<T>(src[c * pixels + i]) / T(255) - mean) / std;
  }
}

// What to draw for each training image. The default does nothing; cifar() is the standard recipe.
struct Augmentation {
  int crop_padding = 0;          // RandomCrop(H x W, padding=crop_padding); 0: no crop
  bool horizontal_flip = false;  // RandomHorizontalFlip(p=0.5)

  static Augmentation cifar() { return {4, true}; }
  bool active() const { return crop_padding > 0 || horizontal_flip; }
};

// One image's draw: the crop window's top-left corner in the padded image, each in [0, 2 * padding], and
// whether to mirror.
struct CropFlip {
  int top = 0;
  int left = 0;
  bool flip = false;
};

// Draws in torchvision's order: RandomCrop's top (i), then left (j), then the flip (torch.rand(1) < 0.5).
inline CropFlip sample_crop_flip(const Augmentation& augmentation, Rng& rng) {
  check(augmentation.crop_padding >= 0, "sample_crop_flip: negative crop padding ",
        augmentation.crop_padding);
  CropFlip draw;
  if (augmentation.crop_padding > 0) {
    const auto positions = static_cast<std::uint64_t>(2 * augmentation.crop_padding + 1);
    draw.top = static_cast<int>(rng.below(positions));
    draw.left = static_cast<int>(rng.below(positions));
  }
  if (augmentation.horizontal_flip) draw.flip = rng.uniform() < 0.5;
  return draw;
}

// [C, H, W] uint8 -> [C, H, W] uint8: the H x W window at (top, left) of the image zero-padded by `padding`
// on every side, mirrored left-right when flip (the crop first, then the flip, as in the recipe).
//   dst[c][y][x] = padded[c][y + top][left + (flip ? W - 1 - x : x)],  padded[c][i][j] = src[c][i - p][j - p]
inline void crop_flip_image(const std::uint8_t* src, std::int64_t channels, std::int64_t height,
                            std::int64_t width, int padding, const CropFlip& draw, std::uint8_t* dst) {
  for (std::int64_t c = 0; c < channels; ++c) {
    for (std::int64_t y = 0; y < height; ++y) {
      const std::int64_t sy = y + draw.top - padding;
      std::uint8_t* row = dst + (c * height + y) * width;
      const bool inside_row = sy >= 0 && sy < height;
      for (std::int64_t x = 0; x < width; ++x) {
        const std::int64_t sx = (draw.flip ? width - 1 - x : x) + draw.left - padding;
        row[x] = inside_row && sx >= 0 && sx < width ? src[(c * height + sy) * width + sx] : std::uint8_t{0};
      }
    }
  }
}

}  // namespace resnet::data
