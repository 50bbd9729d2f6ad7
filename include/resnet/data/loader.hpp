#pragma once
// BatchLoader<T>: turns a Dataset into float batches [B, C, H, W] + labels, epoch by epoch, like PyTorch's
// DataLoader(dataset, batch_size, shuffle, drop_last) over a dataset with RandomCrop/RandomHorizontalFlip/
// ToTensor/Normalize transforms.
//
//   BatchLoader<float> loader(train, {128, true, false, Augmentation::cifar(), seed});
//   for (std::int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     Batch<float> batch;
//     while (loader.next(batch)) { ... batch.images, batch.labels ... }
//   }
//
// Randomness is a pure function of (seed, epoch, position): epoch e's order is a Fisher-Yates shuffle drawn
// from an Rng seeded with mix(seed, e), and the image at position p of that order is augmented with an Rng
// seeded with mix(seed, e, p). So the loader's whole state is three integers (LoaderState): saving them
// in a checkpoint and restoring them resumes the same sequence, mid-epoch included, and a batch's contents
// cannot depend on the batch size of earlier batches, on the background thread or on the thread count.
//
// A data-parallel run gives each process a shard (LoaderOptions::shard), as torch's DistributedSampler: every
// process draws the same epoch order and the same batches of batch_size positions, and process r of N takes
// the positions r, r + N, r + 2N, ... of each batch, augmented by their global position. So N processes see,
// update by update, exactly the images one process with the whole batch sees.
//
// With prefetch on, one worker thread (started once, alive as long as the loader) assembles the next batch
// while the caller computes on the current one. Each batch owns fresh storage, so a batch the caller keeps
// (or a layer caches for backward) is never overwritten.

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/rng.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/data/dataset.hpp"
#include "resnet/data/transforms.hpp"

namespace resnet::data {

// Auto: prefetch when a batch holds at least kPrefetchMinElements values; below that, handing a batch to
// another thread costs about as much as building it.
enum class Prefetch { Auto, Always, Never };
inline constexpr std::int64_t kPrefetchMinElements = 1 << 15;

// Process `index` of `count` in a data-parallel run: which positions of each batch it takes.
struct Shard {
  std::int64_t index = 0;
  std::int64_t count = 1;
};

struct LoaderOptions {
  std::int64_t batch_size = 128;  // of the whole batch, over every shard
  bool shuffle = true;
  bool drop_last = false;     // drop the last batch when it would be smaller than batch_size
  Augmentation augmentation;  // none by default; Augmentation::cifar() for the standard recipe
  std::uint64_t seed = 0;
  Prefetch prefetch = Prefetch::Auto;
  Shard shard = {};  // this process's share of each batch
};

// Where the loader is: the next batch to hand out is batch `batch` of epoch `epoch`.
struct LoaderState {
  std::uint64_t seed = 0;
  std::int64_t epoch = 0;
  std::int64_t batch = 0;
};

template <typename T>
struct Batch {
  Tensor<T> images;                   // [B, C, H, W], normalised (and augmented when the loader augments)
  std::vector<int> labels;            // B
  std::vector<std::int64_t> indices;  // B dataset indices, in batch order
  std::int64_t epoch = 0;
  std::int64_t index = 0;  // batch number within the epoch
  std::int64_t size() const { return static_cast<std::int64_t>(labels.size()); }
};

namespace detail {
// splitmix64's finaliser: a bijection that scatters nearby inputs.
inline std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
// A seed for one random stream: the epoch's shuffle (position = -1) or one image's augmentation.
inline std::uint64_t stream_seed(std::uint64_t seed, std::int64_t epoch, std::int64_t position) {
  return mix64(mix64(mix64(seed) ^ static_cast<std::uint64_t>(epoch)) ^ static_cast<std::uint64_t>(position));
}
}  // namespace detail

// Epoch `epoch`'s order of the indices 0..n-1: identity without shuffling, else Fisher-Yates (as
// torch.randperm draws a uniform permutation) from the epoch's own Rng.
inline std::vector<std::int64_t> epoch_order(std::int64_t n, bool shuffle, std::uint64_t seed,
                                             std::int64_t epoch) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  if (!shuffle) return order;
  Rng rng(detail::stream_seed(seed, epoch, -1));
  for (std::int64_t i = n - 1; i > 0; --i)
    std::swap(order[static_cast<std::size_t>(i)],
              order[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(i) + 1))]);
  return order;
}

template <typename T>
class BatchLoader {
 public:
  BatchLoader(Dataset dataset, LoaderOptions options) : dataset_(std::move(dataset)), options_(options) {
    dataset_.validate();
    check(options_.batch_size >= 1, "BatchLoader: batch_size must be at least 1, got ", options_.batch_size);
    check(options_.augmentation.crop_padding >= 0, "BatchLoader: negative crop padding ",
          options_.augmentation.crop_padding);
    check(
        options_.shard.count >= 1 && options_.shard.index >= 0 && options_.shard.index < options_.shard.count,
        "BatchLoader: shard ", options_.shard.index, " of ", options_.shard.count, " does not exist");
    check(!options_.drop_last || dataset_.size() >= options_.batch_size,
          "BatchLoader: drop_last with batch_size ", options_.batch_size, " leaves no batch of the ",
          dataset_.size(), " images of '", dataset_.name, "'");
    const std::int64_t image = dataset_.channels() * dataset_.height() * dataset_.width();
    background_ =
        options_.prefetch == Prefetch::Always ||
        (options_.prefetch == Prefetch::Auto && options_.batch_size * image >= kPrefetchMinElements);
    order_ = std::make_shared<const std::vector<std::int64_t>>(
        epoch_order(dataset_.size(), options_.shuffle, options_.seed, 0));
    if (background_) worker_ = std::thread([this] { work(); });
  }

