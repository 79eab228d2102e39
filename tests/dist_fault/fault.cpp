// A two-rank job in which rank 1 fails in the way REMOE_DIST_FAULT names, while rank 0 waits in a
// collective: CTest checks that the job ends (no hang) with a message (tests/CMakeLists.txt).
//   die    rank 1 exits without a word          → mpirun ends the job
//   throw  rank 1 hits an error and aborts      → "stopping every rank"
//   hang   rank 1 never reaches the collective  → rank 0's deadline (REMOE_COMM_TIMEOUT) aborts
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/comm.h"
#include "core/error.h"

int main() {
  std::shared_ptr<remoe::Communicator> world = remoe::world_communicator();
  const char* env = std::getenv("REMOE_DIST_FAULT");
  const std::string mode = env ? env : "";
  if (world->rank() == 1) {
    if (mode == "die") std::_Exit(1);
    if (mode == "hang") std::this_thread::sleep_for(std::chrono::hours(1));
    if (mode == "throw") {
      try {
        remoe::fail("a deliberate error on rank 1");
      } catch (const remoe::Error& e) {
        world->abort(e.what());
      }
    }
  }
  world->barrier();
  std::printf("rank %d: barrier passed\n", world->rank());
  return 0;
}
