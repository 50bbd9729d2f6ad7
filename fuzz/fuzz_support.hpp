#pragma once
// What the fuzz targets and the seed generator share: a scratch directory for the readers that take a path,
// gzip, and the tiny model the weight readers load into.

#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "resnet/models/resnet.hpp"

namespace resnet::fuzz {

using Bytes = std::vector<std::uint8_t>;

// Writes `size` bytes to `path`, replacing it; a harness that cannot write its input stops loudly.
inline void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr || (size != 0 && std::fwrite(data, 1, size, file) != size) || std::fclose(file) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
}

// A directory of this process's own under $TMPDIR, else /dev/shm (memory: writing each input costs no disk
// I/O), else the system temp dir; removed at a normal exit (scripts/fuzz.sh sets TMPDIR to a directory it
// removes, for the crashes).
class ScratchDir {
 public:
  ScratchDir() {
    const char* tmpdir = std::getenv("TMPDIR");
    const std::filesystem::path parent = tmpdir && *tmpdir ? tmpdir
                                         : std::filesystem::is_directory("/dev/shm")
                                             ? "/dev/shm"
                                             : std::filesystem::temp_directory_path();
    std::string pattern = (parent / "resnet_fuzz_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror(pattern.c_str());
      std::abort();
    }
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes the bytes to path()/name and returns that path.
  std::string write(const std::string& name, const std::uint8_t* data, std::size_t size) const {
    const std::string file = path_ + "/" + name;
    write_file(file, data, size);
    return file;
  }

 private:
  std::string path_;
};

// gzip (RFC 1952: header, deflate data, CRC-32 and length trailer), as the gzip tool writes it.
inline Bytes gzip(const std::uint8_t* data, std::size_t size) {
  z_stream stream{};
  if (deflateInit2(&stream, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  Bytes out(deflateBound(&stream, static_cast<uLong>(size)));
  stream.next_in = const_cast<std::uint8_t*>(data);
  stream.avail_in = static_cast<uInt>(size);
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  if (deflate(&stream, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

// A ResNet with one block per stage, base width 1, one input channel and two classes: every kind of state
// entry (convolutions, BatchNorm with num_batches_tracked, projection shortcuts, fc) in a few hundred
// numbers.
inline models::ResNet<float> tiny_model() {
  return models::ResNet<float>({1, 1, 1, 1}, 2, models::Stem::Cifar, 1, /*seed=*/0, /*base_width=*/1);
}

}  // namespace resnet::fuzz
