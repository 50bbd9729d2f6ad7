#pragma once
// MNIST and Fashion-MNIST: 28x28 greyscale images (1 channel) in IDX files (idx.hpp), train 60,000 and
// test 10,000, named train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte, each raw or with ".gz". Debian's dataset-fashion-mnist package installs the gzipped
// Fashion-MNIST files in /usr/share/datasets/fashion-mnist, where load_fashion_mnist looks by default.

#include <filesystem>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/data/dataset.hpp"
#include "resnet/data/idx.hpp"

namespace resnet::data {

inline const char* const kDebianFashionMnistDir = "/usr/share/datasets/fashion-mnist";

inline std::vector<std::string> mnist_class_names() {
  return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
}
inline std::vector<std::string> fashion_mnist_class_names() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
}

// Mean and std of the 60,000 training images (tests/test_data.cpp recomputes Fashion-MNIST's from the files).
inline Normalization mnist_normalization() {
  return {{0.1307f}, {0.3081f}};
}
inline Normalization fashion_mnist_normalization() {
  return {{0.2860f}, {0.3530f}};
}

// `directory`/<stem> with ".gz" or without, or the Kaggle-style name with a dot ("train-images.idx3-ubyte");
// "" when none exists.
inline std::string find_idx_file(const std::string& directory, const std::string& stem) {
  namespace fs = std::filesystem;
  std::string dotted = stem;
  const std::size_t dash = dotted.rfind("-idx");
  if (dash != std::string::npos) dotted[dash] = '.';
  for (const std::string& name : {stem, stem + ".gz", dotted, dotted + ".gz"}) {
    const fs::path path = fs::path(directory) / name;
    if (fs::is_regular_file(path)) return path.string();
  }
  return "";
}

// True when `directory` holds both files of both splits.
inline bool has_mnist_files(const std::string& directory) {
  for (const char* stem : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                           "t10k-labels-idx1-ubyte"})
    if (find_idx_file(directory, stem).empty()) return false;
  return true;
}

// One split of an MNIST-format dataset in `directory`; `name` is e.g. "Fashion-MNIST".
inline Dataset load_mnist_format(const std::string& directory, Split split, const std::string& name,
                                 std::vector<std::string> class_names, Normalization normalization) {
  const std::string prefix = split == Split::Train ? "train" : "t10k";
  const auto find = [&](const std::string& stem) {
    const std::string path = find_idx_file(directory, stem);
    check(!path.empty(), "load ", name, ": no ", stem, " (or ", stem, ".gz) in ", directory,
          name == "Fashion-MNIST" ? " (Debian: apt-get install dataset-fashion-mnist)" : "");
    return path;
  };
  const std::string images = find(prefix + "-images-idx3-ubyte");
  const std::string labels = find(prefix + "-labels-idx1-ubyte");
  return read_idx_dataset(images, labels, std::move(class_names), std::move(normalization),
                          name + " " + split_name(split));
}

inline Dataset load_mnist(const std::string& directory, Split split) {
  return load_mnist_format(directory, split, "MNIST", mnist_class_names(), mnist_normalization());
}

// From Debian's package location unless told otherwise.
inline Dataset load_fashion_mnist(Split split, const std::string& directory = kDebianFashionMnistDir) {
  return load_mnist_format(directory, split, "Fashion-MNIST", fashion_mnist_class_names(),
                           fashion_mnist_normalization());
}

}  // namespace resnet::data
