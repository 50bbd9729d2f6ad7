// Data layer: CIFAR-10 and IDX readers (against files the tests write, and the real Fashion-MNIST files when
// Debian's dataset-fashion-mnist is installed), every bad-file case, transforms, and the batch loader.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "resnet/core/parallel.hpp"
#include "resnet/data/cifar10.hpp"
#include "resnet/data/dataset.hpp"
#include "resnet/data/idx.hpp"
#include "resnet/data/loader.hpp"
#include "resnet/data/mnist.hpp"
#include "resnet/data/transforms.hpp"
#include "support/data_files.hpp"
#include "support/expect_error.hpp"

using namespace resnet::data;
using resnet::Rng;
using resnet::Tensor;
using resnet::testing::Bytes;
using resnet::testing::TempDir;
using resnet::testing::test_label;
using resnet::testing::test_pixel;
using resnet::testing::write_bytes;

using resnet::testing::expect_error;

namespace {

bool same_bytes(const Tensor<float>& a, const Tensor<float>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

// n images [n, channels, h, w] from the pixel formula, labels from the label formula.
Dataset formula_dataset(std::int64_t n, std::int64_t channels = 3, std::int64_t side = 8) {
  Dataset d{"formula",
            Tensor<std::uint8_t>({n, channels, side, side}),
            {},
            {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
            {std::vector<float>(channels, 0.5f), std::vector<float>(channels, 0.25f)}};
  for (std::int64_t i = 0; i < n; ++i) {
    d.labels.push_back(test_label(i));
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t y = 0; y < side; ++y)
        for (std::int64_t x = 0; x < side; ++x)
          d.images.at({i, c, y, x}) = test_pixel(i, c, y, x);
  }
  return d;
}

std::vector<Batch<float>> whole_epoch(BatchLoader<float>& loader, std::int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch<float>> batches;
  Batch<float> batch;
  while (loader.next(batch))
    batches.push_back(batch);
  return batches;
}

void expect_same_batches(const std::vector<Batch<float>>& a, const std::vector<Batch<float>>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t k = 0; k < a.size(); ++k) {
    EXPECT_EQ(a[k].indices, b[k].indices) << "batch " << k;
    EXPECT_EQ(a[k].labels, b[k].labels) << "batch " << k;
    EXPECT_TRUE(same_bytes(a[k].images, b[k].images)) << "batch " << k;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------- CIFAR-10

// Grayscale images for an RGB model: each image's channel three times, as torchvision's Grayscale(3), with
// the normalisation repeated; labels and names unchanged.
TEST(Dataset, RepeatChannelCopiesTheGrayChannelOfEveryImage) {
  Dataset gray{"gray", resnet::Tensor<std::uint8_t>({2, 1, 2, 3}), {1, 0}, {"a", "b"}, {{0.25f}, {0.5f}}};
  for (std::int64_t i = 0; i < gray.images.numel(); ++i)
    gray.images[i] = static_cast<std::uint8_t>(10 + i);
  const Dataset rgb = gray.repeat_channel(3);
  ASSERT_EQ(rgb.images.shape(), (std::vector<std::int64_t>{2, 3, 2, 3}));
  for (std::int64_t n = 0; n < 2; ++n)
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t p = 0; p < 6; ++p)
        ASSERT_EQ(rgb.images[(n * 3 + c) * 6 + p], gray.images[n * 6 + p]) << n << " " << c << " " << p;
  EXPECT_EQ(rgb.labels, gray.labels);
  EXPECT_EQ(rgb.normalization.mean, (std::vector<float>{0.25f, 0.25f, 0.25f}));
  EXPECT_EQ(rgb.normalization.std, (std::vector<float>{0.5f, 0.5f, 0.5f}));
  rgb.validate();
  EXPECT_THROW(rgb.repeat_channel(3), resnet::Error);  // already 3 channels
}

TEST(Cifar10, ReadsRecordsAsLabelAndChwPixels) {
  TempDir dir;
  write_bytes(dir.file("batch.bin"), resnet::testing::cifar_records(0, 3));
  const Dataset d = read_cifar10_files({dir.file("batch.bin")});
  ASSERT_EQ(d.images.shape(), (std::vector<std::int64_t>{3, 3, 32, 32}));
  for (std::int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(d.labels[static_cast<std::size_t>(i)], test_label(i));
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t y = 0; y < 32; ++y)
        for (std::int64_t x = 0; x < 32; ++x)
          ASSERT_EQ(d.images.at({i, c, y, x}), test_pixel(i, c, y, x))
              << i << " " << c << " " << y << " " << x;
  }
}

TEST(Cifar10, LoadsTrainAndTestSplits) {
  TempDir dir;
  resnet::testing::write_cifar_dir(dir.path(), 2, 3);
  const Dataset train = load_cifar10(dir.path(), Split::Train);
  const Dataset test = load_cifar10(dir.path(), Split::Test);
  EXPECT_EQ(train.name, "CIFAR-10 train");
  EXPECT_EQ(test.name, "CIFAR-10 test");
  ASSERT_EQ(train.size(), 10);  // data_batch_1..5 in order
  ASSERT_EQ(test.size(), 3);
  for (std::int64_t i = 0; i < 10; ++i) {
    EXPECT_EQ(train.labels[static_cast<std::size_t>(i)], test_label(i));
    EXPECT_EQ(train.images.at({i, 2, 31, 5}), test_pixel(i, 2, 31, 5));
  }
  EXPECT_EQ(test.labels[0], test_label(1000));
  EXPECT_EQ(test.images.at({2, 1, 7, 9}), test_pixel(1002, 1, 7, 9));
  EXPECT_EQ(train.class_names, cifar10_class_names());
  EXPECT_EQ(train.class_names[0], "airplane");
  EXPECT_EQ(train.class_names[9], "truck");
  train.validate();
}

TEST(Cifar10, FindsTheArchiveFolderInsideTheGivenDirectory) {
  TempDir dir;
  resnet::testing::write_cifar_dir(dir.file("cifar-10-batches-bin"), 1, 2);
  EXPECT_EQ(load_cifar10(dir.path(), Split::Train).size(), 5);
  EXPECT_EQ(load_cifar10(dir.file("cifar-10-batches-bin"), Split::Test).size(), 2);
}

TEST(Cifar10, MissingDirectorySaysHowToDownload) {
  TempDir dir;
  expect_error([&] { load_cifar10(dir.file("nowhere"), Split::Train); },
               {"data_batch_1.bin", "nowhere", "tools/get_cifar10.sh"});
}

TEST(Cifar10, MissingFileThrowsNamingIt) {
  TempDir dir;
  resnet::testing::write_cifar_dir(dir.path(), 1, 1);
  std::filesystem::remove(dir.file("data_batch_4.bin"));
  expect_error([&] { load_cifar10(dir.path(), Split::Train); }, {"data_batch_4.bin", "file not found"});
  expect_error([&] { read_cifar10_files({dir.path()}); }, {dir.path(), "not a regular file"});
}

TEST(Cifar10, EmptyFileThrows) {
  TempDir dir;
  write_bytes(dir.file("empty.bin"), {});
  expect_error([&] { read_cifar10_files({dir.file("empty.bin")}); }, {"empty.bin", "empty file"});
}

TEST(Cifar10, TruncatedRecordThrowsWithItsOffset) {
  TempDir dir;
  Bytes bytes = resnet::testing::cifar_records(0, 3);
  bytes.resize(2 * 3073 + 100);
  write_bytes(dir.file("cut.bin"), bytes);
  expect_error([&] { read_cifar10_files({dir.file("cut.bin")}); },
               {"cut.bin", "size 6246 bytes is not a multiple of the 3073-byte record", "2 whole records",
                "truncated record of 100 bytes at byte offset 6146"});
}

TEST(Cifar10, FileShorterThanOneRecordThrows) {
  TempDir dir;
  write_bytes(dir.file("short.bin"), Bytes(3072, 1));
  expect_error([&] { read_cifar10_files({dir.file("short.bin")}); },
               {"short.bin", "size 3072 bytes", "0 whole records", "byte offset 0"});
}

TEST(Cifar10, LabelOutOfRangeThrowsWithItsOffset) {
  TempDir dir;
  Bytes bytes = resnet::testing::cifar_records(0, 3);
  bytes[3073] = 10;
  write_bytes(dir.file("label.bin"), bytes);
  expect_error([&] { read_cifar10_files({dir.file("label.bin")}); },
               {"label.bin", "label 10 at byte offset 3073 (record 1) is out of range [0, 10)"});
}

TEST(Cifar10, GzippedBatchFileThrows) {
  TempDir dir;
  write_bytes(dir.file("batch.bin"), resnet::testing::gzip(resnet::testing::cifar_records(0, 2)));
  expect_error([&] { read_cifar10_files({dir.file("batch.bin")}); }, {"batch.bin", "gzip-compressed"});
}

TEST(Cifar10, NormalizationIsTheTrueStd) {
  const Normalization n = cifar10_normalization();
  EXPECT_EQ(n.mean, (std::vector<float>{0.4914f, 0.4822f, 0.4465f}));
  EXPECT_EQ(n.std, (std::vector<float>{0.2470f, 0.2435f, 0.2616f}));  // not (0.2023, 0.1994, 0.2010)
}

// --------------------------------------------------------------------------------------------------- IDX

TEST(Idx, ReadsRawAndGzippedAlike) {
  TempDir dir;
  const Bytes raw = resnet::testing::idx_images(4, 5, 6);
  write_bytes(dir.file("raw"), raw);
  write_bytes(dir.file("packed.gz"), resnet::testing::gzip(raw));
  for (const std::string& path : {dir.file("raw"), dir.file("packed.gz")}) {
    const Tensor<std::uint8_t> t = read_idx(path);
    ASSERT_EQ(t.shape(), (std::vector<std::int64_t>{4, 5, 6})) << path;
    for (std::int64_t i = 0; i < 4; ++i)
      for (std::int64_t y = 0; y < 5; ++y)
        for (std::int64_t x = 0; x < 6; ++x)
          ASSERT_EQ(t.at({i, y, x}), test_pixel(i, 0, y, x)) << path;
  }
  const Tensor<std::uint8_t> images = read_idx_images(dir.file("packed.gz"));
  EXPECT_EQ(images.shape(), (std::vector<std::int64_t>{4, 1, 5, 6}));
}

TEST(Idx, WrongMagicThrows) {
  TempDir dir;
  Bytes bytes = resnet::testing::idx_labels(3);
  bytes[1] = 0x12;
  write_bytes(dir.file("bad"), bytes);
  write_bytes(dir.file("bad.gz"), resnet::testing::gzip(bytes));
  expect_error([&] { read_idx(dir.file("bad")); }, {dir.file("bad"), "wrong magic: bytes 0-1 are 0x00 0x12"});
  expect_error([&] { read_idx(dir.file("bad.gz")); },
               {dir.file("bad.gz"), "wrong magic: decompressed bytes 0-1 are 0x00 0x12"});
  write_bytes(dir.file("text"), Bytes{'h', 'e', 'l', 'l', 'o'});
  expect_error([&] { read_idx(dir.file("text")); }, {"wrong magic", "0x68 0x65"});
}

TEST(Idx, WrongDtypeCodeThrows) {
  TempDir dir;
  write_bytes(dir.file("float"), resnet::testing::idx_bytes({2}, Bytes(8, 0), 0x0D));
  expect_error([&] { read_idx(dir.file("float")); },
               {"float", "unsupported dtype code 0x0D (float32) at byte 2; expected 0x08 (unsigned byte)"});
  write_bytes(dir.file("seven"), resnet::testing::idx_bytes({2}, Bytes(2, 0), 0x07));
  expect_error([&] { read_idx(dir.file("seven")); }, {"seven", "unknown dtype code 0x07 at byte 2"});
}

TEST(Idx, HeaderCutShortThrows) {
  TempDir dir;
  write_bytes(dir.file("tiny"), Bytes{0, 0});
  expect_error([&] { read_idx(dir.file("tiny")); }, {"tiny", "truncated", "magic number", "ends at byte 2"});
  Bytes header = resnet::testing::idx_images(1, 2, 2);
  header.resize(10);  // rank 3 needs 16 header bytes
  write_bytes(dir.file("header"), header);
  expect_error([&] { read_idx(dir.file("header")); },
               {"header", "truncated", "dimension 1 of 3", "byte offset 8"});
}

TEST(Idx, DimensionsThatDoNotMatchTheFileSizeThrow) {
  TempDir dir;
  Bytes bytes = resnet::testing::idx_images(3, 4, 4);  // 16 + 48 bytes
  Bytes shorter(bytes.begin(), bytes.end() - 1), longer = bytes;
  longer.push_back(0);
  write_bytes(dir.file("short"), shorter);
  write_bytes(dir.file("long"), longer);
  expect_error([&] { read_idx(dir.file("short")); },
               {"short", "dimensions [3, 4, 4] give 48 data bytes after the 16-byte header",
                "but the file has 63 bytes (expected 64)"});
  expect_error([&] { read_idx(dir.file("long")); }, {"long", "but the file has 65 bytes (expected 64)"});
  // Far more than the file holds: refused from the header alone.
  write_bytes(dir.file("huge"), resnet::testing::idx_bytes({60000, 28, 28}, Bytes(100, 0)));
  expect_error([&] { read_idx(dir.file("huge")); },
               {"huge", "dimensions [60000, 28, 28] give 47040000 data bytes",
                "but the file has 116 bytes (expected 47040016)"});
}

TEST(Idx, OverflowingDimensionsThrowBeforeAllocating) {
  TempDir dir;
  const Bytes bytes =
      resnet::testing::idx_bytes({0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, Bytes(4, 0));
  write_bytes(dir.file("max"), bytes);
  write_bytes(dir.file("max.gz"), resnet::testing::gzip(bytes));
  expect_error([&] { read_idx(dir.file("max")); },
               {"max", "give more than 2^62 data bytes", "but the file has 24 bytes"});
  expect_error([&] { read_idx(dir.file("max.gz")); }, {"max.gz", "give more than 2^62 data bytes", "1032:1"});
  // A zero dimension makes the product 0 whatever the others say; the data must then be empty.
  write_bytes(dir.file("zero"), resnet::testing::idx_bytes({0, 0xFFFFFFFFu, 0xFFFFFFFFu}, {}));
  EXPECT_EQ(read_idx(dir.file("zero")).numel(), 0);
}

// Found by fuzz/idx.cpp: Tensor multiplies dimensions left to right, so huge ones before a zero overflowed
// its int64 product (undefined behaviour) although the element count is 0.
TEST(Idx, DimensionsOverflowingBeforeAZeroThrow) {
  TempDir dir;
  const Bytes bytes = resnet::testing::idx_bytes({0xFFFFFFFFu, 0xFFFFFFFFu, 0}, {});
  write_bytes(dir.file("late_zero"), bytes);
  write_bytes(dir.file("late_zero.gz"), resnet::testing::gzip(bytes));
  for (const char* name : {"late_zero", "late_zero.gz"})
    expect_error(
        [&] { read_idx(dir.file(name)); },
        {name, "dimensions [4294967295, 4294967295, 0] multiply to more than 2^62 before their zero"});
  // Below 2^62 before the zero is an ordinary empty tensor.
  write_bytes(dir.file("small_zero"), resnet::testing::idx_bytes({0x7FFFFFFFu, 0x7FFFFFFFu, 0}, {}));
  EXPECT_EQ(read_idx(dir.file("small_zero")).numel(), 0);
}

TEST(Idx, GzipHeaderClaimingMoreThanDeflateCanHoldThrows) {
  TempDir dir;
  const Bytes packed = resnet::testing::gzip(resnet::testing::idx_bytes({1000000, 28, 28}, Bytes(10, 0)));
  write_bytes(dir.file("claims.gz"), packed);
  expect_error([&] { read_idx(dir.file("claims.gz")); },
               {"claims.gz", "[1000000, 28, 28] give 784000000 data bytes",
                "more than a gzip file of " + std::to_string(packed.size()) + " bytes", "1032:1"});
}

TEST(Idx, GzipDataShorterOrLongerThanTheDimensionsThrows) {
  TempDir dir;
  write_bytes(dir.file("short.gz"), resnet::testing::gzip(resnet::testing::idx_bytes({10, 4}, Bytes(39, 1))));
  expect_error([&] { read_idx(dir.file("short.gz")); },
               {"short.gz", "truncated", "40 data bytes", "decompressed byte offset 12",
                "decompressed data ends at byte 51"});
  write_bytes(dir.file("long.gz"), resnet::testing::gzip(resnet::testing::idx_bytes({10, 4}, Bytes(41, 1))));
  expect_error([&] { read_idx(dir.file("long.gz")); }, {"long.gz", "goes on past byte 52"});
}

TEST(Idx, CorruptGzipThrows) {
  TempDir dir;
  const Bytes packed = resnet::testing::gzip(resnet::testing::idx_images(20, 28, 28));
  Bytes bad_crc = packed;
  bad_crc[bad_crc.size() - 8] ^= 0xFF;  // the CRC32 in the trailer
  write_bytes(dir.file("crc.gz"), bad_crc);
  expect_error([&] { read_idx(dir.file("crc.gz")); },
               {"crc.gz", "corrupt gzip data", "zlib: incorrect data check"});

  write_bytes(dir.file("cut.gz"),
              Bytes(packed.begin(), packed.begin() + static_cast<long>(packed.size() / 2)));
  expect_error([&] { read_idx(dir.file("cut.gz")); }, {"cut.gz", "gzip stream cut off"});

  Bytes garbage = {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03};  // a gzip header, then not deflate data
  for (int i = 0; i < 64; ++i)
    garbage.push_back(0xFF);
  write_bytes(dir.file("garbage.gz"), garbage);
  expect_error([&] { read_idx(dir.file("garbage.gz")); }, {"garbage.gz", "corrupt gzip data", "zlib:"});
}

TEST(Idx, LabelOutOfRangeThrowsWithItsOffset) {
  TempDir dir;
  write_bytes(dir.file("labels"), resnet::testing::idx_bytes({4}, Bytes{1, 2, 10, 3}));
  expect_error([&] { read_idx_labels(dir.file("labels"), 10); },
               {"labels", "label 10 at byte offset 10 (item 2) is out of range [0, 10)"});
}

TEST(Idx, WrongRankThrows) {
  TempDir dir;
  write_bytes(dir.file("flat"), resnet::testing::idx_bytes({6}, Bytes(6, 0)));
  write_bytes(dir.file("square"), resnet::testing::idx_bytes({2, 3}, Bytes(6, 0)));
  expect_error([&] { read_idx_images(dir.file("flat")); }, {"flat", "expected 3 dimensions", "got [6]"});
  expect_error([&] { read_idx_labels(dir.file("square"), 10); },
               {"square", "expected 1 dimension", "got [2, 3]"});
}

TEST(Idx, ImageAndLabelCountsThatDifferThrow) {
  TempDir dir;
  write_bytes(dir.file("images"), resnet::testing::idx_images(5, 28, 28));
  write_bytes(dir.file("labels"), resnet::testing::idx_labels(4));
  expect_error(
      [&] {
        read_idx_dataset(dir.file("images"), dir.file("labels"), mnist_class_names(), mnist_normalization(),
                         "MNIST");
      },
      {"images file " + dir.file("images") + " holds 5 images but labels file " + dir.file("labels") +
       " holds 4 labels"});
}

TEST(Idx, MissingFileThrowsNamingIt) {
  TempDir dir;
  expect_error([&] { read_idx(dir.file("absent.gz")); }, {"read_idx", "absent.gz", "file not found"});
}

TEST(Mnist, LoadsRawOrGzippedDirectories) {
  for (bool gzipped : {false, true}) {
    TempDir dir;
    resnet::testing::write_mnist_dir(dir.path(), 7, 3, gzipped);
    ASSERT_TRUE(has_mnist_files(dir.path()));
    const Dataset train = load_mnist(dir.path(), Split::Train);
    const Dataset test = load_mnist(dir.path(), Split::Test);
    EXPECT_EQ(train.name, "MNIST train");
    ASSERT_EQ(train.images.shape(), (std::vector<std::int64_t>{7, 1, 28, 28}));
    ASSERT_EQ(test.size(), 3);
    for (std::int64_t i = 0; i < 7; ++i) {
      EXPECT_EQ(train.labels[static_cast<std::size_t>(i)], test_label(i));
      EXPECT_EQ(train.images.at({i, 0, 27, 3}), test_pixel(i, 0, 27, 3));
    }
    EXPECT_EQ(train.normalization.mean, std::vector<float>{0.1307f});
    EXPECT_EQ(train.normalization.std, std::vector<float>{0.3081f});
    const Dataset fashion = load_fashion_mnist(Split::Test, dir.path());
    EXPECT_EQ(fashion.name, "Fashion-MNIST test");
    EXPECT_EQ(fashion.class_names[9], "Ankle boot");
    EXPECT_EQ(fashion.normalization.mean, std::vector<float>{0.2860f});
    EXPECT_EQ(fashion.normalization.std, std::vector<float>{0.3530f});
  }
}

TEST(Mnist, FindsKaggleStyleNames) {
  TempDir dir;
  write_bytes(dir.file("t10k-images.idx3-ubyte"), resnet::testing::idx_images(2, 28, 28));
  write_bytes(dir.file("t10k-labels.idx1-ubyte"), resnet::testing::idx_labels(2));
  EXPECT_EQ(load_mnist(dir.path(), Split::Test).size(), 2);
}

TEST(Mnist, MissingFilesSayWhereToGetFashionMnist) {
  TempDir dir;
  EXPECT_FALSE(has_mnist_files(dir.path()));
  expect_error(
      [&] { load_fashion_mnist(Split::Train, dir.path()); },
      {"Fashion-MNIST", "train-images-idx3-ubyte", dir.path(), "apt-get install dataset-fashion-mnist"});
}

// The real files from Debian's dataset-fashion-mnist (CI installs it; scripts/install_deps.sh lists it).
class FashionMnistFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!has_mnist_files(kDebianFashionMnistDir))
      GTEST_SKIP() << "Fashion-MNIST not found in " << kDebianFashionMnistDir
                   << " (apt-get install dataset-fashion-mnist)";
  }
};

