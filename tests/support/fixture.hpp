#pragma once
// resnet::testing::Fixture: one PyTorch fixture written by tools/make_fixtures.py, read with the library's
// own safetensors reader (io/safetensors_file.hpp), plus the lookups the parity tests use: tensors by key
// converted to T, scalars, integer targets, and "__metadata__" entries (a case's configuration).

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/io/safetensors_file.hpp"
#include "resnet/nn/conv2d.hpp"

#ifndef RESNET_FIXTURE_DIR
#error "RESNET_FIXTURE_DIR must name the tests/fixtures directory (tests/CMakeLists.txt defines it)"
#endif

namespace resnet::testing {

class Fixture {
 public:
  // `name` is a file in RESNET_FIXTURE_DIR, with or without the ".safetensors" suffix.
  explicit Fixture(const std::string& name) : name_(name) {
    const std::string suffix = ".safetensors";
    const bool has_suffix =
        name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    path_ = std::string(RESNET_FIXTURE_DIR) + "/" + name + (has_suffix ? "" : suffix);
    try {
      file_ = io::read_safetensors(path_);
    } catch (const Error& e) {
      fail("Fixture: ", e.what(), " (run /usr/bin/python3 tools/make_fixtures.py)");
    }
  }

  const std::string& name() const { return name_; }
  bool has(const std::string& key) const { return file_.find(key) != nullptr; }

  // Every tensor key, sorted.
  std::vector<std::string> keys() const {
    std::vector<std::string> result;
    for (const io::NamedTensor& t : file_.tensors)
      result.push_back(t.name);
    std::sort(result.begin(), result.end());
    return result;
  }

  // The tensor stored under `key`, converted from its stored dtype to T.
  template <typename T>
  Tensor<T> tensor(const std::string& key) const {
    check(has(key), "Fixture ", path_, ": no tensor named '", key, "'");
    return io::decode<T>(file_.at(key));
  }

  // A scalar (a tensor of one element, e.g. a loss), as double.
  double scalar(const std::string& key) const {
    const Tensor<double> t = tensor<double>(key);
    check(t.numel() == 1, "Fixture ", path_, ": '", key, "' has shape ", shape_string(t.shape()),
          ", expected a scalar");
    return t.data()[0];
  }

  // A stored integer tensor (e.g. class targets) as a flat vector.
  std::vector<int> ints(const std::string& key) const {
    const Tensor<std::int64_t> t = tensor<std::int64_t>(key);
    return std::vector<int>(t.data(), t.data() + t.numel());
  }

  // The "__metadata__" entries (strings), e.g. a module's constructor arguments.
  bool has_meta(const std::string& key) const { return file_.metadata.count(key) != 0; }
  std::string meta(const std::string& key) const {
    check(has_meta(key), "Fixture ", path_, ": no metadata entry '", key, "'");
    return file_.metadata.at(key);
  }
  int meta_int(const std::string& key) const { return std::stoi(meta(key)); }
  double meta_double(const std::string& key) const { return std::stod(meta(key)); }
  // A metadata entry that holds JSON text (e.g. the list of parameter names and shapes).
  nlohmann::json meta_json(const std::string& key) const { return nlohmann::json::parse(meta(key)); }

 private:
  std::string name_;
  std::string path_;
  io::Safetensors file_;
};

// The Conv2d a layer fixture's metadata describes (make_fixtures.py's conv_meta; "groups" only where not 1).
inline nn::Conv2dOptions conv2d_options(const Fixture& fx) {
  return nn::Conv2dOptions(fx.meta_int("in_channels"), fx.meta_int("out_channels"),
                           fx.meta_int("kernel_size"))
      .stride(fx.meta_int("stride"))
      .padding(fx.meta_int("padding"))
      .groups(fx.has_meta("groups") ? fx.meta_int("groups") : 1)
      .bias(fx.meta_int("bias") != 0);
}

}  // namespace resnet::testing
