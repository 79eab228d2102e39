#include "experiments/train/run_eval.h"

#include <fstream>
#include <memory>
#include <optional>
#include <iostream>

#include <fmt/format.h>

#include "core/error.h"
#include "experiments/config/config.h"
#include "experiments/data/dataset.h"
#include "experiments/data/shard.h"
#include "experiments/data/tokenizer.h"
#include "experiments/eval/heldout.h"
#include "experiments/eval/zero_shot.h"
#include "experiments/train/checkpoint.h"
#include "experiments/train/run_lock.h"

namespace remoe::experiments {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

// The run's resolved config (config.toml). data.dir is stored absolute since runs record it
// resolved; a relative one (older runs) is taken relative to the working directory.
Config read_run_config(const fs::path& run_dir) {
  const fs::path config_file = run_dir / "config.toml";
  REMOE_CHECK(fs::exists(config_file), "remoe eval: ", run_dir.string(), " is not a run directory (no config.toml)");
  Config cfg;
  cfg.apply_file(config_file);
  cfg.finalize();
  return cfg;
}

// The checkpoint to evaluate: the one asked for, or the newest that verifies, saying which one
// was used instead of a newer one and why (also in the result's "checkpoint_note").
fs::path pick_checkpoint(const RunEvalOptions& o, const Config& cfg, ordered_json& out) {
  if (o.checkpoint) return *o.checkpoint;  // load_checkpoint verifies it and names the problem
  const fs::path root = o.run_dir / "ckpt";
  for (const std::string& action : recover_checkpoints(root)) {
    if (!o.quiet) std::cerr << "remoe eval: checkpoints: " << action << "\n";
    out["checkpoint_recovery"].push_back(action);
  }
  const CheckpointChoice choice = choose_checkpoint(root, cfg.integer("train.steps"));
  if (!choice.fallback_note().empty()) {
    if (!o.quiet) std::cerr << "remoe eval: " << choice.fallback_note() << "\n";
    out["checkpoint_note"] = choice.fallback_note();
  }
  REMOE_CHECK(choice.chosen.has_value(), "remoe eval: no complete checkpoint under ", root.string(),
              choice.skipped.empty() ? std::string() : " (" + choice.fallback_note() + ")");
  return *choice.chosen;
}

eval::ZeroShotResult zero_shot_pass(const RunEvalOptions& o, Transformer& model, const data::Tokenizer& tokenizer,
                                    const Config& cfg) {
  eval::ZeroShotOptions zo;
  if (!o.eval_dir.empty()) zo.dir = o.eval_dir;
  if (!o.tasks.empty()) zo.tasks = o.tasks;
  zo.limit = o.limit;
  if (!o.quiet)
    zo.progress = [](const std::string& task, int64_t done, int64_t total) {
      std::cerr << fmt::format("\r  {} {}/{}   ", task, done, total) << (done == total ? "\n" : "") << std::flush;
    };
  eval::ScorerOptions so;
  so.seq_len = cfg.integer("model.seq_len");
  so.eod_id = tokenizer.eod_id();
  so.batch_size = cfg.integer("train.batch_size");
  eval::TransformerScorer scorer(model, so);
  return eval::run_zero_shot(scorer, tokenizer, zo);
}

}  // namespace

ordered_json evaluate_run(const RunEvalOptions& o) {
  REMOE_CHECK(o.max_tokens_per_domain >= 0, "remoe eval: --max-tokens must be >= 0 (0 = all), got ",
              o.max_tokens_per_domain);
  REMOE_CHECK(o.limit >= 0, "remoe eval: --limit must be >= 0 (0 = all), got ", o.limit);
  const Config cfg = read_run_config(o.run_dir);
  const RunDirLock lock = RunDirLock::acquire(o.run_dir, "remoe eval");  // it writes eval.json
  // Everything that can be checked is checked before the model runs: the manifest, the held-out
  // shard against it, the tokenizer when zero-shot tasks are asked for.
  const data::DatasetInfo dataset = data::load_dataset(cfg.string("data.dir"));
  std::optional<data::Shard> valid;
  if (o.heldout) valid = data::open_dataset_shard(dataset, "valid");
  std::unique_ptr<data::Tokenizer> tokenizer;
  if (o.zero_shot) tokenizer = data::load_tokenizer(dataset.dir / dataset.tokenizer);

  Transformer model(cfg.model_config(dataset.vocab_size));
  ordered_json out;
  out["run"] = o.run_dir.string();
  const fs::path ckpt = pick_checkpoint(o, cfg, out);
  TrainState state = load_checkpoint(ckpt, model, nullptr);
  model.eval();
  out["checkpoint"] = ckpt.string();
  out["step"] = state.step;
  out["router"] = cfg.string("moe.router");

  // Zero-shot first: its benchmark files are checked before any scoring, so a missing one fails
  // at once rather than after the held-out pass.
  std::optional<eval::ZeroShotResult> zero_shot;
  if (o.zero_shot) zero_shot = zero_shot_pass(o, model, *tokenizer, cfg);
  if (o.heldout) {
    eval::HeldoutOptions ho;
    ho.seq_len = cfg.integer("model.seq_len");
    ho.batch_size = cfg.integer("train.batch_size");
    ho.max_tokens_per_domain = o.max_tokens_per_domain;
    out["heldout"] = eval::to_json(eval::heldout_eval(model, *valid, dataset.domains, ho));
  }
  if (zero_shot) out["zero_shot"] = eval::to_json(*zero_shot);
  const fs::path file = o.run_dir / "eval.json";
  {
    std::ofstream f(file.string() + ".tmp");
    f << out.dump(2) << "\n";
    REMOE_CHECK(f, "remoe eval: cannot write ", file.string());
  }
  fs::rename(file.string() + ".tmp", file);
  return out;
}

std::string eval_markdown(const ordered_json& r) {
  std::string s = fmt::format("{} (step {}, {})\n\n", r.value("run", ""), r.value("step", 0), r.value("router", ""));
  s += "| domain | loss | bits/byte | tokens |\n|---|---:|---:|---:|\n";
  const ordered_json& h = r.contains("heldout") ? r["heldout"] : ordered_json::object();
  auto row = [&](const std::string& name, const ordered_json& d) {
    s += fmt::format("| {} | {:.4f} | {:.4f} | {} |\n", name, d["loss"].get<double>(), d["bpb"].get<double>(),
                     d["tokens"].get<int64_t>());
  };
  if (!h.empty()) {
    for (const auto& [name, d] : h["domains"].items()) row(name, d);
    row("all", h["overall"]);
  }
  if (r.contains("zero_shot")) {
    s += "\n| task | items | acc | acc_norm | ppl |\n|---|---:|---:|---:|---:|\n";
    for (const auto& [task, t] : r["zero_shot"]["tasks"].items()) {
      auto opt = [&](const char* k) {
        return t.contains(k) && !t[k].is_null() ? fmt::format("{:.4f}", t[k].get<double>()) : std::string("–");
      };
      s += fmt::format("| {} | {} | {:.4f} | {} | {} |\n", task, t["items"].get<int64_t>(), t["acc"].get<double>(),
                       opt("acc_norm"), opt("ppl"));
    }
  }
  return s;
}

}  // namespace remoe::experiments
