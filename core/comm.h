// The communicator: the one seam between the engine and its other processes (data and expert
// parallelism, docs/scaling.md). Nothing above it calls MPI. Two implementations: one process
// (every collective is a copy or nothing) and MPI (core/mpi/comm_mpi.cpp, built with REMOE_MPI),
// whose collectives never hang: each waits at most a timeout, then aborts every rank with a
// message naming the collective (a rank that died or threw, or one that runs different code).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace remoe {

enum class ReduceOp { sum, mean, max };

// What this rank handed to other ranks' collectives: payload bytes per kind (an all-reduce's
// buffer, an all-to-all's rows for other ranks, a broadcast's buffer), calls, and seconds spent
// in them. A communicator and the groups split from it share one set (docs/scaling.md checks its
// cost model against these). A single process counts nothing: it exchanges nothing.
struct CommCounters {
  int64_t all_reduce_bytes = 0, all_to_all_bytes = 0, broadcast_bytes = 0, calls = 0;
  double seconds = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place over `count` elements of `dtype` (f32, f64 or i64); mean divides the sum by size().
  virtual void all_reduce(void* data, int64_t count, DType dtype, ReduceOp op) = 0;
  // `bytes` bytes from rank `root` to every rank.
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  // Sends send_bytes[r] bytes (consecutive in `send`, in rank order) to rank r and receives
  // recv_bytes[r] bytes from rank r into `recv` (in rank order).
  virtual void all_to_all_v(const void* send, const std::vector<int64_t>& send_bytes, void* recv,
                            const std::vector<int64_t>& recv_bytes) = 0;
  virtual void barrier() = 0;
  // The ranks with the same `color`, numbered by `key` (MPI_Comm_split): a process group.
  virtual std::shared_ptr<Communicator> split(int color, int key) = 0;
  // Ends every process of the job with `message` (MPI_Abort); for one process it throws.
  [[noreturn]] virtual void abort(const std::string& message) = 0;

  // Conveniences over the collectives above.
  void all_reduce(const Tensor& t, ReduceOp op);  // a contiguous CPU tensor, in place
  int64_t all_reduce(int64_t value, ReduceOp op);
  double all_reduce(double value, ReduceOp op);
  // Every rank's `value`, in rank order.
  std::vector<int64_t> all_gather(int64_t value);

  const CommCounters& counters() const { return *counters_; }
  void reset_counters() { *counters_ = CommCounters{}; }

 protected:
  // Implementations count each collective once; groups made by split() share the parent's counters.
  void tally(int64_t CommCounters::*kind, int64_t bytes, double seconds) {
    (*counters_).*kind += bytes;
    counters_->calls += 1;
    counters_->seconds += seconds;
  }
  void share_counters_with(Communicator& group) const { group.counters_ = counters_; }

 private:
  std::shared_ptr<CommCounters> counters_ = std::make_shared<CommCounters>();
};

// The communicator of a single process: rank 0 of 1.
std::shared_ptr<Communicator> single_process_communicator();

// All the processes of this job: MPI's world when built with MPI and started by mpirun (or with
// REMOE_MPI_FORCE=1), else the single process. Initialises MPI on first use; the same object after.
std::shared_ptr<Communicator> world_communicator();

// Whether this binary was built with MPI (REMOE_MPI).
bool mpi_available();

}  // namespace remoe
