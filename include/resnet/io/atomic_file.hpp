#pragma once
// AtomicFile: writes a file so that readers see either the old file or the complete new one, never a part.
// The bytes go to a temporary file in the same directory (same file system, so rename is atomic); commit()
// flushes it to disk (fsync), renames it over the target and syncs the directory. Destroyed without commit()
// (an exception while writing), it removes the temporary file and leaves any existing target untouched.
// POSIX (open/write/fsync/rename).
//
//   io::AtomicFile file(path);
//   file.write(header.data(), header.size());
//   file.write(data, bytes);
//   file.commit();

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>

#include "resnet/core/error.hpp"

namespace resnet::io {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    check(!path_.empty(), "AtomicFile: empty path");
    // A name no other writer uses: pid plus a process-wide counter; O_EXCL refuses a leftover of the same
    // name.
    static std::atomic<unsigned long> counter{0};
    for (int attempt = 0; attempt < 100 && fd_ < 0; ++attempt) {
      temporary_ = path_ + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
      // Mode 0666 filtered by the umask: the permissions any newly created file would get.
      fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && errno != EEXIST) break;
    }
    if (fd_ < 0) fail_errno("cannot create a temporary file ", temporary_, " to write ", path_);
  }

  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  ~AtomicFile() {
    if (committed_) return;
    if (fd_ >= 0) ::close(fd_);
    ::unlink(temporary_.c_str());
  }

  void write(const void* data, std::size_t size) {
    check(fd_ >= 0 && !committed_, "AtomicFile: write to ", path_, " after commit");
    const char* bytes = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t written = ::write(fd_, bytes, size);
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) fail_errno("cannot write ", path_, " (temporary file ", temporary_, ")");
      bytes += written;
      size -= static_cast<std::size_t>(written);
    }
  }

  void commit() {
    check(fd_ >= 0 && !committed_, "AtomicFile: ", path_, " committed twice");
    if (::fsync(fd_) != 0) fail_errno("cannot flush ", temporary_, " to disk");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail_errno("cannot close ", temporary_);
    if (::rename(temporary_.c_str(), path_.c_str()) != 0)
      fail_errno("cannot rename ", temporary_, " to ", path_);
    committed_ = true;
    // Make the rename itself durable. Best effort: some file systems refuse fsync on a directory, and the
    // new file is already in place either way.
    const std::string::size_type slash = path_.rfind('/');
    const std::string directory = slash == std::string::npos ? "."
                                  : slash == 0               ? "/"
                                                             : path_.substr(0, slash);
    const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
      ::fsync(dir);
      ::close(dir);
    }
  }

  const std::string& path() const { return path_; }

 private:
  template <typename... Parts>
  [[noreturn]] static void fail_errno(Parts&&... parts) {
    const int error = errno;
    fail("AtomicFile: ", std::forward<Parts>(parts)..., ": ", std::strerror(error));
  }

  std::string path_;
  std::string temporary_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace resnet::io
