#pragma once
// A tensor on an output stream, on one line, for logs and debugging:
//   std::cout << t;   // tensor([0.5, 1, 2, ..., 7, 8, 9], shape=[2, 5], dtype=float32)
// its values in storage order (all of them up to kPrintEdgeItems * 2, else the first and last
// kPrintEdgeItems around "...", as PyTorch summarises a long tensor), its shape and PyTorch's name of its
// element type. Floating-point values follow the stream's precision; integers, uint8 included, print as
// numbers. A 0-d tensor prints its one value without brackets, an empty one "[]".

#include <cstdint>
#include <ostream>
#include <type_traits>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"

namespace resnet {

// torch's name of the element type: float32, float64, uint8, int8, int16, int32, int64, bool, ...
template <typename T>
constexpr const char* dtype_name() {
  static_assert(std::is_arithmetic_v<T> && sizeof(T) <= 8, "dtype_name: a bool, integer or float type");
  if constexpr (std::is_same_v<T, bool>) {
    return "bool";
  } else if constexpr (std::is_floating_point_v<T>) {
    return sizeof(T) == 4 ? "float32" : sizeof(T) == 8 ? "float64" : "float16";
  } else {
    constexpr int index = sizeof(T) == 1 ? 0 : sizeof(T) == 2 ? 1 : sizeof(T) == 4 ? 2 : 3;
    constexpr const char* names[2][4] = {{"uint8", "uint16", "uint32", "uint64"},
                                         {"int8", "int16", "int32", "int64"}};
    return names[std::is_signed_v<T> ? 1 : 0][index];
  }
}

inline constexpr std::int64_t kPrintEdgeItems = 3;

template <typename T>
std::ostream& operator<<(std::ostream& out, const Tensor<T>& t) {
  const auto value = [&](std::int64_t i) -> std::ostream& {
    if constexpr (std::is_integral_v<T>) {
      return out << +t.cdata()[i];  // + : a uint8 as a number, not a character
    } else {
      return out << t.cdata()[i];
    }
  };
  out << "tensor(";
  if (t.dim() == 0 && t.numel() == 1) {
    value(0);
  } else {
    out << '[';
    const std::int64_t n = t.numel();
    for (std::int64_t i = 0; i < n; ++i) {
      if (n > 2 * kPrintEdgeItems && i == kPrintEdgeItems) {
        out << ", ...";
        i = n - kPrintEdgeItems;
      }
      if (i > 0) out << ", ";
      value(i);
    }
    out << ']';
  }
  return out << ", shape=" << shape_string(t.shape()) << ", dtype=" << dtype_name<T>() << ')';
}

}  // namespace resnet
