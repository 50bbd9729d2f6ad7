#pragma once
// Resumable checkpoints of a training run, at two levels.
//
// One file: the model's state (io/safetensors.hpp), its SGD momentum buffers and the caller's own string
// metadata in one safetensors file, written atomically. Tensor names are "model.<state-dict name>" and
// "momentum.<parameter name>"; a momentum buffer SGD has not created yet (before its first step, as in
// PyTorch's optimizer state) is absent. These live in resnet::io, beside save_safetensors and
// load_safetensors.
//
// clang-format off
//   io::save_checkpoint(path, model, sgd, {{"epoch", "3"}});
//   io::Metadata metadata = io::load_checkpoint(path, model, sgd);  // model and sgd built as when saving
// clang-format on
//
// A run's directory (train::Checkpoints): files named by the update count, the newest `keep` kept, each with
// the run's Position (loader position and update count) and the settings a resumed run must share, which
// resume() checks by name before it loads a tensor. The loader's order and augmentation are functions of its
// seed and position, and the schedule of the update count, so a run resumed from any checkpoint continues
// bitwise as if it had never stopped.
//
// clang-format off
//   train::Checkpoints checkpoints("runs/a", {{"lr", "0.1"}, {"batch_size", "128"}});
//   train::Position at{loader.state(), 0};
//   if (auto resumed = checkpoints.resume(model, sgd)) at = resumed->position;
//   ... each update: ++at.updates; at.loader = loader.state(); now and then checkpoints.save(model, sgd, at);
// clang-format on

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/data/loader.hpp"
#include "resnet/io/safetensors.hpp"
#include "resnet/io/safetensors_file.hpp"
#include "resnet/optim/sgd.hpp"

namespace resnet::io {

namespace detail {
inline const std::string kModelPrefix = "model.";
inline const std::string kMomentumPrefix = "momentum.";
}  // namespace detail

// extra_tensors: the caller's own (e.g. optim::ExponentialMovingAverage::tensors()), under names of its own
// prefix; load_checkpoint hands them back.
template <typename Module, typename T>
void save_checkpoint(const std::string& path, Module& model, optim::SGD<T>& sgd, const Metadata& extra = {},
                     const std::vector<NamedTensor>& extra_tensors = {}) {
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
  for (const NamedTensor& t : extra_tensors) {
    check(t.name.rfind(detail::kModelPrefix, 0) != 0 && t.name.rfind(detail::kMomentumPrefix, 0) != 0,
          "save_checkpoint: extra tensor '", t.name, "' takes a name of the model's or the optimizer's");
    tensors.push_back(t);
  }
  write_safetensors(path, tensors, metadata);
}

// Restores what save_checkpoint wrote, read into `file` (e.g. by parse_safetensors), into `model` and `sgd`
// (built the same way as when saving) and returns the file's metadata. Every name and shape is checked first:
// on any error neither is changed. `path` names the file in messages. The extra tensors go to
// `extra_tensors`; without it, a file that has some is refused.
template <typename Module, typename T>
Metadata load_checkpoint(Safetensors file, Module& model, optim::SGD<T>& sgd, const std::string& path,
                         std::vector<NamedTensor>* extra_tensors = nullptr) {
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
  check(unexpected.empty() || extra_tensors, "load_checkpoint: ", path,
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
  if (extra_tensors) {
    extra_tensors->clear();
    for (NamedTensor& t : file.tensors)
      if (std::find(unexpected.begin(), unexpected.end(), t.name) != unexpected.end())
        extra_tensors->push_back(std::move(t));
  }
  return file.metadata;
}

template <typename Module, typename T>
Metadata load_checkpoint(const std::string& path, Module& model, optim::SGD<T>& sgd) {
  return load_checkpoint(read_safetensors(path), model, sgd, path);
}

}  // namespace resnet::io

namespace resnet::train {

// Where a run stands, besides its tensors: the next batch (the loader's seed, epoch and batch) and the
// optimizer steps taken so far (the schedule's argument).
struct Position {
  data::LoaderState loader;
  std::int64_t updates = 0;
};

// What resume() found: the file, the position, all of its metadata (the caller's `extra` included) and the
// caller's extra tensors.
struct Resumed {
  std::string path;
  Position position;
  io::Metadata metadata;
  std::vector<io::NamedTensor> tensors;
};

struct CheckpointOptions {
  int keep = 2;  // checkpoints kept, newest first; the previous one stays until the next is in place
  // Settings that checkpoints written before the caller recorded them imply, e.g. {"arch", "resnet18"}.
  io::Metadata implied;
};

class Checkpoints {
 public:
  // dir: created by the first save(). settings: what a run resumed from these files must share with the run
  // that wrote them (model name, batch size, learning rates, seed, ...); saved in each file and compared by
  // resume(), by name.
  explicit Checkpoints(std::string dir, io::Metadata settings = {}, CheckpointOptions options = {})
      : dir_(std::move(dir)), settings_(std::move(settings)), options_(std::move(options)) {
    check(!dir_.empty(), "Checkpoints: empty directory name");
    check(options_.keep >= 1, "Checkpoints: keep must be at least 1, got ", options_.keep);
  }

