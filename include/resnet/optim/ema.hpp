#pragma once
// ExponentialMovingAverage: a running average of a model's weights over its updates, evaluated in their place
// (Polyak averaging, as timm's ModelEmaV2 or torch.optim.swa_utils.AveragedModel with an EMA avg_fn). After
// each optimizer step, for every parameter and floating-point buffer (BatchNorm's running statistics, so that
// the average evaluates with statistics that follow its weights):
//   average = d * average + (1 - d) * value,   d = min(decay, (1 + n) / (10 + n))
// where n counts the updates averaged so far: TensorFlow's ExponentialMovingAverage warm-up, so that a short
// run's average does not keep its initial weights. BatchNorm's num_batches_tracked is copied, not averaged.
//
// clang-format off
//   optim::ExponentialMovingAverage<float> ema(model, 0.99);
//   sgd.step(); ema.update(model);                                   // each update
//   ema.swap(model); train::evaluate(model, test, 256); ema.swap(model);
//   checkpoints.save(model, sgd, at, {}, ema.tensors());  ...  ema.restore(resumed->tensors);
// clang-format on

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/io/safetensors.hpp"
#include "resnet/io/safetensors_file.hpp"

namespace resnet::optim {

template <typename T>
class ExponentialMovingAverage {
 public:
  // Starts as a copy of the model's state. decay in [0, 1): the weight of the past at each update.
  template <typename Model>
  ExponentialMovingAverage(Model& model, double decay) : decay_(decay) {
    check(decay >= 0 && decay < 1, "ExponentialMovingAverage: decay must be in [0, 1), got ", decay);
    for (const auto& entry : io::state_entries(model)) {
      names_.push_back(entry.name);
      averages_.push_back(entry.value->clone());
      averaged_.push_back(!io::detail::is_integer_buffer(entry.name));
    }
  }

  // After an optimizer step: folds the model's state into the average.
  template <typename Model>
  void update(Model& model) {
    const auto entries = matching_entries(model, "update");
    const double d =
        std::min(decay_, (1.0 + static_cast<double>(updates_)) / (10.0 + static_cast<double>(updates_)));
    const T keep = static_cast<T>(d), take = static_cast<T>(1 - d);
    for (std::size_t i = 0; i < entries.size(); ++i) {
      T* average = averages_[i].data();
      const T* value = entries[i].value->cdata();
      const std::int64_t n = averages_[i].numel();
      if (!averaged_[i]) {
        std::copy_n(value, n, average);
        continue;
      }
#pragma omp parallel for schedule(static) if (n > 65536)
      for (std::int64_t j = 0; j < n; ++j)
        average[j] = keep * average[j] + take * value[j];
    }
    ++updates_;
  }

  // Exchanges the model's state and the average: call once to evaluate the average, again to go back.
  template <typename Model>
  void swap(Model& model) {
    const auto entries = matching_entries(model, "swap");
    for (std::size_t i = 0; i < entries.size(); ++i)
      std::swap_ranges(averages_[i].data(), averages_[i].data() + averages_[i].numel(),
                       entries[i].value->data());
  }

  // The average as named tensors "ema.<state-dict name>", and "ema.updates" (the n above), for a checkpoint.
  std::vector<io::NamedTensor> tensors() const {
    std::vector<io::NamedTensor> out;
    for (std::size_t i = 0; i < names_.size(); ++i)
      out.push_back(
          io::encode(kPrefix + names_[i], averages_[i], averaged_[i] ? io::dtype_of<T>() : io::DType::I64));
    Tensor<double> updates({1}, static_cast<double>(updates_));
    out.push_back(io::encode(kPrefix + std::string("updates"), updates, io::DType::I64));
    return out;
  }

  // Restores what tensors() wrote (other names in `saved` are ignored). Every name and shape is checked
  // first: on an error the average is unchanged.
  void restore(const std::vector<io::NamedTensor>& saved) {
    std::map<std::string, const io::NamedTensor*> by_name;
    for (const auto& t : saved)
      by_name[t.name] = &t;
    const auto find = [&](const std::string& name, const std::vector<std::int64_t>& shape) {
      const auto it = by_name.find(kPrefix + name);
      check(it != by_name.end(), "ExponentialMovingAverage.restore: no tensor ", kPrefix, name,
            " (was the checkpoint written with the average on?)");
      check(it->second->shape == shape, "ExponentialMovingAverage.restore: ", kPrefix, name, " has shape ",
            shape_string(it->second->shape), ", the model's ", shape_string(shape));
      return it->second;
    };
    std::vector<const io::NamedTensor*> found;
    for (std::size_t i = 0; i < names_.size(); ++i)
      found.push_back(find(names_[i], averages_[i].shape()));
    const io::NamedTensor* updates = find("updates", {1});
    for (std::size_t i = 0; i < names_.size(); ++i)
      averages_[i] = io::decode<T>(*found[i]);
    updates_ = static_cast<std::int64_t>(io::decode<double>(*updates)[0]);
  }

  double decay() const {
    return decay_;
  }
  std::int64_t updates() const {
    return updates_;
  }

 private:
  static constexpr const char* kPrefix = "ema.";

  template <typename Model>
  std::vector<nn::StateEntry<T>> matching_entries(Model& model, const char* where) const {
    auto entries = io::state_entries(model);
    check(entries.size() == names_.size(), "ExponentialMovingAverage.", where, ": the model has ",
          entries.size(), " state tensors, the average ", names_.size());
    for (std::size_t i = 0; i < entries.size(); ++i)
      check(entries[i].name == names_[i] && entries[i].value->shape() == averages_[i].shape(),
            "ExponentialMovingAverage.", where, ": the model's ", entries[i].name, " ",
            shape_string(entries[i].value->shape()), " is not the average's ", names_[i], " ",
            shape_string(averages_[i].shape()));
    return entries;
  }

  double decay_;
  std::int64_t updates_ = 0;
  std::vector<std::string> names_;
  std::vector<Tensor<T>> averages_;
  std::vector<bool> averaged_;  // false: an integer buffer, copied
};

}  // namespace resnet::optim
