// `remoe sample RUN --prompt TEXT`: text generation from a run's checkpoint (models/generate.h):
// the prompt, as a new document (after the end-of-document token), then --tokens sampled tokens.
// Prints the text, tokens/s and, for MoE routers, the mean number of experts that routed each
// generated token.
#include <iostream>

#include <fmt/format.h>

#include "core/error.h"
#include "experiments/cli/commands.h"
#include "experiments/config/config.h"
#include "experiments/data/dataset.h"
#include "experiments/data/tokenizer.h"
#include "experiments/train/checkpoint.h"
#include "models/generate.h"

namespace remoe::cli {
namespace fs = std::filesystem;

namespace {

struct SampleArgs {
  std::string run, ckpt, prompt;
  SamplingOptions sampling;
};

// The checkpoint asked for, or the newest that verifies (saying which newer ones were passed over).
fs::path sample_checkpoint(const SampleArgs& a, const experiments::Config& cfg) {
  if (!a.ckpt.empty()) return a.ckpt;
  const experiments::CheckpointChoice choice =
      experiments::choose_checkpoint(fs::path(a.run) / "ckpt", cfg.integer("train.steps"));
  if (!choice.fallback_note().empty()) std::cerr << "remoe sample: " << choice.fallback_note() << "\n";
  REMOE_CHECK(choice.chosen.has_value(), "remoe sample: no complete checkpoint under ", a.run, "/ckpt");
  return *choice.chosen;
}

int run_sample(SampleArgs a) {
  REMOE_CHECK(!a.prompt.empty(), "remoe sample: --prompt is empty");
  const fs::path config_file = fs::path(a.run) / "config.toml";
  REMOE_CHECK(fs::exists(config_file), "remoe sample: ", a.run, " is not a run directory (no config.toml)");
  experiments::Config cfg;
  cfg.apply_file(config_file);
  cfg.finalize();
  const data::DatasetInfo dataset = data::load_dataset(cfg.string("data.dir"));
  std::unique_ptr<data::Tokenizer> tokenizer = data::load_tokenizer(dataset.dir / dataset.tokenizer);
  Transformer model(cfg.model_config(dataset.vocab_size));
  const fs::path ckpt = sample_checkpoint(a, cfg);
  experiments::load_checkpoint(ckpt, model, nullptr);
  model.eval();

  std::vector<int64_t> prompt = {tokenizer->eod_id()};  // a document starts after an end-of-document
  for (int32_t id : tokenizer->encode(a.prompt)) prompt.push_back(id);
  a.sampling.context = cfg.integer("model.seq_len");
  a.sampling.stop_token = tokenizer->eod_id();
  GenerationResult g = generate(model, prompt, a.sampling);
  std::vector<int32_t> ids(g.tokens.begin(), g.tokens.end());
  if (!ids.empty() && ids.back() == tokenizer->eod_id()) ids.pop_back();
  std::cout << a.prompt << tokenizer->decode(ids) << "\n\n";
  std::string stats = fmt::format("{} tokens in {:.2f} s ({:.1f} tokens/s, KV cache {}) | {} | checkpoint {}",
                                  g.tokens.size(), g.seconds, static_cast<double>(g.tokens.size()) / g.seconds,
                                  g.kv_cache ? "on" : "off: the router is not token-local", model.router().name,
                                  ckpt.string());
  if (model.is_moe()) stats += fmt::format(" | experts per generated token {:.2f}", g.active_experts);
  std::cerr << stats << "\n";
  return 0;
}

}  // namespace

Command add_sample_command(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("sample", "generate text from a run's checkpoint");
  auto a = std::make_shared<SampleArgs>();
  sub->add_option("run", a->run, "run directory (runs/<name>)")->required();
  sub->add_option("--ckpt", a->ckpt, "checkpoint directory (default: the newest that verifies)");
  sub->add_option("--prompt", a->prompt, "the text to continue")->required();
  sub->add_option("--tokens", a->sampling.max_new_tokens, "tokens to generate")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->capture_default_str();
  sub->add_option("--temperature", a->sampling.temperature, "softmax temperature; 0 = greedy")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  sub->add_option("--top-k", a->sampling.top_k, "sample among the k most likely tokens; 0 = all")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  sub->add_option("--top-p", a->sampling.top_p, "nucleus: the smallest set of tokens with this probability")
      ->check(CLI::Range(1e-9, 1.0))
      ->capture_default_str();
  sub->add_option("--seed", a->sampling.seed, "sampling seed")->capture_default_str();
  return [a]() { return run_sample(*a); };
}

}  // namespace remoe::cli
