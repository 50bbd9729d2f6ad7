// The data-parallel pieces on every rank of an MPI job (CTest runs it under mpirun with 2 ranks): the state
// broadcast, the bucketed gradient reduction against one plain allreduce, and the flat parameter layout they
// rely on. A test passes only if it passes on every rank (main, below).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "resnet/distributed/communicator.hpp"
#include "resnet/distributed/gradient_reducer.hpp"
#include "resnet/distributed/sync_batchnorm.hpp"
#include "resnet/resnet.hpp"
#include "support/gradcheck.hpp"

namespace {

using resnet::Tensor;
using namespace resnet;

resnet::distributed::Communicator* world = nullptr;

models::ResNet<float> narrow_resnet(std::uint64_t seed) {
  return models::ResNet<float>(
      models::ResNetOptions({2, 2, 2, 2}).stem_width(8).num_classes(10).stem(models::Stem::Cifar).seed(seed));
}

// One training step's gradients on this rank's own random batch (4 images).
template <typename Model>
Tensor<float> backward_on_own_batch(Model& net, const nn::GradientsReady& ready = {}) {
  Rng rng(100 + static_cast<std::uint64_t>(world->rank()));
  Tensor<float> x({4, 3, 16, 16});
  x.fill_normal(rng);
  net.train();
  net.zero_grad();
  Tensor<float> logits = net.forward(x);
  Tensor<float> grad(logits.shape());
  grad.fill_normal(rng);
  net.backward(grad, nn::InputGrad::Skip, ready);
  return net.flat_parameters().grads.clone();
}

// rank 0's copy of `values`, on every rank.
std::vector<float> rank0s(const float* values, std::int64_t count) {
  std::vector<float> copy(values, values + count);
  world->broadcast(copy.data(), count, 0);
  return copy;
}

TEST(Distributed, TheJobHasMoreThanOneRank) {
  EXPECT_GE(world->size(), 2) << "run under mpirun -np 2 or more";
}

// A failed MPI call is a resnet::Error naming the call, not the end of the job: every rank asks for a root
// that does not exist, and every rank gets the error.
TEST(Distributed, AFailedMpiCallThrowsNamingIt) {
  float value = 1;
  try {
    world->broadcast(&value, 1, world->size());
    ADD_FAILURE() << "a broadcast from rank " << world->size() << " of " << world->size() << " did not throw";
  } catch (const resnet::Error& e) {
    EXPECT_NE(std::string(e.what()).find("MPI_Bcast failed"), std::string::npos) << e.what();
  }
}

TEST(Distributed, BroadcastStateGivesEveryRankRankZerosModel) {
  auto net = narrow_resnet(static_cast<std::uint64_t>(world->rank()));  // a different model on each rank
  net.train();
  Tensor<float> x({2, 3, 8, 8}, 0.5f);
  net.forward(x);  // running statistics move away from their initial values
  distributed::broadcast_state(*world, net);
  for (auto& p : net.named_parameters()) {
    const std::vector<float> expected = rank0s(p.value->cdata(), p.value->numel());
    ASSERT_TRUE(std::equal(expected.begin(), expected.end(), p.value->cdata())) << p.name;
  }
  for (auto& b : net.named_buffers()) {
    const std::vector<float> expected = rank0s(b.value->cdata(), b.value->numel());
    ASSERT_TRUE(std::equal(expected.begin(), expected.end(), b.value->cdata())) << b.name;
  }
}

// Many small buckets started during backward sum exactly what one allreduce of all gradients sums: each
// element is the same two-operand sum either way. (The buckets reduce in place as backward goes, so the local
// gradients are taken from a backward without the reducer.)
TEST(Distributed, BucketedReductionDuringBackwardEqualsOnePlainAllreduce) {
  auto net = narrow_resnet(7);
  distributed::GradientReducer<float> reducer(*world, net, 16 << 10);
  ASSERT_GT(reducer.buckets().size(), 5u);
  Tensor<float> expected = backward_on_own_batch(net);
  world->allreduce_sum(expected.data(), expected.numel());
  const float scale = 1.0f / static_cast<float>(world->size());
  for (std::int64_t i = 0; i < expected.numel(); ++i)
    expected[i] *= scale;
  for (int with_overlap = 0; with_overlap < 2; ++with_overlap) {
    backward_on_own_batch(net, with_overlap ? reducer.ready() : nn::GradientsReady{});
    // With ready(), backward itself starts every bucket (the last one when the stem is done).
    EXPECT_EQ(reducer.started(), with_overlap ? reducer.buckets().size() : 0u);
    reducer.finish();
    EXPECT_EQ(reducer.started(), 0u);
    const float* reduced = net.flat_parameters().grads.cdata();
    for (std::int64_t i = 0; i < expected.numel(); ++i)
      ASSERT_EQ(reduced[i], expected[i]) << "element " << i << (with_overlap ? ", overlapped" : "");
    // And every rank now holds the same gradients.
    const std::vector<float> rank0 = rank0s(reduced, expected.numel());
    ASSERT_TRUE(std::equal(rank0.begin(), rank0.end(), reduced));
  }
}

// The buckets tile the flat gradients from the end back, at parameter boundaries, each of at least the
// requested size but the first.
TEST(Distributed, BucketsCoverTheGradientsFromTheLastParameterBack) {
  auto net = narrow_resnet(1);
  const std::int64_t bytes = 64 << 10;
  distributed::GradientReducer<float> reducer(*world, net, bytes);
  const auto& buckets = reducer.buckets();
  const auto& flat = net.flat_parameters();
  ASSERT_FALSE(buckets.empty());
  EXPECT_EQ(buckets.front().end, flat.size());
  EXPECT_EQ(buckets.back().begin, 0);
  for (std::size_t b = 0; b < buckets.size(); ++b) {
    EXPECT_EQ(buckets[b].begin, flat.offsets[buckets[b].first_parameter]);
    if (b + 1 < buckets.size()) {
      EXPECT_EQ(buckets[b + 1].end, buckets[b].begin);
      EXPECT_GE((buckets[b].end - buckets[b].begin) * 4, bytes);
    }
  }
}

TEST(Distributed, AReducerRefusesAModelWhoseParametersWereReplaced) {
  auto net = narrow_resnet(1);
  distributed::GradientReducer<float> reducer(*world, net);
  net.named_parameters().back().value->operator=(Tensor<float>({10}));  // fc.bias, no longer a view
  try {
    reducer.finish();
    FAIL() << "expected resnet::Error";
  } catch (const resnet::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no longer its flat_parameters() views"), std::string::npos)
        << e.what();
  }
}

}  // namespace

