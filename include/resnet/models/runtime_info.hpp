#pragma once
// runtime_info(): what the library runs on, in three lines, for the start of a program's output:
//   CPU: AVX2, FMA, AVX-512F, AVX512-BF16, no AMX-BF16; kernels: avx512_bf16; threads: 2 (OpenMP on)
//   GEMM: float on our AVX-512 SGEMM, bf16 on our AVX512-BF16 GEMM, double on Eigen (SSE, SSE2)
//   Conv search: off; choices: 0 searched, 0 loaded
// the CPU's vector units (core/cpu_features.hpp), the instruction set the kernels use (the CPU's, capped by
// RESNET_MAX_ISA), the thread count (num_threads) and whether OpenMP is on, which GEMM each operand type
// runs (kernels::gemm_path), and whether convs search their plans and how many choices are cached
// (kernels/conv_search.hpp). runtime_info(model, input_shape) adds a line per Conv2d with the algorithm its
// forward runs for that input in the model's current mode:
//   layer3.0.conv2 [1, 256, 14, 14]: winograd

#include <cstdint>
#include <string>
#include <vector>

#include "resnet/core/cpu_features.hpp"
#include "resnet/core/error.hpp"
#include "resnet/core/parallel.hpp"
#include "resnet/kernels/conv_search.hpp"
#include "resnet/kernels/gemm.hpp"
#include "resnet/models/summary.hpp"

namespace resnet {

inline std::string runtime_info() {
#ifdef _OPENMP
  const char* openmp = "on";
#else
  const char* openmp = "off";
#endif
  return "CPU: " + cpu_features().to_string() + "; kernels: " + isa_name(active_isa()) +
         "; threads: " + std::to_string(num_threads()) + " (OpenMP " + openmp + ")\nGEMM: float on " +
         kernels::gemm_path<float>() + ", bf16 on " + kernels::gemm_path<bfloat16>() + ", double on " +
         kernels::gemm_path<double>() + "\n" + kernels::conv_search_info();
}

template <typename Model>
std::string runtime_info(Model& model, const std::vector<std::int64_t>& input_shape) {
  std::string text = runtime_info() + "\nConvolutions of an input " + shape_string(input_shape) + " in " +
                     (model.is_training() ? "training" : "eval") + " mode:";
  for (const auto& row : models::detail::trace_layers(model, input_shape))
    if (!row.algorithm.empty())
      text += "\n  " + (row.name.empty() ? row.type : row.name) + " " + shape_string(row.input) + ": " +
              row.algorithm;
  return text;
}

}  // namespace resnet
