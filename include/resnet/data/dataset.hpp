#pragma once
// Dataset: a labelled image set held in memory as uint8 [N, C, H, W] (CIFAR-10: 60,000 x 3 x 32 x 32 is
// 184 MB), with its class names and the normalisation statistics of its training split. The readers
// (cifar10.hpp, mnist.hpp) return it; BatchLoader (loader.hpp) turns it into float batches.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/data/transforms.hpp"

namespace resnet::data {

enum class Split { Train, Test };

inline const char* split_name(Split split) {
  return split == Split::Train ? "train" : "test";
}

struct Dataset {
  std::string name;                      // e.g. "CIFAR-10 train"; used in messages
  Tensor<std::uint8_t> images;           // [N, C, H, W]
  std::vector<int> labels;               // N values in [0, class_names.size())
  std::vector<std::string> class_names;  // index = label
  Normalization normalization;           // per-channel mean/std of the training split, pixels in [0, 1]

  std::int64_t size() const { return images.empty() ? 0 : images.size(0); }
  std::int64_t channels() const { return images.size(1); }
  std::int64_t height() const { return images.size(2); }
  std::int64_t width() const { return images.size(3); }
  int num_classes() const { return static_cast<int>(class_names.size()); }

  // Throws unless images, labels, class names and normalisation agree with one another.
  void validate() const {
    const std::string who = "Dataset '" + name + "'";
    check(!images.empty() && images.dim() == 4, who, ": images must be [N, C, H, W], got ",
          shape_string(images.shape()));
    check(size() > 0, who, ": no images");
    check(static_cast<std::int64_t>(labels.size()) == size(), who, ": ", size(), " images but ",
          labels.size(), " labels");
    check(!class_names.empty(), who, ": no class names");
    for (std::size_t i = 0; i < labels.size(); ++i)
      check(labels[i] >= 0 && labels[i] < num_classes(), who, ": label ", labels[i], " of image ", i,
            " is out of range [0, ", num_classes(), ")");
    normalization.validate(channels(), who);
  }

  // The first n images (for --train-subset); a copy, so the full set can be released.
  Dataset head(std::int64_t n) const {
    check(n >= 0 && n <= size(), "Dataset '", name, "'.head: asked for ", n, " of ", size(), " images");
    std::vector<std::int64_t> shape = images.shape();
    shape[0] = n;
    Dataset subset{
        name, Tensor<std::uint8_t>(shape), {labels.begin(), labels.begin() + n}, class_names, normalization};
    std::copy(images.data(), images.data() + subset.images.numel(), subset.images.data());
    return subset;
  }

  // The images with their one channel repeated `channels` times, as torchvision's
  // Grayscale(num_output_channels=3): for a model whose first conv expects RGB (weights from ImageNet).
  Dataset repeat_channel(std::int64_t channels) const {
    check(this->channels() == 1 && channels >= 1, "Dataset '", name,
          "'.repeat_channel: needs a 1-channel set ", "and a positive count, got ", this->channels(),
          " channels and count ", channels);
    const std::int64_t pixels = height() * width();
    Dataset repeated{name,
                     Tensor<std::uint8_t>({size(), channels, height(), width()}),
                     labels,
                     class_names,
                     {std::vector<float>(static_cast<std::size_t>(channels), normalization.mean.at(0)),
                      std::vector<float>(static_cast<std::size_t>(channels), normalization.std.at(0))}};
    const std::uint8_t* src = images.cdata();
    std::uint8_t* dst = repeated.images.data();
    for (std::int64_t i = 0; i < size(); ++i)
      for (std::int64_t c = 0; c < channels; ++c)
        std::copy(src + i * pixels, src + (i + 1) * pixels, dst + (i * channels + c) * pixels);
    return repeated;
  }

  // Images per class, index = label.
  std::vector<std::int64_t> class_counts() const {
    std::vector<std::int64_t> counts(class_names.size(), 0);
    for (int label : labels)
      ++counts.at(static_cast<std::size_t>(label));
    return counts;
  }
};

// Per-channel mean and (population) std of the pixels scaled to [0, 1], the way the published normalisation
// constants are computed. Sums are exact integers, so the result does not depend on the order.
inline Normalization channel_statistics(const Tensor<std::uint8_t>& images) {
  check(images.dim() == 4 && images.size(0) > 0,
        "channel_statistics: images must be non-empty [N, C, H, W], got ", shape_string(images.shape()));
  const std::int64_t n = images.size(0), channels = images.size(1), pixels = images.size(2) * images.size(3);
  Normalization result;
  for (std::int64_t c = 0; c < channels; ++c) {
    std::uint64_t sum = 0, sum_squares = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::uint8_t* p = images.data() + (i * channels + c) * pixels;
      for (std::int64_t k = 0; k < pixels; ++k) {
        sum += p[k];
        sum_squares += static_cast<std::uint64_t>(p[k]) * p[k];
      }
    }
    const double count = static_cast<double>(n * pixels);
    const double mean = static_cast<double>(sum) / count;
    const double variance = static_cast<double>(sum_squares) / count - mean * mean;
    result.mean.push_back(static_cast<float>(mean / 255.0));
    result.std.push_back(static_cast<float>(std::sqrt(std::max(variance, 0.0)) / 255.0));
  }
  return result;
}

}  // namespace resnet::data
