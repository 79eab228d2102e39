// The multi-process tests' shared pieces: the world, a tiny model, and the global micro-batches
// of a step (a pure function of the step, the same on every rank).
#pragma once
#include <string>
#include <vector>

#include "core/comm.h"
#include "core/random.h"
#include "models/train_step.h"
#include "test_util.h"

namespace remoe::test {

inline Communicator& world() { return *world_communicator(); }

inline ModelConfig dp_model(const std::string& router) {
  ModelConfig c;
  c.vocab_size = 48;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.ffn = router;
  c.num_experts = 4;
  c.ffn_hidden = 24;
  c.seed = 11;
  return c;
}

inline std::vector<Batch> global_batches(int64_t step, int64_t micro, int64_t B, int64_t T) {
  std::vector<Batch> out;
  for (int64_t m = 0; m < micro; ++m) {
    Generator gen(1000 + static_cast<uint64_t>(step * 10 + m));
    Tensor seq = randint({B, T + 1}, 0, 48, gen);
    out.push_back({contiguous(slice(seq, 1, 0, T)), contiguous(slice(seq, 1, 1, T + 1))});
  }
  return out;
}

}  // namespace remoe::test
