#pragma once
// FileReader: reads a data file front to back, raw or gzip-compressed (zlib decides from the first bytes),
// and words every failure as a resnet::Error that names the reader, the file and the byte offset. The dataset
// readers (cifar10.hpp, idx.hpp) use it so that each of them only states what its format requires.

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "resnet/core/error.hpp"

namespace resnet::data {

class FileReader {
 public:
  // `who` opens every message, e.g. "read_idx".
  FileReader(std::string path, std::string who) : path_(std::move(path)), who_(std::move(who)) {
    std::error_code ec;
    const auto status = std::filesystem::status(path_, ec);
    if (!std::filesystem::exists(status)) fail("file not found");
    if (!std::filesystem::is_regular_file(status)) fail("not a regular file");
    file_size_ = std::filesystem::file_size(path_, ec);
    if (ec) fail("cannot read its size (", ec.message(), ")");
    file_ = gzopen(path_.c_str(), "rb");
    if (file_ == nullptr) fail("cannot open (", std::strerror(errno), ")");
    gzbuffer(file_, 1 << 17);
    compressed_ = gzdirect(file_) == 0;  // right after gzopen this looks at the first bytes
  }
  ~FileReader() { gzclose(file_); }
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  const std::string& path() const { return path_; }
  // Bytes on disk (compressed size for a gzip file).
  std::uint64_t file_size() const { return file_size_; }
  bool compressed() const { return compressed_; }
  // Bytes delivered so far, i.e. the (decompressed) offset of the next read.
  std::uint64_t offset() const { return offset_; }

  // Reads up to n bytes; fewer only at the end of the data. Corrupt gzip data throws.
  std::uint64_t read_some(void* destination, std::uint64_t n) {
    auto* out = static_cast<unsigned char*>(destination);
    std::uint64_t done = 0;
    while (done < n) {
      const auto chunk = static_cast<unsigned>(std::min<std::uint64_t>(n - done, 1u << 30));
      const int got = gzread(file_, out + done, chunk);
      // A cut-off gzip stream reads like an end of data, with Z_BUF_ERROR left in the error state.
      int code = Z_OK;
      const char* zlib_message = gzerror(file_, &code);
      if (got < 0 || code != Z_OK) {
        std::string message = zlib_message;
        if (message.rfind(path_ + ": ", 0) == 0)
          message.erase(0, path_.size() + 2);  // zlib prefixes the path
        fail(code == Z_BUF_ERROR ? "gzip stream cut off" : "corrupt gzip data",
             " near decompressed byte offset ", offset_ + done + static_cast<std::uint64_t>(std::max(got, 0)),
             " (zlib: ", message, ")");
      }
      if (got == 0) break;
      done += static_cast<std::uint64_t>(got);
    }
    offset_ += done;
    return done;
  }

  // Reads exactly n bytes of `what` (e.g. "record 7"), or throws naming where the data ended.
  void read_exact(void* destination, std::uint64_t n, const std::string& what) {
    const std::uint64_t start = offset_;
    const std::uint64_t got = read_some(destination, n);
    if (got < n)
      fail("truncated: ", what, " needs ", n, " bytes at ", data_kind(), "byte offset ", start, ", but the ",
           data_kind(), "data ends at byte ", start + got);
  }

  // Throws unless the data has ended; reading on also makes zlib check the gzip trailer (CRC and length).
  void expect_end(const std::string& expected) {
    unsigned char byte = 0;
    if (read_some(&byte, 1) != 0)
      fail("the ", data_kind(), "data goes on past byte ", offset_ - 1, " where ", expected, " should end");
  }

  // "" for a raw file, "decompressed " for a gzip file: offsets in messages say which bytes they count.
  const char* data_kind() const { return compressed_ ? "decompressed " : ""; }

  template <typename... Parts>
  [[noreturn]] void fail(Parts&&... parts) const {
    resnet::fail(who_, ": ", path_, ": ", std::forward<Parts>(parts)...);
  }

 private:
  std::string path_;
  std::string who_;
  std::uint64_t file_size_ = 0;
  gzFile file_ = nullptr;
  bool compressed_ = false;
  std::uint64_t offset_ = 0;
};

}  // namespace resnet::data
