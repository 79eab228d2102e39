// Training batches from a token shard: each row is a window of seq_len + 1 consecutive tokens at
// a pseudo-random offset (documents are concatenated with EOD between them, as the paper trains:
// no attention reset at document boundaries). The offset of row b of micro-batch m of step s is
// a pure function of (seed, s, m, b) through Philox, so the "data cursor" a checkpoint saves is
// just the step: a resumed run reads exactly the batches an uninterrupted one would.
#pragma once
#include <cstdint>
#include <vector>

#include "experiments/data/shard.h"
#include "models/train_step.h"

namespace remoe::experiments {

class BatchSampler {
 public:
  BatchSampler(const data::Shard& shard, int64_t batch_size, int64_t seq_len, uint64_t seed);
  // The `micro_batches` micro-batches of optimizer step `step`.
  std::vector<Batch> step_batches(int64_t step, int64_t micro_batches) const;

 private:
  const data::Shard& shard_;
  int64_t batch_size_, seq_len_;
  uint64_t seed_;
};

}  // namespace remoe::experiments
