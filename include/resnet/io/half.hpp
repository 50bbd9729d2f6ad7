#pragma once
// The two 16-bit float formats safetensors files use, decoded to float. Every value of either is exactly a
// float, so decoding is exact: F16 is IEEE 754 binary16 (1 sign, 5 exponent, 10 mantissa bits); BF16 is the
// upper half of a float32 (1 sign, 8 exponent, 7 mantissa bits), as torch.bfloat16.

#include <cstdint>
#include <cstring>

namespace resnet::io {

inline float bfloat16_to_float(std::uint16_t bits) {
  const std::uint32_t word = static_cast<std::uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &word, sizeof value);
  return value;
}

inline float half_to_float(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  std::uint32_t exponent = (bits >> 10) & 0x1fu;
  std::uint32_t mantissa = bits & 0x3ffu;
  std::uint32_t word;
  if (exponent == 0x1f) {
    word = sign | 0x7f800000u | (mantissa << 13);  // inf, or nan with its payload
  } else if (exponent != 0) {
    word = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);  // normal: rebias the exponent
  } else if (mantissa == 0) {
    word = sign;  // +-0
  } else {
    // Subnormal, mantissa * 2^-24: shift until the leading bit becomes the implicit one of a normal float.
    exponent = 127 - 14;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    word = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float value;
  std::memcpy(&value, &word, sizeof value);
  return value;
}

}  // namespace resnet::io
