// libFuzzer target: an MNIST-format directory (data/mnist.hpp) with gzip-compressed files, whose decompressed
// bytes are the input. Input layout: a 4-byte little-endian length n, then n bytes of the images IDX file,
// then the labels IDX file (n larger than what follows takes all of it). The target gzips both, so the
// fuzzer explores the IDX content behind valid gzip streams (the idx target mutates the compressed bytes).

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "resnet/data/mnist.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const resnet::fuzz::ScratchDir scratch;
  if (size < 4) return 0;
  const std::size_t images_size =
      std::min<std::size_t>(size - 4, data[0] | data[1] << 8 | data[2] << 16 | std::uint32_t{data[3]} << 24);
  const std::uint8_t* images = data + 4;
  const std::uint8_t* labels = images + images_size;
  const resnet::fuzz::Bytes images_gz = resnet::fuzz::gzip(images, images_size);
  const resnet::fuzz::Bytes labels_gz = resnet::fuzz::gzip(labels, size - 4 - images_size);
  scratch.write("t10k-images-idx3-ubyte.gz", images_gz.data(), images_gz.size());
  scratch.write("t10k-labels-idx1-ubyte.gz", labels_gz.data(), labels_gz.size());
  try {
    resnet::data::load_mnist(scratch.path(), resnet::data::Split::Test);
  } catch (const resnet::Error&) {  // the one way a reader may refuse its input
  }
  return 0;
}
