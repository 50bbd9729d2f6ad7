#pragma once
// summary(model, input_shape): every module of a model with its output shape and parameter count, then the
// totals, laid out as torchinfo's summary(model, input_size, row_settings=["var_names"]) prints them, with
// each module's dotted name (as in its state-dict keys):
//
//   std::cout << resnet::summary(net, {1, 3, 224, 224});
//   ==========================================================================================
//   Layer (type (var_name))                  Output Shape              Param #
//   ==========================================================================================
//   ResNet                                   [1, 1000]                 --
//   ├─Conv2d (conv1)                         [1, 64, 112, 112]         9,408
//   ...
//   │    └─Conv2d (layer4.1.conv2)           [1, 512, 7, 7]            2,359,296
//
// Modules have no forward hooks, so the shapes come from the tree itself: its modules, in visit() order,
// each taking the output of the one before (as in nn.Sequential) from the layer geometry Conv2d, MaxPool2d,
// AdaptiveAvgPool2d and Linear report (a Linear after a 4-d map takes it flattened), except a block's
// shortcut branch, the children named downsample.* or shortcut.* (torchvision's names), which takes the
// block's input and must end at the block's output shape. One eval-mode forward of a zero input checks the
// model's own output shape against the last of them, so a model this rule misreads is refused, not
// misprinted. The model is left in the mode it was in. The fused ReLUs (nn/conv_bn.hpp) are not modules and
// have no rows.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/kernels/window.hpp"
#include "resnet/models/basic_block.hpp"
#include "resnet/models/fold_batchnorm.hpp"
#include "resnet/models/preact_block.hpp"
#include "resnet/models/resnet.hpp"
#include "resnet/nn/adaptive_avgpool2d.hpp"
#include "resnet/nn/batchnorm2d.hpp"
#include "resnet/nn/conv2d.hpp"
#include "resnet/nn/linear.hpp"
#include "resnet/nn/maxpool2d.hpp"
#include "resnet/nn/module.hpp"
#include "resnet/nn/relu.hpp"

namespace resnet {

namespace models::detail {

// One module of the tree: the model itself (depth 0, name "") or a module under it.
struct LayerRow {
  std::string name;  // dotted, e.g. "layer1.0.conv1"
  std::string type;  // "Conv2d"
  int depth = 0;
  std::vector<std::int64_t> input, output;
  std::int64_t parameters = 0;  // its own, not its children's
  std::string algorithm;        // a Conv2d's, for this input in its current mode (Conv2d::algorithm)
};

// Walks a module tree through visit() and records a LayerRow per module (see the header comment).
template <typename T>
struct ShapeTracer {
  std::vector<LayerRow>* rows;
  std::string prefix;                   // the dotted name of the module walked, with a trailing "."
  std::vector<std::int64_t> input;      // the module's input
  std::vector<std::int64_t> main_path;  // the output of its main path so far
  std::vector<std::int64_t> shortcut;   // the output of its shortcut branch so far (empty: none ran)
  int depth = 0;
  std::int64_t parameters = 0;

  void parameter(const std::string&, Tensor<T>& value, Tensor<T>&) { parameters += value.numel(); }
  void buffer(const std::string&, Tensor<T>&) {}

  template <typename Child>
  void child(const std::string& name, Child& module) {
    const bool branch = name.rfind("downsample", 0) == 0 || name.rfind("shortcut", 0) == 0;
    if (branch && shortcut.empty()) shortcut = input;
    std::vector<std::int64_t>& path = branch ? shortcut : main_path;
    path = trace(rows, prefix + name, depth + 1, module, path);
  }

  // Records `module` (dotted name `name`, "" for the model) on input `in` and what is under it; returns its
  // output shape.
  template <typename Module>
  static std::vector<std::int64_t> trace(std::vector<LayerRow>* rows, const std::string& name, int depth,
                                         Module& module, const std::vector<std::int64_t>& in) {
    const std::size_t row = rows->size();
    rows->push_back({name, type_name(&module), depth, in, {}, 0, ""});
    ShapeTracer nested{rows, name.empty() ? "" : name + ".", in, in, {}, depth, 0};
    module.visit(nested);
    LayerRow& r = (*rows)[row];
    r.output = nested.output_of(module, r);
    r.parameters = nested.parameters;
    return r.output;
  }

