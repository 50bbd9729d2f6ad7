#pragma once
// Small dataset files that the data tests write for themselves: CIFAR-10 binary batches and IDX files, raw or
// gzipped, in a temporary directory removed at the end of the test. Pixel values come from a formula, so a
// test can predict every byte it reads back.

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace resnet::testing {

using Bytes = std::vector<std::uint8_t>;

// A fresh directory under the system temp dir, deleted with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string test = info ? std::string(info->test_suite_name()) + "." + info->name() : "data";
    path_ = std::filesystem::temp_directory_path() /
            ("resnet_" + test + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // path()/name as a string.
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

inline Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// gzip (RFC 1952) with a header, CRC32 and length trailer, as the gzip tool writes.
inline Bytes gzip(const Bytes& data) {
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&stream, static_cast<uLong>(data.size())));
  stream.next_in = const_cast<Bytes::value_type*>(data.data());
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// Pixel c/y/x of image i: a formula that differs between images, channels and positions.
inline std::uint8_t test_pixel(std::int64_t i, std::int64_t c, std::int64_t y, std::int64_t x) {
  return static_cast<std::uint8_t>((i * 37 + c * 101 + y * 13 + x * 7 + (x * y) % 11) % 256);
}
inline int test_label(std::int64_t i) {
  return static_cast<int>((i * 7 + 3) % 10);
}

// CIFAR-10 records for images first..first+count-1: a label byte, then the [3, 32, 32] pixels.
inline Bytes cifar_records(std::int64_t first, std::int64_t count) {
  Bytes bytes;
  for (std::int64_t i = first; i < first + count; ++i) {
    bytes.push_back(static_cast<std::uint8_t>(test_label(i)));
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t y = 0; y < 32; ++y)
        for (std::int64_t x = 0; x < 32; ++x)
          bytes.push_back(test_pixel(i, c, y, x));
  }
  return bytes;
}

// A CIFAR-10 directory: data_batch_1..5.bin with `per_train_file` records each (images numbered across the
// files in order), test_batch.bin with `test_count` records numbered from 1000.
inline void write_cifar_dir(const std::string& dir, std::int64_t per_train_file, std::int64_t test_count) {
  std::filesystem::create_directories(dir);
  for (int f = 0; f < 5; ++f)
    write_bytes(dir + "/data_batch_" + std::to_string(f + 1) + ".bin",
                cifar_records(f * per_train_file, per_train_file));
  write_bytes(dir + "/test_batch.bin", cifar_records(1000, test_count));
}

// An IDX file: 00 00 <dtype> <rank>, big-endian uint32 dimensions, then `data`.
inline Bytes idx_bytes(const std::vector<std::uint32_t>& dims, const Bytes& data, std::uint8_t dtype = 0x08) {
  Bytes bytes = {0, 0, dtype, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8)
      bytes.push_back(static_cast<std::uint8_t>(d >> shift));
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

// MNIST-style images [n, rows, cols] and labels [n] from the formulas above (channel 0).
inline Bytes idx_images(std::uint32_t n, std::uint32_t rows, std::uint32_t cols) {
  Bytes data;
  for (std::uint32_t i = 0; i < n; ++i)
    for (std::uint32_t y = 0; y < rows; ++y)
      for (std::uint32_t x = 0; x < cols; ++x)
        data.push_back(test_pixel(i, 0, y, x));
  return idx_bytes({n, rows, cols}, data);
}
inline Bytes idx_labels(std::uint32_t n) {
  Bytes data;
  for (std::uint32_t i = 0; i < n; ++i)
    data.push_back(static_cast<std::uint8_t>(test_label(i)));
  return idx_bytes({n}, data);
}

// An MNIST-format directory (train: `train_count` images, t10k: `test_count`), gzipped or raw.
inline void write_mnist_dir(const std::string& dir, std::uint32_t train_count, std::uint32_t test_count,
                            bool gzipped) {
  std::filesystem::create_directories(dir);
  const auto put = [&](const std::string& stem, const Bytes& bytes) {
    write_bytes(dir + "/" + stem + (gzipped ? ".gz" : ""), gzipped ? gzip(bytes) : bytes);
  };
  put("train-images-idx3-ubyte", idx_images(train_count, 28, 28));
  put("train-labels-idx1-ubyte", idx_labels(train_count));
  put("t10k-images-idx3-ubyte", idx_images(test_count, 28, 28));
  put("t10k-labels-idx1-ubyte", idx_labels(test_count));
}

}  // namespace resnet::testing
