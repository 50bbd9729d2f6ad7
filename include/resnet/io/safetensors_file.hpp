#pragma once
// The safetensors file format (github.com/huggingface/safetensors): named tensors plus a string map, read
// with every size and offset checked, written atomically. Model state under torchvision's names builds on it
// (io/safetensors.hpp), and so do training checkpoints (train/checkpoint.hpp).
//
// clang-format off
//   bytes [0, 8)       N, the header length, unsigned little-endian
//   bytes [8, 8 + N)   JSON, padded with spaces (ours: to a multiple of 8):
//                        {"__metadata__": {string: string},
//                         name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//   bytes [8 + N, ..)  the data section: each tensor's row-major little-endian elements at [begin, end)
//                      of it; together the tensors cover it exactly, without gaps or overlaps
//
//   io::write_safetensors(path, {io::encode("momentum.fc.weight", m)}, {{"epoch", "3"}});
//   io::Safetensors file = io::read_safetensors(path);
//   Tensor<float> restored = io::decode<float>(file.at("momentum.fc.weight"));
// clang-format on

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/io/atomic_file.hpp"
#include "resnet/io/half.hpp"

namespace resnet::io {

// The element types read (all five) and written (F32, F64, I64; any dtype given as raw bytes).
enum class DType { F16, BF16, F32, F64, I64 };

inline const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::I64:
      return "I64";
  }
  return "?";
}

inline std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F16:
    case DType::BF16:
      return 2;
    case DType::F32:
      return 4;
    case DType::F64:
    case DType::I64:
      return 8;
  }
  return 0;
}

// false for a name that is not one of the five (safetensors also has BOOL, U8, I32, F8_E4M3, ...).
inline bool parse_dtype(const std::string& name, DType* dtype) {
  for (DType d : {DType::F16, DType::BF16, DType::F32, DType::F64, DType::I64}) {
    if (name == dtype_name(d)) {
      *dtype = d;
      return true;
    }
  }
  return false;
}

// The dtype that holds a T exactly: F32 for float, F64 for double, I64 for std::int64_t.
template <typename T>
constexpr DType dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int64_t>,
                "safetensors tensors convert to and from float, double and std::int64_t");
  return std::is_same_v<T, float> ? DType::F32 : std::is_same_v<T, double> ? DType::F64 : DType::I64;
}

using Metadata = std::map<std::string, std::string>;

// One tensor as a file stores it.
struct NamedTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;  // [] is a scalar (one element)
  std::vector<std::uint8_t> data;   // numel() * dtype_size(dtype) bytes, little-endian

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (std::int64_t d : shape)
      n *= d;
    return n;
  }
};

// The content of one file: its tensors in the order of their data, and its "__metadata__".
struct Safetensors {
  std::vector<NamedTensor> tensors;
  Metadata metadata;

