#pragma once
// The models the examples build by name (train_cifar10 --arch, classify --arch). One table lists them:
// torchvision's ResNet family (models::torchvision_architectures(): block, blocks per stage and block shape)
// and the pre-activation models, which have constructors of their own; wrn-D-K (Zagoruyko and Komodakis's
// WRN-d-k) is parsed from its name. with_model(arch, args, use) builds the model an Arch names and calls the
// generic `use(model)`, so that the code around a model is written once, as a template over the model's type.

#include <array>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "resnet/io/safetensors_file.hpp"
#include "resnet/resnet.hpp"

namespace arch {

namespace models = resnet::models;

// Basic and Bottleneck: models::ResNet over that block (any width); PreAct and Wide: the named models.
enum class Family { Basic, Bottleneck, PreAct, Wide };

struct Arch {
  std::string name;  // the --arch spelling: resnet50, wrn-28-10
  Family family = Family::Basic;
  std::array<int, 4> blocks{};  // Basic, Bottleneck: blocks per stage
  models::BlockShape shape{};   // Bottleneck: groups and width per group
  int depth = 0, widen = 0;     // Wide: WRN-depth-widen

  bool torchvision() const { return family == Family::Basic || family == Family::Bottleneck; }
};

// The torchvision family of a block kind.
inline Family family_of(models::BlockKind block) {
  return block == models::BlockKind::Basic ? Family::Basic : Family::Bottleneck;
}

// Every named model: torchvision's (models::torchvision_architectures(), whose names ResNet::architecture()
// records), then the pre-activation ones.
inline const std::vector<Arch>& named_archs() {
  static const std::vector<Arch> table = [] {
    std::vector<Arch> archs;
    for (const models::TorchvisionArchitecture& t : models::torchvision_architectures())
      archs.push_back({t.name, family_of(t.block), t.blocks_per_stage, t.shape});
    archs.push_back({"preact_resnet18", Family::PreAct});
    return archs;
  }();
  return table;
}

// The names --arch takes, for --help and errors; `torchvision_only` leaves out the pre-activation models.
inline std::string arch_names(bool torchvision_only = false) {
  std::string names;
  for (const Arch& a : named_archs())
    if (a.torchvision() || !torchvision_only) names += (names.empty() ? "" : ", ") + a.name;
  return torchvision_only ? names : names + ", wrn-D-K (D = 6n + 4, K >= 1: wrn-16-4, wrn-28-10)";
}

// The Arch `name` names, if it is one.
inline std::optional<Arch> find_arch(const std::string& name) {
  for (const Arch& a : named_archs())
    if (a.name == name) return a;
  int depth = 0, widen = 0;
  // Only the canonical spelling: "wrn-" and two decimal numbers, no signs or leading zeros. WideResNet
  // checks the numbers themselves.
  if (std::sscanf(name.c_str(), "wrn-%d-%d", &depth, &widen) == 2 &&
      name == "wrn-" + std::to_string(depth) + "-" + std::to_string(widen)) {
    Arch wide{name, Family::Wide};
    wide.depth = depth;
    wide.widen = widen;
    return wide;
  }
  return std::nullopt;
}

// The Arch `name` names; anything else is a resnet::Error listing the names.
inline Arch parse_arch(const std::string& name) {
  const std::optional<Arch> found = find_arch(name);
  if (!found) resnet::fail("unknown --arch '", name, "': the architectures are ", arch_names());
  return *found;
}

// What a model is built with besides its Arch.
struct ModelArgs {
  int num_classes = 10;
  models::Stem stem = models::Stem::Cifar;  // torchvision family; the pre-activation models have their own
  int in_channels = 3;
  std::uint64_t seed = 0;
  int width = 64;  // torchvision family: the stem's channels and layer1's planes (64: torchvision's)
};

// use(model) for the torchvision model `arch` names (Basic or Bottleneck), built from `args`.
template <typename Use>
auto with_torchvision_model(const Arch& arch, const ModelArgs& m, Use&& use) {
  resnet::check(arch.torchvision(), arch.name, " is not one of torchvision's models (", arch_names(true),
                ")");
  if (arch.family == Family::Basic) {
    models::ResNet<float> model(arch.blocks, m.num_classes, m.stem, m.in_channels, m.seed, m.width);
    return use(model);
  }
  models::ResNet<float, models::Bottleneck<float>> model(arch.blocks, m.num_classes, m.stem, m.in_channels,
                                                         m.seed, m.width, arch.shape);
  return use(model);
}

// use(model) for any model `arch` names. The pre-activation models are handed over as their base,
// models::PreActResNet<float>, so that `use` is instantiated once for both.
template <typename Use>
auto with_model(const Arch& arch, const ModelArgs& m, Use&& use) {
  using PreAct = models::PreActResNet<float>;
  if (arch.family == Family::PreAct) {
    models::PreActResNet18<float> model(m.num_classes, m.in_channels, m.seed);
    return use(static_cast<PreAct&>(model));
  }
  if (arch.family == Family::Wide) {
    models::WideResNet<float> model(arch.depth, arch.widen, m.num_classes, m.in_channels, m.seed);
    return use(static_cast<PreAct&>(model));
  }
  return with_torchvision_model(arch, m, use);
}

// The torchvision model a state dict holds, by its tensor shapes: a Bottleneck has conv3; layerS.B counts
// the blocks; layer1.0.conv2 is [width, width / groups, 3, 3] with width = base * width_per_group / 64 *
// groups; conv1 [base, in_channels, k, k] (k 7: the ImageNet stem); fc [classes, features]. The name is the
// one ResNet::architecture() gives the model built from them (models::torchvision_architecture_name): a
// BasicBlock 2-2-2-2 is resnet18 at any base width, a Bottleneck has the table's name at base width 64 only.
struct FileModel {
  Arch arch;
  ModelArgs args;
};

inline FileModel torchvision_model_in(const resnet::io::Safetensors& weights, const std::string& path) {
  const auto shape_of = [&](const std::string& key, std::size_t dims) {
    const resnet::io::NamedTensor* t = weights.find(key);
    resnet::check(t && t->shape.size() == dims, path, " has no ", dims, "-d ", key,
                  ": not a state dict of torchvision's ResNet family");
    return t->shape;
  };
  const auto conv1 = shape_of("conv1.weight", 4), fc = shape_of("fc.weight", 2);
  FileModel file;
  file.args.num_classes = static_cast<int>(fc[0]);
  file.args.stem = conv1[2] == 7 ? models::Stem::ImageNet : models::Stem::Cifar;
  file.args.in_channels = static_cast<int>(conv1[1]);
  file.args.width = static_cast<int>(conv1[0]);
  Arch& a = file.arch;
  const models::BlockKind block =
      weights.find("layer1.0.conv3.weight") ? models::BlockKind::Bottleneck : models::BlockKind::Basic;
  a.family = family_of(block);
  for (int s = 0; s < 4; ++s) {
    const std::string stage = "layer" + std::to_string(s + 1) + ".";
    while (weights.find(stage + std::to_string(a.blocks[s]) + ".conv1.weight"))
      ++a.blocks[s];
    resnet::check(a.blocks[s] > 0, path, " has no ", stage, "0.conv1.weight: not a ResNet state dict");
  }
  if (block == models::BlockKind::Bottleneck) {
    const auto conv2 = shape_of("layer1.0.conv2.weight", 4);
    a.shape = {static_cast<int>(conv2[0] / conv2[1]), static_cast<int>(64 * conv2[1] / conv1[0])};
  }
  // with_torchvision_model builds it with the default widths: file.args.width doubled at each stage.
  a.name = models::torchvision_architecture_name(block, {a.blocks.begin(), a.blocks.end()}, a.shape,
                                                 file.args.width);
  return file;
}

}  // namespace arch
