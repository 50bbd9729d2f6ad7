#pragma once
// The width options of a residual block, as torchvision's ResNet(groups, width_per_group): the inner 3x3
// conv of a Bottleneck has planes * width_per_group / 64 * groups channels in `groups` groups. BasicBlock
// takes only the defaults, as torchvision's does.

namespace resnet::models {

struct BlockShape {
  int groups = 1;
  int width_per_group = 64;
};

}  // namespace resnet::models
