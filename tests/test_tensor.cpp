#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>

#include "resnet/resnet.hpp"

using resnet::Tensor;

TEST(Tensor, ConstructionShapeAndFill) {
  Tensor<float> t({2, 3, 4}, 1.5f);
  EXPECT_EQ(t.dim(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.size(0), 2);
  for (std::int64_t i = 0; i < t.numel(); ++i)
    EXPECT_EQ(t[i], 1.5f);
  Tensor<double> zeros({5});
  for (std::int64_t i = 0; i < 5; ++i)
    EXPECT_EQ(zeros[i], 0.0);
  EXPECT_TRUE(Tensor<float>().empty());
  EXPECT_EQ(Tensor<float>(std::vector<std::int64_t>{}).numel(), 1);  // a scalar
}

TEST(Tensor, StorageIs64ByteAligned) {
  for (std::int64_t n : {1, 3, 17, 1000}) {
    Tensor<float> t({n});
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data()) % 64, 0u);
  }
}

TEST(Tensor, CopiesAndReshapeShareStorageCloneDoesNot) {
  Tensor<float> a({2, 6});
  Tensor<float> shared = a;
  Tensor<float> view = a.reshape({3, 4});
  Tensor<float> deep = a.clone();
  a[5] = 7.0f;
  EXPECT_EQ(shared[5], 7.0f);
  EXPECT_EQ(view.at({1, 1}), 7.0f);
  EXPECT_EQ(deep[5], 0.0f);
  EXPECT_EQ(view.shape(), (std::vector<std::int64_t>{3, 4}));
}

TEST(Tensor, EveryWritableAccessGivesANewVersionSharedByItsViews) {
  Tensor<float> a({2, 3});
  const Tensor<float> view = a.reshape({6});
  const Tensor<float>& read_only = a;
  const std::uint64_t initial = a.version();
  EXPECT_NE(initial, 0u);
  read_only.data();
  (void)read_only[1];
  (void)view.at({4});
  EXPECT_EQ(a.version(), initial) << "const access must not change the version";

  // Each kind of writable access, through the tensor or a view of it: a version not seen before.
  std::vector<std::uint64_t> seen{initial};
  const auto expect_new_version = [&](const char* access) {
    EXPECT_EQ(view.version(), a.version()) << access;
    EXPECT_EQ(std::count(seen.begin(), seen.end(), a.version()), 0) << access;
    seen.push_back(a.version());
  };
  a.data();
  expect_new_version("data()");
  a[0] = 1.0f;
  expect_new_version("operator[]");
  a.at({1, 2}) = 2.0f;
  expect_new_version("at()");
  a.fill(3.0f);
  expect_new_version("fill()");
  resnet::Rng rng(1);
  a.fill_normal(rng);
  expect_new_version("fill_normal()");
  a.matrix(2, 3);
  expect_new_version("matrix()");
  a.reshape({3, 2}).vector();
  expect_new_version("vector() of a view");

  // Another storage never has a version this one had, even after this one is gone.
  const Tensor<float> clone = a.clone();
  EXPECT_EQ(std::count(seen.begin(), seen.end(), clone.version()), 0);
  a = Tensor<float>({2, 3});
  EXPECT_EQ(std::count(seen.begin(), seen.end(), a.version()), 0);
  EXPECT_EQ(Tensor<float>().version(), 0u);
}

TEST(Tensor, MultiIndexIsRowMajor) {
  Tensor<int> t({2, 3, 4});
  t.at({1, 2, 3}) = 9;
  EXPECT_EQ(t[1 * 12 + 2 * 4 + 3], 9);
}

TEST(Tensor, MatrixViewAliasesMemory) {
  Tensor<double> t({2, 3});
  auto m = t.matrix(2, 3);
  m(1, 2) = 4.0;
  EXPECT_EQ(t.at({1, 2}), 4.0);
  EXPECT_THROW(t.matrix(4, 2), resnet::Error);
}

TEST(Tensor, BadShapesAndIndicesThrowNamingTheShape) {
  Tensor<float> t({2, 3});
  try {
    t.reshape({4, 2});
    FAIL() << "reshape to a different element count must throw";
  } catch (const resnet::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[4, 2]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Tensor<float>({2, -1}), resnet::Error);
  EXPECT_THROW(t.at({2, 0}), resnet::Error);
  EXPECT_THROW(t.at({0}), resnet::Error);
  EXPECT_THROW(t[6], resnet::Error);
  EXPECT_THROW(t.size(2), resnet::Error);
}