// Rank r's share [rows r*n/size, (r+1)*n/size) of the first dimension of t.
template <typename T>
Tensor<T> share_of(const Tensor<T>& t, int rank, int size) {
  const std::int64_t rows = t.size(0) / size, per_row = t.numel() / t.size(0);
  std::vector<std::int64_t> shape = t.shape();
  shape[0] = rows;
  Tensor<T> share(shape);
  std::copy_n(t.cdata() + rank * rows * per_row, rows * per_row, share.data());
  return share;
}

template <typename T>
Tensor<T> random_tensor(std::vector<std::int64_t> shape, std::uint64_t seed, double mean = 0.0) {
  Rng rng(seed);
  Tensor<T> t(std::move(shape));
  t.fill_normal(rng, mean, 1.0);
  return t;
}

// A synchronized BatchNorm on each rank's share computes what one BatchNorm computes on the whole batch:
// outputs, input gradients, running statistics, and (summed over the ranks, as the reducer then averages
// them) the parameter gradients. In double, to rounding.
TEST(SyncBatchNorm, EqualsOneBatchNormOverTheWholeBatchForwardAndBackward) {
  const int rank = world->rank(), size = world->size();
  const Tensor<double> x = random_tensor<double>({2 * size, 3, 5, 4}, 1, 3.0);  // the global batch
  const Tensor<double> dy = random_tensor<double>(x.shape(), 2);
  const Tensor<double> relu_out = random_tensor<double>(x.shape(), 3);
  for (bool relu : {false, true}) {
    SCOPED_TRACE(relu ? "with a ReLU mask" : "plain");
    nn::BatchNorm2d<double> whole(3), synced(3);
    synced.synchronize([](double* v, std::int64_t n) { world->allreduce_sum(v, n); });
    ASSERT_TRUE(synced.is_synchronized());
    for (auto* bn : {&whole, &synced}) {
      Rng rng(4);
      bn->weight().fill_normal(rng, 1.0, 0.3);
      bn->bias().fill_normal(rng, 0.0, 0.3);
    }
    const Tensor<double> y = whole.forward(x);
    const Tensor<double> y_share = synced.forward(share_of(x, rank, size));
    const Tensor<double> dx = whole.backward(dy, relu ? relu_out : Tensor<double>());
    const Tensor<double> dx_share =
        synced.backward(share_of(dy, rank, size), relu ? share_of(relu_out, rank, size) : Tensor<double>());
    const Tensor<double> y_expected = share_of(y, rank, size), dx_expected = share_of(dx, rank, size);
    for (std::int64_t i = 0; i < y_share.numel(); ++i) {
      ASSERT_NEAR(y_share[i], y_expected[i], 1e-12) << i;
      ASSERT_NEAR(dx_share[i], dx_expected[i], 1e-12) << i;
    }
    for (std::int64_t c = 0; c < 3; ++c) {
      EXPECT_NEAR(synced.running_mean()[c], whole.running_mean()[c], 1e-12);
      EXPECT_NEAR(synced.running_var()[c], whole.running_var()[c], 1e-12);
    }
    auto synced_params = synced.named_parameters();
    auto whole_params = whole.named_parameters();
    for (std::size_t p = 0; p < synced_params.size(); ++p) {
      Tensor<double> summed = synced_params[p].grad->clone();
      world->allreduce_sum(summed.data(), summed.numel());
      for (std::int64_t c = 0; c < 3; ++c)
        EXPECT_NEAR(summed[c], (*whole_params[p].grad)[c], 1e-11) << synced_params[p].name;
    }
  }
}

