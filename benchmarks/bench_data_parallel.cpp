// Data-parallel training speed under mpirun: the training step of the example's model (ResNet18, CIFAR stem,
// on Fashion-MNIST-shaped input: 1 x 28 x 28, 10 classes) at a fixed global batch split over the ranks, with
// the gradients averaged by distributed::GradientReducer. Run it on 1 and 2 ranks (and threads per rank) to
// get the scaling table of benchmarks/README.md:
//
//   mpirun --allow-run-as-root -np 2 build/benchmarks/bench_data_parallel --threads 1 [--batch 128]
//          [--steps 12] [--warmup 2] [--width 64] [--bucket-mb 4] [--precision fp32|bf16|auto]
//
// Each step is timed four ways, alternating: reductions started during backward (ready(), the default
// training path), all of them after backward (finish() alone: no overlap), no reduction at all, and the
// plain allreduce of every gradient by itself. Rank 0 prints medians: images/s of the overlapped step (on 1
// rank, of the step without reduction, as the training example runs there), the step time of each, and the
// share of the reduction hidden behind backward:
//   1 - (finish()'s wait after an overlapped backward) / (finish()'s time after a backward without ready()),
// and the same from whole steps, (step without overlap - step with overlap) / (step without overlap - step
// without reduction), which is a difference of large, noisy times when the reduction is short.
// The numbers are of one run; never assert on them.
//
// --allreduce-sweep instead times MPI_Allreduce alone over message sizes from 4 KB to 64 MB (medians of
// --steps calls each) and draws t = a + b * bytes through the smallest and the largest: on p ranks a ring
// allreduce takes 2 (p - 1) latencies and moves 2 (p - 1) / p of the message per rank, so a = 2 (p - 1) alpha
// and b = 2 (p - 1) / p * beta. benchmarks/README.md projects many nodes from such a model.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "resnet/distributed/communicator.hpp"
#include "resnet/distributed/gradient_reducer.hpp"
#include "resnet/resnet.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using resnet::Tensor;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Options {
  int threads = 0, batch = 128, steps = 12, warmup = 2, width = 64;
  double bucket_mb = resnet::distributed::GradientReducer<float>::kDefaultBucketBytes / double(1 << 20);
  std::string precision = "fp32";
  bool allreduce_sweep = false;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const auto value = [&]() -> std::string {
      resnet::check(i + 1 < argc, "bench_data_parallel: ", flag, " needs a value");
      return argv[++i];
    };
    if (flag == "--threads")
      o.threads = std::stoi(value());
    else if (flag == "--batch")
      o.batch = std::stoi(value());
    else if (flag == "--steps")
      o.steps = std::stoi(value());
    else if (flag == "--warmup")
      o.warmup = std::stoi(value());
    else if (flag == "--width")
      o.width = std::stoi(value());
    else if (flag == "--bucket-mb")
      o.bucket_mb = std::stod(value());
    else if (flag == "--precision")
      o.precision = value();
    else if (flag == "--allreduce-sweep")
      o.allreduce_sweep = true;
    else
      resnet::fail(
          "bench_data_parallel: unknown option ", flag,
          " (--threads, --batch, --steps, --warmup, --width, --bucket-mb, --precision, --allreduce-sweep)");
  }
  resnet::check(o.steps >= 1 && o.warmup >= 0, "bench_data_parallel: --steps must be >= 1");
  return o;
}

