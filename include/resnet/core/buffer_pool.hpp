#pragma once
// A process-wide cache of large tensor buffers, so that a training loop stops allocating after its first
// step. glibc serves blocks above its mmap threshold (at most 32 MB) with fresh mmap pages, so a 33 MB
// activation (CIFAR ResNet18 at batch 128) would page-fault on every step and be zeroed twice, by the kernel
// and then by us: benchmarks/profile_resnet18 measured a training step about 8% faster with the pool.
// Like PyTorch's CUDA caching allocator, freed blocks are kept for reuse by a request of about the same size
// (up to 1/8 larger) rather than returned to the system, up to a byte limit; release_cached_buffers() gives
// them back. Under AddressSanitizer the pool is off, so that a use after free is still reported.

#include <cstddef>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <new>

namespace resnet {

#if defined(__SANITIZE_ADDRESS__)
#define RESNET_BUFFER_POOL_ENABLED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RESNET_BUFFER_POOL_ENABLED 0
#endif
#endif
#ifndef RESNET_BUFFER_POOL_ENABLED
#define RESNET_BUFFER_POOL_ENABLED 1
#endif

class BufferPool {
 public:
  static constexpr std::size_t kMinPooledBytes = std::size_t{1} << 20;  // smaller blocks: malloc as is
  static constexpr std::size_t kDefaultLimit = std::size_t{4} << 30;    // cached bytes kept at most

  // The one pool of the process. Never destroyed, so tensors in static storage may outlive main().
  static BufferPool& instance() {
    static BufferPool* pool = new BufferPool();
    return *pool;
  }

  // At least `bytes` (a multiple of `alignment`) aligned to `alignment`; `size` is set to the block's actual
  // size, which release() must be given back. Throws std::bad_alloc.
  void* acquire(std::size_t bytes, std::size_t alignment, std::size_t& size) {
    size = bytes;
    if (pooled(bytes)) {
      const std::lock_guard<std::mutex> lock(mutex_);
      const auto found = free_.lower_bound(bytes);
      if (found != free_.end() && found->first <= bytes + bytes / 8) {
        void* memory = found->second;
        size = found->first;
        cached_bytes_ -= size;
        free_.erase(found);
        return memory;
      }
    }
    void* memory = std::aligned_alloc(alignment, bytes);
    if (memory == nullptr) {
      release_cached_buffers();  // cached blocks may be what stands between us and the memory
      memory = std::aligned_alloc(alignment, bytes);
      if (memory == nullptr) throw std::bad_alloc();
    }
    return memory;
  }

  // Takes back a block acquire returned, with the size it reported.
  void release(void* memory, std::size_t size) {
    if (pooled(size)) {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (cached_bytes_ + size <= limit_) {
        free_.emplace(size, memory);
        cached_bytes_ += size;
        return;
      }
    }
    std::free(memory);
  }

  // Returns every cached block to the system (e.g. after training, before a smaller workload).
  void release_cached_buffers() {
    const std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& entry : free_)
      std::free(entry.second);
    free_.clear();
    cached_bytes_ = 0;
  }

  // At most this many bytes stay cached; 0 turns caching off. Releases what is over the new limit.
  void set_limit(std::size_t bytes) {
    const std::lock_guard<std::mutex> lock(mutex_);
    limit_ = bytes;
    while (cached_bytes_ > limit_) {
      const auto largest = std::prev(free_.end());
      cached_bytes_ -= largest->first;
      std::free(largest->second);
      free_.erase(largest);
    }
  }

  std::size_t cached_bytes() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return cached_bytes_;
  }

 private:
  BufferPool() = default;

  static bool pooled(std::size_t bytes) { return RESNET_BUFFER_POOL_ENABLED && bytes >= kMinPooledBytes; }

  std::mutex mutex_;
  std::multimap<std::size_t, void*> free_;  // cached blocks by size
  std::size_t cached_bytes_ = 0;
  std::size_t limit_ = kDefaultLimit;
};

// Returns the tensor buffers the pool keeps for reuse to the system.
inline void release_cached_buffers() {
  BufferPool::instance().release_cached_buffers();
}

}  // namespace resnet
