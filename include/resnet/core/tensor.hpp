#pragma once
// Tensor<T>: a contiguous, row-major (NCHW for images), 64-byte aligned array with a shape.
//
// Copies share storage, like a torch.Tensor: `Tensor b = a;`, `a.reshape(...)` and `Tensor::view(a, ...)` (a
// slice of a's elements) see the same elements. `clone()` makes an independent deep copy. Layers rely on this
// to keep what backward needs without copying: they hold a Tensor that shares the input's storage, so a
// temporary argument stays alive.
//
// version() changes whenever the elements may have changed, like torch.Tensor._version: every non-const
// access (data(), operator[], at(), fill*, matrix(), vector()) gives the storage a new number from one
// process-wide counter, so a number is never reused, by this storage or any other. Views of one allocation
// share its version: a write through any of them is a write to all (nn/flat_parameters.hpp). Something built
// from a tensor (Conv2d's packed weight) is still right while the version it was built from is the current
// one. A write through a pointer taken before it was built (kept across a forward, say) is not seen: take
// data() again for every pass that writes. Read-only access keeps the version: cdata(), or any const access,
// so reading a weight through cdata() does not make an eval-mode Conv2d pack it again.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <memory>
#include <new>
#include <vector>

#include "resnet/core/buffer_pool.hpp"
#include "resnet/core/eigen.hpp"
#include "resnet/core/error.hpp"
#include "resnet/core/rng.hpp"

namespace resnet {

namespace detail {
// The tensor versions of the whole process, for every element type: each call a number never given before.
inline std::uint64_t next_tensor_version() {
  static std::atomic<std::uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}
}  // namespace detail

template <typename T>
using MatrixMap =
    Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, Eigen::Aligned64>;
template <typename T>
using ConstMatrixMap =
    Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, Eigen::Aligned64>;

inline constexpr std::size_t kTensorAlignment = 64;

template <typename T>
class Tensor {
 public:
  Tensor() = default;

  // Zero-filled.
  explicit Tensor(std::vector<std::int64_t> shape) : Tensor(std::move(shape), T(0)) {}

  Tensor(std::vector<std::int64_t> shape, T value) : shape_(std::move(shape)), numel_(count(shape_)) {
    storage_ = allocate(numel_);
    std::fill(storage_->elements, storage_->elements + numel_, value);
  }

  // Elements left unset, like torch.empty: for an output a kernel assigns in full, where zero-filling first
  // would cost a pass over memory (a reused buffer holds the values of an earlier tensor).
  static Tensor uninitialized(std::vector<std::int64_t> shape) {
    Tensor t;
    t.numel_ = count(shape);
    t.shape_ = std::move(shape);
    t.storage_ = allocate(t.numel_);
    return t;
  }

  const std::vector<std::int64_t>& shape() const { return shape_; }
  std::int64_t dim() const { return static_cast<std::int64_t>(shape_.size()); }
  std::int64_t numel() const { return numel_; }
  bool empty() const { return storage_ == nullptr; }

  // Size of one dimension; negative indexes count from the end, as in PyTorch.
  std::int64_t size(std::int64_t d) const {
    const std::int64_t n = dim();
    check(d >= -n && d < n, "Tensor::size: dimension ", d, " out of range for shape ", shape_string(shape_));
    return shape_[static_cast<std::size_t>(d < 0 ? d + n : d)];
  }

  T* data() {
    if (storage_) storage_->version = detail::next_tensor_version();
    return elements();
  }
  const T* data() const { return elements(); }
  const T* cdata() const { return elements(); }  // read-only, on a const or non-const tensor alike

  // 0 for an empty tensor; see the header comment.
  std::uint64_t version() const { return storage_ ? storage_->version.load() : 0; }

  // Flat element access (bounds-checked; meant for tests and small loops, not kernels).
  T& operator[](std::int64_t i) { return data()[checked_flat(i)]; }
  const T& operator[](std::int64_t i) const { return elements()[checked_flat(i)]; }

  // Multi-index access, e.g. t.at({n, c, h, w}).
  T& at(std::initializer_list<std::int64_t> index) { return data()[offset(index)]; }
  const T& at(std::initializer_list<std::int64_t> index) const { return elements()[offset(index)]; }

  // Same storage, new shape; the element count must match.
  Tensor reshape(std::vector<std::int64_t> shape) const {
    check(count(shape) == numel_, "Tensor::reshape: cannot view ", shape_string(shape_), " (", numel_,
          " elements) as ", shape_string(shape));
    Tensor view = *this;
    view.shape_ = std::move(shape);
    return view;
  }

  // The elements [offset, offset + numel(shape)) of base's storage as a tensor of `shape`: one allocation
  // holding many tensors (nn/flat_parameters.hpp). The offset keeps the 64-byte alignment kernels rely on.
  static Tensor view(const Tensor& base, std::int64_t offset, std::vector<std::int64_t> shape) {
    const std::int64_t n = count(shape);
    check(offset >= 0 && offset <= base.numel_ && n <= base.numel_ - offset,
          "Tensor::view: ", shape_string(shape), " at offset ", offset, " does not fit in ", base.numel_,
          " elements");
    check(offset * static_cast<std::int64_t>(sizeof(T)) % static_cast<std::int64_t>(kTensorAlignment) == 0,
          "Tensor::view: offset ", offset, " is not on a ", kTensorAlignment, "-byte boundary");
    check(!base.empty(), "Tensor::view: the base tensor is empty");
    Tensor t;
    t.storage_ = base.storage_;
    t.offset_ = base.offset_ + offset;
    t.shape_ = std::move(shape);
    t.numel_ = n;
    return t;
  }

