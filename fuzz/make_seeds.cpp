// Writes the seed corpus of every fuzz target: small valid files of each format, so that fuzzing starts from
// inputs that reach the end of each reader. Usage: fuzz_make_seeds OUTPUT_DIR (writes OUTPUT_DIR/<target>/).

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "resnet/io/safetensors.hpp"
#include "resnet/optim/ema.hpp"
#include "resnet/train/checkpoint.hpp"
#include "resnet/train/metrics_log.hpp"

namespace {

using resnet::fuzz::Bytes;
namespace io = resnet::io;

void put(const std::string& path, const Bytes& bytes) {
  resnet::fuzz::write_file(path, bytes.data(), bytes.size());
}

// Byte j of image i: differs between images and positions.
std::uint8_t pixel(std::uint32_t i, std::uint32_t j) {
  return static_cast<std::uint8_t>((i * 37 + j * 7 + j / 5) % 256);
}

Bytes cifar10_records(std::uint32_t count) {
  Bytes bytes;
  for (std::uint32_t i = 0; i < count; ++i) {
    bytes.push_back(static_cast<std::uint8_t>(i * 7 % 10));
    for (std::uint32_t j = 0; j < 3 * 32 * 32; ++j)
      bytes.push_back(pixel(i, j));
  }
  return bytes;
}

// An unsigned-byte IDX file: 00 00 08 <rank>, big-endian dimensions, then the elements.
Bytes idx(const std::vector<std::uint32_t>& dims) {
  Bytes bytes = {0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
  std::uint32_t count = 1;
  for (std::uint32_t d : dims) {
    count *= d;
    for (int shift = 24; shift >= 0; shift -= 8)
      bytes.push_back(static_cast<std::uint8_t>(d >> shift));
  }
  for (std::uint32_t j = 0; j < count; ++j)
    bytes.push_back(dims.size() == 1 ? static_cast<std::uint8_t>(j * 7 % 10) : pixel(j / 16, j));
  return bytes;
}

// The mnist target's input: the images file's length (4 bytes, little-endian), the images, the labels.
Bytes mnist_pair(std::uint32_t count, std::uint32_t side) {
  const Bytes images = idx({count, side, side});
  const Bytes labels = idx({count});
  Bytes bytes;
  for (int shift = 0; shift < 32; shift += 8)
    bytes.push_back(static_cast<std::uint8_t>(images.size() >> shift));
  bytes.insert(bytes.end(), images.begin(), images.end());
  bytes.insert(bytes.end(), labels.begin(), labels.end());
  return bytes;
}

// One tensor of every dtype the reader decodes, from raw little-endian bytes, with metadata.
void write_every_dtype(const std::string& path) {
  const auto tensor = [](std::string name, io::DType dtype, std::vector<std::int64_t> shape, Bytes data) {
    return io::NamedTensor{std::move(name), dtype, std::move(shape), std::move(data)};
  };
  io::write_safetensors(path,
                        {tensor("f16", io::DType::F16, {2}, {0x00, 0x3c, 0x01, 0x80}),
                         tensor("bf16", io::DType::BF16, {1, 2}, {0x80, 0x3f, 0xc0, 0x7f}),
                         tensor("f32", io::DType::F32, {}, {0x00, 0x00, 0x80, 0xbf}),
                         tensor("f64", io::DType::F64, {1}, {0, 0, 0, 0, 0, 0, 0xf0, 0x3f}),
                         tensor("i64", io::DType::I64, {1}, {5, 0, 0, 0, 0, 0, 0, 0}),
                         tensor("empty", io::DType::F32, {0, 3}, {})},
                        {{"format", "pt"}});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  for (const char* target : {"cifar10", "idx", "mnist", "safetensors", "checkpoint"})
    std::filesystem::create_directories(root / target);
  const auto in = [&](const char* target, const char* name) { return (root / target / name).string(); };

  put(in("cifar10", "one_record.bin"), cifar10_records(1));
  put(in("cifar10", "three_records.bin"), cifar10_records(3));

  const Bytes images = idx({3, 4, 4}), labels = idx({3});
  put(in("idx", "images-idx3-ubyte"), images);
  put(in("idx", "labels-idx1-ubyte"), labels);
  put(in("idx", "images-idx3-ubyte.gz"), resnet::fuzz::gzip(images.data(), images.size()));
  put(in("idx", "labels-idx1-ubyte.gz"), resnet::fuzz::gzip(labels.data(), labels.size()));

  put(in("mnist", "three_4x4"), mnist_pair(3, 4));
  put(in("mnist", "one_2x2"), mnist_pair(1, 2));

  resnet::models::ResNet<float> model = resnet::fuzz::tiny_model();
  io::save_safetensors(model, in("safetensors", "tiny_resnet_f32.safetensors"));
  io::save_safetensors(model, in("safetensors", "tiny_resnet_f64.safetensors"), {io::DType::F64, {}});
  write_every_dtype(in("safetensors", "every_dtype.safetensors"));

  resnet::optim::SGD<float> sgd(model.named_parameters(), 0.1, 0.9);
  io::save_checkpoint(in("checkpoint", "before_first_step.safetensors"), model, sgd, {{"epoch", "0"}});
  for (std::size_t i = 0; i < sgd.params().size(); ++i)
    if (i % 2 == 0) sgd.momentum_buffers()[i] = resnet::Tensor<float>(sgd.params()[i].value->shape(), 0.5f);
  io::save_checkpoint(in("checkpoint", "with_momentum.safetensors"), model, sgd, {{"epoch", "3"}});
  // What train::Checkpoints writes: settings, the position, a metrics log and a moving average's tensors.
  resnet::train::MetricsLog log("", {"update", "train_loss"});
  log.add({1, 2.25});
  resnet::optim::ExponentialMovingAverage<float> ema(model, 0.9);
  ema.update(model);
  resnet::train::Checkpoints run(in("checkpoint", "run"), {{"seed", "0"}});
  const std::string path = run.save(model, sgd, {{0, 2, 5}, 17}, {{"metrics", log.csv()}}, ema.tensors());
  std::filesystem::rename(path, in("checkpoint", "run_with_average.safetensors"));
  std::filesystem::remove(in("checkpoint", "run"));
  return 0;
}
