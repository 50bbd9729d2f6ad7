// A rank that throws while the others wait in a collective: distributed::run must end the whole job with a
// non-zero exit and the message, never leave it hanging (tests/distributed/abort_test.sh runs it).

#include "resnet/distributed/communicator.hpp"

int main(int argc, char** argv) {
  return resnet::distributed::run(argc, argv, [](resnet::distributed::Communicator& world) {
    if (world.rank() == world.size() - 1) resnet::fail("the last rank gives up on purpose");
    world.barrier();  // the other ranks wait here for one that never comes
    return 0;
  });
}
