#pragma once
// torchvision's ResNet family by name, in one table (torchvision/models/resnet.py): each model's block,
// blocks per stage and block shape. torchvision_architecture_name() is the one rule that names a ResNet from
// them: ResNet::architecture() records it in saved files, and the examples' --arch spellings are the table's.

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "resnet/models/block_shape.hpp"

namespace resnet::models {

// The block of a torchvision ResNet: BasicBlock (expansion 1) or Bottleneck (expansion 4).
enum class BlockKind { Basic, Bottleneck };

// One torchvision model: resnet50 is {"resnet50", Bottleneck, {3, 4, 6, 3}, {1, 64}}, at torchvision's stem
// width 64 (stages of 64/128/256/512 planes).
struct TorchvisionArchitecture {
  std::string name;
  BlockKind block = BlockKind::Basic;
  std::array<int, 4> blocks_per_stage{};
  BlockShape shape;  // groups and width per group: {1, 64} but for the wide and ResNeXt models
};

// torchvision's models, one line each.
inline const std::vector<TorchvisionArchitecture>& torchvision_architectures() {
  using K = BlockKind;
  static const std::vector<TorchvisionArchitecture> table = {
      {"resnet18", K::Basic, {2, 2, 2, 2}, {1, 64}},
      {"resnet34", K::Basic, {3, 4, 6, 3}, {1, 64}},
      {"resnet50", K::Bottleneck, {3, 4, 6, 3}, {1, 64}},
      {"resnet101", K::Bottleneck, {3, 4, 23, 3}, {1, 64}},
      {"resnet152", K::Bottleneck, {3, 8, 36, 3}, {1, 64}},
      {"wide_resnet50_2", K::Bottleneck, {3, 4, 6, 3}, {1, 128}},
      {"wide_resnet101_2", K::Bottleneck, {3, 4, 23, 3}, {1, 128}},
      {"resnext50_32x4d", K::Bottleneck, {3, 4, 6, 3}, {32, 4}},
      {"resnext101_32x8d", K::Bottleneck, {3, 4, 23, 3}, {32, 8}},
  };
  return table;
}

namespace detail {
// {3, 4, 6, 3} -> "3-4-6-3"
inline std::string dash_joined(const std::vector<int>& values) {
  std::string text;
  for (int v : values)
    text += (text.empty() ? "" : "-") + std::to_string(v);
  return text;
}

// Whether `widths` are `first` doubled at each of `stages` stages: {64, 128, 256, 512} for (64, 4).
inline bool doubling(const std::vector<int>& widths, std::int64_t first, std::size_t stages) {
  for (std::size_t s = 0; s < widths.size(); ++s)
    if (widths[s] != first << s) return false;
  return widths.size() == stages;
}
}  // namespace detail

// The name of a ResNet of `block` blocks, `blocks_per_stage`, block `shape`, a conv1 of `stem_width`
// channels and stages of `widths` planes (empty: stem_width doubled at each stage, as ResNetOptions has it):
// the table's name for its row when the widths double from stem_width over the row's 4 stages and, for a
// Bottleneck, stem_width is torchvision's 64; else "resnet-<blocks per stage>" ("resnet-1-1-1-1"), or
// "resnet-bottleneck-<blocks per stage>" for a Bottleneck. A BasicBlock model keeps its name at any stem
// width (as in earlier releases): its base_width tells them apart.
inline std::string torchvision_architecture_name(BlockKind block, const std::vector<int>& blocks_per_stage,
                                                 const BlockShape& shape, int stem_width,
                                                 const std::vector<int>& widths = {}) {
  const bool doubled = widths.empty() || detail::doubling(widths, stem_width, 4);
  if (doubled && (block == BlockKind::Basic || stem_width == 64)) {
    for (const TorchvisionArchitecture& row : torchvision_architectures())
      if (row.block == block && row.shape.groups == shape.groups &&
          row.shape.width_per_group == shape.width_per_group &&
          std::equal(row.blocks_per_stage.begin(), row.blocks_per_stage.end(), blocks_per_stage.begin(),
                     blocks_per_stage.end()))
        return row.name;
  }
  return (block == BlockKind::Bottleneck ? "resnet-bottleneck-" : "resnet-") +
         detail::dash_joined(blocks_per_stage);
}

}  // namespace resnet::models
