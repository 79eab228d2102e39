#include "experiments/eval/heldout.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <span>
#include <utility>

#include <fmt/format.h>

#include "autograd/node.h"
#include "core/error.h"
#include "experiments/data/shard.h"
#include "models/transformer.h"

namespace remoe::eval {
namespace {

// The evaluation stream: position 0 is EOD, then the chosen documents back to back. fill() copies
// a range of it with each token's domain (−1 for the leading EOD and for padding past the end).
class Stream {
 public:
  Stream(const data::Shard& shard, std::vector<data::DocEntry> docs, int32_t eod)
      : shard_(shard), docs_(std::move(docs)), eod_(eod) {
    starts_.reserve(docs_.size() + 1);
    int64_t p = 1;
    for (const data::DocEntry& d : docs_) {
      starts_.push_back(p);
      p += d.n_tokens;
    }
    size_ = p;
  }
  int64_t size() const { return size_; }

  void fill(int64_t a, int64_t n, int64_t* tok, int32_t* dom) const {
    int64_t p = a;
    const int64_t end = a + n;
    if (p == 0 && p < end) {
      tok[0] = eod_;
      dom[0] = -1;
      ++p;
    }
    if (p < size_) {
      auto d = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), p) - starts_.begin()) - 1;
      while (p < end && p < size_) {
        const data::DocEntry& doc = docs_[d];
        const int64_t doc_end = starts_[d] + doc.n_tokens;
        const int64_t take = std::min(end, doc_end) - p;
        shard_.read(doc.start + static_cast<uint64_t>(p - starts_[d]), std::span<int64_t>(tok + (p - a), static_cast<size_t>(take)));
        std::fill(dom + (p - a), dom + (p - a + take), static_cast<int32_t>(doc.domain));
        p += take;
        ++d;
      }
    }
    for (; p < end; ++p) {
      tok[p - a] = eod_;
      dom[p - a] = -1;
    }
  }

 private:
  const data::Shard& shard_;
  std::vector<data::DocEntry> docs_;
  std::vector<int64_t> starts_;  // stream position of each document's first token
  int64_t size_ = 1;
  int32_t eod_;
};

void finish(DomainLoss& d) {
  d.loss = d.tokens > 0 ? d.nll / static_cast<double>(d.tokens) : 0.0;
  d.bpb = d.bytes > 0 ? d.nll / std::numbers::ln2 / static_cast<double>(d.bytes) : 0.0;
}

}  // namespace

