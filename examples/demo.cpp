// Builds ResNet18 (CIFAR or ImageNet stem) and times training steps (forward, loss, backward, SGD) and an
// eval forward on random data: a measure of speed, not of learning. scripts/demo.sh builds and runs it;
// training on real data is examples/train_cifar10, and one image through trained weights examples/classify.

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Build ResNet18 and time a training step and an inference pass on random data"};
  std::string stem_name = "cifar";
  int batch = 32, steps = 3, threads = resnet::num_threads();
  app.add_option("--stem", stem_name,
                 "cifar (3x3 stem, 32x32 images, 10 classes) or imagenet (224x224, 1000)")
      ->check(CLI::IsMember({"cifar", "imagenet"}));
  app.add_option("--batch", batch, "images per step")->check(CLI::PositiveNumber);
  app.add_option("--steps", steps, "timed training steps")->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "OpenMP threads")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  resnet::set_num_threads(threads);
  std::printf("%s\n", resnet::runtime_info().c_str());
  const bool cifar = stem_name == "cifar";
  const int classes = cifar ? 10 : 1000, size = cifar ? 32 : 224;
  resnet::models::ResNet18<float> net(classes,
                                      cifar ? resnet::models::Stem::Cifar : resnet::models::Stem::ImageNet);
  std::printf("ResNet18 (%s stem): %lld parameters, batch %d of 3x%dx%d, %d threads\n", stem_name.c_str(),
              static_cast<long long>(net.parameter_count()), batch, size, size, resnet::num_threads());

  resnet::Rng rng(1);
  resnet::Tensor<float> images({batch, 3, size, size});
  images.fill_normal(rng);
  std::vector<int> labels(static_cast<std::size_t>(batch));
  for (auto& label : labels)
    label = static_cast<int>(rng.below(static_cast<std::uint64_t>(classes)));

  resnet::nn::CrossEntropyLoss<float> loss;
  resnet::optim::SGD<float> sgd(net.named_parameters(), 0.01, 0.9, 5e-4);
  for (int step = 0; step < steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    sgd.zero_grad();
    const float value = loss.forward(net.forward(images), labels);
    const double forward_s = seconds_since(start);
    net.backward(loss.backward(), resnet::nn::InputGrad::Skip);
    sgd.step();
    const double total_s = seconds_since(start);
    std::printf("train step %d: loss %.4f  forward %.1f ms  backward+step %.1f ms  %.1f images/s\n", step + 1,
                value, forward_s * 1e3, (total_s - forward_s) * 1e3, batch / total_s);
  }

  net.eval();
  const auto start = std::chrono::steady_clock::now();
  net.forward(images);
  const double eval_s = seconds_since(start);
  std::printf("eval forward: %.1f ms  %.1f images/s\n", eval_s * 1e3, batch / eval_s);
  return 0;
}