  const NamedTensor* find(const std::string& name) const {
    for (const NamedTensor& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  const NamedTensor& at(const std::string& name) const {
    const NamedTensor* t = find(name);
    check(t != nullptr, "Safetensors: no tensor named '", name, "'");
    return *t;
  }
};

namespace detail {

// Little-endian byte order whatever the host's.
template <typename Word>
void store_le(Word word, std::uint8_t* out) {
  for (std::size_t i = 0; i < sizeof(Word); ++i)
    out[i] = static_cast<std::uint8_t>(word >> (8 * i));
}
template <typename Word>
Word load_le(const std::uint8_t* in) {
  Word word = 0;
  for (std::size_t i = 0; i < sizeof(Word); ++i)
    word |= static_cast<Word>(static_cast<Word>(in[i]) << (8 * i));
  return word;
}
template <typename To, typename From>
To bit_cast(From from) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast between types of different sizes");
  To to;
  std::memcpy(&to, &from, sizeof to);
  return to;
}

// A floating-point value that an int64 holds exactly.
inline bool is_whole_int64(double v) {
  return std::isfinite(v) && std::trunc(v) == v && v >= -0x1p63 && v < 0x1p63;
}

// One element converted to T; an integer tensor (T = int64) only takes whole numbers.
template <typename T, typename V>
T convert_element(V value, const NamedTensor& t, std::int64_t i) {
  if constexpr (std::is_integral_v<T> && std::is_floating_point_v<V>)
    check(is_whole_int64(static_cast<double>(value)), "decode: '", t.name, "' element ", i, " is ", value,
          ", not a whole number an integer tensor can hold");
  return static_cast<T>(value);
}

}  // namespace detail

// Tensor<T> (T float, double or std::int64_t) -> NamedTensor of `dtype` F32, F64 or I64 (written as I64, a
// value must be a whole number in range, e.g. BatchNorm's num_batches_tracked).
template <typename T>
NamedTensor encode(std::string name, const Tensor<T>& tensor, DType dtype = dtype_of<T>()) {
  check(dtype == DType::F32 || dtype == DType::F64 || dtype == DType::I64, "encode: '", name,
        "': cannot write ", dtype_name(dtype), " (writes F32, F64 and I64)");
  check(!tensor.empty(), "encode: '", name, "' is an empty tensor");
  NamedTensor out{std::move(name), dtype, tensor.shape(), {}};
  const std::size_t size = dtype_size(dtype);
  out.data.resize(static_cast<std::size_t>(tensor.numel()) * size);
  for (std::int64_t i = 0; i < tensor.numel(); ++i) {
    const T value = tensor.data()[i];
    std::uint8_t* dst = out.data.data() + static_cast<std::size_t>(i) * size;
    if (dtype == DType::F32) {
      detail::store_le(detail::bit_cast<std::uint32_t>(static_cast<float>(value)), dst);
    } else if (dtype == DType::F64) {
      detail::store_le(detail::bit_cast<std::uint64_t>(static_cast<double>(value)), dst);
    } else {
      if constexpr (std::is_floating_point_v<T>)
        check(detail::is_whole_int64(static_cast<double>(value)), "encode: '", out.name, "' element ", i,
              " is ", value, ", not a whole number for I64");
      detail::store_le(static_cast<std::uint64_t>(static_cast<std::int64_t>(value)), dst);
    }
  }
  return out;
}

// NamedTensor of any dtype -> numel() values of T written to `out` (float, double or std::int64_t; F64 to
// float rounds to nearest, as torch's .float()).
template <typename T>
void decode_into(const NamedTensor& t, T* out) {
  const std::size_t size = dtype_size(t.dtype);
  const std::int64_t n = t.numel();
  check(t.data.size() == static_cast<std::size_t>(n) * size, "decode: '", t.name, "' has ", t.data.size(),
        " bytes, shape ", shape_string(t.shape), " of ", dtype_name(t.dtype), " needs ",
        static_cast<std::size_t>(n) * size);
  const std::uint8_t* src = t.data.data();
  for (std::int64_t i = 0; i < n; ++i, src += size) {
    switch (t.dtype) {
      case DType::F16:
        out[i] = detail::convert_element<T>(half_to_float(detail::load_le<std::uint16_t>(src)), t, i);
        break;
      case DType::BF16:
        out[i] = detail::convert_element<T>(bfloat16_to_float(detail::load_le<std::uint16_t>(src)), t, i);
        break;
      case DType::F32:
        out[i] =
            detail::convert_element<T>(detail::bit_cast<float>(detail::load_le<std::uint32_t>(src)), t, i);
        break;
      case DType::F64:
        out[i] =
            detail::convert_element<T>(detail::bit_cast<double>(detail::load_le<std::uint64_t>(src)), t, i);
        break;
      case DType::I64:
        out[i] =
            detail::convert_element<T>(static_cast<std::int64_t>(detail::load_le<std::uint64_t>(src)), t, i);
        break;
    }
  }
}

template <typename T>
Tensor<T> decode(const NamedTensor& t) {
  Tensor<T> out(t.shape);
  decode_into(t, out.data());
  return out;
}

namespace detail {

// Larger headers are refused before anything is allocated for them, as the reference implementation does.
inline constexpr std::uint64_t kMaxHeaderSize = 100'000'000;
// A header nests 3 levels (file, tensor, shape). Deeper JSON is refused while parsing: nlohmann's dump(),
// which the messages use, recurses once per level and would overflow the stack on a hostile header.
inline constexpr int kMaxHeaderDepth = 16;

struct HeaderEntry {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin, end;  // within the data section
};

struct Header {
  std::vector<HeaderEntry> entries;  // sorted by data offset
  Metadata metadata;
};

// Parses and validates the JSON header of `path`, whose data section (starting at file byte data_start) has
// data_size bytes. Every message names the file, the tensor and file byte offsets.
inline Header parse_header(const std::string& text, std::uint64_t data_start, std::uint64_t data_size,
                           const std::string& path) {
  const std::string where = "read_safetensors: " + path + ": ";
  // nlohmann keeps the last of repeated keys silently; the callback sees every key and finds repeats.
  std::vector<std::set<std::string>> open_objects;
  std::string entry, repeated;
  const auto track_keys = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if ((event == Event::object_start || event == Event::array_start) && depth >= kMaxHeaderDepth)
      fail(where, "the header (bytes 8 to ", 8 + text.size(), ") nests JSON more than ", kMaxHeaderDepth,
           " levels deep; a safetensors header has 3");
    if (event == Event::object_start) open_objects.emplace_back();
    if (event == Event::object_end) open_objects.pop_back();
    if (event == Event::key) {
      const std::string key = parsed.get<std::string>();
      if (depth == 1) entry = key;
      if (!open_objects.back().insert(key).second && repeated.empty())
        repeated =
            depth == 1 ? "key '" + key + "' appears twice" : "'" + entry + "' repeats field '" + key + "'";
    }
    return true;
  };
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text, track_keys);
  } catch (const nlohmann::json::parse_error& e) {
    fail(where, "the header (bytes 8 to ", 8 + text.size(), ") is not valid JSON, error at byte ", 7 + e.byte,
         ": ", e.what());
  } catch (const nlohmann::json::exception& e) {  // e.g. out_of_range for a number beyond double, 1e400
    fail(where, "the header (bytes 8 to ", 8 + text.size(), ") is not JSON this reader can hold: ", e.what());
  }
  check(repeated.empty(), where, "header (bytes 8 to ", 8 + text.size(), "): ", repeated);
  check(json.is_object(), where, "the header (bytes 8 to ", 8 + text.size(), ") is JSON ", json.type_name(),
        ", expected an object");

  Header header;
  for (auto item = json.begin(); item != json.end(); ++item) {
    const std::string& name = item.key();
    const nlohmann::json& value = item.value();
    if (name == "__metadata__") {
      check(value.is_object(), where, "__metadata__ is ", value.type_name(),
            ", expected an object of strings");
      for (auto m = value.begin(); m != value.end(); ++m) {
        check(m.value().is_string(), where, "__metadata__ entry '", m.key(), "' is ", m.value().type_name(),
              ", expected a string");
        header.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tensor = where + "tensor '" + name + "': ";
    if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") ||
        !value.contains("data_offsets"))
      fail(tensor, "expected an object with dtype, shape and data_offsets, got ", value.dump());
    const nlohmann::json& dtype = value.at("dtype");
    const nlohmann::json& shape = value.at("shape");
    const nlohmann::json& offsets = value.at("data_offsets");
    HeaderEntry e{name, DType::F32, {}, 0, 0};
    if (!dtype.is_string() || !parse_dtype(dtype.get<std::string>(), &e.dtype))
      fail(tensor, "dtype ", dtype.dump(), " is not one this reader knows (F16, BF16, F32, F64, I64)");
    if (!shape.is_array()) fail(tensor, "shape ", shape.dump(), " is not an array");
    // numel stays below 2^62 here, so no product of dimensions overflows (numel times the element size can:
    // the byte count is compared by division below).
    std::uint64_t numel = 1;
    for (const nlohmann::json& d : shape) {
      if (!d.is_number_unsigned() || d.get<std::uint64_t>() >= (std::uint64_t{1} << 62))
        fail(tensor, "shape ", shape.dump(),
             " has a dimension that is not a non-negative integer below 2^62");
      const std::uint64_t size = d.get<std::uint64_t>();
      if (size != 0 && numel > ((std::uint64_t{1} << 62) - 1) / size)
        fail(tensor, "shape ", shape.dump(), " has more than 2^62 elements");
      numel *= size;
      e.shape.push_back(static_cast<std::int64_t>(size));
    }
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      fail(tensor, "data_offsets ", offsets.dump(), " is not a pair of non-negative integers");
    e.begin = offsets[0].get<std::uint64_t>();
    e.end = offsets[1].get<std::uint64_t>();
    check(e.begin <= e.end, tensor, "data_offsets [", e.begin, ", ", e.end, "] end before they begin");
    const std::uint64_t bytes = e.end - e.begin, size = dtype_size(e.dtype);
    check(bytes % size == 0 && bytes / size == numel, tensor, "data_offsets [", e.begin, ", ", e.end,
          "] (file byte ", data_start + e.begin, ") hold ", bytes, " bytes, but shape ",
          shape_string(e.shape), " of ", dtype_name(e.dtype), " needs ", numel, " elements of ", size,
          " bytes");
    header.entries.push_back(std::move(e));
  }

  // A file cut short (an interrupted copy or download) has a whole header whose tensors reach past its end.
  std::uint64_t described = 0;  // bytes of tensor data the header describes, up to the end of last_name
  std::string last_name;
  for (const HeaderEntry& e : header.entries) {
    if (e.end > described) described = e.end, last_name = e.name;
  }
  check(described <= data_size, where, "the file is truncated: it has ", data_start + data_size,
        " bytes, but its header describes ", data_start + described, " (tensor '", last_name,
        "' ends at file byte ", data_start + described, ")");

  // The tensors must tile the data section: no overlaps (two names for the same bytes), no gaps, no tail.
  std::stable_sort(header.entries.begin(), header.entries.end(),
                   [](const HeaderEntry& a, const HeaderEntry& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
                   });
  std::uint64_t covered = 0;
  const HeaderEntry* previous = nullptr;
  for (const HeaderEntry& e : header.entries) {
    check(e.begin >= covered, where, "tensor '", e.name, "' at data_offsets [", e.begin, ", ", e.end,
          "] (file byte ", data_start + e.begin, ") overlaps '", previous ? previous->name : "",
          "', which ends at ", covered);
    check(e.begin == covered, where, "data bytes [", covered, ", ", e.begin, ") (file byte ",
          data_start + covered, ") belong to no tensor (gap before '", e.name, "')");
    covered = e.end;
    previous = &e;
  }
  check(covered == data_size, where, "the tensors cover ", covered, " of the ", data_size,
        " data bytes; file bytes ", data_start + covered, " to ", data_start + data_size,
        " belong to no tensor");
  return header;
}