TEST_F(FashionMnistFiles, ReadsBothSplits) {
  const Dataset train = load_fashion_mnist(Split::Train);
  const Dataset test = load_fashion_mnist(Split::Test);
  EXPECT_EQ(train.images.shape(), (std::vector<std::int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(test.images.shape(), (std::vector<std::int64_t>{10000, 1, 28, 28}));
  EXPECT_EQ(std::vector<int>(train.labels.begin(), train.labels.begin() + 10),
            (std::vector<int>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5}));
  EXPECT_EQ(std::vector<int>(test.labels.begin(), test.labels.begin() + 10),
            (std::vector<int>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7}));
  EXPECT_EQ(train.class_counts(), std::vector<std::int64_t>(10, 6000));
  EXPECT_EQ(test.class_counts(), std::vector<std::int64_t>(10, 1000));
  // Pixel sums of the first image of each split (Python's gzip module read the same files).
  std::int64_t train_sum = 0, test_sum = 0;
  for (int k = 0; k < 784; ++k) {
    train_sum += train.images.data()[k];
    test_sum += test.images.data()[k];
  }
  EXPECT_EQ(train_sum, 76247);
  EXPECT_EQ(test_sum, 33456);
}

TEST_F(FashionMnistFiles, StatisticsMatchTheNormalizationConstants) {
  const Normalization stats = channel_statistics(load_fashion_mnist(Split::Train).images);
  const Normalization constants = fashion_mnist_normalization();
  EXPECT_NEAR(stats.mean[0], constants.mean[0], 5e-4);
  EXPECT_NEAR(stats.std[0], constants.std[0], 5e-4);
}

