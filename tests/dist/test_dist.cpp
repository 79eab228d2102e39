// Multi-process tests, run by CTest under `mpirun -np 1|2|4` (tests/CMakeLists.txt): the
// communicator's collectives, and data-parallel training against the single-process reference,
// which every rank also computes for itself.
#include <cstring>

#include "core/comm.h"
#include "core/random.h"
#include "dist/dist_util.h"
#include "models/train_step.h"

using namespace remoe;
using namespace remoe::test;

namespace {

// Whether every rank holds rank 0's bytes of every parameter.
bool replicas_identical(const Transformer& model) {
  int64_t differ = 0;
  for (const Tensor& p : model.parameters()) {
    std::vector<char> mine(static_cast<size_t>(p.numel()) * p.element_size()), root(mine.size());
    std::memcpy(mine.data(), p.raw_data(), mine.size());
    root = mine;
    world().broadcast(root.data(), static_cast<int64_t>(root.size()), 0);
    differ += mine != root;
  }
  return world().all_reduce(differ, ReduceOp::sum) == 0;
}

}  // namespace

TEST_CASE("communicator: all-reduce, broadcast, all-gather, all-to-all-v and split") {
  Communicator& w = world();
  const int n = w.size(), r = w.rank();
  MESSAGE("rank " << r << " of " << n << (mpi_available() ? " (MPI build)" : " (no MPI)"));
  CHECK(w.all_reduce(int64_t{r + 1}, ReduceOp::sum) == n * (n + 1) / 2);
  CHECK(w.all_reduce(double(r), ReduceOp::max) == n - 1);
  CHECK(w.all_reduce(double(r), ReduceOp::mean) == doctest::Approx((n - 1) / 2.0));
  Tensor t = full({3}, static_cast<double>(r), {DType::f32});
  w.all_reduce(t, ReduceOp::sum);
  CHECK(t.to_vector<float>() == std::vector<float>(3, static_cast<float>(n * (n - 1) / 2)));
  std::vector<int64_t> all = w.all_gather(10 * r);
  for (int q = 0; q < n; ++q) CHECK(all[static_cast<size_t>(q)] == 10 * q);
  int64_t v = r == 0 ? 42 : -1;
  w.broadcast(&v, sizeof v, 0);
  CHECK(v == 42);
  // Rank r sends q+1 copies of the int64 (100·r + q) to rank q.
  std::vector<int64_t> send, send_bytes, recv_bytes;
  for (int q = 0; q < n; ++q) {
    send.insert(send.end(), static_cast<size_t>(q + 1), 100 * r + q);
    send_bytes.push_back((q + 1) * 8);
    recv_bytes.push_back((r + 1) * 8);
  }
  std::vector<int64_t> recv(static_cast<size_t>(n * (r + 1)));
  w.all_to_all_v(send.data(), send_bytes, recv.data(), recv_bytes);
  for (int q = 0; q < n; ++q)
    for (int i = 0; i <= r; ++i) CHECK(recv[static_cast<size_t>(q * (r + 1) + i)] == 100 * q + r);
  std::shared_ptr<Communicator> half = w.split(r % 2, r);
  CHECK(half->size() == (n + 1 - r % 2) / 2);
  CHECK(half->all_reduce(int64_t{1}, ReduceOp::sum) == half->size());
}

TEST_CASE("data parallel: N ranks take the single-process steps of the same global batch") {
  const int64_t B = 4, T = 6, micro = 2, steps = 10;
  // Every router but expert_choice, whose capacity T·k/E is per rank by design (docs/scaling.md).
  for (const char* router : {"dense", "topk", "relu", "hash", "sparsemixer", "lory"}) {
    CAPTURE(router);
    Transformer ref(dp_model(router)), dp(dp_model(router));
    const LrSchedule sched{3e-3, 3e-4, 2, steps};
    Trainer ref_trainer(ref, AdamWOptions{}, sched), dp_trainer(dp, AdamWOptions{}, sched);
    dp_trainer.set_data_parallel(world_communicator());
    for (int64_t s = 0; s < steps; ++s) {
      std::vector<Batch> batches = global_batches(s, micro, B, T);
      StepMetrics a = ref_trainer.step(batches), b = dp_trainer.step(batches);
      CAPTURE(s);
      CHECK(b.lm_loss == doctest::Approx(a.lm_loss).epsilon(1e-5));
      CHECK(b.loss == doctest::Approx(a.loss).epsilon(1e-5));
      CHECK(b.aux_loss == doctest::Approx(a.aux_loss).epsilon(1e-5));
      CHECK(b.reg_loss == doctest::Approx(a.reg_loss).epsilon(1e-5));
      CHECK(b.sparsity == a.sparsity);  // counts, not floats: exactly the same
      CHECK(b.lambda == a.lambda);
      CHECK(b.tokens == a.tokens);
      CHECK(b.expert_counts == a.expert_counts);
      CHECK(b.grad_norm == doctest::Approx(a.grad_norm).epsilon(1e-4));
      CHECK(replicas_identical(dp));
    }
    CHECK(dp_trainer.controller().lambda() == ref_trainer.controller().lambda());
  }
}

TEST_CASE("data parallel: a batch that does not split over the ranks is an error on every rank") {
  if (world().size() == 1) return;
  Transformer model(dp_model("topk"));
  Trainer trainer(model, AdamWOptions{}, LrSchedule{1e-3, 1e-4, 0, 2});
  trainer.set_data_parallel(world_communicator());
  const int64_t B = world().size() + 1;
  CHECK_THROWS_WITH_ALL(trainer.step(global_batches(0, 1, B, 4)), "batch_size", "not a multiple");
}
