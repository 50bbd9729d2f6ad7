#pragma once
// The processes a training run is spread over: this one alone, or, when the program was started by an MPI
// launcher (mpirun -np N) and built with MPI (CMake's resnet::distributed target defines
// RESNET_TRAIN_WITH_MPI), the N ranks of the job, each training on its shard of every batch
// (resnet/distributed/). Started on its own, the program never starts MPI, so a one-process run is what it
// was without MPI. training.hpp asks this for what differs between the two.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "resnet/core/error.hpp"

#ifdef __linux__
#include <sched.h>
#endif

#ifdef RESNET_TRAIN_WITH_MPI
#include "resnet/distributed/communicator.hpp"
#endif

namespace train {

class Ranks {
 public:
  // One process, no MPI.
  Ranks() = default;

  // The job this process belongs to: MPI's ranks under a launcher, else this process alone.
  static Ranks of_job(int& argc, char**& argv) {
    Ranks ranks;
#ifdef RESNET_TRAIN_WITH_MPI
    if (launched_by_mpi()) {
      ranks.world_ = std::make_shared<resnet::distributed::Communicator>(argc, argv);
      ranks.rank_ = ranks.world_->rank();
      ranks.size_ = ranks.world_->size();
    }
#else
    (void)argc, (void)argv;
    // N copies of a one-process run would each train on everything and write the same files.
    for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
      if (const char* size = std::getenv(variable))
        resnet::check(std::atoi(size) <= 1, "started as one of ", size,
                      " MPI ranks, but this train_cifar10 was built without MPI: install it (sudo apt-get ",
                      "install libopenmpi-dev openmpi-bin) and build again, or start one process");
#endif
    return ranks;
  }

  int rank() const {
    return rank_;
  }
  int size() const {
    return size_;
  }
  bool leader() const {
    return rank_ == 0;
  }  // the one that prints and writes files

  // values [count] summed over the ranks, in place (nothing to do on one).
  void sum(double* values, std::int64_t count) const {
#ifdef RESNET_TRAIN_WITH_MPI
    if (world_) world_->allreduce_sum(values, count);
#else
    (void)values, (void)count;
#endif
  }

  // Whether every rank holds the same `value`.
  bool agree(std::int64_t value) const {
    double sums[2] = {static_cast<double>(value), static_cast<double>(value) * static_cast<double>(value)};
    sum(sums, 2);
    return sums[1] * size_ == sums[0] * sums[0];
  }

  // Threads per rank when --threads is not given: the cores this process may run on when the launcher bound
  // it to some (mpirun binds each of 2 or fewer ranks to one core), else the machine's cores shared by the
  // ranks on it, so that N ranks of T threads do not oversubscribe them.
  int default_threads() const {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#ifdef __linux__
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && CPU_COUNT(&allowed) < cores)
      return std::max(1, CPU_COUNT(&allowed));
#endif
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    const int ranks_here = size_ > 1 && local ? std::max(1, std::atoi(local)) : 1;
    return std::max(1, cores / ranks_here);
  }

  // Ends the whole job with the message (an error on one rank must not leave the others waiting), or, on
  // one process, returns so that the caller exits as before.
  void abort_job(const std::string& message) const {
#ifdef RESNET_TRAIN_WITH_MPI
    if (world_ && size_ > 1) world_->abort(message);
#else
    (void)message;
#endif
  }

#ifdef RESNET_TRAIN_WITH_MPI
  const resnet::distributed::Communicator* world() const {
    return world_.get();
  }
#endif

 private:
#ifdef RESNET_TRAIN_WITH_MPI
  // OpenMPI's and MPICH's (PMI) launchers set these in every process they start.
  static bool launched_by_mpi() {
    for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
      if (std::getenv(variable)) return true;
    return false;
  }
  std::shared_ptr<resnet::distributed::Communicator> world_;
#endif
  int rank_ = 0, size_ = 1;
};

}  // namespace train
