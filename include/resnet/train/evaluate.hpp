#pragma once
// evaluate(model, dataset, batch_size): a model's loss and accuracy over a whole dataset, in eval mode, as a
// PyTorch evaluation loop does under model.eval() and torch.no_grad(): batches in order, without
// augmentation, normalised with the dataset's statistics (data/loader.hpp).
//
//   train::Evaluation test = train::evaluate(model, splits.test, 256);
//   std::printf("test loss %.4f, accuracy %.2f%%\n", test.loss, 100 * test.accuracy);
//
// The loss is CrossEntropyLoss without label smoothing, averaged over the images; every module of the model
// is left in the mode it was in. TestTime::Flip averages each image's logits with its mirror image's. With a
// shard (data/loader.hpp), a data-parallel process evaluates its share of the images: `images`, the loss sum
// and the per-class counts then add up over the processes (merge).

#include <algorithm>
#include <cstdint>
#include <vector>

#include "resnet/core/tensor.hpp"
#include "resnet/data/dataset.hpp"
#include "resnet/data/loader.hpp"
#include "resnet/nn/cross_entropy_loss.hpp"
#include "resnet/nn/functional.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::train {

struct Evaluation {
  double loss = 0, accuracy = 0;
  std::vector<std::int64_t> correct, total;  // per class, index = label
  std::int64_t images = 0;                   // evaluated
};

// Test-time augmentation. Flip: each image's logits are the mean of its own and its mirror image's
// (horizontal flip), as airbench evaluates; twice the forward passes.
enum class TestTime { Plain, Flip };

// [B, C, H, W] -> the same images mirrored left to right.
template <typename T>
Tensor<T> mirrored(const Tensor<T>& images) {
  Tensor<T> out(images.shape());
  const std::int64_t W = images.shape().back(), rows = images.numel() / W;
  const T* in = images.cdata();
  T* o = out.data();
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t x = 0; x < W; ++x)
      o[r * W + x] = in[r * W + W - 1 - x];
  return out;
}

// Model: any module whose forward takes [B, C, H, W] images to [B, classes] logits.
template <typename Model>
Evaluation evaluate(Model& model, const data::Dataset& dataset, int batch_size, data::Shard shard = {},
                    TestTime test_time = TestTime::Plain) {
  using T = typename Model::Scalar;
  const nn::EvalModeGuard<Model> eval(model);
  data::LoaderOptions options{batch_size, false, false, {}, 0};
  options.shard = shard;
  data::BatchLoader<T> loader(dataset, options);
  nn::CrossEntropyLoss<T> loss;
  Evaluation result;
  result.correct.assign(dataset.class_names.size(), 0);
  result.total.assign(dataset.class_names.size(), 0);
  double loss_sum = 0;
  std::int64_t correct = 0;
  data::Batch<T> batch;
  loader.start_epoch(0);
  while (loader.next(batch)) {
    if (batch.size() == 0) continue;  // a shard's share of a last batch smaller than the shard count
    result.images += batch.size();
    Tensor<T> logits = model.forward(batch.images);
    if (test_time == TestTime::Flip) {
      const Tensor<T> flipped = model.forward(mirrored(batch.images));
      T* l = logits.data();
      for (std::int64_t i = 0; i < logits.numel(); ++i)
        l[i] = (l[i] + flipped.cdata()[i]) / 2;
    }
    loss_sum += static_cast<double>(loss.forward(logits, batch.labels)) * static_cast<double>(batch.size());
    const std::vector<int> predicted = nn::argmax(logits);
    for (std::size_t n = 0; n < predicted.size(); ++n) {
      const auto label = static_cast<std::size_t>(batch.labels[n]);
      ++result.total[label];
      if (predicted[n] == batch.labels[n]) {
        ++result.correct[label];
        ++correct;
      }
    }
  }
  const double images = static_cast<double>(std::max<std::int64_t>(result.images, 1));
  result.loss = loss_sum / images;
  result.accuracy = static_cast<double>(correct) / images;
  return result;
}

// The evaluation of all the shards' images together, from each shard's: `sum` adds a vector of doubles over
// the processes, in place (a data-parallel run's allreduce). Every process gets the same result.
template <typename Sum>
Evaluation merge(const Evaluation& shard, Sum&& sum) {
  const std::size_t classes = shard.correct.size();
  std::vector<double> totals{shard.loss * static_cast<double>(shard.images),
                             static_cast<double>(shard.images)};
  for (std::size_t c = 0; c < classes; ++c) {
    totals.push_back(static_cast<double>(shard.correct[c]));
    totals.push_back(static_cast<double>(shard.total[c]));
  }
  sum(totals.data(), static_cast<std::int64_t>(totals.size()));
  Evaluation merged;
  merged.images = static_cast<std::int64_t>(totals[1]);
  std::int64_t correct = 0;
  for (std::size_t c = 0; c < classes; ++c) {
    merged.correct.push_back(static_cast<std::int64_t>(totals[2 + 2 * c]));
    merged.total.push_back(static_cast<std::int64_t>(totals[3 + 2 * c]));
    correct += merged.correct.back();
  }
  const double images = static_cast<double>(std::max<std::int64_t>(merged.images, 1));
  merged.loss = totals[0] / images;
  merged.accuracy = static_cast<double>(correct) / images;
  return merged;
}

}  // namespace resnet::train
