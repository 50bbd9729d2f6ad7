#pragma once
// The arithmetic a module's matrix products run in, as torch.autocast chooses it:
//   FP32  float operands, float accumulation (the default, as PyTorch's);
//   BF16  operands rounded to bfloat16 (core/bfloat16.hpp), float accumulation: PyTorch's
//         torch.autocast("cpu", dtype=torch.bfloat16) for Conv2d and Linear. Parameters, gradients,
//         optimizer state, BatchNorm, the loss and softmax stay float32, and every module takes and returns
//         float tensors.
// Set for a whole module tree with set_precision (nn/module.hpp); a double module takes only FP32.

#include <string>

#include "resnet/core/cpu_features.hpp"
#include "resnet/core/error.hpp"

namespace resnet {

enum class Precision { FP32, BF16 };

inline const char* precision_name(Precision p) {
  return p == Precision::BF16 ? "bf16" : "fp32";
}

// What "auto" means to the examples: bf16 where the CPU multiplies bf16 natively (AVX512-BF16 or AMX, and
// the cap of core/cpu_features.hpp allows it), else fp32, where bf16 would only add rounding.
inline Precision native_precision() {
  return isa_enabled(Isa::Avx512Bf16) ? Precision::BF16 : Precision::FP32;
}

// "fp32", "bf16" or "auto" (native_precision), as the examples' --precision takes it.
inline Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::FP32;
  if (name == "bf16") return Precision::BF16;
  if (name == "auto") return native_precision();
  throw Error("unknown precision '" + name + "': expected fp32, bf16 or auto");
}

}  // namespace resnet
