#pragma once
// MPI for data-parallel training: the process's MPI session, its rank and the world size, a broadcast of a
// model's state from one rank, an in-place sum over the ranks, and the rule that an error on one rank ends
// every rank (MPI_Abort) rather than leaving the others waiting in a collective forever. This header and the
// rest of resnet/distributed/ are the only ones that need MPI (CMake target resnet::distributed); the core
// headers never include them.
//
//   int main(int argc, char** argv) {
//     return resnet::distributed::run(argc, argv, [&](resnet::distributed::Communicator& world) {
//       ... world.rank(), world.size(), broadcast_state(world, net), GradientReducer ...
//     });
//   }
//
// MPI runs in MPI_THREAD_FUNNELED mode: only the thread that started MPI calls it. The library's OpenMP
// threads never do: they compute between the calls.

// The C API only: OpenMPI's mpi.h would otherwise bring its deprecated C++ bindings, which warn under
// -Wextra.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>
#include <type_traits>

#include "resnet/core/error.hpp"
#include "resnet/core/tensor.hpp"
#include "resnet/nn/module.hpp"

namespace resnet::distributed {

// Throws a resnet::Error naming the call and MPI's message unless `code` is MPI_SUCCESS.
inline void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char message[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, message, &length);
  fail(call, " failed: ", std::string(message, static_cast<std::size_t>(length)));
}

// The MPI type of T: float, double, int or std::int64_t.
template <typename T>
MPI_Datatype mpi_type() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int> ||
                    std::is_same_v<T, std::int64_t>,
                "MPI sums take float, double, int or std::int64_t");
  if constexpr (std::is_same_v<T, float>)
    return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>)
    return MPI_DOUBLE;
  else if constexpr (std::is_same_v<T, int>)
    return MPI_INT;
  else
    return MPI_INT64_T;
}

// The processes of MPI_COMM_WORLD, as one process sees them. MPI is started by the first Communicator and
// finalised when it ends; one per process, in main, as torch.distributed.init_process_group.
class Communicator {
 public:
  Communicator(int& argc, char**& argv) { start(&argc, &argv); }
  Communicator() { start(nullptr, nullptr); }
  ~Communicator() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_ && !finalized) MPI_Finalize();
  }
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm comm() const { return MPI_COMM_WORLD; }

  // Waits until every rank calls it.
  void barrier() const { check_mpi(MPI_Barrier(comm()), "MPI_Barrier"); }

  // data [count] = the sum of every rank's data [count], in place, on every rank. Counts beyond int go in
  // pieces. The same count on the same ranks sums in the same order, so results are reproducible.
  template <typename T>
  void allreduce_sum(T* data, std::int64_t count) const {
    for (std::int64_t done = 0; done < count;) {
      const int piece =
          static_cast<int>(std::min<std::int64_t>(count - done, std::numeric_limits<int>::max()));
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + done, piece, mpi_type<T>(), MPI_SUM, comm()),
                "MPI_Allreduce");
      done += piece;
    }
  }

  // data [count] of rank `root` to every rank.
  template <typename T>
  void broadcast(T* data, std::int64_t count, int root = 0) const {
    for (std::int64_t done = 0; done < count;) {
      const int piece =
          static_cast<int>(std::min<std::int64_t>(count - done, std::numeric_limits<int>::max()));
      check_mpi(MPI_Bcast(data + done, piece, mpi_type<T>(), root, comm()), "MPI_Bcast");
      done += piece;
    }
  }

  // Ends every rank of the job with exit code `code`, after printing `message` with this rank's number: what
  // an error on one rank must do, since the others would otherwise wait for it in their next collective.
  [[noreturn]] void abort(const std::string& message, int code = 1) const {
    std::fprintf(stderr, "rank %d of %d: %s\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(comm(), code);
    std::abort();  // MPI_Abort does not return; should it, the process still must not go on
  }

 private:
  void start(int* argc, char*** argv) {
    int initialized = 0;
    check_mpi(MPI_Initialized(&initialized), "MPI_Initialized");
    if (!initialized) {
      int provided = 0;
      check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_ = true;
      check(provided >= MPI_THREAD_FUNNELED, "MPI_Init_thread: this MPI provides thread level ", provided,
            ", below MPI_THREAD_FUNNELED");
      // A failed call returns its code (MPI's default ends the job at once, without our message): check_mpi
      // makes it a resnet::Error, and run() still ends every rank on it.
      check_mpi(MPI_Comm_set_errhandler(comm(), MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    }
    check_mpi(MPI_Comm_rank(comm(), &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(comm(), &size_), "MPI_Comm_size");
  }

  int rank_ = 0, size_ = 1;
  bool owns_ = false;
};

// Runs body(world) on every rank and returns its exit code; an exception on any rank aborts the whole job
// with its message (Communicator::abort), so no rank hangs waiting for one that has given up.
template <typename Body>
int run(int& argc, char**& argv, Body&& body) {
  Communicator world(argc, argv);
  try {
    return body(world);
  } catch (const std::exception& e) {
    world.abort(e.what());
  } catch (...) {
    world.abort("unknown exception");
  }
}

// Every buffer of `module` (BatchNorm's running statistics) set to rank root's. Without synchronized
// BatchNorm each rank's running statistics follow its own share of the batches; DDP broadcasts rank 0's
// before every forward (broadcast_buffers), so that the ranks evaluate and save one model.
template <typename Module>
void broadcast_buffers(const Communicator& world, Module& module, int root = 0) {
  for (auto& b : module.named_buffers())
    world.broadcast(b.value->data(), b.value->numel(), root);
}

// Every parameter and buffer of `module` set to rank root's, as DDP does at construction, so that every rank
// starts from the same model.
template <typename Module>
void broadcast_state(const Communicator& world, Module& module, int root = 0) {
  for (auto& p : module.named_parameters())
    world.broadcast(p.value->data(), p.value->numel(), root);
  broadcast_buffers(world, module, root);
}

}  // namespace resnet::distributed
