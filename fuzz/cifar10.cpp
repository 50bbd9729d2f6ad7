// libFuzzer target: one CIFAR-10 binary batch file (data/cifar10.hpp). The reader takes paths, so each input
// is written to a scratch file first.

#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "resnet/data/cifar10.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const resnet::fuzz::ScratchDir scratch;
  const std::string path = scratch.write("data_batch_1.bin", data, size);
  try {
    resnet::data::read_cifar10_files({path});
  } catch (const resnet::Error&) {  // the one way a reader may refuse its input
  }
  return 0;
}
