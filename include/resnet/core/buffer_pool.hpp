#pragma once
// The memory and state the library keeps between calls, all of it listed here. None of it changes a result;
// it is kept so that peak memory is one layer's need rather than the sum over layers, and so that a training
// loop allocates nothing after its first step.
// - BufferPool::instance() (below): process-wide, behind a mutex. Freed tensor blocks of 1 MB or more, up to
//   kDefaultLimit (4 GB) in all, kept for later tensors of about the same size. Lives until the process
//   ends; release_cached_buffers() gives the blocks back, BufferPool::set_limit caps them (0: no caching).
// - nn::Conv2d<T>::workspace() (nn/conv2d.hpp): one kernels::ConvWorkspace<T> per calling thread and element
//   type, shared by every Conv2d<T> that thread runs, with room for the OpenMP threads of its loops: im2col's
//   cols, products and weight-gradient partials or Winograd's tiles and transformed weight, the im2col table,
//   the flipped weight of an input gradient, and in bf16 the input, output gradient, cols and flipped weight
//   rounded to bfloat16. Layers run one after another, so one workspace sized for the largest conv serves
//   them all (tens of MB in ResNet18). It grows, never shrinks, and is freed only when its thread exits: for
//   the main thread, at the end of the process.
// - kernels::avx512::thread_buffer() (kernels/sgemm_avx512.hpp): our AVX-512 GEMMs' packing buffers, three
//   per thread that runs one (each OpenMP thread): B at most 256 x 1536 floats, A 256 x 144, the narrow
//   GEMM's sums about M x N. They grow, never shrink, and are freed when the thread exits. The bf16 GEMM
//   (kernels/bgemm_avx512.hpp) keeps its own set, and its portable path (kernels/gemm.hpp) two per thread
//   for op(A) and op(B) widened to float, on CPUs without AVX512-BF16.
// - The cap on the kernels' instruction sets (max_isa, core/cpu_features.hpp): RESNET_MAX_ISA or
//   set_max_isa, atomic; a setting, holding no memory.
// - The conv choices (kernels/conv_search.hpp): process-wide, behind a mutex, one small entry per conv key
//   searched (with search on: RESNET_CONV_SEARCH or set_conv_search, atomic) or loaded, until
//   clear_conv_choices. A search's scratch data of its shape is freed when it ends.
// - Per module, not shared: what a training-mode forward caches for backward, released by that backward;
//   in eval mode, each Conv2d's packed weight (52 MB for ResNet18 at batch 1), kept until its next forward
//   in training mode (or of a shape with no packed form) or its end; in bf16, each Conv2d's and Linear's
//   weight rounded to bfloat16 (half the weight's size), kept until the module runs in fp32 (Linear's rounded
//   input and output gradient live only during the pass that reads them). What they release goes to the pool.
// - Settings and counters, holding no memory: the thread count (set_num_threads, core/parallel.hpp), the
//   tensor version counter (core/tensor.hpp, atomic), the CPU features read once (cpu_features,
//   core/cpu_features.hpp), the temporary-name counter of io::AtomicFile (atomic).
// For a user: a model (any module) runs on one thread at a time; threads that run at once each need their
// own model, and then each uses its own scratch. Call set_num_threads before starting such threads, not
// while they run. After a run, release_cached_buffers() returns the pool's blocks; the per-thread scratch
// stays until its thread ends, and an eval-mode model's packed weights until it trains or is destroyed.
//
// The pool. glibc serves blocks above its mmap threshold (at most 32 MB) with fresh mmap pages, so a 33 MB
// activation (CIFAR ResNet18 at batch 128) would page-fault on every step and be zeroed twice, by the kernel
// and then by us. Like PyTorch's CUDA caching allocator, freed blocks are kept for reuse by a request of
// about the same size (up to 1/8 larger) rather than returned to the system, up to a byte limit. Under
// AddressSanitizer the pool is off, so that a use after free is still reported.

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
