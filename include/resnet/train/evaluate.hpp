#pragma once
// evaluate(model, dataset, batch_size): a model's loss and accuracy over a whole dataset, in eval mode, as a
// PyTorch evaluation loop does under model.eval() and torch.no_grad(): batches in order, without
// augmentation, normalised with the dataset's statistics (data/loader.hpp).
//
//   train::Evaluation test = train::evaluate(model, splits.test, 256);
//   std::printf("test loss %.4f, accuracy %.2f%%\n", test.loss, 100 * test.accuracy);
//
// The loss is CrossEntropyLoss without label smoothing, averaged over the images; every module of the model
// is left in the mode it was in.

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
};

// Model: any module whose forward takes [B, C, H, W] images to [B, classes] logits.
template <typename Model>
Evaluation evaluate(Model& model, const data::Dataset& dataset, int batch_size) {
  using T = typename Model::Scalar;
  const nn::EvalModeGuard<Model> eval(model);
  data::BatchLoader<T> loader(dataset, {batch_size, false, false, {}, 0});
  nn::CrossEntropyLoss<T> loss;
  Evaluation result;
  result.correct.assign(dataset.class_names.size(), 0);
  result.total.assign(dataset.class_names.size(), 0);
  double loss_sum = 0;
  std::int64_t correct = 0;
  data::Batch<T> batch;
  loader.start_epoch(0);
  while (loader.next(batch)) {
    const Tensor<T> logits = model.forward(batch.images);
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
  result.loss = loss_sum / static_cast<double>(dataset.size());
  result.accuracy = static_cast<double>(correct) / static_cast<double>(dataset.size());
  return result;
}

}  // namespace resnet::train
