// libFuzzer target: a training checkpoint (train/checkpoint.hpp) parsed from memory and restored into a tiny
// ResNet and its SGD optimizer with momentum.

#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "resnet/train/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace io = resnet::io;
  static resnet::models::ResNet<float> model = resnet::fuzz::tiny_model();
  static resnet::optim::SGD<float> sgd(model.named_parameters(), 0.1, 0.9);
  try {
    io::load_checkpoint(io::parse_safetensors(data, size, "fuzz input"), model, sgd, "fuzz input");
  } catch (const resnet::Error&) {  // the one way a reader may refuse its input
  }
  return 0;
}