TEST(Tensor, UninitializedHasTheShapeAndChecksItLikeTheConstructor) {
  auto t = resnet::Tensor<float>::uninitialized({2, 3, 4});
  EXPECT_EQ(t.shape(), (std::vector<std::int64_t>{2, 3, 4}));
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data()) % resnet::kTensorAlignment, 0u);
  t[23] = 1.0f;  // every element is writable
  EXPECT_EQ(t[23], 1.0f);
  EXPECT_THROW(resnet::Tensor<float>::uninitialized({2, -1}), resnet::Error);
  EXPECT_THROW(resnet::Tensor<float>::uninitialized({std::int64_t{1} << 40, std::int64_t{1} << 40}),
               resnet::Error);
}

// Large buffers are reused by a later tensor of about the same size, which still starts zeroed; other sizes
// get their own memory; the limit and release_cached_buffers() give memory back. Under AddressSanitizer
// nothing is cached, so a use after free is still caught.
TEST(BufferPool, ReusesLargeBuffersOfAboutTheSameSizeAndReleasesThem) {
  auto& pool = resnet::BufferPool::instance();
  pool.release_cached_buffers();
  const std::int64_t n = (std::int64_t{2} << 20) / 4;  // 2 MB of floats
  float* first = nullptr;
  {
    resnet::Tensor<float> big({n}, 7.0f);
    first = big.data();
  }
  if (!RESNET_BUFFER_POOL_ENABLED) {
    EXPECT_EQ(pool.cached_bytes(), 0u);
    return;
  }
  EXPECT_EQ(pool.cached_bytes(), std::size_t(n) * 4);
  {
    resnet::Tensor<float> smaller({n - n / 10});  // within 1/8: takes the cached block, zeroed
    EXPECT_EQ(smaller.data(), first);
    EXPECT_EQ(smaller[0], 0.0f);
    EXPECT_EQ(pool.cached_bytes(), 0u);
    resnet::Tensor<float> other({n});  // the cached block is taken: new memory
    EXPECT_NE(other.data(), first);
  }
  EXPECT_EQ(pool.cached_bytes(), 2 * std::size_t(n) * 4);
  {
    resnet::Tensor<float> half({n / 2});  // the cached blocks are more than 1/8 too large
    EXPECT_NE(half.data(), first);
  }
  pool.set_limit(std::size_t(n) * 4);  // over the limit: the largest go back
  EXPECT_LE(pool.cached_bytes(), std::size_t(n) * 4);
  resnet::release_cached_buffers();
  EXPECT_EQ(pool.cached_bytes(), 0u);
  pool.set_limit(resnet::BufferPool::kDefaultLimit);
}

TEST(Rng, SameSeedSameStreamDifferentSeedDifferentStream) {
  resnet::Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const auto x = a.next_u64();
    EXPECT_EQ(x, b.next_u64());
    EXPECT_NE(x, c.next_u64());
  }
}

TEST(Rng, NormalAndUniformHaveTheRightMoments) {
  resnet::Rng rng(3);
  const int n = 200000;
  double sum = 0, sum_sq = 0, usum = 0;
  for (int i = 0; i < n; ++i) {
    const double x = rng.normal();
    sum += x;
    sum_sq += x * x;
    const double u = rng.uniform(-1.0, 3.0);
    ASSERT_GE(u, -1.0);
    ASSERT_LT(u, 3.0);
    usum += u;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum_sq / n, 1.0, 0.01);
  EXPECT_NEAR(usum / n, 1.0, 0.01);
  for (int i = 0; i < 1000; ++i)
    EXPECT_LT(rng.below(7), 7u);
}

TEST(Threads, SetNumThreadsTakesEffect) {
  const int before = resnet::num_threads();
  resnet::set_num_threads(1);
  EXPECT_EQ(resnet::num_threads(), 1);
  EXPECT_EQ(Eigen::nbThreads(), 1);
  resnet::set_num_threads(before);
  EXPECT_EQ(resnet::num_threads(), before);
  EXPECT_THROW(resnet::set_num_threads(0), resnet::Error);
}

TEST(Rng, SavedStateResumesTheSameStream) {
  resnet::Rng rng(9);
  rng.normal();  // leaves a spare normal pending, which the state must carry too
  const resnet::Rng::State saved = rng.state();
  std::vector<double> expected;
  for (int i = 0; i < 5; ++i)
    expected.push_back(rng.normal() + rng.uniform());
  resnet::Rng restored(1234);
  restored.set_state(saved);
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(restored.normal() + restored.uniform(), expected[i]);
}
