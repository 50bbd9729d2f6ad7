#pragma once
// Model state as safetensors files: every parameter and buffer of a module (the protocol of nn/module.hpp)
// under torchvision's state-dict names and in its order ("conv1.weight", "bn1.weight", "bn1.bias",
// "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked", "layer1.0.conv1.weight", ...), so that
// weights exported by tools/export_torchvision.py load unchanged and our files load in PyTorch
// (safetensors.torch.load_file, then load_state_dict). The file format itself is io/safetensors_file.hpp.
//
// clang-format off
//   io::save_safetensors(net, "net.safetensors");  // every parameter and buffer, atomically
//   io::load_safetensors(net, "net.safetensors");  // strict: names and shapes must match
//   io::LoadOptions options;                       // transfer learning: all but the head
//   options.skip_prefixes = {"fc."};
//   io::load_safetensors(net, "resnet18_imagenet.safetensors", options);
// clang-format on
//
// Element types: the file's F16, BF16, F32, F64 or I64 convert to the model's T on load; save writes T (or
// F32 with SaveOptions), and num_batches_tracked as I64, torchvision's dtype. A saved file's metadata records
// the library version and, for a model with an architecture() member (see describe), its architecture;
// strict loading into a model whose architecture differs is an error. Files without that metadata (PyTorch
// exports) load by names and shapes alone.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/io/safetensors_file.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::io {

// The version written into every file's metadata: keep it equal to project(VERSION) in CMakeLists.txt.
inline constexpr const char* kLibraryVersion = "0.1.0";

struct LoadOptions {
  // Missing keys (in the model, not the file) and unexpected keys (in the file, not the model) throw, as do
  // architecture metadata that differs from the model's. Mis-shaped keys throw either way, as in PyTorch.
  bool strict = true;
  // Keys (of the model and of the file) starting with one of these are left alone, e.g. {"fc."}.
  std::vector<std::string> skip_prefixes;
};

// What a load did, key by key, like PyTorch's load_state_dict result.
struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> skipped;     // matched a skip prefix (model and file keys)
  std::vector<std::string> missing;     // non-strict only: in the model, not in the file
  std::vector<std::string> unexpected;  // non-strict only: in the file, not in the model
};

struct SaveOptions {
  // Element type of parameters and floating-point buffers: F32 or F64; default the model's own T.
  std::optional<DType> dtype;
  Metadata metadata;  // added to (and overriding) what describe() records
};

using nn::StateEntry;

namespace detail {

// BatchNorm's step counter, an int64 in PyTorch's state dict.
inline bool is_integer_buffer(const std::string& name) {
  const std::string leaf = "num_batches_tracked";
  return name.size() >= leaf.size() && name.compare(name.size() - leaf.size(), leaf.size(), leaf) == 0 &&
         (name.size() == leaf.size() || name[name.size() - leaf.size() - 1] == '.');
}

inline bool starts_with_any(const std::string& name, const std::vector<std::string>& prefixes) {
  for (const std::string& p : prefixes)
    if (name.compare(0, p.size(), p) == 0) return true;
  return false;
}

// The items, comma-separated; past `most` of them, how many more (a resnet50 file holds hundreds of keys a
// resnet18 lacks, and the first few tell the story).
inline std::string join(const std::vector<std::string>& items, std::size_t most = 12) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < most; ++i)
    out += (out.empty() ? "" : ", ") + items[i];
  if (items.size() > most) out += " and " + std::to_string(items.size() - most) + " more";
  return out;
}

// Whether Module records its architecture: a member `std::map<std::string, std::string> architecture() const`
// (e.g. {"architecture": "resnet18", "stem": "imagenet", ...}).
template <typename Module, typename = void>
struct has_architecture : std::false_type {};
template <typename Module>
struct has_architecture<Module, std::void_t<decltype(Metadata(std::declval<const Module&>().architecture()))>>
    : std::true_type {};

// The model's architecture() or, for a model without one, nothing.
template <typename Module>
Metadata architecture_of([[maybe_unused]] const Module& module) {
  if constexpr (has_architecture<Module>::value)
    return module.architecture();
  else
    return {};
}

// Architecture metadata that need not agree between a file and the model it is loaded into: replacing the
// head is the usual transfer-learning step, and its shapes are checked anyway.
inline bool may_differ(const std::string& key) {
  return key == "num_classes";
}

}  // namespace detail

// Every parameter and buffer of `module`, in torchvision's state-dict order.
template <typename Module>
std::vector<StateEntry<typename Module::Scalar>> state_entries(Module& module) {
  std::vector<StateEntry<typename Module::Scalar>> entries;
  nn::detail::StateCollector<typename Module::Scalar> collector{"", nullptr, nullptr, &entries};
  module.visit(collector);
  return entries;
}