// MPI_Allreduce alone over message sizes, and the least-squares line through the medians.
void allreduce_sweep(const resnet::distributed::Communicator& world, int repeats) {
  std::vector<double> sizes, times;
  for (std::int64_t bytes = 4 << 10; bytes <= (64 << 20); bytes *= 4) {
    std::vector<float> data(static_cast<std::size_t>(bytes / 4), 1.0f);
    std::vector<double> t;
    for (int r = 0; r < repeats + 1; ++r) {
      world.barrier();
      const auto t0 = Clock::now();
      world.allreduce_sum(data.data(), static_cast<std::int64_t>(data.size()));
      if (r > 0) t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    sizes.push_back(static_cast<double>(bytes));
    times.push_back(median(t));
    if (world.rank() == 0)
      std::printf("allreduce of %10lld bytes on %d ranks: %9.3f ms, %6.2f GB/s of message\n",
                  static_cast<long long>(bytes), world.size(), 1e3 * times.back(),
                  static_cast<double>(bytes) / times.back() / 1e9);
  }
  // The line through the smallest message (latency) and the largest (bandwidth): in between, caches bend the
  // curve, and a least-squares line through it fits neither end.
  const double b = (times.back() - times.front()) / (sizes.back() - sizes.front());
  const double a = times.front() - b * sizes.front();
  if (world.rank() == 0) std::printf("fit: t = %.1f us + bytes / (%.2f GB/s)\n", 1e6 * a, 1 / b / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  return resnet::distributed::run(argc, argv, [&](resnet::distributed::Communicator& world) {
    const Options o = parse(argc, argv);
    if (o.threads > 0) resnet::set_num_threads(o.threads);
    if (o.allreduce_sweep) {
      allreduce_sweep(world, o.steps);
      return 0;
    }
    resnet::check(o.batch % world.size() == 0, "bench_data_parallel: --batch ", o.batch, " over ",
                  world.size(), " ranks");
    const int share = o.batch / world.size();
    resnet::models::ResNet<float> net(resnet::models::ResNetOptions({2, 2, 2, 2})
                                          .stem_width(o.width)
                                          .num_classes(10)
                                          .in_channels(1)
                                          .stem(resnet::models::Stem::Cifar));
    net.set_precision(resnet::parse_precision(o.precision));
    net.train();
    resnet::distributed::broadcast_state(world, net);
    resnet::distributed::GradientReducer<float> reducer(world, net,
                                                        static_cast<std::int64_t>(o.bucket_mb * (1 << 20)));
    resnet::optim::SGD<float> sgd(net.named_parameters(), 0.01, 0.9, 5e-4);
    resnet::nn::CrossEntropyLoss<float> criterion;
    resnet::Rng rng(1 + static_cast<std::uint64_t>(world.rank()));
    Tensor<float> x({share, 1, 28, 28});
    x.fill_normal(rng);
    std::vector<int> labels(static_cast<std::size_t>(share));
    for (int n = 0; n < share; ++n)
      labels[static_cast<std::size_t>(n)] = n % 10;

    const auto seconds_since = [](Clock::time_point t0) {
      return std::chrono::duration<double>(Clock::now() - t0).count();
    };
    // One step; every rank starts it together, so that the time is the slowest rank's. Returns the step's
    // time and how long finish() waited for the reductions still running after backward.
    enum class Reduce { DuringBackward, AfterBackward, Never };
    struct Timing {
      double step, wait;
    };
    const auto step = [&](Reduce reduce) {
      world.barrier();
      const auto t0 = Clock::now();
      sgd.zero_grad();
      criterion.forward(net.forward(x), labels);
      net.backward(criterion.backward(), resnet::nn::InputGrad::Skip,
                   reduce == Reduce::DuringBackward ? reducer.ready() : resnet::nn::GradientsReady{});
      const auto t1 = Clock::now();
      if (reduce != Reduce::Never) reducer.finish();
      const double wait = seconds_since(t1);
      sgd.step();
      return Timing{seconds_since(t0), wait};
    };
    const auto allreduce_alone = [&] {
      Tensor<float> grads = net.flat_parameters().grads;
      world.barrier();
      const auto t0 = Clock::now();
      world.allreduce_sum(grads.data(), grads.numel());
      return seconds_since(t0);
    };
    for (int i = 0; i < o.warmup; ++i)
      step(Reduce::DuringBackward);
    std::vector<double> overlapped, waits, serial, serial_waits, compute, allreduce;
    for (int i = 0; i < o.steps; ++i) {
      const Timing t = step(Reduce::DuringBackward);
      overlapped.push_back(t.step);
      waits.push_back(t.wait);
      const Timing u = step(Reduce::AfterBackward);
      serial.push_back(u.step);
      serial_waits.push_back(u.wait);
      compute.push_back(step(Reduce::Never).step);
      allreduce.push_back(allreduce_alone());
    }
    if (world.rank() == 0) {
      const double t = median(overlapped), t_serial = median(serial), t_compute = median(compute);
      const double t_allreduce = median(allreduce), t_wait = median(waits), t_reduce = median(serial_waits);
      const double megabytes = static_cast<double>(net.flat_parameters().size()) * 4 / 1e6;
      std::printf(
          "ranks %d x threads %d, global batch %d (%d per rank), %s: %.1f images/s\n"
          "  step %.1f ms (reductions during backward), %.1f ms (after backward), %.1f ms (no reduction)\n"
          "  reduction of %.1f MB in %zu buckets: %.1f ms after backward, of which %.1f ms still to wait "
          "when "
          "started during backward (a blocking MPI_Allreduce of it all: %.1f ms)\n",
          world.size(), resnet::num_threads(), o.batch, share, resnet::precision_name(net.precision()),
          o.batch / (world.size() > 1 ? t : t_compute), 1e3 * t, 1e3 * t_serial, 1e3 * t_compute, megabytes,
          reducer.buckets().size(), 1e3 * t_reduce, 1e3 * t_wait, 1e3 * t_allreduce);
      if (world.size() > 1)
        std::printf("  hidden behind backward: %.0f%% of the reduction (by step times: %.0f%%)\n",
                    100 * (1 - t_wait / t_reduce), 100 * (t_serial - t) / (t_serial - t_compute));
    }
    return 0;
  });
}
