// Text generation from a trained Transformer: temperature / top-k / top-p sampling, with a KV
// cache for attention when the router routes each token on its own (RouterSpec::token_local);
// otherwise (Expert Choice, Lory) every new token recomputes the whole sequence, so that routing
// at inference is exactly the routing of training.
#pragma once
#include <cstdint>
#include <vector>

#include "models/transformer.h"

namespace remoe {

struct SamplingOptions {
  int64_t max_new_tokens = 64;
  double temperature = 1.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // keep the k most likely tokens; 0 = all
  double top_p = 1.0;        // keep the smallest set whose probability reaches p (nucleus); 1 = all
  uint64_t seed = 0;
  int64_t context = 0;       // the longest sequence the model may see (its training seq_len)
  int64_t stop_token = -1;   // stop after generating it (e.g. the end-of-document id); −1 = never
};

struct GenerationResult {
  std::vector<int64_t> tokens;      // the generated tokens (without the prompt)
  double seconds = 0;               // wall time of the generation (prompt included)
  double active_experts = 0;        // mean over generated tokens and layers of routed experts (MoE)
  bool kv_cache = false;            // whether the KV cache was used
};

// The next token from one row of logits [V] under the options; `u` is a uniform draw in (0, 1].
int64_t sample_from_logits(const std::vector<float>& logits, const SamplingOptions& options, double u);

// Generates up to max_new_tokens after `prompt`. Errors: an empty prompt, a prompt or prompt +
// max_new_tokens longer than options.context, token ids outside the vocabulary.
GenerationResult generate(const Transformer& model, const std::vector<int64_t>& prompt, const SamplingOptions& options);

}  // namespace remoe