  // checkpoint-<updates, 10 digits>.safetensors: the newest sorts last.
  static std::string file_name(std::int64_t updates) {
    char name[64];
    std::snprintf(name, sizeof name, "checkpoint-%010lld.safetensors", static_cast<long long>(updates));
    return name;
  }

  // The checkpoint files in the directory, newest first (none if it does not exist).
  std::vector<std::filesystem::path> newest_first() const {
    std::vector<std::filesystem::path> found;
    for_each_entry([&](const std::filesystem::path& path, const std::string& name) {
      if (name.rfind("checkpoint-", 0) == 0 && path.extension() == ".safetensors") found.push_back(path);
    });
    std::sort(found.rbegin(), found.rend());
    return found;
  }

  // The model, the optimizer, `at` and the settings, plus the caller's `extra` metadata (e.g. a MetricsLog's
  // csv()) and tensors (e.g. an ExponentialMovingAverage's), as file_name(at.updates), written atomically;
  // then all but the newest `keep` are deleted. Returns the path.
  template <typename Module, typename T>
  std::string save(Module& model, optim::SGD<T>& sgd, const Position& at, const io::Metadata& extra = {},
                   const std::vector<io::NamedTensor>& extra_tensors = {}) {
    std::filesystem::create_directories(dir_);
    remove_interrupted_saves();
    io::Metadata metadata = extra;
    for (const auto& [key, value] : settings_)
      metadata[key] = value;
    metadata["loader_seed"] = std::to_string(at.loader.seed);
    metadata["loader_epoch"] = std::to_string(at.loader.epoch);
    metadata["loader_batch"] = std::to_string(at.loader.batch);
    metadata["updates"] = std::to_string(at.updates);
    const std::string path = (std::filesystem::path(dir_) / file_name(at.updates)).string();
    io::save_checkpoint(path, model, sgd, metadata, extra_tensors);
    const auto all = newest_first();
    for (std::size_t i = static_cast<std::size_t>(options_.keep); i < all.size(); ++i)
      std::filesystem::remove(all[i]);
    return path;
  }

  // The newest checkpoint, loaded into `model` and `sgd` (built as when saving), or nothing when the
  // directory has none. Its settings are checked against this run's first, by name, then every tensor's name
  // and shape; on a mismatch it throws, before the model and optimizer are changed.
  template <typename Module, typename T>
  std::optional<Resumed> resume(Module& model, optim::SGD<T>& sgd) {
    remove_interrupted_saves();
    const auto found = newest_first();
    if (found.empty()) return std::nullopt;
    Resumed resumed;
    resumed.path = found.front().string();
    io::Safetensors file = io::read_safetensors(resumed.path);
    for (const auto& [key, value] : options_.implied)
      file.metadata.emplace(key, value);
    const auto field = [&](const std::string& key) {
      const auto it = file.metadata.find(key);
      check(it != file.metadata.end(), "checkpoint ", resumed.path, ": missing metadata '", key, "'");
      return it->second;
    };
    for (const auto& [key, value] : settings_)
      check(field(key) == value, "checkpoint ", resumed.path, " was written with ", key, " = '", field(key),
            "', this run has '", value,
            "': resume with the same settings, or start this run in another directory");
    const auto integer = [&](const std::string& key) {
      const std::string text = field(key);
      std::size_t used = 0;
      long long value = -1;
      try {
        value = std::stoll(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      check(used == text.size() && value >= 0, "checkpoint ", resumed.path, ": metadata '", key, "' is '",
            text, "', not a count");
      return value;
    };
    Position& at = resumed.position;
    // Checkpoints written before the seed was recorded were resumed with the run's --seed.
    at.loader.seed = file.metadata.count("loader_seed") ? static_cast<std::uint64_t>(integer("loader_seed"))
                                                        : static_cast<std::uint64_t>(integer("seed"));
    at.loader.epoch = integer("loader_epoch");
    at.loader.batch = integer("loader_batch");
    at.updates = integer("updates");
    resumed.metadata = file.metadata;
    io::load_checkpoint(std::move(file), model, sgd, resumed.path, &resumed.tensors);
    return resumed;
  }

  const std::string& directory() const { return dir_; }

 private:
  template <typename Visit>
  void for_each_entry(Visit visit) const {
    if (!std::filesystem::is_directory(dir_)) return;
    for (const auto& entry : std::filesystem::directory_iterator(dir_))
      visit(entry.path(), entry.path().filename().string());
  }

  // A save killed mid-write leaves its temporary file (io::AtomicFile names it "<target>.tmp-<pid>-<n>"),
  // as large as a checkpoint. A run is its directory's only writer, so when it resumes or saves its first
  // checkpoint any such file is garbage.
  void remove_interrupted_saves() {
    if (cleaned_) return;
    cleaned_ = true;
    for_each_entry([](const std::filesystem::path& path, const std::string& name) {
      if (name.rfind("checkpoint-", 0) == 0 && name.find(".safetensors.tmp-") != std::string::npos)
        std::filesystem::remove(path);
    });
  }

  std::string dir_;
  io::Metadata settings_;
  CheckpointOptions options_;
  bool cleaned_ = false;
};

}  // namespace resnet::train
