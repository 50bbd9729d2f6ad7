#pragma once
// The convolution choices of kernels/conv_search.hpp as a JSON file, so that a run can repeat another's:
// save_conv_choices writes every cached choice, searched or loaded (atomically, io/atomic_file.hpp), and
// load_conv_choices caches a file's choices as loaded ones, used as they are without timing. One entry per
// conv shape, mode (training, or eval with the weight packed), element type, precision and instruction set;
// an entry applies only where all of them match. "groups" may be absent (files written before it): 1.
//
// clang-format off
//   {"format": "resnet-conv-choices", "version": 1, "choices": [
//     {"N": 128, "C": 64, "H": 32, "W": 32, "O": 64, "k": 3, "s": 1, "p": 1, "groups": 1, "mode": "training",
//      "type": "float", "precision": "fp32", "isa": "avx512_bf16",
//      "forward": "winograd", "weight_grad": "winograd", "input_grad_as_conv": true}, ...]}
// clang-format on

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "resnet/core/cpu_features.hpp"
#include "resnet/core/error.hpp"
#include "resnet/core/precision.hpp"
#include "resnet/io/atomic_file.hpp"
#include "resnet/kernels/conv_search.hpp"

namespace resnet::io {

namespace detail {

inline constexpr const char* kConvChoicesFormat = "resnet-conv-choices";

inline nlohmann::ordered_json conv_choice_json(const kernels::ConvChoiceEntry& e) {
  const kernels::ConvShape& g = e.key.shape;
  return {{"N", g.N},
          {"C", g.C},
          {"H", g.H},
          {"W", g.W},
          {"O", g.O},
          {"k", g.k},
          {"s", g.s},
          {"p", g.p},
          {"groups", g.G},
          {"mode", e.key.pack_weight ? "eval" : "training"},
          {"type", e.key.type},
          {"precision", precision_name(e.key.precision)},
          {"isa", isa_name(e.key.isa)},
          {"forward", kernels::algorithm_name(e.choice.forward)},
          {"weight_grad", kernels::algorithm_name(e.choice.weight_grad)},
          {"input_grad_as_conv", e.choice.input_grad_as_conv}};
}

// One entry of a choices file, every field checked (the fields are conv_choice_json's); `where` names the
// file and the entry in messages.
inline kernels::ConvChoiceEntry parse_conv_choice(const nlohmann::json& j, const std::string& where) {
  check(j.is_object(), where, "is JSON ", j.type_name(), ", expected an object");
  const auto field = [&](const char* name) -> const nlohmann::json& {
    check(j.contains(name), where, "has no field '", name, "'");
    return j.at(name);
  };
  const auto integer = [&](const char* name) {
    const nlohmann::json& v = field(name);
    constexpr double kLimit = 2147483648.0;  // 2^31: beyond any conv, and the output size stays in range
    check(v.is_number_integer() && v.get<double>() >= 0 && v.get<double>() < kLimit, where, "has '", name,
          "': ", v.dump(), ", expected an integer in [0, 2^31)");
    return v.get<std::int64_t>();
  };
  // A string field as `parse` reads it; parse throws resnet::Error for a value it does not know.
  const auto named = [&](const char* name, auto parse) {
    const nlohmann::json& v = field(name);
    check(v.is_string(), where, "has '", name, "': ", v.dump(), ", expected a string");
    try {
      return parse(v.get<std::string>());
    } catch (const Error& e) {
      fail(where, "has '", name, "': ", e.what());
    }
  };
  const auto one_of = [](const char* a, const char* b) {
    return [a, b](const std::string& s) {
      check(s == a || s == b, "'", s, "' is neither ", a, " nor ", b);
      return s;
    };
  };
  kernels::ConvChoiceEntry e{};
  e.key.shape = {integer("N"), integer("C"), integer("H"), integer("W"),
                 integer("O"), integer("k"), integer("s"), integer("p")};
  if (j.contains("groups")) e.key.shape.G = integer("groups");  // files before grouped convs: 1
  e.key.pack_weight = named("mode", one_of("training", "eval")) == "eval";
  e.key.type = named("type", one_of("float", "double"));
  e.key.precision = parse_precision(named("precision", one_of("fp32", "bf16")));
  e.key.isa = named("isa", parse_isa);
  e.choice.forward = named("forward", kernels::parse_algorithm);
  e.choice.weight_grad = named("weight_grad", kernels::parse_algorithm);
  const nlohmann::json& as_conv = field("input_grad_as_conv");
  check(as_conv.is_boolean(), where, "has 'input_grad_as_conv': ", as_conv.dump(),
        ", expected true or false");
  e.choice.input_grad_as_conv = as_conv.get<bool>();
  e.source = kernels::ConvChoiceSource::Loaded;
  const nlohmann::ordered_json fields = conv_choice_json(e);
  for (auto item = j.begin(); item != j.end(); ++item)
    check(fields.contains(item.key()), where, "has an unknown field '", item.key(), "'");
  const std::string error = kernels::conv_choice_error(e.key, e.choice);
  check(error.empty(), where, "(", kernels::key_string(e.key), ") cannot run: ", error);
  return e;
}

}  // namespace detail

// Every cached choice (kernels::conv_choices) as the JSON of a choices file, one entry per line.
inline std::string conv_choices_json() {
  std::string text =
      std::string("{\"format\": \"") + detail::kConvChoicesFormat + "\", \"version\": 1, \"choices\": [";
  const std::vector<kernels::ConvChoiceEntry> entries = kernels::conv_choices();
  for (std::size_t i = 0; i < entries.size(); ++i)
    text += (i ? ",\n  " : "\n  ") + detail::conv_choice_json(entries[i]).dump();
  return text + (entries.empty() ? "]}\n" : "\n]}\n");
}

// The entries of a choices file's text; `source` names it in messages. Throws resnet::Error naming the source
// and the entry for text that is not such a file, and for an entry that cannot run its shape (Winograd on a
// 1x1 conv or in bf16, say) or repeats an earlier entry's key.
inline std::vector<kernels::ConvChoiceEntry> parse_conv_choices(const std::string& text,
                                                                const std::string& source) {
  const std::string where = "conv choices " + source + ": ";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(where, "not valid JSON: ", e.what());
  }
  check(j.is_object() && j.contains("format") && j["format"] == detail::kConvChoicesFormat, where,
        "not a choices file (expected an object with \"format\": \"", detail::kConvChoicesFormat, "\")");
  check(j.contains("version") && j["version"] == 1, where, "version ",
        j.value("version", nlohmann::json()).dump(), ", expected 1");
  check(j.contains("choices") && j["choices"].is_array(), where, "no \"choices\" array");
  std::vector<kernels::ConvChoiceEntry> entries;
  std::map<kernels::ConvChoiceKey, std::size_t> seen;
  for (const nlohmann::json& item : j["choices"]) {
    const std::string entry = where + "entry " + std::to_string(entries.size()) + " ";
    entries.push_back(detail::parse_conv_choice(item, entry));
    const auto earlier = seen.emplace(entries.back().key, entries.size() - 1);
    check(earlier.second, entry, "(", kernels::key_string(entries.back().key), ") repeats entry ",
          earlier.first->second);
  }
  return entries;
}

// Writes every cached choice to `path`, atomically.
inline void save_conv_choices(const std::string& path) {
  const std::string text = conv_choices_json();
  AtomicFile file(path);
  file.write(text.data(), text.size());
  file.commit();
}

// Caches the choices of the file at `path` as loaded ones (replacing any for the same keys) and returns how
// many it held; a file that parse_conv_choices refuses loads none of them.
inline std::size_t load_conv_choices(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "conv choices ", path, ": cannot open: ", std::strerror(errno));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check(!in.bad(), "conv choices ", path, ": cannot read: ", std::strerror(errno));
  const std::vector<kernels::ConvChoiceEntry> entries = parse_conv_choices(text, path);
  for (const kernels::ConvChoiceEntry& e : entries)
    kernels::set_conv_choice(e.key, e.choice);
  return entries.size();
}

}  // namespace resnet::io
