#include "experiments/eval/scorer.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "autograd/node.h"
#include "core/error.h"
#include "models/transformer.h"

namespace remoe::eval {
namespace {

void check_options(const ScorerOptions& o, int64_t vocab) {
  REMOE_CHECK(o.seq_len > 0, "scorer: seq_len = ", o.seq_len, " must be > 0");
  REMOE_CHECK(o.eod_id >= 0 && o.eod_id < vocab, "scorer: eod_id = ", o.eod_id, " is outside the vocabulary [0, ",
              vocab, ")");
  REMOE_CHECK(o.batch_size > 0, "scorer: batch_size = ", o.batch_size, " must be > 0");
}

}  // namespace

double token_logprob(const float* row, int64_t vocab, int64_t target, bool* is_argmax) {
  int64_t best = 0;
  for (int64_t v = 1; v < vocab; ++v)
    if (row[v] > row[best]) best = v;
  const double m = row[best];
  double s = 0;
  for (int64_t v = 0; v < vocab; ++v) s += std::exp(static_cast<double>(row[v]) - m);
  if (is_argmax) *is_argmax = best == target;
  return static_cast<double>(row[target]) - m - std::log(s);
}

Tensor logits_to_cpu_f32(const Tensor& logits) {
  Tensor t = logits.device().is_cpu() ? logits : logits.to(Device::cpu());
  if (t.dtype() != DType::f32) t = t.to(DType::f32);
  return contiguous_data(t);
}

std::vector<ScoringWindow> scoring_windows(const ScoreRequest& request, int64_t seq_len, int32_t eod_id) {
  const auto n_cont = static_cast<int64_t>(request.continuation.size());
  REMOE_CHECK(n_cont > 0, "scorer: empty continuation (context of ", request.context.size(), " tokens)");
  REMOE_CHECK(seq_len > 0, "scorer: seq_len = ", seq_len, " must be > 0");
  std::vector<int64_t> full;
  full.reserve(request.context.size() + request.continuation.size() + 1);
  if (request.context.empty()) full.push_back(eod_id);
  full.insert(full.end(), request.context.begin(), request.context.end());
  full.insert(full.end(), request.continuation.begin(), request.continuation.end());
  const auto n = static_cast<int64_t>(full.size());
  const int64_t c0 = n - n_cont;  // index of the first continuation token in full
  std::vector<ScoringWindow> windows;
  // Target groups [t0, t1) from the end; the input is full[start, t1 − 1), at most seq_len long.
  for (int64_t t1 = n; t1 > c0; t1 -= seq_len) {
    const int64_t t0 = std::max(c0, t1 - seq_len);
    const int64_t start = std::max<int64_t>(0, t1 - 1 - seq_len);
    ScoringWindow w;
    w.input.assign(full.begin() + start, full.begin() + (t1 - 1));
    w.first_pred = t0 - 1 - start;
    w.cont_begin = t0 - c0;
    w.count = t1 - t0;
    windows.push_back(std::move(w));
  }
  return windows;
}

TransformerScorer::TransformerScorer(const Transformer& model, ScorerOptions options)
    : vocab_size_(model.config().vocab_size), options_(options) {
  const std::vector<Tensor> params = model.parameters();
  const Device device = params.empty() ? Device::cpu() : params.front().device();
  logits_ = [&model, device](const Tensor& tokens) {
    return model.forward(tokens.device() == device ? tokens : tokens.to(device)).logits;
  };
  check_options(options_, vocab_size_);
}

TransformerScorer::TransformerScorer(LogitsFn logits, int64_t vocab_size, ScorerOptions options)
    : logits_(std::move(logits)), vocab_size_(vocab_size), options_(options) {
  check_options(options_, vocab_size_);
}

std::vector<ContinuationScore> TransformerScorer::score(const std::vector<ScoreRequest>& requests) {
  NoGradGuard no_grad;
  struct Piece {
    size_t request;
    ScoringWindow window;
  };
  std::vector<Piece> pieces;
  for (size_t i = 0; i < requests.size(); ++i) {
    for (const auto* ids : {&requests[i].context, &requests[i].continuation})
      for (int32_t id : *ids)
        REMOE_CHECK(id >= 0 && id < vocab_size_, "scorer: request ", i, " holds token id ", id,
                    " outside the vocabulary [0, ", vocab_size_, ")");
    for (ScoringWindow& w : scoring_windows(requests[i], options_.seq_len, options_.eod_id))
      pieces.push_back({i, std::move(w)});
  }
  // Longest first, so that each batch pads little (and an out-of-memory shows up at once).
  std::vector<size_t> order(pieces.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return pieces[a].window.input.size() > pieces[b].window.input.size();
  });

  std::vector<ContinuationScore> out(requests.size(), ContinuationScore{0.0, true});
  const auto B_max = static_cast<size_t>(options_.batch_size);
  for (size_t lo = 0; lo < order.size(); lo += B_max) {
    const size_t hi = std::min(order.size(), lo + B_max);
    const auto B = static_cast<int64_t>(hi - lo);
    const auto T = static_cast<int64_t>(pieces[order[lo]].window.input.size());
    std::vector<int64_t> tokens(static_cast<size_t>(B * T), options_.eod_id);
    for (int64_t b = 0; b < B; ++b) {
      const auto& in = pieces[order[lo + static_cast<size_t>(b)]].window.input;
      std::copy(in.begin(), in.end(), tokens.begin() + b * T);
    }
    Tensor logits = logits_to_cpu_f32(logits_(from_vector(tokens, {B, T})));
    REMOE_CHECK(logits.dim() == 2 && logits.size(0) == B * T && logits.size(1) == vocab_size_,
                "scorer: the model returned logits ", shape_str(logits.shape()), " for tokens [", B, ", ", T,
                "], expected [", B * T, ", ", vocab_size_, "]");
    const float* data = logits.data<float>();
    for (int64_t b = 0; b < B; ++b) {
      const Piece& piece = pieces[order[lo + static_cast<size_t>(b)]];
      const auto& cont = requests[piece.request].continuation;
      ContinuationScore& s = out[piece.request];
      for (int64_t j = 0; j < piece.window.count; ++j) {
        const int64_t pos = piece.window.first_pred + j;
        bool top = false;
        s.logprob += token_logprob(data + (b * T + pos) * vocab_size_, vocab_size_,
                                   cont[static_cast<size_t>(piece.window.cont_begin + j)], &top);
        s.greedy = s.greedy && top;
      }
    }
  }
  return out;
}

}  // namespace remoe::eval