// Central differences of the global loss L = sum over ranks of sum(y_r * w_r) against the synchronized
// backward: each rank's input changes the statistics of every rank, and dx must carry all of that.
TEST(SyncBatchNorm, InputGradientsMatchCentralDifferencesOfTheGlobalLoss) {
  const int rank = world->rank();
  Tensor<double> x = random_tensor<double>({2, 3, 3, 3}, 10 + static_cast<std::uint64_t>(rank), 1.0);
  const Tensor<double> w = random_tensor<double>(x.shape(), 20 + static_cast<std::uint64_t>(rank));
  nn::BatchNorm2d<double> bn(3);
  ASSERT_EQ(distributed::synchronize_batchnorm(*world, bn), 1);
  ASSERT_TRUE(bn.is_synchronized());
  Rng rng(5);
  bn.weight().fill_normal(rng, 1.0, 0.3);
  const auto global_loss = [&] {
    double local = resnet::testing::dot(bn.forward(x), w);
    bn.backward(Tensor<double>(x.shape()));  // releases the forward's cache
    world->allreduce_sum(&local, 1);
    return local;
  };
  bn.forward(x);
  const Tensor<double> dx = bn.backward(w);
  // Every rank takes part in every evaluation; each rank perturbs its own input in turn.
  for (int perturbing = 0; perturbing < world->size(); ++perturbing) {
    Tensor<double> analytic = dx.clone();
    world->broadcast(analytic.data(), analytic.numel(), perturbing);
    Tensor<double> target = perturbing == rank ? x : Tensor<double>(x.shape());
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      const double original = target[i];
      const auto at = [&](double value) {
        if (perturbing == rank) x[i] = value;
        return global_loss();
      };
      const double numeric = (at(original + 1e-6) - at(original - 1e-6)) / 2e-6;
      if (perturbing == rank) x[i] = original;
      EXPECT_NEAR(analytic[i], numeric, 1e-7 + 1e-5 * std::abs(numeric))
          << "rank " << perturbing << "'s input element " << i;
    }
  }
}