inline std::string json_string(const std::string& s, const std::string& path) {
  try {
    return nlohmann::json(s).dump();
  } catch (const nlohmann::json::exception& e) {
    fail("write_safetensors: ", path, ": '", s, "' cannot be written as JSON: ", e.what());
  }
}

}  // namespace detail

namespace detail {

// The reader behind read_safetensors and parse_safetensors, for a file of `file_size` bytes of which
// `read_at(offset, destination, n)` copies n bytes (returning false if it cannot). Nothing is allocated
// before the sizes it needs are checked against file_size.
template <typename ReadAt>
Safetensors parse_safetensors_from(std::uint64_t file_size, const ReadAt& read_at,
                                   const std::string& source) {
  const std::string where = "read_safetensors: " + source + ": ";
  check(file_size >= 8, where, "the file has ", file_size, " bytes, too few for the 8-byte header length");
  std::uint8_t length[8];
  check(read_at(0, length, 8), where, "cannot read the header length (bytes 0 to 8)");
  const std::uint64_t header_size = load_le<std::uint64_t>(length);
  check(header_size <= file_size - 8, where, "the header length (bytes 0 to 8) is ", header_size,
        ", past the end of the file (", file_size, " bytes): truncated, or not a safetensors file");
  check(header_size <= kMaxHeaderSize, where, "the header length (bytes 0 to 8) is ", header_size,
        ", more than the ", kMaxHeaderSize, " bytes a safetensors header may have");
  std::string text(header_size, '\0');
  check(read_at(8, text.data(), header_size), where, "cannot read the header (bytes 8 to ", 8 + header_size,
        ")");
  const std::uint64_t data_start = 8 + header_size;
  Header header = parse_header(text, data_start, file_size - data_start, source);

  Safetensors result;
  result.metadata = std::move(header.metadata);
  for (HeaderEntry& e : header.entries) {
    NamedTensor t{std::move(e.name), e.dtype, std::move(e.shape), std::vector<std::uint8_t>(e.end - e.begin)};
    check(read_at(data_start + e.begin, t.data.data(), t.data.size()), where, "cannot read tensor '", t.name,
          "' (file bytes ", data_start + e.begin, " to ", data_start + e.end, ")");
    result.tensors.push_back(std::move(t));
  }
  return result;
}

}  // namespace detail

