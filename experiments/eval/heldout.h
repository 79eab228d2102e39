// Held-out language-modelling loss per domain and bits-per-byte (the tokenizer-independent main
// metric; corpus.md, "Evaluation") from a validation shard.
//
// The chosen documents are concatenated in shard order behind one EOD token (what precedes every
// document in training), and the stream is cut into windows of seq_len + 1 tokens with stride
// seq_len: window w reads stream[w·L, w·L + L) and predicts stream[w·L + 1, w·L + L], so every
// document token (its EOD included) is predicted exactly once, with the preceding tokens of its
// window as context. A predicted token counts for the domain of the document it belongs to.
//   loss(domain) = Σ NLL / tokens          (nats per token)
//   bpb(domain)  = Σ NLL / ln 2 / Σ n_bytes  (bits per UTF-8 byte of the documents' text)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "experiments/eval/scorer.h"

namespace remoe {
class Transformer;
namespace data {
class Shard;
}
}  // namespace remoe

namespace remoe::eval {

struct HeldoutOptions {
  int64_t seq_len = 0;     // window length (the training sequence length); required
  int64_t batch_size = 8;  // windows per forward pass
  // > 0: take documents of a domain (whole, in shard order) only while fewer than this many of
  // its tokens are taken, so a domain gets at least this many tokens (or all it has) and at most
  // one document more.
  int64_t max_tokens_per_domain = 0;
  // The EOD id put before the first document; < 0 reads it from the shard (the last token of the
  // first document is EOD by the shard format).
  int32_t eod_id = -1;
};

struct DomainLoss {
  std::string domain;
  int64_t documents = 0;
  int64_t tokens = 0;   // predicted tokens
  uint64_t bytes = 0;   // Σ n_bytes of the documents
  double nll = 0;       // Σ −log p (nats)
  double loss = 0;      // nll / tokens
  double bpb = 0;       // nll / ln 2 / bytes
};

struct HeldoutResult {
  std::vector<DomainLoss> domains;  // the domains present in the shard, in domain-index order
  DomainLoss overall;               // domain "all"
};

// `domains` names the shard's domain indices (dataset.json); a document whose index has no name
// is an error.
HeldoutResult heldout_eval(const LogitsFn& logits, int64_t vocab_size, const data::Shard& shard,
                           const std::vector<std::string>& domains, const HeldoutOptions& options);
HeldoutResult heldout_eval(const Transformer& model, const data::Shard& shard, const std::vector<std::string>& domains,
                           const HeldoutOptions& options);

nlohmann::ordered_json to_json(const HeldoutResult& result);
std::string to_markdown(const HeldoutResult& result);

}  // namespace remoe::eval
