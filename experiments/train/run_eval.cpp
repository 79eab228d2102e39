#include "experiments/train/run_eval.h"

#include <fstream>
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

namespace remoe::experiments {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

ordered_json evaluate_run(const RunEvalOptions& o) {
  const fs::path config_file = o.run_dir / "config.toml";
  REMOE_CHECK(fs::exists(config_file), "remoe eval: ", o.run_dir.string(), " is not a run directory (no config.toml)");
  Config cfg;
  cfg.apply_file(config_file);
  cfg.finalize();
  const data::DatasetInfo dataset = data::load_dataset(cfg.string("data.dir"));
  Transformer model(cfg.model_config(dataset.vocab_size));
  fs::path ckpt;
  if (o.checkpoint) {
    ckpt = *o.checkpoint;
  } else {
    auto latest = latest_checkpoint(o.run_dir / "ckpt");
    REMOE_CHECK(latest.has_value(), "remoe eval: no complete checkpoint under ", (o.run_dir / "ckpt").string());
    ckpt = *latest;
  }
  TrainState state = load_checkpoint(ckpt, model, nullptr);
  model.eval();
  const int64_t seq_len = cfg.integer("model.seq_len");

  ordered_json out;
  out["run"] = o.run_dir.string();
  out["checkpoint"] = ckpt.string();
  out["step"] = state.step;
  out["router"] = cfg.string("moe.router");

  if (o.heldout) {
    data::Shard valid = data::Shard::open(dataset.valid_shard);
    eval::HeldoutOptions ho;
    ho.seq_len = seq_len;
    ho.batch_size = cfg.integer("train.batch_size");
    ho.max_tokens_per_domain = o.max_tokens_per_domain;
    out["heldout"] = eval::to_json(eval::heldout_eval(model, valid, dataset.domains, ho));
  }

  if (o.zero_shot) {
    auto tokenizer = data::load_tokenizer(dataset.dir / dataset.tokenizer);
    eval::ZeroShotOptions zo;
    if (!o.eval_dir.empty()) zo.dir = o.eval_dir;
    if (!o.tasks.empty()) zo.tasks = o.tasks;
    zo.limit = o.limit;
    if (!o.quiet)
      zo.progress = [](const std::string& task, int64_t done, int64_t total) {
        std::cerr << fmt::format("\r  {} {}/{}   ", task, done, total) << (done == total ? "\n" : "") << std::flush;
      };
    eval::ScorerOptions so;
    so.seq_len = seq_len;
    so.eod_id = tokenizer->eod_id();
    so.batch_size = cfg.integer("train.batch_size");
    eval::TransformerScorer scorer(model, so);
    out["zero_shot"] = eval::to_json(eval::run_zero_shot(scorer, *tokenizer, zo));
  }
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