// Reads a whole file. Throws resnet::Error naming the file, the tensor and the byte offset for anything that
// is not a well-formed safetensors file this reader can decode: too short, header length past the end, bad
// JSON or not an object, repeated keys, unknown dtype, bad shape, offsets out of range, overlapping, leaving
// gaps or not matching the shape, metadata that is not strings.
inline Safetensors read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "read_safetensors: ", path, ": cannot open: ", std::strerror(errno));
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<std::uint64_t>(in.tellg());
  const auto read_at = [&](std::uint64_t offset, void* destination, std::uint64_t n) {
    in.seekg(static_cast<std::streamoff>(offset));
    in.read(static_cast<char*>(destination), static_cast<std::streamsize>(n));
    return in.good();
  };
  return detail::parse_safetensors_from(file_size, read_at, path);
}

// The same from bytes in memory (e.g. a file received over the network); `source` names them in messages.
inline Safetensors parse_safetensors(const void* bytes, std::size_t size,
                                     const std::string& source = "safetensors bytes") {
  const auto read_at = [&](std::uint64_t offset, void* destination, std::uint64_t n) {
    if (n != 0) std::memcpy(destination, static_cast<const std::uint8_t*>(bytes) + offset, n);
    return true;  // parse_safetensors_from only asks for bytes inside the file
  };
  return detail::parse_safetensors_from(size, read_at, source);
}