  // A composite module (or one without rule, taken as shape-preserving): its main path, which its shortcut
  // branch, if any, must meet.
  template <typename Module>
  std::vector<std::int64_t> output_of(Module&, const LayerRow& r) const {
    check(shortcut.empty() || shortcut == main_path, "summary: ", r.name, " (", r.type,
          ") adds its shortcut ", shape_string(shortcut), " to its main path ", shape_string(main_path),
          ", which differ");
    return main_path;
  }
  std::vector<std::int64_t> output_of(nn::Conv2d<T>& conv, LayerRow& r) const {
    expect_map(r, conv.in_channels());
    const std::vector<std::int64_t> output =
        window(r, conv.out_channels(), conv.kernel_size(), conv.stride(), conv.padding());
    r.algorithm = conv.algorithm(input);
    return output;
  }
  std::vector<std::int64_t> output_of(nn::MaxPool2d<T>& pool, const LayerRow& r) const {
    expect_map(r, input.size() == 4 ? input[1] : 0);
    return window(r, input[1], pool.kernel_size(), pool.stride(), pool.padding());
  }
  std::vector<std::int64_t> output_of(nn::BatchNorm2d<T>& bn, const LayerRow& r) const {
    expect_map(r, bn.num_features());
    return input;
  }
  std::vector<std::int64_t> output_of(nn::ReLU<T>&, const LayerRow&) const { return input; }
  std::vector<std::int64_t> output_of(nn::AdaptiveAvgPool2d<T>& pool, const LayerRow& r) const {
    expect_map(r, input.size() == 4 ? input[1] : 0);
    return {input[0], input[1], pool.output_h(), pool.output_w()};
  }
  // A map [N, C, H, W] comes flattened, as torchvision's ResNet flattens the pooled map before fc.
  std::vector<std::int64_t> output_of(nn::Linear<T>& linear, const LayerRow& r) const {
    std::int64_t features = input.size() >= 2 ? 1 : 0;
    for (std::size_t d = 1; d < input.size(); ++d)
      features *= input[d];
    check(features == linear.in_features(), "summary: ", r.name, " (Linear) takes ", linear.in_features(),
          " features, and its input is ", shape_string(input));
    return {input[0], linear.out_features()};
  }

  void expect_map(const LayerRow& r, std::int64_t channels) const {
    check(input.size() == 4 && input[1] == channels && std::min({input[0], input[2], input[3]}) >= 1,
          "summary: ", r.name, " (", r.type, ") takes [N, ", channels, ", H, W], and its input is ",
          shape_string(input));
  }
  std::vector<std::int64_t> window(const LayerRow& r, std::int64_t channels, std::int64_t k, std::int64_t s,
                                   std::int64_t p) const {
    const std::int64_t h = kernels::window_output_size(input[2], k, s, p);
    const std::int64_t w = kernels::window_output_size(input[3], k, s, p);
    check(h >= 1 && w >= 1, "summary: ", r.name, " (", r.type, ") has no output for input ",
          shape_string(input), " (kernel_size ", k, ", padding ", p, ")");
    return {input[0], channels, h, w};
  }