// What a saved file records about `module`: "format": "pt" (tells safetensors tools the tensors are
// PyTorch's), "library": "resnet", "library_version", and whatever the model's architecture() returns, if it
// has one (a ResNet's: architecture, stem, in_channels, num_classes, base_width; models/resnet.hpp).
template <typename Module>
Metadata describe(Module& module) {
  Metadata metadata = detail::architecture_of(module);
  metadata["format"] = "pt";
  metadata["library"] = "resnet";
  metadata["library_version"] = kLibraryVersion;
  return metadata;
}

// The module's state as named tensors: parameters and floating-point buffers as `dtype` (F32 or F64),
// num_batches_tracked as I64.
template <typename Module>
std::vector<NamedTensor> encode_state(Module& module, DType dtype = dtype_of<typename Module::Scalar>()) {
  check(dtype == DType::F32 || dtype == DType::F64,
        "encode_state: parameters are written as F32 or F64, not ", dtype_name(dtype));
  std::vector<NamedTensor> tensors;
  for (const auto& entry : state_entries(module))
    tensors.push_back(
        encode(entry.name, *entry.value, detail::is_integer_buffer(entry.name) ? DType::I64 : dtype));
  return tensors;
}

// Copies the tensors of `file` into `module` by name (converting to T), after checking every name and shape
// first: on any error nothing is changed. `source` names the file in messages.
template <typename Module>
LoadReport load_state(Module& module, const Safetensors& file, const LoadOptions& options = {},
                      const std::string& source = "safetensors data") {
  const std::string where = "load_safetensors: " + source + ": ";
  if (options.strict) {
    std::vector<std::string> differences;
    for (const auto& [key, mine] : detail::architecture_of(module)) {
      const auto theirs = file.metadata.find(key);
      if (!detail::may_differ(key) && theirs != file.metadata.end() && theirs->second != mine)
        differences.push_back(key + " " + theirs->second + " (model: " + mine + ")");
    }
    check(
        differences.empty(), where,
        "the file was saved from another architecture: ", detail::join(differences),
        ". Build the model it describes, or load with LoadOptions::strict = false to take the tensors whose "
        "names and shapes match");
  }

  std::map<std::string, const NamedTensor*> in_file;
  for (const NamedTensor& t : file.tensors)
    in_file[t.name] = &t;
  LoadReport report;
  std::vector<std::string> mis_shaped;
  std::vector<std::pair<const NamedTensor*, Tensor<typename Module::Scalar>*>> copies;
  std::set<std::string> in_model;
  for (const auto& entry : state_entries(module)) {
    in_model.insert(entry.name);
    if (detail::starts_with_any(entry.name, options.skip_prefixes)) {
      report.skipped.push_back(entry.name);
      continue;
    }
    const auto found = in_file.find(entry.name);
    if (found == in_file.end()) {
      report.missing.push_back(entry.name);
    } else if (found->second->shape != entry.value->shape()) {
      mis_shaped.push_back(entry.name + " (file " + shape_string(found->second->shape) + ", model " +
                           shape_string(entry.value->shape()) + ")");
    } else {
      const NamedTensor& stored = *found->second;
      check(stored.data.size() == static_cast<std::size_t>(stored.numel()) * dtype_size(stored.dtype), where,
            "tensor '", stored.name, "' has ", stored.data.size(), " bytes for shape ",
            shape_string(stored.shape), " of ", dtype_name(stored.dtype));
      copies.emplace_back(&stored, entry.value);
    }
  }
  for (const NamedTensor& t : file.tensors) {
    if (in_model.count(t.name)) continue;
    (detail::starts_with_any(t.name, options.skip_prefixes) ? report.skipped : report.unexpected)
        .push_back(t.name);
  }

  std::string problems;
  if (options.strict && !report.missing.empty())
    problems += "; missing (in the model, not in the file): " + detail::join(report.missing);
  if (options.strict && !report.unexpected.empty())
    problems += "; unexpected (in the file, not in the model): " + detail::join(report.unexpected);
  if (!mis_shaped.empty()) problems += "; mis-shaped: " + detail::join(mis_shaped);
  check(problems.empty(), where, "keys do not match the model", problems,
        ". LoadOptions::skip_prefixes (e.g. \"fc.\") leaves keys out; strict = false ignores missing and "
        "unexpected keys");

  // Every check has passed, and decoding into float or double cannot fail: the model changes only now.
  for (const auto& [stored, target] : copies) {
    decode_into(*stored, target->data());
    report.loaded.push_back(stored->name);
  }
  return report;
}

template <typename Module>
void save_safetensors(Module& module, const std::string& path, const SaveOptions& options = {}) {
  Metadata metadata = describe(module);
  for (const auto& [key, value] : options.metadata)
    metadata[key] = value;
  write_safetensors(path, encode_state(module, options.dtype.value_or(dtype_of<typename Module::Scalar>())),
                    metadata);
}

template <typename Module>
LoadReport load_safetensors(Module& module, const std::string& path, const LoadOptions& options = {}) {
  return load_state(module, read_safetensors(path), options, path);
}

}  // namespace resnet::io
