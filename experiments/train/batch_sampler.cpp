#include "experiments/train/batch_sampler.h"

#include "core/error.h"
#include "core/rng.h"

namespace remoe::experiments {

BatchSampler::BatchSampler(const data::Shard& shard, int64_t batch_size, int64_t seq_len, uint64_t seed)
    : shard_(shard), batch_size_(batch_size), seq_len_(seq_len), seed_(seed) {
  REMOE_CHECK(shard.n_tokens() > static_cast<uint64_t>(seq_len + 1), "train data: ", shard.path().string(), " has ",
              shard.n_tokens(), " tokens, fewer than one window of model.seq_len + 1 = ", seq_len + 1);
}

std::vector<Batch> BatchSampler::step_batches(int64_t step, int64_t micro_batches) const {
  const uint64_t windows = shard_.n_tokens() - static_cast<uint64_t>(seq_len_);  // valid start offsets
  std::vector<Batch> out;
  std::vector<int64_t> row(static_cast<size_t>(seq_len_ + 1));
  for (int64_t m = 0; m < micro_batches; ++m) {
    std::vector<int64_t> inputs, targets;
    inputs.reserve(static_cast<size_t>(batch_size_ * seq_len_));
    targets.reserve(inputs.capacity());
    for (int64_t b = 0; b < batch_size_; ++b) {
      const uint64_t row_index = (static_cast<uint64_t>(step) * static_cast<uint64_t>(micro_batches) +
                                  static_cast<uint64_t>(m)) * static_cast<uint64_t>(batch_size_) + static_cast<uint64_t>(b);
      Philox4x32 r = philox4x32(row_index, /*counter_hi=*/0x5eed, seed_);
      const uint64_t offset = ((static_cast<uint64_t>(r.v[0]) << 32) | r.v[1]) % windows;
      shard_.read(offset, row);
      inputs.insert(inputs.end(), row.begin(), row.end() - 1);
      targets.insert(targets.end(), row.begin() + 1, row.end());
    }
    out.push_back({from_vector(inputs, {batch_size_, seq_len_}), from_vector(targets, {batch_size_, seq_len_})});
  }
  return out;
}

}  // namespace remoe::experiments
