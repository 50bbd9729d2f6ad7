#pragma once
// From decoded 8-bit pixels to the tensor an ImageNet model takes, as torchvision's evaluation transform:
//   ToTensor() -> Resize(256, bilinear, antialias) -> CenterCrop(224) -> Normalize(ImageNet mean, std)
// applied to a tensor image (float [C, H, W] in [0, 1]), so resizing works on floats, not rounded 8-bit
// pixels. Resize matches torch.nn.functional.interpolate(mode="bilinear", align_corners=False), with
// antialias=True its antialiased form: the one PIL uses, and what torchvision's Resize does to PIL images,
// which is how published ImageNet accuracies are measured. Without antialiasing, shrinking a large photo
// skips pixels. tests/test_classify_preprocess.cpp checks both against torchvision.
//
//   Tensor<float> x = io::preprocess_image<float>(pixels, height, width, 3);   // [1, 3, 224, 224]
//
// convert_channels comes first when the image's channels are not the model's: PIL's convert("L") of an RGB
// image for a grayscale model, a grayscale image's channel repeated for an RGB one.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet::io {

struct ImagePreprocessing {
  int resize = 256;  // the shorter side becomes this
  int crop = 224;    // then the centre crop-by-crop square
  bool antialias = true;
  std::vector<float> mean{0.485f, 0.456f, 0.406f};  // per channel, of pixels in [0, 1]
  std::vector<float> std{0.229f, 0.224f, 0.225f};
};

// [height, width, channels] uint8, as image decoders return pixels -> [channels, height, width] in [0, 1].
template <typename T>
Tensor<T> pixels_to_tensor(const std::uint8_t* pixels, int height, int width, int channels) {
  check(height > 0 && width > 0 && channels > 0, "pixels_to_tensor: image of ", height, "x", width, "x",
        channels, " pixels");
  const std::int64_t plane = static_cast<std::int64_t>(height) * width;
  Tensor<T> image({channels, height, width});
  T* out = image.data();
  for (std::int64_t p = 0; p < plane; ++p)
    for (int c = 0; c < channels; ++c)
      out[c * plane + p] = static_cast<T>(pixels[p * channels + c]) / T(255);
  return image;
}

// [height, width, channels] uint8 -> [height, width, to_channels] uint8, for a model whose first conv takes
// to_channels:
//   3 -> 1  ITU-R 601-2 luma, L = R * 299/1000 + G * 587/1000 + B * 114/1000 rounded, in PIL's fixed point
//           (19595 R + 38470 G + 7471 B + 2^15) >> 16: PIL's convert("L"), which torchvision's Grayscale
//           runs on a PIL image
//   1 -> 3  the one channel repeated: PIL's convert("RGB") of a grayscale image
//   n -> n  a copy
inline std::vector<std::uint8_t> convert_channels(const std::uint8_t* pixels, int height, int width,
                                                  int channels, int to_channels) {
  check(height > 0 && width > 0, "convert_channels: image of ", height, "x", width, " pixels");
  check(channels == to_channels || (channels == 3 && to_channels == 1) || (channels == 1 && to_channels == 3),
        "convert_channels: from ", channels, " to ", to_channels,
        " channels; converts RGB to grayscale (3 to 1), grayscale to RGB (1 to 3) or nothing");
  const std::size_t n = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  std::vector<std::uint8_t> out(n * static_cast<std::size_t>(to_channels));
  if (channels == to_channels) {
    std::copy(pixels, pixels + out.size(), out.begin());
  } else if (to_channels == 1) {
    for (std::size_t p = 0; p < n; ++p) {
      const std::uint8_t* rgb = pixels + 3 * p;
      out[p] =
          static_cast<std::uint8_t>((19595u * rgb[0] + 38470u * rgb[1] + 7471u * rgb[2] + 0x8000u) >> 16);
    }
  } else {
    for (std::size_t p = 0; p < n; ++p)
      std::fill_n(out.begin() + static_cast<std::ptrdiff_t>(3 * p), 3, pixels[p]);
  }
  return out;
}

// torchvision's Resize(size) output for an image of height x width: the shorter side becomes `size`, the
// longer int(size * long / short) (truncated, as Python's int()).
inline std::pair<int, int> resized_shape(int height, int width, int size) {
  check(height > 0 && width > 0 && size > 0, "resized_shape: image ", height, "x", width, ", size ", size);
  const bool portrait = height >= width;
  const int longer =
      static_cast<int>(static_cast<double>(size) * (portrait ? height : width) / (portrait ? width : height));
  return portrait ? std::pair<int, int>{longer, size} : std::pair<int, int>{size, longer};
}

