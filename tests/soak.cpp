// resnet_soak: trains a narrow ResNet18 (width 8, CIFAR stem, batches of 8 random images) for many steps and
// fails if the resident memory grows after a warm-up or if any loss, parameter, buffer or momentum value
// stops being finite. Steady-state training should allocate nothing that it keeps (DESIGN.md), so a leak of
// even a few kB a step shows up as steady RSS growth over thousands of steps. RSS swings by a couple of MB
// from one sample to the next as malloc hands freed activations back to the system, so each end of the run
// is measured as the highest of several samples: the first after the warm-up, and the last.
//
//   resnet_soak [--iterations N] [--warmup N] [--samples N] [--max-growth-mb X] [--threads N]

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"

namespace {

struct Options {
  long iterations = 5000;
  long warmup = 0;  // 0: a tenth of the iterations, at least 50
  long samples = 20;
  // Above the swing between samples' highs (under 2 MB here), and crossed within 200 steps by a leak of
  // 20 kB a step (checked by adding one), smaller than any activation of a batch.
  double max_growth_mb = 4;
  int threads = 0;  // 0: OMP_NUM_THREADS or OpenMP's default
};

[[noreturn]] void usage(const char* message) {
  std::fprintf(stderr,
               "resnet_soak: %s\nusage: resnet_soak [--iterations N] [--warmup N] [--samples N] "
               "[--max-growth-mb X] [--threads N]\n",
               message);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage(("missing value after " + flag).c_str());
    char* end = nullptr;
    const double value = std::strtod(argv[++i], &end);
    if (*end != '\0' || value < 0) usage(("bad value for " + flag).c_str());
    if (flag == "--iterations") {
      o.iterations = static_cast<long>(value);
    } else if (flag == "--warmup") {
      o.warmup = static_cast<long>(value);
    } else if (flag == "--samples") {
      o.samples = static_cast<long>(value);
    } else if (flag == "--max-growth-mb") {
      o.max_growth_mb = value;
    } else if (flag == "--threads") {
      o.threads = static_cast<int>(value);
    } else {
      usage(("unknown option " + flag).c_str());
    }
  }
  if (o.warmup == 0) o.warmup = std::max(50L, o.iterations / 10);
  if (o.iterations <= o.warmup) usage("--iterations must exceed the warm-up");
  if (o.samples < 1) usage("--samples must be >= 1");
  return o;
}

// VmRSS (resident now) and VmHWM (peak resident) from /proc/self/status, in MB.
struct Memory {
  double rss = 0, peak = 0;
};

Memory memory() {
  std::ifstream status("/proc/self/status");
  Memory m;
  std::string key;
  double kb = 0;
  while (status >> key) {
    if (key == "VmRSS:" && status >> kb) m.rss = kb / 1024;
    if (key == "VmHWM:" && status >> kb) m.peak = kb / 1024;
  }
  return m;
}

// The first non-finite value of any parameter, buffer or momentum buffer, as "name[index] = value", or "".
std::string first_non_finite(resnet::models::ResNet<float>& model, resnet::optim::SGD<float>& sgd) {
  const auto scan = [](const std::string& name, const resnet::Tensor<float>& t) -> std::string {
    for (std::int64_t i = 0; i < t.numel(); ++i)
      if (!std::isfinite(t.data()[i]))
        return name + "[" + std::to_string(i) + "] = " + std::to_string(t.data()[i]);
    return "";
  };
  std::string found;
  for (const auto& p : model.named_parameters())
    if (found.empty()) found = scan(p.name, *p.value);
  for (const auto& b : model.named_buffers())
    if (found.empty()) found = scan(b.name, *b.value);
  const auto& params = sgd.params();
  for (std::size_t i = 0; i < params.size() && found.empty(); ++i)
    found = scan("momentum of " + params[i].name, sgd.momentum_buffers()[i]);
  return found;
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.threads > 0) resnet::set_num_threads(o.threads);

  resnet::models::ResNet<float> model({2, 2, 2, 2}, 10, resnet::models::Stem::Cifar, 3, /*seed=*/1, 8);
  resnet::optim::SGD<float> sgd(model.named_parameters(), 0.01, 0.9, 5e-4);
  resnet::nn::CrossEntropyLoss<float> loss;
  resnet::Rng rng(7);
  resnet::Tensor<float> images({8, 3, 32, 32}), eval_images({8, 3, 32, 32});
  eval_images.fill_normal(rng);
  std::vector<int> labels(8);

  const long every = std::max(1L, (o.iterations - o.warmup) / o.samples);
  std::printf("resnet_soak: %ld iterations (warm-up %ld), ResNet18 width 8, batch 8, %d thread(s)\n",
              o.iterations, o.warmup, resnet::num_threads());
  const auto start = std::chrono::steady_clock::now();
  std::vector<double> rss;  // MB, at the end of the warm-up and every `every` iterations after it
  float first_loss = 0, value = 0;
  for (long it = 1; it <= o.iterations; ++it) {
    images.fill_normal(rng);
    for (int& label : labels)
      label = static_cast<int>(rng.below(10));
    sgd.zero_grad();
    value = loss.forward(model.forward(images), labels);
    if (!std::isfinite(value)) {
      std::fprintf(stderr, "resnet_soak: FAIL: loss is %g at iteration %ld\n", value, it);
      return 1;
    }
    model.backward(loss.backward());
    sgd.step();
    if (it == 1) first_loss = value;

    if (it == o.warmup || (it > o.warmup && (it - o.warmup) % every == 0) || it == o.iterations) {
      // An eval-mode pass at each sample too: switching modes must not keep anything either.
      model.eval();
      const resnet::Tensor<float> logits = model.forward(eval_images);
      model.train();
      std::string bad = first_non_finite(model, sgd);
      for (std::int64_t i = 0; i < logits.numel() && bad.empty(); ++i)
        if (!std::isfinite(logits.data()[i])) bad = "eval logit " + std::to_string(i);
      if (!bad.empty()) {
        std::fprintf(stderr, "resnet_soak: FAIL: non-finite value at iteration %ld: %s\n", it, bad.c_str());
        return 1;
      }
      const Memory now = memory();
      rss.push_back(now.rss);
      std::printf("iteration %6ld  loss %.4f  RSS %7.1f MB  peak %7.1f MB\n", it, value, now.rss, now.peak);
      std::fflush(stdout);
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto window = static_cast<std::ptrdiff_t>(std::max<std::size_t>(1, rss.size() / 4));
  const double warm = *std::max_element(rss.begin(), rss.begin() + window);
  const double end = *std::max_element(rss.end() - window, rss.end());
  const double growth = end - warm;
  std::printf(
      "resnet_soak: %ld iterations in %.1f s (%.1f it/s); loss %.4f -> %.4f; RSS after warm-up %.1f MB, at "
      "the "
      "end %.1f MB (%+.1f MB; each the highest of %td samples), peak %.1f MB\n",
      o.iterations, seconds, static_cast<double>(o.iterations) / seconds, first_loss, value, warm, end,
      growth, window, memory().peak);
  if (kAddressSanitizer) {
    // ASan's quarantine holds on to freed memory, so RSS grows without a leak; LeakSanitizer checks at exit.
    std::printf("resnet_soak: RSS growth not checked under AddressSanitizer\n");
  } else if (growth > o.max_growth_mb) {
    std::fprintf(stderr, "resnet_soak: FAIL: RSS grew by %.1f MB after the warm-up (limit %.1f MB)\n", growth,
                 o.max_growth_mb);
    return 1;
  }
  std::printf("resnet_soak: OK\n");
  return 0;
}