  // torch's class names; "Module" for a type without one here. By pointer, so that a named model
  // (ResNet18 derives from ResNet) takes its base's name rather than the fallback.
  static const char* type_name(const void*) { return "Module"; }
  static const char* type_name(const nn::Conv2d<T>*) { return "Conv2d"; }
  static const char* type_name(const nn::BatchNorm2d<T>*) { return "BatchNorm2d"; }
  static const char* type_name(const nn::ReLU<T>*) { return "ReLU"; }
  static const char* type_name(const nn::MaxPool2d<T>*) { return "MaxPool2d"; }
  static const char* type_name(const nn::AdaptiveAvgPool2d<T>*) { return "AdaptiveAvgPool2d"; }
  static const char* type_name(const nn::Linear<T>*) { return "Linear"; }
  static const char* type_name(const BasicBlock<T>*) { return "BasicBlock"; }
  static const char* type_name(const Bottleneck<T>*) { return "Bottleneck"; }
  static const char* type_name(const PreActBlock<T>*) { return "PreActBlock"; }
  template <typename Block>
  static const char* type_name(const ResNet<T, Block>*) {
    return "ResNet";
  }
};

// The rows of `model` for an input of input_shape, the model's own first, in visit order.
template <typename Model>
std::vector<LayerRow> trace_layers(Model& model, const std::vector<std::int64_t>& input_shape) {
  std::vector<LayerRow> rows;
  ShapeTracer<typename Model::Scalar>::trace(&rows, "", 0, model, input_shape);
  return rows;
}

// 11689512 -> "11,689,512"
inline std::string with_thousands(std::int64_t n) {
  std::string digits = std::to_string(n);
  for (auto i = static_cast<std::ptrdiff_t>(digits.size()) - 3; i > (n < 0 ? 1 : 0); i -= 3)
    digits.insert(static_cast<std::size_t>(i), ",");
  return digits;
}

// Characters as a terminal shows them: UTF-8 bytes, not counting continuation bytes (the box drawing).
inline std::size_t display_width(const std::string& text) {
  return static_cast<std::size_t>(std::count_if(
      text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

inline std::string padded(const std::string& text, std::size_t width) {
  const std::size_t shown = display_width(text);
  return text + std::string(shown < width ? width - shown : 1, ' ');
}

}  // namespace models::detail

template <typename Model>
std::string summary(Model& model, const std::vector<std::int64_t>& input_shape) {
  using T = typename Model::Scalar;
  using models::detail::padded;
  using models::detail::with_thousands;
  check(input_shape.size() == 4, "summary: input_shape ", shape_string(input_shape), " is not [N, C, H, W]");
  const std::vector<models::detail::LayerRow> rows = models::detail::trace_layers(model, input_shape);
  std::vector<std::int64_t> output;
  {
    const nn::EvalModeGuard<Model> eval(model);
    output = model.forward(Tensor<T>(input_shape)).shape();
  }
  check(output == rows.front().output, "summary: the modules' shapes end at ",
        shape_string(rows.front().output), ", but the model's forward gives ", shape_string(output),
        ": its modules do not run in visit() order (see models/summary.hpp)");

  std::vector<std::string> names;
  std::size_t name_width = 40, shape_width = 25;
  for (const auto& row : rows) {
    std::string tree;
    for (int d = 1; d < row.depth; ++d)
      tree += "│    ";
    if (row.depth > 0) tree += row.depth == 1 ? "├─" : "└─";
    names.push_back(tree + row.type + (row.depth > 0 ? " (" + row.name + ")" : ""));
    name_width = std::max(name_width, models::detail::display_width(names.back()) + 1);
    shape_width = std::max(shape_width, shape_string(row.output).size() + 1);
  }
  const std::string rule(name_width + shape_width + 25, '=');
  std::int64_t total = 0;
  std::string text = rule + "\n" + padded("Layer (type (var_name))", name_width) +
                     padded("Output Shape", shape_width) + "Param #\n" + rule + "\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    total += rows[i].parameters;
    text += padded(names[i], name_width) + padded(shape_string(rows[i].output), shape_width) +
            (rows[i].parameters ? with_thousands(rows[i].parameters) : "--") + "\n";
  }
  char megabytes[32];
  std::snprintf(megabytes, sizeof megabytes, "%.2f", static_cast<double>(total) * sizeof(T) / 1e6);
  text += rule + "\nTotal params: " + with_thousands(total) + "\nTrainable params: " + with_thousands(total) +
          "\nNon-trainable params: 0\n" + rule + "\nInput shape: " + shape_string(input_shape) +
          "\nOutput shape: " + shape_string(output) + "\nParams size (MB): " + megabytes + "\n" + rule + "\n";
  return text;
}

}  // namespace resnet