// ------------------------------------------------------------------------------------------------ Dataset

TEST(Dataset, HeadCopiesTheFirstImages) {
  const Dataset full = formula_dataset(10);
  const Dataset head = full.head(4);
  ASSERT_EQ(head.size(), 4);
  EXPECT_EQ(head.labels, std::vector<int>(full.labels.begin(), full.labels.begin() + 4));
  EXPECT_EQ(
      std::memcmp(head.images.data(), full.images.data(), static_cast<std::size_t>(head.images.numel())), 0);
  EXPECT_NE(head.images.data(), full.images.data());
  head.validate();
  EXPECT_THROW(full.head(11), resnet::Error);
  EXPECT_THROW(full.head(-1), resnet::Error);
}

TEST(Dataset, ValidateCatchesMismatches) {
  Dataset d = formula_dataset(4);
  d.labels.pop_back();
  expect_error([&] { d.validate(); }, {"4 images but 3 labels"});
  d = formula_dataset(4);
  d.labels[2] = 10;
  expect_error([&] { d.validate(); }, {"label 10 of image 2"});
  d = formula_dataset(4);
  d.normalization.std = {0.25f};
  expect_error([&] { d.validate(); }, {"3 means and 1 stds for 3 channels"});
  d = formula_dataset(4);
  d.normalization.std[1] = 0.0f;
  expect_error([&] { d.validate(); }, {"std 0 is not positive"});
}

