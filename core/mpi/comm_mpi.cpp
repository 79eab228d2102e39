// The MPI communicator (Open MPI): every collective is the non-blocking MPI call, waited on with a
// deadline, so that a rank which died, threw or went elsewhere makes the others stop with a
// message instead of hanging. Built only with REMOE_MPI (CMakeLists.txt).
#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/comm.h"
#include "core/error.h"

namespace remoe {
namespace {

// Seconds a collective may wait for the other ranks (REMOE_COMM_TIMEOUT, default 600).
double collective_timeout_s() {
  const char* v = std::getenv("REMOE_COMM_TIMEOUT");
  return v && std::atof(v) > 0 ? std::atof(v) : 600.0;
}

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  fail("MPI ", what, " failed: ", std::string(text, static_cast<size_t>(len)));
}

MPI_Datatype mpi_type(DType dt) {
  switch (dt) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i64: return MPI_INT64_T;
    default: fail("Communicator::all_reduce: dtype ", dtype_name(dt), " is not f32, f64 or i64");
  }
}

int mpi_count(int64_t n, const char* what) {
  REMOE_CHECK(n >= 0 && n <= INT_MAX, "Communicator::", what, ": ", n, " elements exceed MPI's int count");
  return static_cast<int>(n);
}

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "Comm_set_errhandler");
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void all_reduce(void* data, int64_t count, DType dtype, ReduceOp op) override {
    MPI_Request req;
    check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data, mpi_count(count, "all_reduce"), mpi_type(dtype),
                             op == ReduceOp::max ? MPI_MAX : MPI_SUM, comm_, &req),
              "Iallreduce");
    tally(&CommCounters::all_reduce_bytes, count * static_cast<int64_t>(dtype_size(dtype)), wait(req, "all_reduce"));
    if (op != ReduceOp::mean) return;
    if (dtype == DType::f32)
      for (float* p = static_cast<float*>(data), *e = p + count; p != e; ++p) *p /= static_cast<float>(size_);
    else if (dtype == DType::f64)
      for (double* p = static_cast<double*>(data), *e = p + count; p != e; ++p) *p /= size_;
    else
      fail("Communicator::all_reduce: the mean of integers is not an integer");
  }

  void broadcast(void* data, int64_t bytes, int root) override {
    MPI_Request req;
    check_mpi(MPI_Ibcast(data, mpi_count(bytes, "broadcast"), MPI_BYTE, root, comm_, &req), "Ibcast");
    tally(&CommCounters::broadcast_bytes, bytes, wait(req, "broadcast"));
  }

  void all_to_all_v(const void* send, const std::vector<int64_t>& send_bytes, void* recv,
                    const std::vector<int64_t>& recv_bytes) override {
    REMOE_CHECK(static_cast<int>(send_bytes.size()) == size_ && static_cast<int>(recv_bytes.size()) == size_,
                "Communicator::all_to_all_v: need one byte count per rank (", size_, ")");
    std::vector<int> sc(static_cast<size_t>(size_)), sd(sc.size()), rc(sc.size()), rd(sc.size());
    int64_t so = 0, ro = 0;
    for (size_t r = 0; r < sc.size(); ++r) {
      sc[r] = mpi_count(send_bytes[r], "all_to_all_v");
      rc[r] = mpi_count(recv_bytes[r], "all_to_all_v");
      sd[r] = mpi_count(so, "all_to_all_v");
      rd[r] = mpi_count(ro, "all_to_all_v");
      so += send_bytes[r];
      ro += recv_bytes[r];
    }
    MPI_Request req;
    check_mpi(MPI_Ialltoallv(send, sc.data(), sd.data(), MPI_BYTE, recv, rc.data(), rd.data(), MPI_BYTE, comm_, &req),
              "Ialltoallv");
    const int64_t to_others = so - send_bytes[static_cast<size_t>(rank_)];
    tally(&CommCounters::all_to_all_bytes, to_others, wait(req, "all_to_all_v"));
  }

  void barrier() override {
    MPI_Request req;
    check_mpi(MPI_Ibarrier(comm_, &req), "Ibarrier");
    tally(&CommCounters::calls, 0, wait(req, "barrier"));
  }

  std::shared_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub;
    check_mpi(MPI_Comm_split(comm_, color, key, &sub), "Comm_split");
    auto group = std::make_shared<MpiCommunicator>(sub);
    share_counters_with(*group);
    return group;
  }

  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "remoe: rank %d: %s; stopping every rank\n", rank_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 3);
    std::abort();  // MPI_Abort does not return
  }

 private:
  // Polls the request until it completes or the deadline passes (then every rank is stopped);
  // returns the seconds it waited.
  double wait(MPI_Request& req, const char* what) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + std::chrono::duration<double>(collective_timeout_s());
    for (auto pause = std::chrono::microseconds(20);;) {
      int done = 0;
      check_mpi(MPI_Test(&req, &done, MPI_STATUS_IGNORE), what);
      if (done) return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (std::chrono::steady_clock::now() > deadline)
        abort(std::string("collective ") + what + " did not complete within " + std::to_string(collective_timeout_s()) +
              " s (REMOE_COMM_TIMEOUT): another rank died, threw or is running other code");
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(2000));
    }
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

}  // namespace

bool mpi_available() { return true; }

std::shared_ptr<Communicator> world_communicator() {
  static std::shared_ptr<Communicator> world = []() -> std::shared_ptr<Communicator> {
    const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr ||
                          std::getenv("REMOE_MPI_FORCE") != nullptr;
    if (!launched) return single_process_communicator();
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "Init_thread");
    std::atexit(finalize_mpi);
    return std::make_shared<MpiCommunicator>(MPI_COMM_WORLD);
  }();
  return world;
}

}  // namespace remoe