HeldoutResult heldout_eval(const LogitsFn& logits_fn, int64_t vocab_size, const data::Shard& shard,
                           const std::vector<std::string>& domains, const HeldoutOptions& options) {
  const int64_t L = options.seq_len;
  REMOE_CHECK(L > 0, "heldout eval: seq_len = ", L, " must be > 0");
  REMOE_CHECK(options.batch_size > 0, "heldout eval: batch_size = ", options.batch_size, " must be > 0");
  REMOE_CHECK(shard.n_docs() > 0, "heldout eval: shard ", shard.path().string(), " holds no documents");
  REMOE_CHECK(static_cast<int64_t>(shard.vocab_size()) <= vocab_size, "heldout eval: shard ", shard.path().string(),
              " has vocab_size ", shard.vocab_size(), " but the model's vocabulary has ", vocab_size, " ids");

  // Choose the documents (whole), per-domain token budgets permitting.
  const size_t n_domains = domains.size();
  std::vector<DomainLoss> acc(n_domains);
  for (size_t i = 0; i < n_domains; ++i) acc[i].domain = domains[i];
  std::vector<data::DocEntry> docs;
  for (uint64_t i = 0; i < shard.n_docs(); ++i) {
    const data::DocEntry d = shard.doc(i);
    REMOE_CHECK(d.domain < n_domains, "heldout eval: document ", i, " of ", shard.path().string(), " has domain ",
                d.domain, " but only ", n_domains, " domain names are known");
    DomainLoss& a = acc[d.domain];
    if (options.max_tokens_per_domain > 0 && a.tokens >= options.max_tokens_per_domain) continue;
    a.documents += 1;
    a.tokens += d.n_tokens;
    a.bytes += d.n_bytes;
    docs.push_back(d);
  }
  std::vector<int64_t> expected_tokens(n_domains);
  for (size_t i = 0; i < n_domains; ++i) expected_tokens[i] = std::exchange(acc[i].tokens, 0);

  int32_t eod = options.eod_id;
  if (eod < 0) {
    const data::DocEntry d0 = shard.doc(0);
    REMOE_CHECK(d0.n_tokens > 0, "heldout eval: the first document of ", shard.path().string(), " is empty");
    eod = shard.token(d0.start + d0.n_tokens - 1);
  }
  REMOE_CHECK(eod >= 0 && eod < vocab_size, "heldout eval: EOD id ", eod, " is outside the vocabulary [0, ",
              vocab_size, ")");

  NoGradGuard no_grad;
  const Stream stream(shard, std::move(docs), eod);
  const int64_t n_windows = (stream.size() - 1 + L - 1) / L;  // ceil(predicted tokens / L)
  std::vector<int64_t> buf(static_cast<size_t>(L + 1));
  std::vector<int32_t> dom(static_cast<size_t>(L + 1));
  for (int64_t w0 = 0; w0 < n_windows; w0 += options.batch_size) {
    const int64_t B = std::min(options.batch_size, n_windows - w0);
    std::vector<int64_t> inputs(static_cast<size_t>(B * L)), targets(static_cast<size_t>(B * L));
    std::vector<int32_t> target_dom(static_cast<size_t>(B * L));
    for (int64_t b = 0; b < B; ++b) {
      stream.fill((w0 + b) * L, L + 1, buf.data(), dom.data());
      std::copy(buf.begin(), buf.end() - 1, inputs.begin() + b * L);
      std::copy(buf.begin() + 1, buf.end(), targets.begin() + b * L);
      std::copy(dom.begin() + 1, dom.end(), target_dom.begin() + b * L);
    }
    Tensor logits = logits_to_cpu_f32(logits_fn(from_vector(inputs, {B, L})));
    REMOE_CHECK(logits.dim() == 2 && logits.size(0) == B * L && logits.size(1) == vocab_size,
                "heldout eval: the model returned logits ", shape_str(logits.shape()), " for tokens [", B, ", ", L,
                "], expected [", B * L, ", ", vocab_size, "]");
    const float* data = logits.data<float>();
    std::vector<double> nll(static_cast<size_t>(B * L), 0.0);
#pragma omp parallel for
    for (int64_t r = 0; r < B * L; ++r)
      if (target_dom[static_cast<size_t>(r)] >= 0)
        nll[static_cast<size_t>(r)] = -token_logprob(data + r * vocab_size, vocab_size, targets[static_cast<size_t>(r)]);
    for (int64_t r = 0; r < B * L; ++r) {
      const int32_t d = target_dom[static_cast<size_t>(r)];
      if (d < 0) continue;
      acc[static_cast<size_t>(d)].nll += nll[static_cast<size_t>(r)];
      acc[static_cast<size_t>(d)].tokens += 1;
    }
  }

  HeldoutResult result;
  result.overall.domain = "all";
  for (size_t i = 0; i < n_domains; ++i) {
    DomainLoss& a = acc[i];
    REMOE_CHECK(a.tokens == expected_tokens[i], "heldout eval: internal error: domain ", a.domain, " predicted ",
                a.tokens, " tokens, its documents hold ", expected_tokens[i]);
    if (a.documents == 0) continue;
    finish(a);
    result.overall.documents += a.documents;
    result.overall.tokens += a.tokens;
    result.overall.bytes += a.bytes;
    result.overall.nll += a.nll;
    result.domains.push_back(a);
  }
  finish(result.overall);
  return result;
}

HeldoutResult heldout_eval(const Transformer& model, const data::Shard& shard, const std::vector<std::string>& domains,
                           const HeldoutOptions& options) {
  const std::vector<Tensor> params = model.parameters();
  const Device device = params.empty() ? Device::cpu() : params.front().device();
  LogitsFn fn = [&model, device](const Tensor& tokens) {
    return model.forward(tokens.device() == device ? tokens : tokens.to(device)).logits;
  };
  return heldout_eval(fn, model.config().vocab_size, shard, domains, options);
}

namespace {

nlohmann::ordered_json domain_json(const DomainLoss& d) {
  nlohmann::ordered_json o;
  o["documents"] = d.documents;
  o["tokens"] = d.tokens;
  o["bytes"] = d.bytes;
  o["loss"] = d.loss;
  o["bpb"] = d.bpb;
  return o;
}

}  // namespace

nlohmann::ordered_json to_json(const HeldoutResult& result) {
  nlohmann::ordered_json j;
  nlohmann::ordered_json domains = nlohmann::ordered_json::object();
  for (const DomainLoss& d : result.domains) domains[d.domain] = domain_json(d);
  j["domains"] = std::move(domains);
  j["overall"] = domain_json(result.overall);
  return j;
}

std::string to_markdown(const HeldoutResult& result) {
  std::string s = "| domain | documents | tokens | bytes | loss (nats/token) | bits/byte |\n|---|---:|---:|---:|---:|---:|\n";
  auto row = [&](const DomainLoss& d) {
    s += fmt::format("| {} | {} | {} | {} | {:.4f} | {:.4f} |\n", d.domain, d.documents, d.tokens, d.bytes, d.loss,
                     d.bpb);
  };
  for (const DomainLoss& d : result.domains) row(d);
  row(result.overall);
  return s;
}

}  // namespace remoe::eval
