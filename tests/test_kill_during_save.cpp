// No lost work when a process dies while saving: a child process saves training checkpoints in a loop and
// is SIGKILLed at random moments, many times. After every kill the checkpoint on disk must be one complete
// save, bitwise (the last one that finished or the one in flight, never an older one, never a torn or mixed
// file), and whatever the kill left behind (temporary files) must neither break the next save nor look like
// a checkpoint to train::Checkpoints. RESNET_KILL_TRIALS sets the number of kills (default 200).

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "resnet/resnet.hpp"
#include "resnet/train/checkpoint.hpp"
#include "support/data_files.hpp"

namespace {

using resnet::Tensor;
using Model = resnet::models::ResNet<float>;
using Sgd = resnet::optim::SGD<float>;

// ResNet18 at width 8 with momentum buffers: a 1.4 MB checkpoint, long enough that kills land mid-write.
struct State {
  explicit State(std::uint64_t seed)
      : model({2, 2, 2, 2}, 10, resnet::models::Stem::Cifar, 3, seed, 8),
        sgd(model.named_parameters(), 0.1, 0.9, 5e-4) {}
  Model model;
  Sgd sgd;
};

// A state one SGD step away from its initialisation, so weights, BatchNorm statistics and momentum all
// differ between seeds.
std::unique_ptr<State> trained_state(std::uint64_t seed) {
  auto state = std::make_unique<State>(seed);
  resnet::Rng rng(seed);
  Tensor<float> images({2, 3, 32, 32});
  images.fill_normal(rng);
  resnet::nn::CrossEntropyLoss<float> loss;
  loss.forward(state->model.forward(images), {1, 2});
  state->model.backward(loss.backward());
  state->sgd.step();
  return state;
}

// Every tensor a checkpoint holds, as raw bytes in a fixed order.
std::vector<std::string> snapshot(State& state) {
  std::vector<std::string> all;
  const auto bytes = [&](const Tensor<float>& t) {
    all.emplace_back(reinterpret_cast<const char*>(t.data()),
                     sizeof(float) * static_cast<std::size_t>(t.numel()));
  };
  for (const auto& p : state.model.named_parameters())
    bytes(*p.value);
  for (const auto& b : state.model.named_buffers())
    bytes(*b.value);
  for (const auto& m : state.sgd.momentum_buffers())
    bytes(m);
  return all;
}

// Names in the directory other than the checkpoint itself.
std::set<std::string> leftovers(const std::string& dir, const std::string& checkpoint) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    if (entry.path().filename() != checkpoint) names.insert(entry.path().filename().string());
  return names;
}

int trials_from_environment() {
  const char* text = std::getenv("RESNET_KILL_TRIALS");
  return text ? std::max(1, std::atoi(text)) : 200;
}

}  // namespace

