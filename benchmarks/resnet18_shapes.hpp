#pragma once
// The distinct convolutions of ResNet18 (torchvision's layout) for the CIFAR stem (32x32 input, 3x3 stem, no
// max-pool) and the ImageNet stem (224x224, 7x7/2 stem, 3x3/2 max-pool): input channels, output channels,
// input size, kernel, stride (padding k / 2).

#include <cstdint>
#include <vector>

namespace resnet::bench {

struct ConvCase {
  const char* name;
  std::int64_t C, O, H, k, s;
};

inline std::vector<ConvCase> resnet18_convs(bool cifar) {
  const std::int64_t h = cifar ? 32 : 56;  // layer1's input size
  std::vector<ConvCase> cases;
  cases.push_back(cifar ? ConvCase{"stem", 3, 64, 32, 3, 1} : ConvCase{"stem", 3, 64, 224, 7, 2});
  cases.push_back({"layer1", 64, 64, h, 3, 1});
  cases.push_back({"layer2.0.conv1", 64, 128, h, 3, 2});
  cases.push_back({"layer2.down", 64, 128, h, 1, 2});
  cases.push_back({"layer2", 128, 128, h / 2, 3, 1});
  cases.push_back({"layer3.0.conv1", 128, 256, h / 2, 3, 2});
  cases.push_back({"layer3.down", 128, 256, h / 2, 1, 2});
  cases.push_back({"layer3", 256, 256, h / 4, 3, 1});
  cases.push_back({"layer4.0.conv1", 256, 512, h / 4, 3, 2});
  cases.push_back({"layer4.down", 256, 512, h / 4, 1, 2});
  cases.push_back({"layer4", 512, 512, h / 8, 3, 1});
  return cases;
}

}  // namespace resnet::bench
