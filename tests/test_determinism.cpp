// Training is bitwise reproducible whatever the thread count: the same seed gives the same parameters,
// BatchNorm statistics and momentum after several SGD steps on 1, 2 or 3 threads (README "Determinism"), in
// fp32 and in bf16 on each instruction set the CPU has.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "support/isa_cap.hpp"

namespace {

using resnet::Tensor;

// Everything a run leaves: each step's loss, then every parameter, buffer and momentum value, with its name.
struct Trace {
  std::vector<float> losses;
  std::vector<std::string> names;
  std::vector<std::vector<float>> values;
};

Trace train_steps(int threads, resnet::Precision precision = resnet::Precision::FP32) {
  resnet::set_num_threads(threads);
  // Width 8 and 12 CIFAR images: the convolutions split into pixel pieces, channel blocks, image groups
  // and several weight-gradient slots (kernels/conv2d.hpp), every way the thread count could leak in.
  resnet::models::ResNet<float> model({2, 2, 2, 2}, 10, resnet::models::Stem::Cifar, 3, /*seed=*/11, 8);
  model.set_precision(precision);
  resnet::optim::SGD<float> sgd(resnet::optim::decay_and_no_decay_groups(model.named_parameters(), 5e-4),
                                0.05, 0.9, /*nesterov=*/true);
  resnet::nn::CrossEntropyLoss<float> loss(0.1);
  resnet::Rng rng(3);
  Tensor<float> images({12, 3, 32, 32});
  std::vector<int> labels(12);
  Trace trace;
  for (int step = 0; step < 4; ++step) {
    images.fill_normal(rng);
    for (int& label : labels)
      label = static_cast<int>(rng.below(10));
    sgd.zero_grad();
    trace.losses.push_back(loss.forward(model.forward(images), labels));
    model.backward(loss.backward());
    sgd.step();
  }
  const auto record = [&](const std::string& name, const Tensor<float>& t) {
    trace.names.push_back(name);
    trace.values.emplace_back(t.data(), t.data() + t.numel());
  };
  for (const auto& p : model.named_parameters())
    record(p.name, *p.value);
  for (const auto& b : model.named_buffers())
    record(b.name, *b.value);
  const auto& params = sgd.params();
  for (std::size_t i = 0; i < params.size(); ++i)
    record("momentum of " + params[i].name, sgd.momentum_buffers()[i]);
  return trace;
}

void expect_equal_traces(const Trace& one, const Trace& other, const std::string& what) {
  EXPECT_EQ(other.losses, one.losses) << what;
  ASSERT_EQ(other.names, one.names);
  for (std::size_t i = 0; i < one.values.size(); ++i)
    EXPECT_EQ(other.values[i], one.values[i]) << one.names[i] << " differs: " << what;
}

}  // namespace

TEST(Determinism, Bf16StepsGiveBitwiseEqualStateOnOneTwoAndThreeThreadsOnEveryPath) {
  const int threads_before = resnet::num_threads();
  const Trace fp32 = train_steps(1);
  for (const resnet::Isa isa : resnet::testing::isas_of_this_cpu()) {
    const resnet::testing::IsaCap cap(isa);
    const Trace one = train_steps(1, resnet::Precision::BF16);
    for (int threads : {2, 3})
      expect_equal_traces(one, train_steps(threads, resnet::Precision::BF16),
                          std::to_string(threads) + " threads, " + resnet::isa_name(isa));
    EXPECT_NE(one.losses, fp32.losses) << "bf16 changed nothing on " << resnet::isa_name(isa);
  }
  resnet::set_num_threads(threads_before);
}

TEST(Determinism, SgdStepsGiveBitwiseEqualStateOnOneTwoAndThreeThreads) {
  const int threads_before = resnet::num_threads();
  const Trace one = train_steps(1);
  for (int threads : {2, 3})
    expect_equal_traces(one, train_steps(threads), std::to_string(threads) + " threads");
  resnet::set_num_threads(threads_before);
  // The steps did move everything the test compares: running statistics and momentum are not at their start.
  const auto find = [&](const std::string& name) {
    for (std::size_t i = 0; i < one.names.size(); ++i)
      if (one.names[i] == name) return one.values[i];
    return std::vector<float>{};
  };
  EXPECT_EQ(find("bn1.num_batches_tracked"), std::vector<float>{4});
  EXPECT_NE(find("layer4.1.bn2.running_var"), std::vector<float>(64, 1.0f));
  EXPECT_NE(find("momentum of fc.weight"), std::vector<float>(640, 0.0f));
}
