// The held-out routing pass of `remoe analyze` domains/allocation/load_balance: a run's final model
// routes held-out text and every (layer, token, expert) pair is counted per domain and per token
// id. The run loading, the held-out text and the routing loop are shared with stability.cpp.
#include <algorithm>
#include <iostream>
#include <span>

#include <fmt/format.h>

#include "autograd/node.h"
#include "core/error.h"
#include "experiments/analyze/analyze.h"
#include "experiments/config/config.h"
#include "experiments/data/dataset.h"
#include "experiments/data/shard.h"
#include "experiments/data/tokenizer.h"
#include "experiments/train/checkpoint.h"
#include "models/router_registry.h"
#include "models/transformer.h"

namespace remoe::experiments {
namespace fs = std::filesystem;

namespace {

std::vector<int64_t> cpu_i64(const Tensor& t) {
  const Tensor c = contiguous_data(t.device() == Device::cpu() ? t : t.to(Device::cpu()));
  const int64_t* p = c.data<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

// One token alone may decode to part of a UTF-8 character (byte-level pieces): invalid bytes become U+FFFD.
std::string valid_utf8(const std::string& text) {
  const nlohmann::json quoted =
      nlohmann::json::parse(nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  return quoted.get<std::string>();
}

}  // namespace

RunModel load_run_model(const fs::path& run_dir, const std::string& analyses) {
  RunModel m;
  m.run = run_dir.string();
  const fs::path config_file = run_dir / "config.toml";
  REMOE_CHECK(fs::exists(config_file), "analyze: ", m.run, " is not a run directory (no config.toml)");
  m.cfg.apply_file(config_file);
  m.cfg.finalize();
  m.router = m.cfg.string("moe.router");
  const RouterSpec& spec = router_spec(m.router);
  REMOE_CHECK(spec.routes_tokens && spec.expert_parallel, "analyze: run ", m.run, " uses router \"", m.router,
              "\", which does not dispatch tokens to experts; the ", analyses,
              " analyses need a token-dispatching MoE router (topk, relu, hash, expert_choice, sparsemixer)");
  m.dataset = data::load_dataset(m.cfg.string("data.dir"));
  m.model = std::make_unique<Transformer>(m.cfg.model_config(m.dataset.vocab_size));
  return m;
}

HeldoutText heldout_text(const data::Shard& valid, size_t n_domains, int64_t max_tokens_per_domain, int64_t seq_len,
                         bool cut_last_document) {
  REMOE_CHECK(max_tokens_per_domain > 0, "analyze: held-out tokens per domain must be > 0, got ", max_tokens_per_domain);
  REMOE_CHECK(seq_len > 0, "analyze: seq_len must be > 0");
  // The documents: whole, in shard order, while the domain holds fewer than the cap.
  std::vector<data::DocEntry> docs;
  std::vector<int64_t> taken(n_domains, 0);
  for (uint64_t i = 0; i < valid.n_docs(); ++i) {
    const data::DocEntry d = valid.doc(i);
    REMOE_CHECK(d.domain < n_domains, "analyze: document ", i, " of ", valid.path().string(), " has an unknown domain ", d.domain);
    if (taken[d.domain] >= max_tokens_per_domain) continue;
    data::DocEntry kept = d;
    if (cut_last_document) kept.n_tokens = static_cast<decltype(kept.n_tokens)>(
        std::min<int64_t>(static_cast<int64_t>(d.n_tokens), max_tokens_per_domain - taken[d.domain]));
    taken[d.domain] += static_cast<int64_t>(kept.n_tokens);
    docs.push_back(kept);
  }
  REMOE_CHECK(!docs.empty(), "analyze: the held-out shard ", valid.path().string(), " holds no documents");
  const data::DocEntry d0 = valid.doc(0);
  const int64_t eod = valid.token(d0.start + d0.n_tokens - 1);
  // The stream: EOD, then the documents; each position's domain (−1: the EOD in front, padding).
  HeldoutText h;
  h.seq_len = seq_len;
  h.tokens = {eod};
  h.domain = {-1};
  for (const data::DocEntry& d : docs) {
    const size_t at = h.tokens.size();
    h.tokens.resize(at + d.n_tokens);
    valid.read(d.start, std::span<int64_t>(h.tokens.data() + at, d.n_tokens));
    h.domain.resize(at + d.n_tokens, static_cast<int32_t>(d.domain));
  }
  const auto L = static_cast<size_t>(seq_len);
  h.windows = static_cast<int64_t>((h.tokens.size() + L - 1) / L);
  h.tokens.resize(static_cast<size_t>(h.windows) * L, eod);
  h.domain.resize(static_cast<size_t>(h.windows) * L, -1);
  return h;
}

void route_heldout(Transformer& model, const HeldoutText& text, int64_t batch, const std::string& run, const LayerRouting& on_layer) {
  REMOE_CHECK(batch > 0, "analyze: batch must be > 0");
  model.eval();
  const int64_t L = text.seq_len;
  const std::vector<Tensor> params = model.parameters();
  const Device device = params.empty() ? Device::cpu() : params.front().device();
  NoGradGuard no_grad;
  for (int64_t w0 = 0; w0 < text.windows; w0 += batch) {
    const int64_t nb = std::min(batch, text.windows - w0);
    const auto first = static_cast<size_t>(w0 * L);
    std::vector<int64_t> tokens(text.tokens.begin() + static_cast<std::ptrdiff_t>(first),
                                text.tokens.begin() + static_cast<std::ptrdiff_t>(first + static_cast<size_t>(nb * L)));
    Tensor input = from_vector(tokens, {nb, L});
    if (device != Device::cpu()) input = input.to(device);
    const ForwardOutput out = model.forward(input);
    REMOE_CHECK(static_cast<int64_t>(out.layers.size()) == model.config().n_layers, "analyze: run ", run,
                ": the model returned routing for ", out.layers.size(), " of ", model.config().n_layers, " layers");
    for (size_t l = 0; l < out.layers.size(); ++l) {
      const RouterOutput& ro = out.layers[l];
      on_layer(l, first, cpu_i64(ro.routing.token), cpu_i64(ro.routing.expert), ro.experts);
    }
  }
}

std::string unfinished_note(int64_t newest_step, int64_t train_steps) {
  if (newest_step == train_steps) return {};
  return fmt::format("the newest checkpoint is step {} of {} (the run did not finish)", newest_step, train_steps);
}

RoutingStats collect_routing(const fs::path& run_dir, int64_t max_tokens_per_domain, bool with_train_frequency) {
  REMOE_CHECK(max_tokens_per_domain > 0, "analyze: --max-tokens must be > 0, got ", max_tokens_per_domain);
  RunModel m = load_run_model(run_dir, "domains, allocation and load_balance");
  const std::string& run = m.run;
  const Config& cfg = m.cfg;
  RoutingStats st;
  st.run = run;
  st.router = m.router;
  st.topk = cfg.integer("moe.topk");
  st.granularity = cfg.integer("moe.granularity");
  st.train_steps = cfg.integer("train.steps");
  const CheckpointChoice choice = choose_checkpoint(run_dir / "ckpt", st.train_steps);
  REMOE_CHECK(choice.chosen.has_value(), "analyze: run ", run, " has no complete checkpoint under ",
              (run_dir / "ckpt").string(), " (the domains, allocation and load_balance analyses route held-out text with the trained model)",
              choice.skipped.empty() ? std::string() : " (" + choice.fallback_note() + ")");
  st.checkpoint = choice.chosen->string();
  st.checkpoint_note = choice.fallback_note();

  const data::DatasetInfo& dataset = m.dataset;
  const data::Shard valid = data::open_dataset_shard(dataset, "valid");
  Transformer& model = *m.model;
  const TrainState state = load_checkpoint(*choice.chosen, model, nullptr);
  st.step = state.step;
  if (st.checkpoint_note.empty()) st.checkpoint_note = unfinished_note(st.step, st.train_steps);
  st.layers = model.config().n_layers;
  st.vocab = dataset.vocab_size;
  st.domains = dataset.domains;
  const size_t D = st.domains.size();
  st.domain_tokens.assign(D, 0);
  st.token_occurrences.assign(static_cast<size_t>(st.vocab), 0);
  st.token_pairs.assign(static_cast<size_t>(st.vocab), 0);

  const HeldoutText text = heldout_text(valid, D, max_tokens_per_domain, cfg.integer("model.seq_len"));
  route_heldout(model, text, cfg.integer("train.batch_size"), run,
                [&](size_t l, size_t first, const std::vector<int64_t>& tok, const std::vector<int64_t>& exp, int64_t experts) {
                  if (st.pairs.empty()) {
                    st.experts = experts;
                    st.pairs.assign(static_cast<size_t>(st.layers),
                                    std::vector<std::vector<int64_t>>(D, std::vector<int64_t>(static_cast<size_t>(st.experts), 0)));
                  }
                  for (size_t i = 0; i < tok.size(); ++i) {
                    const size_t pos = first + static_cast<size_t>(tok[i]);
                    const int32_t dom = text.domain[pos];
                    if (dom < 0) continue;
                    st.pairs[l][static_cast<size_t>(dom)][static_cast<size_t>(exp[i])] += 1;
                    st.token_pairs[static_cast<size_t>(text.tokens[pos])] += 1;
                  }
                });
  for (size_t p = 0; p < text.tokens.size(); ++p) {
    if (text.domain[p] < 0) continue;
    st.domain_tokens[static_cast<size_t>(text.domain[p])] += 1;
    st.token_occurrences[static_cast<size_t>(text.tokens[p])] += 1;
  }

  if (with_train_frequency) {
    const data::Shard train = data::open_dataset_shard(dataset, "train");
    st.train_frequency.assign(static_cast<size_t>(st.vocab), 0);
    std::vector<int64_t> chunk(1 << 20);
    for (uint64_t at = 0; at < train.n_tokens(); at += chunk.size()) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), train.n_tokens() - at));
      train.read(at, std::span<int64_t>(chunk.data(), n));
      for (size_t i = 0; i < n; ++i) st.train_frequency[static_cast<size_t>(chunk[i])] += 1;
    }
    const std::unique_ptr<data::Tokenizer> tokenizer = data::load_tokenizer(dataset.dir / dataset.tokenizer);
    st.token_text.resize(static_cast<size_t>(st.vocab));
    for (int64_t id = 0; id < st.vocab; ++id)
      if (st.token_occurrences[static_cast<size_t>(id)] > 0)
        st.token_text[static_cast<size_t>(id)] = valid_utf8(tokenizer->decode({static_cast<int32_t>(id)}));
  }
  return st;
}

}  // namespace remoe::experiments