TEST(Dataset, ChannelStatisticsOfKnownPixels) {
  // Channel 0 all 0 and 255 in equal numbers: mean 0.5, std 0.5. Channel 1 constant 51: mean 0.2, std 0.
  Tensor<std::uint8_t> images({2, 2, 2, 2});
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t k = 0; k < 4; ++k) {
      images.at({i, 0, k / 2, k % 2}) = (k + i) % 2 ? 255 : 0;
      images.at({i, 1, k / 2, k % 2}) = 51;
    }
  const Normalization stats = channel_statistics(images);
  EXPECT_FLOAT_EQ(stats.mean[0], 0.5f);
  EXPECT_FLOAT_EQ(stats.std[0], 0.5f);
  EXPECT_FLOAT_EQ(stats.mean[1], 0.2f);
  EXPECT_FLOAT_EQ(stats.std[1], 0.0f);
}

// --------------------------------------------------------------------------------------------- Transforms

TEST(Transforms, NormalizeMatchesTorchvision) {
  // ToTensor: x.float().div(255); Normalize: sub_(mean).div_(std), all in float.
  const Normalization n = cifar10_normalization();
  std::vector<std::uint8_t> image(3 * 256);
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v)
      image[static_cast<std::size_t>(c * 256 + v)] = static_cast<std::uint8_t>(v);
  std::vector<float> out(image.size());
  normalize_image(image.data(), 3, 256, n, out.data());
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) {
      const float expected = (static_cast<float>(v) / 255.0f - n.mean[static_cast<std::size_t>(c)]) /
                             n.std[static_cast<std::size_t>(c)];
      ASSERT_EQ(out[static_cast<std::size_t>(c * 256 + v)], expected) << c << " " << v;
    }
}