  Tensor clone() const {
    Tensor copy(shape_);
    std::copy(data(), data() + numel_, copy.data());
    return copy;
  }

  Tensor& fill(T value) {
    std::fill(data(), data() + numel_, value);
    return *this;
  }
  Tensor& fill_normal(Rng& rng, double mean = 0.0, double std = 1.0) {
    T* out = data();
    for (std::int64_t i = 0; i < numel_; ++i)
      out[i] = static_cast<T>(rng.normal(mean, std));
    return *this;
  }
  Tensor& fill_uniform(Rng& rng, double low, double high) {
    T* out = data();
    for (std::int64_t i = 0; i < numel_; ++i)
      out[i] = static_cast<T>(rng.uniform(low, high));
    return *this;
  }

  // The tensor as a row-major [rows, cols] matrix over the same memory (no copy).
  MatrixMap<T> matrix(std::int64_t rows, std::int64_t cols) {
    expect_matrix(rows, cols);
    return MatrixMap<T>(data(), rows, cols);
  }
  ConstMatrixMap<T> matrix(std::int64_t rows, std::int64_t cols) const {
    expect_matrix(rows, cols);
    return ConstMatrixMap<T>(data(), rows, cols);
  }
  // All elements as one column vector.
  Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>, Eigen::Aligned64> vector() { return {data(), numel_}; }
  Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>, Eigen::Aligned64> vector() const {
    return {data(), numel_};
  }

 private:
  // The element count. A shape whose size in bytes overflows int64 is refused: the count would wrap and the
  // allocation come out smaller than the writes into it.
  static std::int64_t count(const std::vector<std::int64_t>& shape) {
    std::int64_t n = 1;
    bool has_zero = false, overflow = false;
    for (std::int64_t d : shape) {
      check(d >= 0, "Tensor: negative dimension in shape ", shape_string(shape));
      has_zero = has_zero || d == 0;
      overflow = overflow || !product_is_at_most(n, d, kMaxElements, n);
    }
    if (has_zero) return 0;
    check(!overflow, "Tensor: shape ", shape_string(shape), " has more elements than fit in memory");
    return n;
  }

  static constexpr std::int64_t kMaxElements =
      std::numeric_limits<std::int64_t>::max() / static_cast<std::int64_t>(sizeof(T));

  // product = a * b when both are non-negative and it is at most `limit`; false otherwise.
  static bool product_is_at_most(std::int64_t a, std::int64_t b, std::int64_t limit, std::int64_t& product) {
    if (a < 0 || b < 0 || (a != 0 && b > limit / a)) return false;
    product = a * b;
    return true;
  }

  // The elements and their version, shared by the tensors that view them.
  struct Storage {
    T* elements;
    std::size_t bytes;  // as the BufferPool handed them out
    std::atomic<std::uint64_t> version;
    Storage(T* e, std::size_t b) : elements(e), bytes(b), version(detail::next_tensor_version()) {}
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;
    ~Storage() { BufferPool::instance().release(elements, bytes); }
  };

  T* elements() const { return storage_ ? storage_->elements + offset_ : nullptr; }

  static std::shared_ptr<Storage> allocate(std::int64_t n) {
    // Round up so aligned_alloc gets a multiple of the alignment; at least one element so data() is never
    // null. Large buffers come from (and go back to) the BufferPool.
    const std::size_t bytes = static_cast<std::size_t>(std::max<std::int64_t>(n, 1)) * sizeof(T);
    const std::size_t rounded = (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
    std::size_t size = 0;
    void* memory = BufferPool::instance().acquire(rounded, kTensorAlignment, size);
    try {
      return std::make_shared<Storage>(static_cast<T*>(memory), size);
    } catch (...) {
      BufferPool::instance().release(memory, size);
      throw;
    }
  }

  // Negative sizes whose product is numel (-1 x -6 for 6 elements) would give Eigen a negative size.
  void expect_matrix(std::int64_t rows, std::int64_t cols) const {
    std::int64_t product = 0;
    check(product_is_at_most(rows, cols, numel_, product) && product == numel_, "Tensor::matrix: ", rows, "x",
          cols, " does not match ", shape_string(shape_));
  }

  std::int64_t checked_flat(std::int64_t i) const {
    check(i >= 0 && i < numel_, "Tensor: flat index ", i, " out of range for ", numel_, " elements");
    return i;
  }

  std::int64_t offset(std::initializer_list<std::int64_t> index) const {
    check(index.size() == shape_.size(), "Tensor::at: ", index.size(), " indices for shape ",
          shape_string(shape_));
    std::int64_t flat = 0;
    std::size_t d = 0;
    for (std::int64_t i : index) {
      check(i >= 0 && i < shape_[d], "Tensor::at: index ", i, " out of range in dimension ", d, " of shape ",
            shape_string(shape_));
      flat = flat * shape_[d++] + i;
    }
    return flat;
  }

  std::shared_ptr<Storage> storage_;
  std::int64_t offset_ = 0;  // of the first element in the storage (a view)
  std::vector<std::int64_t> shape_;
  std::int64_t numel_ = 0;
};

}  // namespace resnet