  ~BatchLoader() {
    if (!worker_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_worker_.notify_one();
    worker_.join();
  }
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  const Dataset& dataset() const { return dataset_; }
  const LoaderOptions& options() const { return options_; }
  bool prefetching() const { return background_; }

  std::int64_t batches_per_epoch() const {
    const std::int64_t n = dataset_.size(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }
  std::int64_t samples_per_epoch() const {
    return options_.drop_last ? batches_per_epoch() * options_.batch_size : dataset_.size();
  }

  // Positions the loader at batch `first_batch` of epoch `epoch` (0-based) and, with prefetch, starts
  // building that batch.
  void start_epoch(std::int64_t epoch, std::int64_t first_batch = 0) {
    check(epoch >= 0, "BatchLoader.start_epoch: negative epoch ", epoch);
    check(first_batch >= 0 && first_batch <= batches_per_epoch(), "BatchLoader.start_epoch: batch ",
          first_batch, " out of range [0, ", batches_per_epoch(), "]");
    std::unique_lock<std::mutex> lock(mutex_);
    job_done_.wait(lock, [this] { return !job_; });  // let a batch in progress finish, then drop it
    ready_.reset();
    if (epoch != epoch_)
      order_ = std::make_shared<const std::vector<std::int64_t>>(
          epoch_order(dataset_.size(), options_.shuffle, options_.seed, epoch));
    epoch_ = epoch;
    next_ = first_batch;
    request(lock);
  }

  // The next batch of the current epoch into `batch`; false (and `batch` untouched) when the epoch is done.
  bool next(Batch<T>& batch) {
    if (next_ >= batches_per_epoch()) return false;
    if (!background_) {
      batch = assemble(*order_, epoch_, next_++);
      return true;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    if (!job_ && !ready_) request(lock);
    job_done_.wait(lock, [this] { return !job_; });
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    batch = std::move(*ready_);
    ready_.reset();
    ++next_;
    request(lock);
    return true;
  }

  LoaderState state() const { return {options_.seed, epoch_, next_}; }
  void restore(const LoaderState& state) {
    check(state.seed == options_.seed, "BatchLoader.restore: state was saved with seed ", state.seed,
          ", this loader has seed ", options_.seed);
    start_epoch(state.epoch, state.batch);
  }

  // The number of images of batch `index` over every shard (batch_size but for a last, partial one).
  std::int64_t whole_batch_size(std::int64_t index) const {
    const std::int64_t begin = index * options_.batch_size;
    return std::clamp<std::int64_t>(dataset_.size() - begin, 0, options_.batch_size);
  }

  // Batch `index` of an epoch with the given order (this shard's positions of it), built on the calling
  // thread.
  Batch<T> assemble(const std::vector<std::int64_t>& order, std::int64_t epoch, std::int64_t index) const {
    const std::int64_t begin = index * options_.batch_size + options_.shard.index;
    const std::int64_t end = index * options_.batch_size + whole_batch_size(index);
    const std::int64_t step = options_.shard.count;
    const std::int64_t count = begin < end ? (end - begin + step - 1) / step : 0;
    const std::int64_t channels = dataset_.channels(), height = dataset_.height(), width = dataset_.width();
    const std::int64_t image = channels * height * width;
    Batch<T> batch{Tensor<T>({count, channels, height, width}), {}, {}, epoch, index};
    std::vector<std::uint8_t> augmented(static_cast<std::size_t>(image));
    for (std::int64_t position = begin, k = 0; position < end; position += step, ++k) {
      const std::int64_t i = order[static_cast<std::size_t>(position)];
      const std::uint8_t* pixels = dataset_.images.data() + i * image;
      if (options_.augmentation.active()) {
        Rng rng(detail::stream_seed(options_.seed, epoch, position));
        crop_flip_image(pixels, channels, height, width, options_.augmentation.crop_padding,
                        sample_crop_flip(options_.augmentation, rng), augmented.data());
        pixels = augmented.data();
      }
      normalize_image(pixels, channels, height * width, dataset_.normalization,
                      batch.images.data() + k * image);
      batch.labels.push_back(dataset_.labels[static_cast<std::size_t>(i)]);
      batch.indices.push_back(i);
    }
    return batch;
  }

 private:
  // Asks the worker for batch next_ unless the epoch is over. Caller holds the lock; no job is running.
  void request(std::unique_lock<std::mutex>&) {
    if (!background_ || next_ >= batches_per_epoch()) return;
    job_ = Job{order_, epoch_, next_};
    wake_worker_.notify_one();
  }

  void work() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_worker_.wait(lock, [this] { return stop_ || (job_ && !ready_ && !error_); });
      if (stop_) return;
      const Job job = *job_;
      lock.unlock();
      std::optional<Batch<T>> result;
      std::exception_ptr error;
      try {
        result = assemble(*job.order, job.epoch, job.batch);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      ready_ = std::move(result);
      error_ = error;
      job_.reset();
      job_done_.notify_all();
    }
  }

  struct Job {
    std::shared_ptr<const std::vector<std::int64_t>> order;
    std::int64_t epoch;
    std::int64_t batch;
  };

  Dataset dataset_;  // shares the caller's image storage (Tensor copies share), owns its labels
  LoaderOptions options_;
  bool background_ = false;
  std::shared_ptr<const std::vector<std::int64_t>> order_;  // of epoch_; shared with a job in progress
  std::int64_t epoch_ = 0;
  std::int64_t next_ = 0;

  std::mutex mutex_;
  std::condition_variable wake_worker_;
  std::condition_variable job_done_;
  std::optional<Job> job_;  // requested or in progress
  std::optional<Batch<T>> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace resnet::data
