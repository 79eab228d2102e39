#include "models/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "autograd/node.h"
#include "core/rng.h"

namespace remoe {

int64_t sample_from_logits(const std::vector<float>& logits, const SamplingOptions& o, double u) {
  const int64_t V = static_cast<int64_t>(logits.size());
  std::vector<int64_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  if (o.temperature <= 0) return order[0];
  // Softmax at the temperature over the candidates, most likely first.
  const int64_t keep = o.top_k > 0 ? std::min(o.top_k, V) : V;
  std::vector<double> p(static_cast<size_t>(keep));
  double total = 0;
  for (int64_t i = 0; i < keep; ++i)
    total += p[i] = std::exp((logits[order[i]] - logits[order[0]]) / o.temperature);
  // Nucleus: the shortest prefix whose probability reaches top_p (at least one token).
  int64_t n = 0;
  double mass = 0;
  while (n < keep && (n == 0 || mass < o.top_p * total)) mass += p[n++];
  double target = u * mass, acc = 0;
  for (int64_t i = 0; i < n; ++i)
    if ((acc += p[i]) >= target) return order[i];
  return order[n - 1];
}

namespace {

void check_request(const Transformer& model, const std::vector<int64_t>& prompt, const SamplingOptions& o) {
  REMOE_CHECK(!prompt.empty(), "generate: the prompt is empty (it needs at least one token)");
  REMOE_CHECK(o.context > 0, "generate: the context length must be > 0");
  REMOE_CHECK(static_cast<int64_t>(prompt.size()) <= o.context, "generate: the prompt has ", prompt.size(),
              " tokens, longer than the model's context of ", o.context);
  REMOE_CHECK(static_cast<int64_t>(prompt.size()) + o.max_new_tokens <= o.context, "generate: prompt (", prompt.size(),
              " tokens) + ", o.max_new_tokens, " new tokens exceed the model's context of ", o.context,
              "; ask for at most ", o.context - static_cast<int64_t>(prompt.size()), " tokens");
  REMOE_CHECK(o.max_new_tokens >= 0 && o.top_k >= 0 && o.top_p > 0 && o.top_p <= 1 && o.temperature >= 0,
              "generate: need tokens >= 0, temperature >= 0, top-k >= 0 and top-p in (0, 1]");
  for (int64_t t : prompt)
    REMOE_CHECK(t >= 0 && t < model.config().vocab_size, "generate: token id ", t, " is outside the vocabulary [0, ",
                model.config().vocab_size, ")");
}

// Experts that routed the last row of a forward pass, averaged over layers.
double last_row_experts(const ForwardOutput& out) {
  if (out.layers.empty()) return 0;
  double pairs = 0;
  for (const RouterOutput& r : out.layers) {
    if (r.routing.token.numel() != r.active_pairs) {  // a router that mixes every expert (Lory)
      pairs += static_cast<double>(r.active_pairs) / static_cast<double>(r.tokens);
      continue;
    }
    for (int64_t t : r.routing.token.to_vector<int64_t>()) pairs += t == r.tokens - 1;
  }
  return pairs / static_cast<double>(out.layers.size());
}

}  // namespace

GenerationResult generate(const Transformer& model, const std::vector<int64_t>& prompt, const SamplingOptions& o) {
  check_request(model, prompt, o);
  NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  GenerationResult result;
  result.kv_cache = model.router().token_local;
  KVCache cache;
  std::vector<int64_t> seq = prompt;
  Tensor pending = from_vector(prompt, {1, static_cast<int64_t>(prompt.size())});  // what the model has not seen
  double experts_sum = 0;
  for (int64_t i = 0; i < o.max_new_tokens; ++i) {
    ForwardOutput out = result.kv_cache ? model.forward(pending, ForwardOptions{RouteContext::kEvaluation, &cache})
                                        : model.forward(from_vector(seq, {1, static_cast<int64_t>(seq.size())}));
    // The last position's logits give the next token; its routing is that of the last row.
    const int64_t rows = out.logits.size(0), V = out.logits.size(1);
    std::vector<float> last = slice(out.logits, 0, rows - 1, rows).to(DType::f32).to_vector<float>();
    if (i > 0) experts_sum += last_row_experts(out);  // the routing of generated token i − 1
    const int64_t next = sample_from_logits(last, o, philox_uniform(o.seed, static_cast<uint64_t>(i)));
    REMOE_CHECK(next >= 0 && next < V, "generate: sampled id out of range");
    seq.push_back(next);
    result.tokens.push_back(next);
    pending = from_vector(std::vector<int64_t>{next}, {1, 1});
    if (next == o.stop_token) break;
  }
  // Every generated token but the last was fed back, and routed, once.
  const int64_t routed_tokens = static_cast<int64_t>(result.tokens.size()) - 1;
  result.active_experts = routed_tokens > 0 ? experts_sum / static_cast<double>(routed_tokens) : 0.0;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace remoe
