// Builds a CIFAR-stem ResNet18 from the installed headers and classifies one random image.
#include <cstdio>

#include <resnet/resnet.hpp>

int main() {
  resnet::models::ResNet18<float> net(10, resnet::models::Stem::Cifar);
  net.eval();
  resnet::Rng rng(0);
  resnet::Tensor<float> image({1, 3, 32, 32});
  image.fill_normal(rng);
  const resnet::Tensor<float> logits = net.forward(image);
  std::printf("consumer: %lld parameters, logits shape %s\n", static_cast<long long>(net.parameter_count()),
              resnet::shape_string(logits.shape()).c_str());
  return logits.shape() == std::vector<std::int64_t>{1, 10} ? 0 : 1;
}