// The whole data-parallel step: N ranks, each with its share of the global batch, synchronized BatchNorm and
// averaged gradients, end where one process training on the global batch ends. The ranks sum the same
// products in another order, so the two differ by rounding, and rounding grows: once a ReLU input lies within
// rounding of zero, the two runs take different branches. So the run is long in double (10 updates, where
// that practically never happens) and short in float (3 updates).
template <typename T>
void expect_ranks_train_as_one_process(int steps, double tolerance) {
  const int rank = world->rank(), size = world->size();
  const auto options =
      models::ResNetOptions({2, 2, 2, 2}).stem_width(8).num_classes(10).stem(models::Stem::Cifar);
  models::ResNet<T> single(models::ResNetOptions(options).seed(99));
  models::ResNet<T> parallel(models::ResNetOptions(options).seed(99 + static_cast<std::uint64_t>(rank)));
  distributed::broadcast_state(*world, parallel);  // rank 0's model on every rank
  EXPECT_GT(distributed::synchronize_batchnorm(*world, parallel), 10);
  distributed::GradientReducer<T> reducer(*world, parallel, 64 << 10);
  optim::SGD<T> sgd_single(single.named_parameters(), 0.05, 0.9, 5e-4);
  optim::SGD<T> sgd_parallel(parallel.named_parameters(), 0.05, 0.9, 5e-4);
  nn::CrossEntropyLoss<T> loss_single, loss_parallel;
  single.train();
  parallel.train();
  for (int step = 0; step < steps; ++step) {
    const Tensor<T> x = random_tensor<T>({4 * size, 3, 16, 16}, 50 + static_cast<std::uint64_t>(step));
    std::vector<int> targets;
    for (std::int64_t n = 0; n < x.size(0); ++n)
      targets.push_back(static_cast<int>((n * 7 + step) % 10));
    const std::vector<int> share_targets(targets.begin() + rank * 4, targets.begin() + rank * 4 + 4);
    single.zero_grad();
    loss_single.forward(single.forward(x), targets);
    single.backward(loss_single.backward(), nn::InputGrad::Skip);
    sgd_single.step();
    parallel.zero_grad();
    loss_parallel.forward(parallel.forward(share_of(x, rank, size)), share_targets);
    parallel.backward(loss_parallel.backward(), nn::InputGrad::Skip, reducer.ready());
    reducer.finish();
    sgd_parallel.step();
  }
  double worst = 0, largest = 0;
  const auto& a = single.flat_parameters().values;
  const auto& b = parallel.flat_parameters().values;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
    largest = std::max(largest, static_cast<double>(std::abs(a[i])));
  }
  if (rank == 0)
    std::printf("%s, after %d updates: largest weight %.3g, largest difference %.3g\n",
                sizeof(T) == 8 ? "double" : "float", steps, largest, worst);
  EXPECT_LT(worst, tolerance * largest);
  auto single_buffers = single.named_buffers();
  auto parallel_buffers = parallel.named_buffers();
  for (std::size_t i = 0; i < single_buffers.size(); ++i)
    for (std::int64_t j = 0; j < single_buffers[i].value->numel(); ++j)
      ASSERT_NEAR((*single_buffers[i].value)[j], (*parallel_buffers[i].value)[j],
                  tolerance * (1 + std::abs((*single_buffers[i].value)[j])))
          << single_buffers[i].name;
}

TEST(DataParallel, RanksWithSyncBatchNormTrainAsOneProcessOnTheGlobalBatchInDouble) {
  expect_ranks_train_as_one_process<double>(10, 1e-12);
}

TEST(DataParallel, RanksWithSyncBatchNormTrainAsOneProcessOnTheGlobalBatchInFloat) {
  expect_ranks_train_as_one_process<float>(3, 1e-5);
}

// Every rank runs every test; the job passes only if every rank passed. Only rank 0 prints results.
int main(int argc, char** argv) {
  resnet::distributed::Communicator communicator(argc, argv);
  world = &communicator;
  ::testing::InitGoogleTest(&argc, argv);
  if (communicator.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  communicator.allreduce_sum(&failed, 1);
  return failed != 0 ? 1 : 0;
}
