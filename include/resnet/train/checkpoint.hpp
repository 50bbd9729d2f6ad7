#pragma once
// A resumable checkpoint of a training run: the model's state (io/safetensors.hpp), its SGD momentum buffers
// and the caller's own string metadata (epoch, loader position, ...) in one safetensors file, written
// atomically. Tensor names are "model.<state-dict name>" and "momentum.<parameter name>"; a momentum buffer
// SGD has not created yet (before its first step, as in PyTorch's optimizer state) is absent. The functions
// live in resnet::io, beside save_safetensors and load_safetensors.
//
// clang-format off
//   io::save_checkpoint(path, model, sgd, {{"epoch", "3"}});
//   io::Metadata metadata = io::load_checkpoint(path, model, sgd);  // model and sgd built as when saving
// clang-format on

#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/io/safetensors.hpp"
#include "resnet/io/safetensors_file.hpp"
#include "resnet/optim/sgd.hpp"

namespace resnet::io {

namespace detail {
inline const std::string kModelPrefix = "model.";
inline const std::string kMomentumPrefix = "momentum.";
}  // namespace detail

template <typename Module, typename T>
void save_checkpoint(const std::string& path, Module& model, optim::SGD<T>& sgd, const Metadata& extra = {}) {
  Metadata metadata = describe(model);
  for (const auto& [key, value] : extra)
    metadata[key] = value;
  metadata["checkpoint"] = "1";
  std::vector<NamedTensor> tensors = encode_state(model);
  for (NamedTensor& t : tensors)
    t.name = detail::kModelPrefix + t.name;
  const auto& params = sgd.params();
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor<T>& buffer = sgd.momentum_buffers()[i];
    if (!buffer.empty()) tensors.push_back(encode(detail::kMomentumPrefix + params[i].name, buffer));
  }
  write_safetensors(path, tensors, metadata);
}

// Restores what save_checkpoint wrote, read into `file` (e.g. by parse_safetensors), into `model` and `sgd`
// (built the same way as when saving) and returns the file's metadata. Every name and shape is checked first:
// on any error neither is changed. `path` names the file in messages.
template <typename Module, typename T>
Metadata load_checkpoint(Safetensors file, Module& model, optim::SGD<T>& sgd, const std::string& path) {
  check(file.metadata.count("checkpoint") == 1, "load_checkpoint: ", path,
        " is not a training checkpoint (no 'checkpoint' metadata); weights load with load_safetensors");
  Safetensors state{{}, file.metadata};
  std::map<std::string, const NamedTensor*> momentum;
  std::vector<std::string> unexpected;
  for (NamedTensor& t : file.tensors) {
    if (t.name.compare(0, detail::kModelPrefix.size(), detail::kModelPrefix) == 0) {
      t.name.erase(0, detail::kModelPrefix.size());
      state.tensors.push_back(std::move(t));
    } else if (t.name.compare(0, detail::kMomentumPrefix.size(), detail::kMomentumPrefix) == 0) {
      momentum[t.name.substr(detail::kMomentumPrefix.size())] = &t;
    } else {
      unexpected.push_back(t.name);
    }
  }
  check(unexpected.empty(), "load_checkpoint: ", path,
        ": tensors that are neither model. nor momentum.: ", detail::join(unexpected));

  const auto& params = sgd.params();
  std::vector<const NamedTensor*> buffers(params.size(), nullptr);
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto found = momentum.find(params[i].name);
    if (found == momentum.end()) continue;
    check(found->second->shape == params[i].value->shape(), "load_checkpoint: ", path, ": momentum of '",
          params[i].name, "' has shape ", shape_string(found->second->shape), ", the parameter ",
          shape_string(params[i].value->shape()));
    buffers[i] = found->second;
    momentum.erase(found);
  }
  std::vector<std::string> unknown;
  for (const auto& entry : momentum)
    unknown.push_back(entry.first);
  check(unknown.empty(), "load_checkpoint: ", path,
        ": momentum for parameters the optimizer does not have: ", detail::join(unknown));

  load_state(model, state, {}, path);  // strict; throws before changing the model
  for (std::size_t i = 0; i < params.size(); ++i)
    sgd.momentum_buffers()[i] = buffers[i] ? decode<T>(*buffers[i]) : Tensor<T>();
  return file.metadata;
}

template <typename Module, typename T>
Metadata load_checkpoint(const std::string& path, Module& model, optim::SGD<T>& sgd) {
  return load_checkpoint(read_safetensors(path), model, sgd, path);
}

}  // namespace resnet::io
