// Log-likelihood scoring of (context, continuation) token pairs: the one model query that the
// zero-shot benchmarks need (lm-evaluation-harness's `loglikelihood` request). Behind an interface
// so that the task code can be tested with a scorer whose log-probabilities are known by hand.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"

namespace remoe {
class Transformer;
}

namespace remoe::eval {

struct ScoreRequest {
  std::vector<int32_t> context;       // may be empty: the scorer then conditions on EOD alone
  std::vector<int32_t> continuation;  // non-empty
};

struct ContinuationScore {
  double logprob = 0;   // Σ_j log p(continuation_j | context, continuation_<j)
  bool greedy = false;  // every continuation token is the argmax of its predicted distribution
};

class LogLikelihoodScorer {
 public:
  virtual ~LogLikelihoodScorer() = default;
  // One score per request, in request order.
  virtual std::vector<ContinuationScore> score(const std::vector<ScoreRequest>& requests) = 0;
};

// A next-token model as the scorers see it: tokens [B, T] i64 -> logits [B·T, V] (any float dtype,
// any device). Transformer::forward(...).logits, or a fake in tests.
using LogitsFn = std::function<Tensor(const Tensor& tokens)>;

// log softmax(row)[target] computed in double; *is_argmax (if given) says whether `target` is the
// first maximal entry of the row (torch.argmax's tie rule).
double token_logprob(const float* row, int64_t vocab, int64_t target, bool* is_argmax = nullptr);

// The logits as a contiguous f32 CPU tensor (a no-op when they already are).
Tensor logits_to_cpu_f32(const Tensor& logits);

// The model inputs of one request. full = context (or [EOD] when empty) + continuation. When the
// continuation fits the model (≤ seq_len tokens) this is lm-evaluation-harness's single window,
// input = full[-(seq_len + 1):][:-1] (the context truncated from the left). A longer continuation
// (lm-eval refuses those) is cut from its end into groups of seq_len targets, each window holding
// the seq_len tokens before its group's last target, so every continuation token is still scored
// once, with as much context as fits. In a window, the logits at positions first_pred + j predict
// continuation[cont_begin + j], j < count.
struct ScoringWindow {
  std::vector<int64_t> input;
  int64_t first_pred = 0;
  int64_t cont_begin = 0;
  int64_t count = 0;
};
std::vector<ScoringWindow> scoring_windows(const ScoreRequest& request, int64_t seq_len, int32_t eod_id);

struct ScorerOptions {
  int64_t seq_len = 0;      // the model's maximum context (training sequence length); required
  int32_t eod_id = -1;      // conditions empty contexts; required
  int64_t batch_size = 16;  // rows per forward pass
};

// Scores with a next-token model. Requests are sorted by length (longest first) and batched, each
// batch right-padded to its longest row (padding sits after every scored position of a causal
// model, so it changes nothing). Runs without recording gradients.
class TransformerScorer : public LogLikelihoodScorer {
 public:
  TransformerScorer(const Transformer& model, ScorerOptions options);
  TransformerScorer(LogitsFn logits, int64_t vocab_size, ScorerOptions options);
  std::vector<ContinuationScore> score(const std::vector<ScoreRequest>& requests) override;

 private:
  LogitsFn logits_;
  int64_t vocab_size_;
  ScorerOptions options_;
};

}  // namespace remoe::eval
