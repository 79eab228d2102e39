#include "core/comm.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace remoe {

void Communicator::all_reduce(const Tensor& t, ReduceOp op) {
  REMOE_CHECK(t.is_contiguous() && t.device().is_cpu(), "Communicator::all_reduce: needs a contiguous CPU tensor, got ",
              shape_str(t.shape()));
  all_reduce(t.raw_data(), t.numel(), t.dtype(), op);
}

int64_t Communicator::all_reduce(int64_t value, ReduceOp op) {
  REMOE_CHECK(op != ReduceOp::mean, "Communicator::all_reduce: the mean of integers is not an integer");
  all_reduce(&value, 1, DType::i64, op);
  return value;
}

double Communicator::all_reduce(double value, ReduceOp op) {
  all_reduce(&value, 1, DType::f64, op);
  return value;
}

std::vector<int64_t> Communicator::all_gather(int64_t value) {
  // Each rank fills its own slot of zeros; the sum is every rank's value.
  std::vector<int64_t> all(static_cast<size_t>(size()), 0);
  all[static_cast<size_t>(rank())] = value;
  all_reduce(all.data(), static_cast<int64_t>(all.size()), DType::i64, ReduceOp::sum);
  return all;
}

namespace {

class SingleProcess : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce(void*, int64_t, DType dtype, ReduceOp) override {
    REMOE_CHECK(dtype == DType::f32 || dtype == DType::f64 || dtype == DType::i64,
                "Communicator::all_reduce: dtype ", dtype_name(dtype), " is not f32, f64 or i64");
  }
  void broadcast(void*, int64_t, int root) override {
    REMOE_CHECK(root == 0, "Communicator::broadcast: root ", root, " of a single process");
  }
  void all_to_all_v(const void* send, const std::vector<int64_t>& send_bytes, void* recv,
                    const std::vector<int64_t>& recv_bytes) override {
    REMOE_CHECK(send_bytes.size() == 1 && recv_bytes.size() == 1 && send_bytes[0] == recv_bytes[0],
                "Communicator::all_to_all_v: a single process sends to itself what it receives");
    if (send_bytes[0] > 0) std::memcpy(recv, send, static_cast<size_t>(send_bytes[0]));
  }
  void barrier() override {}
  std::shared_ptr<Communicator> split(int, int) override { return std::make_shared<SingleProcess>(); }
  [[noreturn]] void abort(const std::string& message) override { fail(message); }
};

}  // namespace

std::shared_ptr<Communicator> single_process_communicator() { return std::make_shared<SingleProcess>(); }

#ifndef REMOE_WITH_MPI
bool mpi_available() { return false; }
std::shared_ptr<Communicator> world_communicator() {
  static std::shared_ptr<Communicator> world = [] {
    const char* n = std::getenv("OMPI_COMM_WORLD_SIZE");
    REMOE_CHECK(n == nullptr || std::atoi(n) <= 1, "this remoe was built without MPI (REMOE_MPI=OFF or no Open MPI) ",
                "but was started by mpirun with ", n, " processes; install libopenmpi-dev and rebuild");
    return single_process_communicator();
  }();
  return world;
}
#endif

}  // namespace remoe
