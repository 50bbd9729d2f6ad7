#pragma once
// resnet::testing::Fixture: reads one PyTorch fixture written by tools/make_fixtures.py (safetensors layout:
// an 8-byte little-endian header length, a JSON header {key: {"dtype", "shape", "data_offsets"},
// "__metadata__"}, then raw little-endian data). Test-only and deliberately small; the library's own reader
// lives in io/.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"

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
    std::ifstream in(path_, std::ios::binary);
    check(in.good(), "Fixture: cannot open ", path_, " (run /usr/bin/python3 tools/make_fixtures.py)");
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());

    std::uint64_t header_size = 0;
    check(bytes_.size() >= 8, "Fixture ", path_, ": file too short for a safetensors header");
    for (int i = 7; i >= 0; --i)
      header_size = (header_size << 8) | static_cast<unsigned char>(bytes_[static_cast<std::size_t>(i)]);
    check(header_size <= bytes_.size() - 8, "Fixture ", path_, ": header length ", header_size,
          " exceeds the file size ", bytes_.size());
    header_ = nlohmann::json::parse(bytes_.begin() + 8, bytes_.begin() + 8 + static_cast<long>(header_size));
    data_begin_ = 8 + static_cast<std::size_t>(header_size);
    if (header_.contains("__metadata__")) {
      metadata_ = header_["__metadata__"];
      header_.erase("__metadata__");
    }
  }

  const std::string& name() const { return name_; }
  bool has(const std::string& key) const { return header_.contains(key); }

  // Every tensor key, in the header's (sorted) order.
  std::vector<std::string> keys() const {
    std::vector<std::string> result;
    for (auto it = header_.begin(); it != header_.end(); ++it)
      result.push_back(it.key());
    return result;
  }

  // The tensor stored under `key`, converted from its stored dtype (F32, F64 or I64) to T.
  template <typename T>
  Tensor<T> tensor(const std::string& key) const {
    check(has(key), "Fixture ", path_, ": no tensor named '", key, "'");
    const nlohmann::json& entry = header_.at(key);
    const std::vector<std::int64_t> shape = entry.at("shape").get<std::vector<std::int64_t>>();
    const std::string dtype = entry.at("dtype").get<std::string>();
    const std::size_t begin = entry.at("data_offsets").at(0).get<std::size_t>();
    const std::size_t end = entry.at("data_offsets").at(1).get<std::size_t>();
    Tensor<T> result(shape);
    const std::size_t width = dtype == "F32" ? 4 : dtype == "F64" || dtype == "I64" ? 8 : 0;
    check(width != 0, "Fixture ", path_, ": '", key, "' has unsupported dtype ", dtype);
    check(begin <= end && data_begin_ + end <= bytes_.size() &&
              end - begin == width * static_cast<std::size_t>(result.numel()),
          "Fixture ", path_, ": '", key, "' has data offsets [", begin, ", ", end,
          ") that do not hold shape ", shape_string(shape), " of ", dtype);
    const char* source = bytes_.data() + data_begin_ + begin;
    if (dtype == "F32") convert<float>(source, result);
    if (dtype == "F64") convert<double>(source, result);
    if (dtype == "I64") convert<std::int64_t>(source, result);
    return result;
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
  bool has_meta(const std::string& key) const { return metadata_.contains(key); }
  std::string meta(const std::string& key) const {
    check(metadata_.contains(key), "Fixture ", path_, ": no metadata entry '", key, "'");
    return metadata_.at(key).get<std::string>();
  }
  int meta_int(const std::string& key) const { return std::stoi(meta(key)); }
  double meta_double(const std::string& key) const { return std::stod(meta(key)); }
  // A metadata entry that holds JSON text (e.g. the list of parameter names and shapes).
  nlohmann::json meta_json(const std::string& key) const { return nlohmann::json::parse(meta(key)); }

 private:
  // The files are little-endian, as is every machine this library targets; memcpy because the data is only
  // 8-byte aligned within the file buffer, not necessarily within memory.
  template <typename Stored, typename T>
  static void convert(const char* source, Tensor<T>& result) {
    for (std::int64_t i = 0; i < result.numel(); ++i) {
      Stored v;
      std::memcpy(&v, source + static_cast<std::size_t>(i) * sizeof(Stored), sizeof(Stored));
      result.data()[i] = static_cast<T>(v);
    }
  }

  std::string name_;
  std::string path_;
  std::vector<char> bytes_;
  nlohmann::json header_;
  nlohmann::json metadata_ = nlohmann::json::object();
  std::size_t data_begin_ = 0;
};

}  // namespace resnet::testing