TEST(Transforms, CropIsAShiftedWindowWithZerosInThePadding) {
  const Dataset d = formula_dataset(1, 2, 6);
  const int p = 4;
  std::vector<std::uint8_t> out(2 * 6 * 6);
  for (int top = 0; top <= 2 * p; ++top)
    for (int left = 0; left <= 2 * p; ++left) {
      crop_flip_image(d.images.data(), 2, 6, 6, p, {top, left, false}, out.data());
      for (int c = 0; c < 2; ++c)
        for (int y = 0; y < 6; ++y)
          for (int x = 0; x < 6; ++x) {
            const int sy = y + top - p, sx = x + left - p;
            const bool inside = sy >= 0 && sy < 6 && sx >= 0 && sx < 6;
            ASSERT_EQ(out[static_cast<std::size_t>((c * 6 + y) * 6 + x)],
                      inside ? test_pixel(0, c, sy, sx) : 0)
                << "top " << top << " left " << left << " c " << c << " y " << y << " x " << x;
          }
    }
  // The centre window is the image itself.
  crop_flip_image(d.images.data(), 2, 6, 6, p, {p, p, false}, out.data());
  EXPECT_EQ(std::memcmp(out.data(), d.images.data(), out.size()), 0);
}

TEST(Transforms, FlipIsAMirror) {
  const Dataset d = formula_dataset(1, 3, 5);
  std::vector<std::uint8_t> flipped(3 * 25), twice(3 * 25);
  crop_flip_image(d.images.data(), 3, 5, 5, 0, {0, 0, true}, flipped.data());
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 5; ++y)
      for (int x = 0; x < 5; ++x)
        EXPECT_EQ(flipped[static_cast<std::size_t>((c * 5 + y) * 5 + x)], test_pixel(0, c, y, 4 - x));
  crop_flip_image(flipped.data(), 3, 5, 5, 0, {0, 0, true}, twice.data());
  EXPECT_EQ(std::memcmp(twice.data(), d.images.data(), twice.size()), 0);
}

