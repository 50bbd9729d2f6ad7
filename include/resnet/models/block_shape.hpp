#pragma once
// The width options of a residual block, as torchvision's ResNet(groups, width_per_group): the inner 3x3
// conv of a Bottleneck has planes * width_per_group / 64 * groups channels in `groups` groups. BasicBlock
// and PreActBlock take only the defaults, as torchvision's BasicBlock does.

#include "resnet/core/error.hpp"

namespace resnet::models {

struct BlockShape {
  int groups = 1;
  int width_per_group = 64;
};

// For a block without shape options: throws naming `block` unless `shape` is the default.
inline void expect_default_shape(const BlockShape& shape, const char* block) {
  check(shape.groups == 1 && shape.width_per_group == 64, block,
        ": groups 1 and width_per_group 64 only, got ", shape.groups, " and ", shape.width_per_group,
        " (a Bottleneck takes others)");
}

}  // namespace resnet::models