TEST(KillDuringSave, TheCheckpointIsAlwaysOneCompleteSave) {
  const int trials = trials_from_environment();
  resnet::testing::TempDir dir;
  const std::string name = resnet::train::Checkpoints::file_name(1), path = dir.file(name);
  // Generation g of the checkpoint holds version g % 2 and says "generation = g" in its metadata.
  std::unique_ptr<State> versions[2] = {trained_state(1), trained_state(2)};
  const std::vector<std::string> expected[2] = {snapshot(*versions[0]), snapshot(*versions[1])};
  ASSERT_NE(expected[0], expected[1]);
  const auto save = [&](std::int64_t generation) {
    resnet::io::save_checkpoint(path, versions[generation % 2]->model, versions[generation % 2]->sgd,
                                {{"generation", std::to_string(generation)}});
  };

  // Kill delays span a few whole saves, so every moment of one (encoding, writing, fsync, rename) is hit.
  const auto start = std::chrono::steady_clock::now();
  const int timing_saves = 5;
  for (int g = 0; g < timing_saves; ++g)
    save(g);
  const double save_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      timing_saves;
  std::int64_t generation = timing_saves - 1;  // the one on disk

  // The child publishes the last generation it finished saving here.
  void* shared = ::mmap(nullptr, sizeof(std::atomic<std::int64_t>), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  auto* finished = new (shared) std::atomic<std::int64_t>(0);

  resnet::Rng rng(2024);
  State loaded(0);
  int mid_save = 0, in_flight_won = 0;
  std::map<std::int64_t, int> saves_before_kill;
  for (int trial = 0; trial < trials; ++trial) {
    const std::set<std::string> before = leftovers(dir.path(), name);
    finished->store(generation);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0) << std::strerror(errno);
    if (child == 0) {
      // Saves the next generations until killed; gives up after a minute in case the parent is gone. Saving
      // uses no OpenMP, which is not safe to use in a child forked from a process that has. _exit, not
      // return: the child must not run the rest of the test or flush the parent's buffered output again.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
      try {
        for (std::int64_t g = generation + 1; std::chrono::steady_clock::now() < deadline; ++g) {
          save(g);
          finished->store(g);
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child: %s\n", e.what());
      }
      ::_exit(1);
    }
    std::this_thread::sleep_for(
        std::chrono::microseconds(static_cast<std::int64_t>(rng.uniform(0, 4 * save_us))));
    ASSERT_EQ(::kill(child, SIGKILL), 0) << std::strerror(errno);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "trial " << trial << ": the saving child stopped by itself (a save failed?), status " << status;

    // The last finished save, or the one in flight if its rename had happened: loads, and holds exactly that
    // generation's tensors.
    const std::int64_t last = finished->load();
    resnet::io::Metadata metadata;
    try {
      metadata = resnet::io::load_checkpoint(path, loaded.model, loaded.sgd);
    } catch (const resnet::Error& e) {
      FAIL() << "trial " << trial << ": the checkpoint does not load after a kill: " << e.what();
    }
    const std::int64_t on_disk = std::stoll(metadata.at("generation"));
    ASSERT_TRUE(on_disk == last || on_disk == last + 1)
        << "trial " << trial << ": generation " << on_disk << " on disk, " << last << " was the last saved";
    ASSERT_EQ(snapshot(loaded), expected[on_disk % 2]) << "trial " << trial << ": generation " << on_disk;
    ++saves_before_kill[last - generation];
    in_flight_won += on_disk == last + 1;
    generation = on_disk;

    // What a kill leaves is a temporary file next to the target, which the training example never takes
    // for a checkpoint (train::Checkpoints). Once the next trial has saved beside them, they go, to bound the
    // disk used.
    const std::set<std::string> after = leftovers(dir.path(), name);
    for (const std::string& left : after)
      ASSERT_EQ(left.rfind(name + ".tmp-", 0), 0u) << "trial " << trial << ": unexpected file " << left;
    ASSERT_EQ(resnet::train::Checkpoints(dir.path()).newest_first(),
              std::vector<std::filesystem::path>{path});
    mid_save += after.size() > before.size();
    for (const std::string& left : before)
      std::filesystem::remove(dir.file(left));
  }
  ::munmap(shared, sizeof(std::atomic<std::int64_t>));

  // A plain save still works beside the leftovers and replaces the checkpoint.
  save(generation + 1);
  EXPECT_EQ(resnet::io::load_checkpoint(path, loaded.model, loaded.sgd).at("generation"),
            std::to_string(generation + 1));
  EXPECT_EQ(snapshot(loaded), expected[(generation + 1) % 2]);

  std::string spread;
  for (const auto& [saves, count] : saves_before_kill)
    spread += " " + std::to_string(count) + "x" + std::to_string(saves);
  std::printf(
      "%d kills, one save %.1f ms; saves finished before the kill:%s; %d kills mid-write (temporary "
      "file left), %d after the rename of the save in flight\n",
      trials, save_us / 1000, spread.c_str(), mid_save, in_flight_won);
  // Delays that never land inside a save would make this test vacuous.
  if (trials >= 50) {
    EXPECT_GT(mid_save, 0) << "no kill landed while a save was writing";
  }
}