TEST(Transforms, CropThenFlipIsTheMirroredCrop) {
  const Dataset d = formula_dataset(1, 1, 8);
  std::vector<std::uint8_t> crop(64), both(64), expected(64);
  crop_flip_image(d.images.data(), 1, 8, 8, 4, {1, 6, false}, crop.data());
  crop_flip_image(d.images.data(), 1, 8, 8, 4, {1, 6, true}, both.data());
  crop_flip_image(crop.data(), 1, 8, 8, 0, {0, 0, true}, expected.data());
  EXPECT_EQ(both, expected);
}

TEST(Transforms, SamplingIsReproducibleWithASeed) {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const CropFlip x = sample_crop_flip(Augmentation::cifar(), a);
    const CropFlip y = sample_crop_flip(Augmentation::cifar(), b);
    const CropFlip z = sample_crop_flip(Augmentation::cifar(), c);
    EXPECT_EQ(std::tie(x.top, x.left, x.flip), std::tie(y.top, y.left, y.flip));
    differs |= std::tie(x.top, x.left, x.flip) != std::tie(z.top, z.left, z.flip);
  }
  EXPECT_TRUE(differs);
  Rng r(1);
  const CropFlip none = sample_crop_flip(Augmentation{}, r);
  EXPECT_EQ(std::tie(none.top, none.left, none.flip), std::make_tuple(0, 0, false));
}

TEST(Transforms, AboutHalfTheImagesAreFlippedAndAll81OffsetsOccur) {
  Rng rng(3);
  const int draws = 20000;
  int flips = 0;
  std::map<std::pair<int, int>, int> offsets;
  for (int i = 0; i < draws; ++i) {
    const CropFlip d = sample_crop_flip(Augmentation::cifar(), rng);
    ASSERT_TRUE(d.top >= 0 && d.top <= 8 && d.left >= 0 && d.left <= 8);
    flips += d.flip;
    ++offsets[{d.top, d.left}];
  }
  EXPECT_NEAR(static_cast<double>(flips) / draws, 0.5, 0.02);  // 5.7 standard deviations
  EXPECT_EQ(offsets.size(), 81u);
  for (const auto& entry : offsets)  // each about 247 of 20000
    EXPECT_GT(entry.second, 150) << entry.first.first << "," << entry.first.second;
}

// ------------------------------------------------------------------------------------------------- Loader

TEST(Loader, ShuffleIsAPermutationEachEpochAndEpochsDiffer) {
  BatchLoader<float> loader(formula_dataset(50), {8, true, false, {}, 11, Prefetch::Never});
  std::vector<std::vector<std::int64_t>> orders;
  for (std::int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<std::int64_t> order;
    for (const Batch<float>& b : whole_epoch(loader, epoch))
      order.insert(order.end(), b.indices.begin(), b.indices.end());
    std::vector<std::int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::int64_t> identity(50);
    std::iota(identity.begin(), identity.end(), 0);
    EXPECT_EQ(sorted, identity) << "epoch " << epoch;
    EXPECT_NE(order, identity) << "epoch " << epoch;
    EXPECT_EQ(order, epoch_order(50, true, 11, epoch));
    orders.push_back(order);
  }
  EXPECT_NE(orders[0], orders[1]);
  EXPECT_NE(orders[1], orders[2]);
}

TEST(Loader, ShuffleIsSeedReproducible) {
  const LoaderOptions options{8, true, false, Augmentation::cifar(), 5, Prefetch::Never};
  BatchLoader<float> a(formula_dataset(30), options), b(formula_dataset(30), options);
  LoaderOptions other = options;
  other.seed = 6;
  BatchLoader<float> c(formula_dataset(30), other);
  for (std::int64_t epoch : {0, 1, 7})
    expect_same_batches(whole_epoch(a, epoch), whole_epoch(b, epoch));
  EXPECT_NE(whole_epoch(a, 0)[0].indices, whole_epoch(c, 0)[0].indices);
}

TEST(Loader, NoShuffleKeepsDatasetOrder) {
  BatchLoader<float> loader(formula_dataset(10), {4, false, false, {}, 0, Prefetch::Never});
  const auto batches = whole_epoch(loader, 3);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].indices, (std::vector<std::int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(batches[2].indices, (std::vector<std::int64_t>{8, 9}));
}

TEST(Loader, LastBatchIsPartialUnlessDropLast) {
  BatchLoader<float> keep(formula_dataset(10), {4, true, false, {}, 1, Prefetch::Never});
  EXPECT_EQ(keep.batches_per_epoch(), 3);
  EXPECT_EQ(keep.samples_per_epoch(), 10);
  const auto kept = whole_epoch(keep, 0);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[2].size(), 2);
  EXPECT_EQ(kept[2].images.shape(), (std::vector<std::int64_t>{2, 3, 8, 8}));
  EXPECT_EQ(kept[2].index, 2);

  BatchLoader<float> drop(formula_dataset(10), {4, true, true, {}, 1, Prefetch::Never});
  EXPECT_EQ(drop.batches_per_epoch(), 2);
  EXPECT_EQ(drop.samples_per_epoch(), 8);
  const auto dropped = whole_epoch(drop, 0);
  ASSERT_EQ(dropped.size(), 2u);
  for (const auto& b : dropped)
    EXPECT_EQ(b.size(), 4);
  // Same order as without drop_last: the first two batches agree.
  EXPECT_EQ(dropped[1].indices, kept[1].indices);

  BatchLoader<float> exact(formula_dataset(8), {4, true, true, {}, 1, Prefetch::Never});
  EXPECT_EQ(whole_epoch(exact, 0).size(), 2u);
}

