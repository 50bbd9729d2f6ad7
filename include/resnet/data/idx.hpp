#pragma once
// IDX files, the format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/), raw or
// gzip-compressed:
//   byte 0-1  0x00 0x00
//   byte 2    dtype code: 0x08 unsigned byte (the only one image sets use), 0x09 signed byte, 0x0B int16,
//             0x0C int32, 0x0D float32, 0x0E float64
//   byte 3    number of dimensions r
//   then r big-endian uint32 sizes, then the data in row-major order.
// Every size is checked against what the file can hold before anything is allocated.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/data/dataset.hpp"
#include "resnet/data/file_reader.hpp"

namespace resnet::data {

namespace detail {
inline std::string hex_byte(unsigned value) {
  char text[8];
  std::snprintf(text, sizeof text, "0x%02X", value & 0xFFu);
  return text;
}

inline const char* idx_dtype_name(unsigned code) {
  switch (code) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return nullptr;
  }
}
}  // namespace detail

// Deflate's largest expansion: at best 2 bits encode a 258-byte match, so a gzip file of n bytes decompresses
// to at most 1032 * n. It bounds what a compressed header may claim.
inline constexpr std::uint64_t kDeflateMaxRatio = 1032;

// An unsigned-byte IDX file as a uint8 tensor with the file's dimensions.
inline Tensor<std::uint8_t> read_idx(const std::string& path) {
  FileReader file(path, "read_idx");
  std::uint8_t magic[4] = {};
  file.read_exact(magic, 4, "the magic number (00 00 <dtype> <rank>)");
  if (magic[0] != 0 || magic[1] != 0)
    file.fail("wrong magic: ", file.data_kind(), "bytes 0-1 are ", detail::hex_byte(magic[0]), " ",
              detail::hex_byte(magic[1]), ", an IDX file starts with 0x00 0x00");
  if (magic[2] != 0x08) {
    const char* dtype = detail::idx_dtype_name(magic[2]);
    file.fail(dtype ? "unsupported" : "unknown", " dtype code ", detail::hex_byte(magic[2]),
              dtype ? std::string(" (") + dtype + ")" : std::string(),
              " at byte 2; expected 0x08 (unsigned byte)");
  }
  const int rank = magic[3];
  const std::uint64_t header_bytes = 4 + 4 * static_cast<std::uint64_t>(rank);

  std::vector<std::int64_t> shape;
  for (int d = 0; d < rank; ++d) {
    std::uint8_t size[4] = {};
    file.read_exact(size, 4, "dimension " + std::to_string(d) + " of " + std::to_string(rank));
    shape.push_back((std::int64_t{size[0]} << 24) | (size[1] << 16) | (size[2] << 8) | size[3]);
  }

  // The element count, multiplied left to right as Tensor does, each step checked so that it cannot overflow
  // (from a zero dimension on it stays 0). Dimensions that pass 2^62 before a zero are refused too: Tensor's
  // own product would overflow on them.
  const std::uint64_t too_many = std::uint64_t{1} << 62;
  std::uint64_t count = 1;
  bool overflow = false;
  for (std::size_t d = 0; d < shape.size() && !overflow; ++d) {
    const auto n = static_cast<std::uint64_t>(shape[d]);
    overflow = n != 0 && count > too_many / n;
    count *= overflow ? 1 : n;
  }
  if (overflow && std::find(shape.begin(), shape.end(), 0) != shape.end())
    file.fail("dimensions ", shape_string(shape), " multiply to more than 2^62 before their zero dimension");
  const std::string described =
      "dimensions " + shape_string(shape) + " give " + (overflow ? "more than 2^62" : std::to_string(count));
  if (file.compressed() && (overflow || count > file.file_size() * kDeflateMaxRatio))
    file.fail(described, " data bytes, more than a gzip file of ", file.file_size(),
              " bytes can decompress to (deflate expands at most 1032:1)");
  if (!file.compressed() && (overflow || count != file.file_size() - header_bytes))  // header read: no wrap
    file.fail(described, " data bytes after the ", header_bytes, "-byte header, but the file has ",
              file.file_size(), " bytes",
              overflow ? "" : " (expected " + std::to_string(header_bytes + count) + ")");

  Tensor<std::uint8_t> data(shape);
  const std::string what =
      "the " + std::to_string(count) + " data bytes of dimensions " + shape_string(shape);
  file.read_exact(data.data(), count, what);
  file.expect_end(what);
  return data;
}

// Images [N, rows, cols] as [N, 1, rows, cols].
inline Tensor<std::uint8_t> read_idx_images(const std::string& path) {
  const Tensor<std::uint8_t> images = read_idx(path);
  check(images.dim() == 3, "read_idx_images: ", path, ": expected 3 dimensions [images, rows, cols], got ",
        shape_string(images.shape()));
  return images.reshape({images.size(0), 1, images.size(1), images.size(2)});
}

// Labels [N], each checked to lie in [0, num_classes).
inline std::vector<int> read_idx_labels(const std::string& path, int num_classes) {
  const Tensor<std::uint8_t> labels = read_idx(path);
  check(labels.dim() == 1, "read_idx_labels: ", path, ": expected 1 dimension [labels], got ",
        shape_string(labels.shape()));
  std::vector<int> result(labels.data(), labels.data() + labels.numel());
  for (std::size_t i = 0; i < result.size(); ++i)
    check(result[i] < num_classes, "read_idx_labels: ", path, ": label ", result[i], " at byte offset ",
          8 + i, " (item ", i, ") is out of range [0, ", num_classes, ")");
  return result;
}

// An images file and its labels file as one dataset.
inline Dataset read_idx_dataset(const std::string& images_path, const std::string& labels_path,
                                std::vector<std::string> class_names, Normalization normalization,
                                const std::string& name) {
  Dataset dataset{name, read_idx_images(images_path),
                  read_idx_labels(labels_path, static_cast<int>(class_names.size())), std::move(class_names),
                  std::move(normalization)};
  check(dataset.size() == static_cast<std::int64_t>(dataset.labels.size()), "read_idx_dataset: images file ",
        images_path, " holds ", dataset.size(), " images but labels file ", labels_path, " holds ",
        dataset.labels.size(), " labels");
  dataset.validate();
  return dataset;
}

}  // namespace resnet::data
