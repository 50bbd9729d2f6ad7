// libFuzzer target: one IDX file (data/idx.hpp), raw or, when the input starts with gzip's magic bytes,
// gzip-compressed, read as MNIST images and as labels. The reader takes paths, so each input is written to a
// scratch file first. The mnist target covers what lies behind a valid gzip stream.

#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "resnet/data/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const resnet::fuzz::ScratchDir scratch;
  const std::string path = scratch.write("input-idx-ubyte", data, size);
  try {  // the one way a reader may refuse its input
    resnet::data::read_idx_images(path);
  } catch (const resnet::Error&) {
  }
  try {
    resnet::data::read_idx_labels(path, 10);
  } catch (const resnet::Error&) {
  }
  return 0;
}
