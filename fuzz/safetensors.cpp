// libFuzzer target: a safetensors file (io/safetensors_file.hpp) parsed from memory, every tensor decoded to
// float and to int64, then loaded into a tiny ResNet (io/safetensors.hpp) strictly and with the head skipped.

#include <cstddef>
#include <cstdint>

#include "fuzz_support.hpp"
#include "resnet/io/safetensors.hpp"
#include "resnet/io/safetensors_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace io = resnet::io;
  static resnet::models::ResNet<float> model = resnet::fuzz::tiny_model();
  io::Safetensors file;
  try {  // resnet::Error is the one way a reader may refuse its input
    file = io::parse_safetensors(data, size, "fuzz input");
  } catch (const resnet::Error&) {
    return 0;
  }
  for (const io::NamedTensor& tensor : file.tensors) {
    io::decode<float>(tensor);  // cannot fail once the file parsed: any error here is a finding
    try {
      io::decode<std::int64_t>(tensor);
    } catch (const resnet::Error&) {
    }
  }
  try {
    io::load_state(model, file);
  } catch (const resnet::Error&) {
  }
  try {
    io::load_state(model, file, {/*strict=*/false, /*skip_prefixes=*/{"fc."}});
  } catch (const resnet::Error&) {
  }
  return 0;
}