TEST(Loader, BatchHoldsTheNormalisedAugmentedImagesOfItsIndices) {
  const Dataset d = formula_dataset(12);
  const LoaderOptions options{5, true, false, Augmentation::cifar(), 9, Prefetch::Never};
  BatchLoader<float> loader(d, options);
  const auto batches = whole_epoch(loader, 2);
  const std::vector<std::int64_t> order = epoch_order(12, true, 9, 2);
  int changed = 0;
  for (const Batch<float>& b : batches) {
    EXPECT_EQ(b.epoch, 2);
    for (std::int64_t k = 0; k < b.size(); ++k) {
      const std::int64_t position = b.index * 5 + k, i = b.indices[static_cast<std::size_t>(k)];
      ASSERT_EQ(i, order[static_cast<std::size_t>(position)]);
      EXPECT_EQ(b.labels[static_cast<std::size_t>(k)], test_label(i));
      // Rebuild the image by hand from the documented recipe.
      Rng rng(resnet::data::detail::stream_seed(9, 2, position));
      const CropFlip draw = sample_crop_flip(options.augmentation, rng);
      std::vector<std::uint8_t> crop(3 * 64);
      crop_flip_image(d.images.data() + i * 192, 3, 8, 8, 4, draw, crop.data());
      std::vector<float> expected(3 * 64);
      normalize_image(crop.data(), 3, 64, d.normalization, expected.data());
      EXPECT_EQ(std::memcmp(expected.data(), b.images.data() + k * 192, sizeof(float) * 192), 0)
          << "batch " << b.index << " image " << k;
      changed += std::memcmp(crop.data(), d.images.data() + i * 192, 192) != 0;
    }
  }
  EXPECT_GT(changed, 6);  // augmentation really happened for most of the 12
}

// A shard is DistributedSampler's share: positions r, r + N, ... of each batch of the same order, each image
// augmented as the unsharded loader augments it, so that the shards together are the unsharded batch.
TEST(Loader, ShardsSplitEachBatchByPositionAndTogetherAreTheWholeBatch) {
  const Dataset d = formula_dataset(23);
  LoaderOptions whole_options{6, true, false, Augmentation::cifar(), 5, Prefetch::Never};
  BatchLoader<float> whole(d, whole_options);
  const auto expected = whole_epoch(whole, 1);
  ASSERT_EQ(expected.size(), 4u);  // 6 + 6 + 6 + 5
  const std::int64_t shards = 3, image = 3 * 8 * 8;
  std::vector<std::vector<Batch<float>>> parts;
  for (std::int64_t r = 0; r < shards; ++r) {
    LoaderOptions options = whole_options;
    options.shard = {r, shards};
    options.prefetch = r == 1 ? Prefetch::Always : Prefetch::Never;
    BatchLoader<float> loader(d, options);
    EXPECT_EQ(loader.batches_per_epoch(), whole.batches_per_epoch());
    parts.push_back(whole_epoch(loader, 1));
    ASSERT_EQ(parts.back().size(), expected.size());
  }
  for (std::size_t b = 0; b < expected.size(); ++b) {
    std::int64_t total = 0;
    for (std::int64_t r = 0; r < shards; ++r) {
      const Batch<float>& part = parts[static_cast<std::size_t>(r)][b];
      EXPECT_EQ(part.index, static_cast<std::int64_t>(b));
      total += part.size();
      for (std::int64_t k = 0; k < part.size(); ++k) {
        const std::int64_t position = r + k * shards;  // within the batch
        EXPECT_EQ(part.indices[static_cast<std::size_t>(k)],
                  expected[b].indices[static_cast<std::size_t>(position)]);
        EXPECT_EQ(part.labels[static_cast<std::size_t>(k)],
                  expected[b].labels[static_cast<std::size_t>(position)]);
        EXPECT_EQ(std::memcmp(part.images.cdata() + k * image, expected[b].images.cdata() + position * image,
                              sizeof(float) * image),
                  0)
            << "batch " << b << ", shard " << r << ", image " << k;
      }
    }
    EXPECT_EQ(total, expected[b].size());
    EXPECT_EQ(whole.whole_batch_size(static_cast<std::int64_t>(b)), expected[b].size());
  }
  EXPECT_EQ(parts[2][3].size(), 1);  // the last batch of 5: 2, 2 and 1
}

TEST(Loader, ShardOutsideTheCountIsRefused) {
  LoaderOptions options{4, true, false, {}, 1, Prefetch::Never};
  options.shard = {2, 2};
  EXPECT_THROW(BatchLoader<float>(formula_dataset(10), options), resnet::Error);
  options.shard = {0, 0};
  EXPECT_THROW(BatchLoader<float>(formula_dataset(10), options), resnet::Error);
}

