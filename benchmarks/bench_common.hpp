#pragma once
// What every benchmark binary shares: a main() that takes --threads=N (our thread count, not a Google
// Benchmark flag), --precision=fp32|bf16|auto (the models' arithmetic; default auto, as the examples),
// --conv-search (time each conv shape's candidate plans, kernels/conv_search.hpp) and --conv-choices=FILE
// (load FILE's conv choices if it exists, save the choices there at the end) before handing the rest of the
// command line to Google Benchmark, the peak of that many threads measured once at startup (FP32 FMA, or the
// bf16 instruction in bf16), and the counters images/s, GFLOP/s and % of that peak.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "bf16_peak.hpp"
#include "fma_peak.hpp"
#include "resnet/core/parallel.hpp"
#include "resnet/core/precision.hpp"
#include "resnet/core/rng.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/io/conv_choices.hpp"
#include "resnet/kernels/conv_search.hpp"

namespace resnet::bench {

inline double& peak_gflops() {
  static double peak = 0;
  return peak;
}

// --precision: what the model benchmarks run in.
inline Precision& precision() {
  static Precision chosen = native_precision();
  return chosen;
}

inline Tensor<float> random_tensor(std::vector<std::int64_t> shape, std::uint64_t seed = 1) {
  Rng rng(seed);
  Tensor<float> t(std::move(shape));
  t.fill_normal(rng);
  return t;
}

// Wall time of a benchmark's timed loop, measured alongside Google Benchmark's own so that the counters below
// can be plain numbers (a rate counter would print "%peak" as "per second").
class LoopTimer {
 public:
  LoopTimer() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// images/s and, when flops_per_iteration > 0, GFLOP/s and % of the measured FMA peak of `peak_threads`
// threads (default: all of them; a single-threaded kernel compares with one thread's share).
// `seconds` is the time of all iterations together.
inline void set_counters(benchmark::State& state, double seconds, double images_per_iteration,
                         double flops_per_iteration, int peak_threads = 0) {
  const double iterations = static_cast<double>(state.iterations());
  if (images_per_iteration > 0) state.counters["images/s"] = images_per_iteration * iterations / seconds;
  if (flops_per_iteration > 0) {
    const double gflops = flops_per_iteration * iterations / seconds * 1e-9;
    const double peak =
        peak_threads > 0 ? peak_gflops() * peak_threads / resnet::num_threads() : peak_gflops();
    state.counters["GFLOP/s"] = gflops;
    state.counters["%peak"] = 100.0 * gflops / peak;
  }
}

inline void set_counters(benchmark::State& state, const LoopTimer& timer, double images_per_iteration,
                         double flops_per_iteration, int peak_threads = 0) {
  set_counters(state, timer.seconds(), images_per_iteration, flops_per_iteration, peak_threads);
}

// Forward FLOPs of a convolution: 2 * N * O * OH * OW * C * k * k.
inline double conv_flops(std::int64_t N, std::int64_t C, std::int64_t O, std::int64_t OHW, std::int64_t k) {
  return 2.0 * static_cast<double>(N * O * OHW * C * k * k);
}

inline int main(int argc, char** argv) {
  int threads = resnet::num_threads();
  std::string conv_choices;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    } else if (std::strncmp(argv[i], "--precision=", 12) == 0) {
      try {
        precision() = parse_precision(argv[i] + 12);
      } catch (const Error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
      }
    } else if (std::strcmp(argv[i], "--conv-search") == 0) {
      set_conv_search(true);
    } else if (std::strncmp(argv[i], "--conv-choices=", 15) == 0) {
      conv_choices = argv[i] + 15;
    } else {
      rest.push_back(argv[i]);
    }
  }
  resnet::set_num_threads(threads);
  try {
    if (!conv_choices.empty() && std::filesystem::exists(conv_choices)) io::load_conv_choices(conv_choices);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  // bf16 counts against the peak of the bf16 instruction where the kernels use it.
  const double bf16_peak = precision() == Precision::BF16 ? bf16_peak_gflops(threads) : 0;
  peak_gflops() = bf16_peak > 0 ? bf16_peak : fma_peak_gflops(threads);
  benchmark::AddCustomContext("peak", bf16_peak > 0 ? bf16_peak_instruction() : "FP32 FMA");
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::AddCustomContext("precision", precision_name(precision()));
  benchmark::AddCustomContext("isa", isa_name(active_isa()));
  benchmark::AddCustomContext("conv_search", conv_search() ? "on" : "off");
  benchmark::AddCustomContext("conv_choices_loaded",
                              std::to_string(kernels::conv_choice_count(kernels::ConvChoiceSource::Loaded)));
  benchmark::AddCustomContext("peak_gflops", std::to_string(peak_gflops()));
  int rest_count = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_count, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_count, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (conv_search() || !conv_choices.empty()) {
    // On stderr, which leaves --benchmark_format=json on stdout parseable.
    std::fprintf(stderr, "%s\n", kernels::conv_search_info().c_str());
    try {
      if (!conv_choices.empty()) io::save_conv_choices(conv_choices);
    } catch (const Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    }
  }
  return 0;
}

}  // namespace resnet::bench

#define RESNET_BENCHMARK_MAIN()             \
  int main(int argc, char** argv) {         \
    return resnet::bench::main(argc, argv); \
  }