namespace detail {

// The input samples and weights of every output sample along one axis: output i = sum_k weights[i][k] *
// input[index[i][k]].
struct AxisTaps {
  std::vector<std::vector<std::int64_t>> index;
  std::vector<std::vector<double>> weights;
};

// As PyTorch's upsample_bilinear2d (area_pixel_compute_source_index, align_corners=False) and, with
// antialias, _upsample_bilinear2d_aa (_compute_weights_aa): a triangle filter stretched by the scale when
// shrinking, its weights normalised to sum to 1.
inline AxisTaps bilinear_taps(std::int64_t in, std::int64_t out, bool antialias) {
  AxisTaps taps;
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (std::int64_t i = 0; i < out; ++i) {
    std::vector<std::int64_t> index;
    std::vector<double> weights;
    if (antialias) {
      const double center = scale * (static_cast<double>(i) + 0.5);
      const double support = scale >= 1 ? scale : 1.0;
      const double invscale = scale >= 1 ? 1.0 / scale : 1.0;
      const std::int64_t first = std::max<std::int64_t>(static_cast<std::int64_t>(center - support + 0.5), 0);
      const std::int64_t last = std::min<std::int64_t>(static_cast<std::int64_t>(center + support + 0.5), in);
      double total = 0;
      for (std::int64_t j = first; j < last; ++j) {
        const double w = std::max(0.0, 1.0 - std::abs((static_cast<double>(j) - center + 0.5) * invscale));
        index.push_back(j);
        weights.push_back(w);
        total += w;
      }
      if (total != 0)
        for (double& w : weights)
          w /= total;
    } else {
      const double source = std::max(scale * (static_cast<double>(i) + 0.5) - 0.5, 0.0);
      const std::int64_t i0 = static_cast<std::int64_t>(source);
      const double lambda = std::min(source - static_cast<double>(i0), 1.0);
      index = {i0, i0 + (i0 < in - 1 ? 1 : 0)};
      weights = {1.0 - lambda, lambda};
    }
    taps.index.push_back(std::move(index));
    taps.weights.push_back(std::move(weights));
  }
  return taps;
}

// in [outer, n_in, inner] -> out [outer, n_out, inner], resampling the middle axis with `taps`.
template <typename T>
void resample_axis(const T* in, std::int64_t outer, std::int64_t n_in, std::int64_t inner,
                   const AxisTaps& taps, T* out) {
  const std::int64_t n_out = static_cast<std::int64_t>(taps.index.size());
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t i = 0; i < n_out; ++i) {
      T* y = out + (o * n_out + i) * inner;
      std::fill(y, y + inner, T(0));
      for (std::size_t k = 0; k < taps.index[static_cast<std::size_t>(i)].size(); ++k) {
        const T w = static_cast<T>(taps.weights[static_cast<std::size_t>(i)][k]);
        const T* x = in + (o * n_in + taps.index[static_cast<std::size_t>(i)][k]) * inner;
        for (std::int64_t j = 0; j < inner; ++j)
          y[j] += w * x[j];
      }
    }
  }
}

}  // namespace detail

// [C, H, W] -> [C, out_height, out_width], bilinear: along the width first, then the height, as PyTorch.
template <typename T>
Tensor<T> resize_bilinear(const Tensor<T>& image, int out_height, int out_width, bool antialias) {
  check(image.dim() == 3, "resize_bilinear: expected a [C, H, W] image, got shape ",
        shape_string(image.shape()));
  check(out_height > 0 && out_width > 0, "resize_bilinear: output size ", out_height, "x", out_width);
  const std::int64_t C = image.size(0), H = image.size(1), W = image.size(2);
  Tensor<T> rows({C, H, out_width});
  detail::resample_axis(image.data(), C * H, W, 1, detail::bilinear_taps(W, out_width, antialias),
                        rows.data());
  Tensor<T> out({C, out_height, out_width});
  detail::resample_axis(rows.data(), C, H, out_width, detail::bilinear_taps(H, out_height, antialias),
                        out.data());
  return out;
}

// The centred size x size window of a [C, H, W] image; its offset (H - size) / 2 rounds half to even, as
// torchvision's int(round(...)).
template <typename T>
Tensor<T> center_crop(const Tensor<T>& image, int size) {
  check(image.dim() == 3, "center_crop: expected a [C, H, W] image, got shape ", shape_string(image.shape()));
  const std::int64_t C = image.size(0), H = image.size(1), W = image.size(2);
  check(size > 0 && size <= H && size <= W, "center_crop: cannot take ", size, "x", size, " from ",
        shape_string(image.shape()));
  const auto offset = [](std::int64_t excess) { return excess / 2 + (excess % 4 == 3 ? 1 : 0); };
  const std::int64_t top = offset(H - size), left = offset(W - size);
  Tensor<T> out({C, size, size});
  for (std::int64_t c = 0; c < C; ++c)
    for (std::int64_t y = 0; y < size; ++y)
      std::copy_n(image.data() + (c * H + top + y) * W + left, size, out.data() + (c * size + y) * size);
  return out;
}

// In place on [C, H, W]: (x - mean[c]) / std[c], as torchvision's Normalize.
template <typename T>
void normalize(Tensor<T>& image, const std::vector<float>& mean, const std::vector<float>& std) {
  check(image.dim() == 3, "normalize: expected a [C, H, W] image, got shape ", shape_string(image.shape()));
  const std::int64_t C = image.size(0), plane = image.size(1) * image.size(2);
  check(static_cast<std::int64_t>(mean.size()) == C && static_cast<std::int64_t>(std.size()) == C,
        "normalize: ", mean.size(), " means and ", std.size(), " stds for ", C, " channels");
  for (std::int64_t c = 0; c < C; ++c) {
    check(std[static_cast<std::size_t>(c)] > 0, "normalize: std ", std[static_cast<std::size_t>(c)],
          " of channel ", c, " is not positive");
    const T m = mean[static_cast<std::size_t>(c)], s = std[static_cast<std::size_t>(c)];
    for (T* x = image.data() + c * plane; x != image.data() + (c + 1) * plane; ++x)
      *x = (*x - m) / s;
  }
}

// The whole transform: [height, width, channels] uint8 -> [1, channels, crop, crop].
template <typename T>
Tensor<T> preprocess_image(const std::uint8_t* pixels, int height, int width, int channels,
                           const ImagePreprocessing& options = {}) {
  check(options.crop <= options.resize, "preprocess_image: crop ", options.crop, " is larger than resize ",
        options.resize);
  const auto [h, w] = resized_shape(height, width, options.resize);
  Tensor<T> image = center_crop(
      resize_bilinear(pixels_to_tensor<T>(pixels, height, width, channels), h, w, options.antialias),
      options.crop);
  normalize(image, options.mean, options.std);
  return image.reshape({1, channels, options.crop, options.crop});
}

}  // namespace resnet::io