TEST(Loader, RestoredStateResumesTheSameSequence) {
  const LoaderOptions options{4, true, false, Augmentation::cifar(), 21, Prefetch::Never};
  BatchLoader<float> reference(formula_dataset(18), options);
  const auto epoch1 = whole_epoch(reference, 1), epoch2 = whole_epoch(reference, 2);

  // Stop in the middle of epoch 1, after two batches; a new loader restored from the saved state goes on.
  BatchLoader<float> first(formula_dataset(18), options);
  first.start_epoch(1);
  Batch<float> batch;
  ASSERT_TRUE(first.next(batch));
  ASSERT_TRUE(first.next(batch));
  const LoaderState saved = first.state();
  EXPECT_EQ(saved.epoch, 1);
  EXPECT_EQ(saved.batch, 2);
  EXPECT_EQ(saved.seed, 21u);

  BatchLoader<float> resumed(formula_dataset(18), options);
  resumed.restore(saved);
  std::vector<Batch<float>> rest;
  while (resumed.next(batch))
    rest.push_back(batch);
  expect_same_batches(rest, std::vector<Batch<float>>(epoch1.begin() + 2, epoch1.end()));
  expect_same_batches(whole_epoch(resumed, 2), epoch2);

  LoaderOptions other = options;
  other.seed = 22;
  BatchLoader<float> wrong_seed(formula_dataset(18), other);
  expect_error([&] { wrong_seed.restore(saved); }, {"seed 21", "seed 22"});
}

TEST(Loader, PrefetchGivesTheSameBatchesAsSynchronousWhateverTheThreadCount) {
  const Dataset d = formula_dataset(37);
  LoaderOptions options{6, true, false, Augmentation::cifar(), 4, Prefetch::Never};
  BatchLoader<float> sync(d, options);
  options.prefetch = Prefetch::Always;
  BatchLoader<float> background(d, options);
  EXPECT_FALSE(sync.prefetching());
  EXPECT_TRUE(background.prefetching());
  const int threads = resnet::num_threads();
  for (std::int64_t epoch = 0; epoch < 3; ++epoch) {
    resnet::set_num_threads(1);
    const auto expected = whole_epoch(sync, epoch);
    resnet::set_num_threads(2);
    expect_same_batches(whole_epoch(background, epoch), expected);
    expect_same_batches(whole_epoch(sync, epoch), expected);
  }
  resnet::set_num_threads(threads);
}

TEST(Loader, RestartingAnEpochWhileABatchIsBeingPrepared) {
  const Dataset d = formula_dataset(40);
  LoaderOptions options{4, true, false, Augmentation::cifar(), 8, Prefetch::Always};
  BatchLoader<float> loader(d, options);
  Batch<float> batch;
  loader.start_epoch(0);
  ASSERT_TRUE(loader.next(batch));  // batch 1 is now in preparation
  loader.start_epoch(5, 3);         // jump elsewhere; the stale batch must not leak through
  ASSERT_TRUE(loader.next(batch));
  options.prefetch = Prefetch::Never;
  BatchLoader<float> sync(d, options);
  const auto epoch5 = whole_epoch(sync, 5);
  EXPECT_EQ(batch.epoch, 5);
  EXPECT_EQ(batch.index, 3);
  EXPECT_EQ(batch.indices, epoch5[3].indices);
  EXPECT_TRUE(same_bytes(batch.images, epoch5[3].images));
  // Starting at the end of an epoch yields nothing.
  loader.start_epoch(5, loader.batches_per_epoch());
  EXPECT_FALSE(loader.next(batch));
  EXPECT_EQ(batch.index, 3);  // untouched
}

TEST(Loader, KeptBatchesAreNeverOverwritten) {
  for (Prefetch prefetch : {Prefetch::Never, Prefetch::Always}) {
    BatchLoader<float> loader(formula_dataset(20), {4, true, false, Augmentation::cifar(), 2, prefetch});
    loader.start_epoch(0);
    Batch<float> batch;
    ASSERT_TRUE(loader.next(batch));
    const Batch<float> kept = batch;  // shares storage, as a layer caching its input would
    const Tensor<float> snapshot = kept.images.clone();
    while (loader.next(batch)) {
    }
    EXPECT_TRUE(same_bytes(kept.images, snapshot));
  }
}

TEST(Loader, AutoPrefetchFollowsTheBatchSize) {
  EXPECT_FALSE(
      BatchLoader<float>(formula_dataset(4, 3, 8), {2, true, false, {}, 0, Prefetch::Auto}).prefetching());
  Dataset big = formula_dataset(4, 3, 8);
  big.images = Tensor<std::uint8_t>({128, 3, 32, 32});
  big.labels.assign(128, 0);
  EXPECT_TRUE(BatchLoader<float>(big, {128, true, false, {}, 0, Prefetch::Auto}).prefetching());
}

TEST(Loader, WorksInDouble) {
  BatchLoader<double> loader(formula_dataset(3), {2, false, false, {}, 0, Prefetch::Never});
  Batch<double> batch;
  ASSERT_TRUE(loader.next(batch));
  EXPECT_EQ(batch.images.at({1, 2, 3, 4}),
            (static_cast<double>(test_pixel(1, 2, 3, 4)) / 255.0 - 0.5) / 0.25);
}

TEST(Loader, BadArgumentsThrow) {
  expect_error(
      [] {
        BatchLoader<float>(formula_dataset(4), {0, true, false, {}, 0, Prefetch::Never});
      },
      {"batch_size must be at least 1, got 0"});
  expect_error(
      [] {
        BatchLoader<float>(formula_dataset(4), {8, true, true, {}, 0, Prefetch::Never});
      },
      {"drop_last", "leaves no batch"});
  expect_error(
      [] {
        BatchLoader<float>(formula_dataset(4), {2, true, false, {-1, false}, 0, Prefetch::Never});
      },
      {"negative crop padding -1"});
  Dataset no_stats = formula_dataset(4);
  no_stats.normalization = {};
  expect_error(
      [&] {
        BatchLoader<float>(no_stats, {2, true, false, {}, 0, Prefetch::Never});
      },
      {"normalisation has 0 means"});
  BatchLoader<float> loader(formula_dataset(4), {2, true, false, {}, 0, Prefetch::Never});
  expect_error([&] { loader.start_epoch(-1); }, {"negative epoch -1"});
  expect_error([&] { loader.start_epoch(0, 3); }, {"batch 3 out of range [0, 2]"});
}
