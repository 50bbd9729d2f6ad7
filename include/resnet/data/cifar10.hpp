#pragma once
// CIFAR-10, binary version (https://www.cs.toronto.edu/~kriz/cifar.html; tools/get_cifar10.sh fetches it):
// data_batch_1.bin .. data_batch_5.bin (train, 50,000 images) and test_batch.bin (10,000), each a run of
// 3073-byte records: 1 label byte (0..9), then 3072 pixel bytes, the red, green and blue 32x32 planes in
// row-major order, which is already [C, H, W].

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/data/dataset.hpp"
#include "resnet/data/file_reader.hpp"

namespace resnet::data {

inline constexpr std::int64_t kCifar10Channels = 3;
inline constexpr std::int64_t kCifar10Side = 32;
inline constexpr std::int64_t kCifar10ImageBytes = kCifar10Channels * kCifar10Side * kCifar10Side;  // 3072
inline constexpr std::int64_t kCifar10RecordBytes = 1 + kCifar10ImageBytes;                         // 3073

// batches.meta.txt's order.
inline const std::vector<std::string>& cifar10_class_names() {
  static const std::vector<std::string> names = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                 "dog",      "frog",       "horse", "ship", "truck"};
  return names;
}

// Mean and the true per-channel std of the 50,000 training images. The widely copied (0.2023, 0.1994, 0.2010)
// is not the pixel std (it averages per-image stds); these are.
inline Normalization cifar10_normalization() {
  return {{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
}

// Reads the given batch files, in order, into one dataset. Every file's size is checked before anything is
// allocated, so the allocation never exceeds what the files hold.
inline Dataset read_cifar10_files(const std::vector<std::string>& paths,
                                  const std::string& name = "CIFAR-10") {
  check(!paths.empty(), "read_cifar10_files: no files given");
  std::vector<std::unique_ptr<FileReader>> files;
  std::int64_t total = 0;
  for (const std::string& path : paths) {
    files.push_back(std::make_unique<FileReader>(path, "read_cifar10"));
    const FileReader& file = *files.back();
    if (file.compressed()) file.fail("gzip-compressed; CIFAR-10 batch files are raw (extract the archive)");
    const auto size = static_cast<std::int64_t>(file.file_size());
    if (size == 0) file.fail("empty file; expected 3073-byte records (1 label byte + 3072 pixel bytes)");
    if (size % kCifar10RecordBytes != 0)
      file.fail("size ", size, " bytes is not a multiple of the 3073-byte record (1 label byte + 3072 pixel ",
                "bytes): ", size / kCifar10RecordBytes, " whole records, then a truncated record of ",
                size % kCifar10RecordBytes, " bytes at byte offset ",
                size / kCifar10RecordBytes * kCifar10RecordBytes);
    total += size / kCifar10RecordBytes;
  }

  Dataset dataset{name, Tensor<std::uint8_t>({total, kCifar10Channels, kCifar10Side, kCifar10Side}),
                  std::vector<int>(static_cast<std::size_t>(total)), cifar10_class_names(),
                  cifar10_normalization()};
  std::int64_t index = 0;
  for (auto& file : files) {
    const auto records = static_cast<std::int64_t>(file->file_size()) / kCifar10RecordBytes;
    for (std::int64_t r = 0; r < records; ++r, ++index) {
      std::uint8_t label = 0;
      file->read_exact(&label, 1, "the label of record " + std::to_string(r));
      if (label >= 10)
        file->fail("label ", int(label), " at byte offset ", r * kCifar10RecordBytes, " (record ", r,
                   ") is out of range [0, 10)");
      dataset.labels[static_cast<std::size_t>(index)] = label;
      file->read_exact(dataset.images.data() + index * kCifar10ImageBytes, kCifar10ImageBytes,
                       "the pixels of record " + std::to_string(r));
    }
    // The size was checked up front; this catches a file that changed while we read it.
    file->expect_end(std::to_string(records) + " records");
  }
  return dataset;
}

// The batch files of a split inside `directory`: the folder the archive extracts to (cifar-10-batches-bin),
// or the folder that contains it.
inline std::vector<std::string> cifar10_files(const std::string& directory, Split split) {
  namespace fs = std::filesystem;
  const std::vector<std::string> names =
      split == Split::Train
          ? std::vector<std::string>{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                     "data_batch_4.bin", "data_batch_5.bin"}
          : std::vector<std::string>{"test_batch.bin"};
  fs::path root(directory);
  if (!fs::exists(root / names.front()) && fs::exists(root / "cifar-10-batches-bin" / names.front()))
    root /= "cifar-10-batches-bin";
  check(fs::exists(root / names.front()), "load_cifar10: no ", (root / names.front()).string(), " (nor in ",
        (fs::path(directory) / "cifar-10-batches-bin").string(),
        "); download CIFAR-10 with tools/get_cifar10.sh ", directory);
  std::vector<std::string> paths;
  for (const std::string& file : names)
    paths.push_back((root / file).string());
  return paths;
}

// The train (50,000) or test (10,000) split from `directory` (see cifar10_files).
inline Dataset load_cifar10(const std::string& directory, Split split) {
  return read_cifar10_files(cifar10_files(directory, split), std::string("CIFAR-10 ") + split_name(split));
}

}  // namespace resnet::data