// Writes `tensors` in the given order (data back to back) and `metadata`, atomically (io/atomic_file.hpp): an
// existing file is replaced whole or, if anything fails, left as it was. The header lists "__metadata__"
// first, then the tensors, compact and padded with spaces to a multiple of 8 bytes, as
// tools/export_torchvision.py writes it, so the same tensors give the same bytes.
inline void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                              const Metadata& metadata = {}) {
  const std::string where = "write_safetensors: " + path + ": ";
  std::string header = "{\"__metadata__\":{";
  for (auto m = metadata.begin(); m != metadata.end(); ++m)
    header += (m == metadata.begin() ? "" : ",") + detail::json_string(m->first, path) + ":" +
              detail::json_string(m->second, path);
  header += "}";
  std::set<std::string> names;
  std::uint64_t offset = 0;
  for (const NamedTensor& t : tensors) {
    check(t.name != "__metadata__", where, "a tensor cannot be named __metadata__");
    check(names.insert(t.name).second, where, "two tensors are named '", t.name, "'");
    std::string shape;
    for (std::int64_t d : t.shape) {
      check(d >= 0, where, "tensor '", t.name, "' has shape ", shape_string(t.shape));
      shape += (shape.empty() ? "" : ",") + std::to_string(d);
    }
    check(t.data.size() == static_cast<std::uint64_t>(t.numel()) * dtype_size(t.dtype), where, "tensor '",
          t.name, "' has ", t.data.size(), " bytes, shape ", shape_string(t.shape), " of ",
          dtype_name(t.dtype), " needs ", static_cast<std::uint64_t>(t.numel()) * dtype_size(t.dtype));
    header += "," + detail::json_string(t.name, path) + ":{\"dtype\":\"" + dtype_name(t.dtype) +
              "\",\"shape\":[" + shape + "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + t.data.size()) + "]}";
    offset += t.data.size();
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');

  AtomicFile file(path);
  std::uint8_t length[8];
  detail::store_le<std::uint64_t>(header.size(), length);
  file.write(length, sizeof length);
  file.write(header.data(), header.size());
  for (const NamedTensor& t : tensors)
    file.write(t.data.data(), t.data.size());
  file.commit();
}

}  // namespace resnet::io
